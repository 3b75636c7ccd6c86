"""The LSTM cell (Hochreiter & Schmidhuber 1997), with peepholes and layer normalisation."""

import keras
from keras import ops

from rnn_keras import final_states, kernels, loops
from rnn_keras.cells.base import RecurrentCell, activation_name, get_activation

LAYER_NORM_EPSILON = 1e-3


def layer_normalize(values, gamma, beta):
    """Layer normalisation over the last axis (Ba et al. 2016)."""
    mean = ops.mean(values, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(values - mean), axis=-1, keepdims=True)
    return (values - mean) * ops.rsqrt(variance + LAYER_NORM_EPSILON) * gamma + beta


@keras.saving.register_keras_serializable(package="rnn_keras")
class LSTMCell(RecurrentCell):
    """Long short-term memory cell (Hochreiter & Schmidhuber 1997; Gers et al. 2000).

    i = sig(z_i), f = sig(z_f), g = tanh(z_c), o = sig(z_o) with
    z = x W + h_{t-1} U + b split in the Keras gate order (i, f, c, o);
    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t). The weight layout equals
    `keras.layers.LSTMCell`, so weights copy across with `set_weights`.

    Args:
        units: positive integer, dimensionality of h and c.
        activation: activation of the candidate and of the cell output ("tanh").
        recurrent_activation: activation of the gates ("sigmoid").
        unit_forget_bias: initialise the forget-gate bias to 1 (Jozefowicz et
            al. 2015).
        peephole: add diagonal peephole connections from the cell state to
            the gates (Gers & Schmidhuber 2000): i and f see c_{t-1}, o sees c_t.
        layer_norm: normalise x W and h U (over all four gates) and the new
            cell state, as TensorFlow Addons' `LayerNormLSTMCell` did (Ba et al.
            2016).
        **kwargs: the common cell arguments of `RecurrentCell` (initialisers,
            regularisers, constraints, `dropout`, `recurrent_dropout`, `seed`).

    Call arguments:
        inputs: `(batch, features)`.
        states: `[h, c]`, each `(batch, units)`.
        training: whether dropout is active.

    Returns:
        `(h_t, [h_t, c_t])`, each `(batch, units)`.

    Example:

    >>> layer = rnn_keras.Recurrent(rnn_keras.LSTMCell(32), return_sequences=True)
    >>> layer(np.zeros((4, 10, 8), "float32")).shape
    (4, 10, 32)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        unit_forget_bias=True,
        peephole=False,
        layer_norm=False,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.activation = get_activation("activation", activation)
        self.recurrent_activation = get_activation("recurrent_activation", recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        units = self.units
        self.add_standard_weights(input_shape[-1], 4 * units, units, 4 * units)
        if self.unit_forget_bias:
            base = self.bias_initializer

            def bias_initializer(shape, dtype=None):
                return ops.concatenate(
                    [
                        base((units,), dtype=dtype),
                        keras.initializers.Ones()((units,), dtype=dtype),
                        base((units * 2,), dtype=dtype),
                    ]
                )

            self.add_bias((4 * units,), bias_initializer)
        else:
            self.add_bias((4 * units,))
        if self.peephole:
            for name in ("input_peephole", "forget_peephole", "output_peephole"):
                setattr(self, name, self.add_kernel(name, (units,), "glorot_uniform"))
        if self.layer_norm:
            for name, width in (("kernel_norm", 4 * units), ("recurrent_norm", 4 * units)):
                setattr(self, f"{name}_gamma", self.add_kernel(f"{name}_gamma", (width,), "ones"))
                setattr(self, f"{name}_beta", self.add_kernel(f"{name}_beta", (width,), "zeros"))
            self.state_norm_gamma = self.add_kernel("state_norm_gamma", (units,), "ones")
            self.state_norm_beta = self.add_kernel("state_norm_beta", (units,), "zeros")

    def project_inputs(self, inputs):
        projected = ops.matmul(inputs, self.kernel)
        if self.layer_norm:
            projected = layer_normalize(projected, self.kernel_norm_gamma, self.kernel_norm_beta)
        if self.use_bias:
            projected = loops.add_bias(projected, self.bias)
        return projected

    def recurrent_step(self, projected, states, recurrent_mask=None):
        h_previous, c_previous = states[0], states[1]
        h_in = h_previous * recurrent_mask if recurrent_mask is not None else h_previous
        recurrent = ops.matmul(h_in, self.recurrent_kernel)
        if self.layer_norm:
            recurrent = layer_normalize(
                recurrent, self.recurrent_norm_gamma, self.recurrent_norm_beta
            )
        z_i, z_f, z_c, z_o = ops.split(projected + recurrent, 4, axis=-1)
        if self.peephole:
            z_i = z_i + self.input_peephole * c_previous
            z_f = z_f + self.forget_peephole * c_previous
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_previous + i * self.activation(z_c)
        if self.layer_norm:
            c = layer_normalize(c, self.state_norm_gamma, self.state_norm_beta)
        if self.peephole:
            z_o = z_o + self.output_peephole * c
        h = self.recurrent_activation(z_o) * self.activation(c)
        return h, [h, c]

    @property
    def has_fused_kernel(self):
        return (
            activation_name(self.activation) == "tanh"
            and activation_name(self.recurrent_activation) == "sigmoid"
            and not self.peephole
            and not self.layer_norm
        )

    def fused_final_states(self, inputs, initial_states, mask):
        if not self.has_fused_kernel or not self.use_bias:
            return None
        return final_states.lstm_final_states(
            inputs,
            ops.copy(self.kernel),
            ops.copy(self.bias),
            initial_states[0],
            initial_states[1],
            ops.copy(self.recurrent_kernel),
            mask,
        )

    def fused_sequence(self, inputs, initial_states, mask, recurrent_mask, training):
        return kernels.lstm_sequence(
            self.project_inputs(inputs),
            initial_states[0],
            initial_states[1],
            ops.copy(self.recurrent_kernel),
            mask,
            recurrent_mask,
        )

    def get_config(self):
        config = {
            "activation": activation_name(self.activation),
            "recurrent_activation": activation_name(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
            "peephole": self.peephole,
            "layer_norm": self.layer_norm,
        }
        return {**super().get_config(), **config}
