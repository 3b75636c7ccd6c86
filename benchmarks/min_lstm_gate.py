"""Where minLSTM's training time goes: its log-space gate against cheaper (unstable) gates.

minLSTM (`rnn_keras.MinLSTMCell`) differs from minGRU by a third input projection and
by its normalised gate i' = i / (f + i), which must stay finite where f + i underflows
(`rnn_keras.cells.minimal.normalized_input_gate`). This script times, side by side in
interleaved rounds, a training step (forward, backward, Adam; one layer, mean squared
error of the last output) and a forward pass of:

- `ours lstm`, `ours mingru`, `ours minlstm`: our cells as shipped;
- `two sigmoids`: the gate as i / (f + i) from two sigmoids (not finite where
  both gates underflow, which is why the cell does not use it);
- `softplus`: the paper's log-space form as written,
  sigmoid(softplus(-k_f) - softplus(-k_i)), differentiated by Keras (the cell computes the
  same numbers from three scaled exponentials with a hand-written gradient);
- `one sigmoid`: three projections but the gate a plain sigmoid of one of them
  (not minLSTM: it bounds what the third projection alone costs).

The other minLSTM variants are subclasses defined here.

    python benchmarks/min_lstm_gate.py
    python benchmarks/min_lstm_gate.py --steps 4000 --rounds 5
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras import ops  # noqa: E402

import rnn_keras  # noqa: E402
from benchmarks import speed_vs_pytorch  # noqa: E402


class TwoSigmoidGate(rnn_keras.MinLSTMCell):
    """i / (f + i) from the two sigmoids: the same numbers while f + i does not underflow."""

    def update_gate(self, gate_projections):
        negative_k_forget, negative_k_input = gate_projections
        forget, update = ops.sigmoid(-negative_k_forget), ops.sigmoid(-negative_k_input)
        return update / (forget + update)


class SoftplusGate(rnn_keras.MinLSTMCell):
    """The paper's log-space form as written, sigmoid(softplus(-k_f) - softplus(-k_i)),
    differentiated by Keras (the cell's form before 2026-12-03)."""

    def update_gate(self, gate_projections):
        negative_k_forget, negative_k_input = gate_projections
        return ops.sigmoid(ops.softplus(negative_k_forget) - ops.softplus(negative_k_input))


class OneSigmoidGate(rnn_keras.MinLSTMCell):
    """Three projections, a minGRU-like gate from the second: a bound, not a model."""

    def update_gate(self, gate_projections):
        return ops.sigmoid(gate_projections[1])


VARIANTS = {
    "ours lstm": rnn_keras.LSTMCell,
    "ours mingru": rnn_keras.MinGRUCell,
    "ours minlstm": rnn_keras.MinLSTMCell,
    "two sigmoids": TwoSigmoidGate,
    "softplus": SoftplusGate,
    "one sigmoid": OneSigmoidGate,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    # The layer table's own timing (interleaved rounds, medians), with these variants.
    for name, cell in VARIANTS.items():
        speed_vs_pytorch.KERAS_VARIANTS[name] = lambda units, cell=cell: rnn_keras.Recurrent(
            cell(units)
        )
    args.variants = list(VARIANTS)
    print(speed_vs_pytorch.machine())
    print(
        f"batch {args.batch}, features {args.features}, units {args.units}, "
        f"{args.rounds} rounds after one warm-up; training = forward + backward + Adam"
    )
    speed_vs_pytorch.print_table(args.steps, speed_vs_pytorch.measure(args, args.steps, False))


if __name__ == "__main__":
    main()
