"""The Elman cell (Elman 1990): the simple recurrent network."""

import keras
from keras import ops

from rnn_keras import final_states, kernels, loops
from rnn_keras.cells.base import RecurrentCell, activation_name, get_activation


@keras.saving.register_keras_serializable(package="rnn_keras")
class ElmanCell(RecurrentCell):
    """Elman recurrent cell (Elman 1990): h_t = act(x_t W + h_{t-1} U + b).

    The context is the previous hidden state. The weight layout equals
    `keras.layers.SimpleRNNCell`.

    Args:
        units: positive integer, dimensionality of h.
        activation: activation of the hidden state ("tanh").
        **kwargs: the common cell arguments of `RecurrentCell`.

    Call arguments:
        inputs: `(batch, features)`.
        states: `[h]`, `(batch, units)`.
        training: whether dropout is active.

    Returns:
        `(h_t, [h_t])`, each `(batch, units)`.

    Example:

    >>> layer = rnn_keras.Recurrent(rnn_keras.ElmanCell(16), return_sequences=True)
    >>> layer(np.zeros((2, 5, 3), "float32")).shape
    (2, 5, 16)
    """

    def __init__(self, units, activation="tanh", **kwargs):
        super().__init__(units, **kwargs)
        self.activation = get_activation("activation", activation)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        self.add_standard_weights(input_shape[-1], self.units, self.units, self.units)
        self.add_bias((self.units,))

    def project_inputs(self, inputs):
        projected = ops.matmul(inputs, self.kernel)
        return loops.add_bias(projected, self.bias) if self.use_bias else projected

    def recurrent_step(self, projected, states, recurrent_mask=None):
        h_previous = states[0] if isinstance(states, (list, tuple)) else states
        if recurrent_mask is not None:
            h_previous = h_previous * recurrent_mask
        h = self.activation(projected + ops.matmul(h_previous, self.recurrent_kernel))
        return h, [h]

    @property
    def has_fused_kernel(self):
        return activation_name(self.activation) in kernels.ACTIVATION_DERIVATIVES

    def fused_final_states(self, inputs, initial_states, mask):
        if not self.has_fused_kernel or not self.use_bias:
            return None
        return final_states.elman_final_states(
            inputs,
            ops.copy(self.kernel),
            ops.copy(self.bias),
            initial_states[0],
            ops.copy(self.recurrent_kernel),
            activation_name(self.activation),
            mask,
        )

    def fused_sequence(self, inputs, initial_states, mask, recurrent_mask, training):
        return kernels.elman_sequence(
            self.project_inputs(inputs),
            initial_states[0],
            ops.copy(self.recurrent_kernel),
            activation_name(self.activation),
            mask,
            recurrent_mask,
        )

    def get_config(self):
        return {**super().get_config(), "activation": activation_name(self.activation)}
