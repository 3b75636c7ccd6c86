"""Our LSTM's inference loop with one sigmoid per step against one per gate, beside Keras.

`rnn_keras.final_states` runs our LSTM at inference (a layer that returns its
final state) with its gates from one sigmoid over all four blocks
(`final_states.lstm_gates`). `three sigmoids` is the same layer with the
per-gate form, one sigmoid per gate, which the loop used before. Timed side by
side in interleaved rounds with `speed_vs_pytorch`'s timing; the training
columns run the fused training kernel, the same in both (a check on the noise).

    python benchmarks/lstm_gates.py
    python benchmarks/lstm_gates.py --lengths 100 --rounds 31
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


def per_gate(z):
    """The gates with one sigmoid each (the loop's form before 2026-12-03)."""
    i, f, g, o = ops.split(z, 4, axis=-1)
    return ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)


class PerGateRecurrent(rnn_keras.Recurrent):
    """`Recurrent` tracing its loops with the per-gate form (call runs once, at tracing)."""

    def call(self, sequences, initial_state=None, mask=None, training=False):
        one_sigmoid = final_states.lstm_gates
        final_states.lstm_gates = per_gate
        try:
            return super().call(sequences, initial_state, mask, training)
        finally:
            final_states.lstm_gates = one_sigmoid


VARIANTS = {
    "ours lstm": lambda units: rnn_keras.Recurrent(rnn_keras.LSTMCell(units)),
    "three sigmoids": lambda units: PerGateRecurrent(rnn_keras.LSTMCell(units)),
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
    for steps in args.lengths:
        speed_vs_pytorch.print_table(steps, speed_vs_pytorch.measure(args, steps, False))


if __name__ == "__main__":
    main()
