"""Our LSTM's inference loop with one sigmoid per gate against one sigmoid per step.

`rnn_keras.final_states` runs our LSTM at inference (a layer that returns its
final state) with one sigmoid per gate (`final_states.lstm_gates`). `one sigmoid`
is the same layer with one sigmoid over all four blocks per step (the tanh
block's included, then unused): fewer operations, but one larger one that
TensorFlow splits across both cores. Timed side by side in interleaved rounds
with `speed_vs_pytorch`'s timing, beside Keras's LSTM; the training columns run
the fused training kernel, the same in all our variants (a check on the noise).
The last line gives the share of CPU time the host stole during the run.

    python benchmarks/lstm_gates.py
    python benchmarks/lstm_gates.py --lengths 100 --rounds 41
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
from keras import ops  # noqa: E402

import rnn_keras  # noqa: E402
from benchmarks import speed_vs_pytorch  # noqa: E402
from rnn_keras import final_states  # noqa: E402


def one_sigmoid(z):
    """The gates from one sigmoid over all four blocks."""
    units = z.shape[-1] // 4
    i, f, _, o = ops.split(ops.sigmoid(z), 4, axis=-1)
    return i, f, ops.tanh(z[:, 2 * units : 3 * units]), o


class OneSigmoidRecurrent(rnn_keras.Recurrent):
    """`Recurrent` tracing its loops with `one_sigmoid` (call runs once, at tracing)."""

    def call(self, sequences, initial_state=None, mask=None, training=False):
        per_gate = final_states.lstm_gates
        final_states.lstm_gates = one_sigmoid
        try:
            return super().call(sequences, initial_state, mask, training)
        finally:
            final_states.lstm_gates = per_gate


VARIANTS = {
    "ours lstm": lambda units: rnn_keras.Recurrent(rnn_keras.LSTMCell(units)),
    "one sigmoid": lambda units: OneSigmoidRecurrent(rnn_keras.LSTMCell(units)),
    "keras lstm": lambda units: keras.layers.LSTM(units),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    speed_vs_pytorch.KERAS_VARIANTS.clear()
    speed_vs_pytorch.KERAS_VARIANTS.update(VARIANTS)
    args.variants = list(VARIANTS)
    print(speed_vs_pytorch.machine())
    print(
        f"batch {args.batch}, features {args.features}, units {args.units}, "
        f"{args.rounds} rounds after one warm-up; training = forward + backward + Adam"
    )
    start = speed_vs_pytorch.cpu_ticks()
    for steps in args.lengths:
        speed_vs_pytorch.print_table(steps, speed_vs_pytorch.measure(args, steps, False))
    print(speed_vs_pytorch.stolen_share(start))


if __name__ == "__main__":
    main()
