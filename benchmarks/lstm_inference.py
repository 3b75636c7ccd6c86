"""Our LSTM's inference loop against two other forms of it, beside Keras's LSTM.

`rnn_keras.final_states` runs our LSTM at inference (a layer that returns its
final state): per step, x_t [W; b] with the bias as an input feature fixed at 1,
then one sigmoid per gate (`final_states._lstm_step`). The variants:

- `bias per step`: the loop before 2026-12-03, x_t W + b, one operation more a step;
- `gru bias in product`: our GRU's loop with x_t [W; b]; `ours gru` keeps x_t W + b,
  as the library does (x_t [W; b] was faster or slower from run to run for the GRU);
- `one sigmoid`: one sigmoid over all four gate blocks per step (the tanh block's
  included, then unused): fewer operations, but one larger one that TensorFlow
  splits across both cores (tried and reverted: slower where the host steals CPU time).

Timed side by side in interleaved rounds with `speed_vs_pytorch`'s timing; the
training columns run the fused training kernel, the same in all our variants (a
check on the noise). The last line gives the share of CPU time the host stole.

    python benchmarks/lstm_inference.py
    python benchmarks/lstm_inference.py --lengths 100 --rounds 41
"""

import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
from keras import ops  # noqa: E402

import rnn_keras  # noqa: E402
from benchmarks import speed_vs_pytorch  # noqa: E402
from rnn_keras import final_states  # noqa: E402


def one_sigmoid_step(projected, states, recurrent_kernel):
    """`final_states._lstm_step` with the gates from one sigmoid over all four blocks."""
    h, c = states
    z = projected + ops.matmul(h, recurrent_kernel)
    units = z.shape[-1] // 4
    i, f, _, o = ops.split(ops.sigmoid(z), 4, axis=-1)
    c_new = f * c + i * ops.tanh(z[:, 2 * units : 3 * units])
    return [o * ops.tanh(c_new), c_new]


def bias_per_step(step, sequence_kernel, inputs, kernel, bias, initial, weights, mask, **_):
    """`final_states.final_states` with x_t W + b each step (inference only)."""

    def final(inputs, kernel, bias, *rest):
        states = list(rest[: len(initial)])

        def body(index, carry):
            return tuple(step(ops.matmul(inputs[index], kernel) + bias, list(carry), *weights))

        finals = ops.fori_loop(0, inputs.shape[0], body, tuple(states))

        def grad(*upstream):
            raise NotImplementedError("inference only")

        return tuple(finals), grad

    return list(ops.custom_gradient(final)(inputs, kernel, bias, *initial))


class PatchedRecurrent(rnn_keras.Recurrent):
    """`Recurrent` tracing its loops with one `final_states` function replaced.

    `call` runs once, when the model is traced; the replacement lasts that long.
    """

    def __init__(self, cell, name_and_function, **kwargs):
        super().__init__(cell, **kwargs)
        self.name_and_function = name_and_function

    def call(self, sequences, initial_state=None, mask=None, training=False):
        name, function = self.name_and_function
        original = getattr(final_states, name)
        setattr(final_states, name, function)
        try:
            return super().call(sequences, initial_state, mask, training)
        finally:
            setattr(final_states, name, original)


VARIANTS = {
    "ours lstm": lambda units: rnn_keras.Recurrent(rnn_keras.LSTMCell(units)),
    "bias per step": lambda units: PatchedRecurrent(
        rnn_keras.LSTMCell(units), ("final_states", bias_per_step)
    ),
    "one sigmoid": lambda units: PatchedRecurrent(
        rnn_keras.LSTMCell(units), ("_lstm_step", one_sigmoid_step)
    ),
    "keras lstm": lambda units: keras.layers.LSTM(units),
    "ours gru": lambda units: rnn_keras.Recurrent(rnn_keras.GRUCell(units)),
    "gru bias in product": lambda units: PatchedRecurrent(
        rnn_keras.GRUCell(units),
        ("final_states", functools.partial(final_states.final_states, bias_in_product=True)),
    ),
}


def main():
    speed_vs_pytorch.compare(__doc__.splitlines()[0], VARIANTS, lengths=[100, 1000], rounds=15)


if __name__ == "__main__":
    main()
