"""Where minLSTM's training time goes: its log-space gate against cheaper (unstable) gates.

minLSTM (`rnn_keras.MinLSTMCell`) differs from minGRU by a third input projection and
by its normalised gate i' = i / (f + i), which must stay finite where f + i underflows
(`rnn_keras.cells.minimal.normalized_input_gate`). This script times, side by side in
interleaved rounds, a training step (forward, backward, Adam; one layer, mean squared
error of the last output) and a forward pass of:

- `lstm`, `mingru`, `minlstm`: our cells as shipped;
- `minlstm two sigmoids`: the gate as i / (f + i) from two sigmoids (not finite where
  both gates underflow, which is why the cell does not use it);
- `minlstm softplus`: the paper's log-space form as written,
  sigmoid(softplus(-k_f) - softplus(-k_i)), differentiated by Keras (the cell computes the
  same numbers from three scaled exponentials with a hand-written gradient);
- `minlstm one sigmoid`: three projections but the gate a plain sigmoid of one of them
  (not minLSTM: it bounds what the third projection alone costs).

The other minLSTM variants are subclasses defined here.

    python benchmarks/min_lstm_gate.py
    python benchmarks/min_lstm_gate.py --steps 4000 --rounds 5
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import rnn_keras  # noqa: E402
from benchmarks.speed_vs_pytorch import machine  # noqa: E402


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
    "lstm": rnn_keras.LSTMCell,
    "mingru": rnn_keras.MinGRUCell,
    "minlstm": rnn_keras.MinLSTMCell,
    "minlstm two sigmoids": TwoSigmoidGate,
    "minlstm softplus": SoftplusGate,
    "minlstm one sigmoid": OneSigmoidGate,
}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
    return parser.parse_args()


def timed_ms(function, *arguments):
    start = time.perf_counter()
    function(*arguments)
    return (time.perf_counter() - start) * 1000


def main():
    args = parse_arguments()
    print(machine())
    print(f"batch {args.batch}, {args.steps} steps, features {args.features}, units {args.units}")
    print(f"{args.rounds} interleaved rounds after one warm-up; median ms")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.steps, args.features)).astype("float32")
    y = rng.normal(size=(args.batch, args.units)).astype("float32")
    models = {}
    for name, cell in VARIANTS.items():
        model = keras.Sequential(
            [keras.Input((args.steps, args.features)), rnn_keras.Recurrent(cell(args.units))]
        )
        model.compile(optimizer="adam", loss="mse")
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
        models[name] = model
    times = {name: ([], []) for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name][0].append(timed_ms(model.train_on_batch, x, y))
            times[name][1].append(timed_ms(model.predict_on_batch, x))
    medians = {name: [statistics.median(t) for t in pair] for name, pair in times.items()}
    train_lstm, infer_lstm = medians["lstm"]
    print(f"{'variant':<22}{'train ms':>10}{'infer ms':>10}{'x lstm train':>14}{'(infer)':>9}")
    for name, (train, infer) in medians.items():
        print(
            f"{name:<22}{train:10.1f}{infer:10.1f}{train_lstm / train:14.2f}"
            f"{infer_lstm / infer:9.2f}"
        )


if __name__ == "__main__":
    main()
