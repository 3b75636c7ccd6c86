"""Where the time of a hand-written recurrent kernel goes, op type by op type.

Runs the forward and backward pass of `rnn_keras.kernels.lstm_sequence` or
`gru_sequence` (the fused kernels behind `rnn_keras.Recurrent` in training) on the
benchmark shapes in a TensorFlow graph session with full tracing, and prints the time of
each op type summed over the run (medians over `--rounds` traced runs), in the loops
and outside them. Ops on the two cores overlap, so the sum exceeds the wall time; the
table says which kinds of work to remove, not how long a step takes.

    python benchmarks/kernel_ops.py                 # LSTM, batch 64, 100 steps, 256 units
    python benchmarks/kernel_ops.py --cell gru --top 15
"""

import argparse
import collections
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnn_keras import kernels  # noqa: E402

GATES = {"lstm": 4, "gru": 3}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=sorted(GATES), default="lstm")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=12, help="rows to print")
    return parser.parse_args()


def build_graph(arguments):
    """The loss gradient with respect to the projected inputs and the recurrent kernel."""
    random = np.random.default_rng(0)
    width = GATES[arguments.cell] * arguments.units
    shape = (arguments.steps, arguments.batch, width)
    projected = tf.constant(random.normal(size=shape).astype("float32") * 0.3)
    kernel = tf.constant(
        random.normal(size=(arguments.units, width)).astype("float32") * arguments.units**-0.5
    )
    state = tf.zeros((arguments.batch, arguments.units))
    if arguments.cell == "lstm":
        outputs = kernels.lstm_sequence(projected, state, state, kernel)[0]
    else:
        outputs = kernels.gru_sequence(projected, state, kernel, tf.zeros((arguments.units,)))[0]
    loss = tf.reduce_sum(outputs * outputs)
    return tf.gradients(loss, [projected, kernel])


def traced_op_times(session, fetches):
    """Microseconds per (op type, where) of one fully traced run."""
    metadata = tf.compat.v1.RunMetadata()
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    session.run(fetches, options=options, run_metadata=metadata)
    times = collections.Counter()
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            if not node.timeline_label:
                continue
            op_type = node.timeline_label.split("(")[0].split("=")[-1].strip()
            where = "loop" if "while" in node.node_name else "outside"
            times[(op_type, where)] += node.all_end_rel_micros
    return times


def main():
    arguments = parse_arguments()
    graph = tf.Graph()
    with graph.as_default():
        fetches = build_graph(arguments)
        with tf.compat.v1.Session(graph=graph) as session:
            for _ in range(3):
                session.run(fetches)
            rounds = [traced_op_times(session, fetches) for _ in range(arguments.rounds)]
    keys = set().union(*rounds)
    medians = {key: float(np.median([times[key] for times in rounds])) / 1000 for key in keys}
    total = sum(medians.values())
    print(
        f"{arguments.cell.upper()} forward+backward, batch {arguments.batch}, "
        f"{arguments.steps} steps, {arguments.units} units: op time summed over both cores, "
        f"median of {arguments.rounds} traced runs"
    )
    print("| op type | where | ms | share |")
    print("|---|---|---|---|")
    for (op_type, where), milliseconds in sorted(medians.items(), key=lambda item: -item[1])[
        : arguments.top
    ]:
        print(f"| {op_type} | {where} | {milliseconds:.1f} | {milliseconds / total:.0%} |")
    print(f"| all | | {total:.1f} | 100% |")


if __name__ == "__main__":
    main()
