"""The GRU cell (Cho et al. 2014), in both the original and the cuDNN form."""

import keras
from keras import ops

from rnn_keras import final_states, kernels, loops
from rnn_keras.cells.base import RecurrentCell, activation_name, get_activation


@keras.saving.register_keras_serializable(package="rnn_keras")
class GRUCell(RecurrentCell):
    """Gated recurrent unit cell (Cho et al. 2014).

    Gates in the Keras order (z, r, h): z = sig(x W_z + h U_z + b_z),
    r = sig(x W_r + h U_r + b_r), h_t = z * h_{t-1} + (1 - z) * h~ where

    * `reset_after=False` (Cho et al. 2014): h~ = tanh(x W_h + (r * h) U_h + b_h);
    * `reset_after=True` (cuDNN, the Keras default): h~ = tanh(x W_h + b_h +
      r * (h U_h + b'_h)), with a separate recurrent bias, `bias` of shape
      `(2, 3 * units)`.

    The weight layout equals `keras.layers.GRUCell(reset_after=...)`.

    Args:
        units: positive integer, dimensionality of h.
        activation: activation of the candidate ("tanh").
        recurrent_activation: activation of the gates ("sigmoid").
        reset_after: where the reset gate applies, see above.
        **kwargs: the common cell arguments of `RecurrentCell`.

    Call arguments:
        inputs: `(batch, features)`.
        states: `[h]`, `(batch, units)`.
        training: whether dropout is active.

    Returns:
        `(h_t, [h_t])`, each `(batch, units)`.

    Example:

    >>> layer = rnn_keras.Recurrent(rnn_keras.GRUCell(32, reset_after=False))
    >>> layer(np.zeros((4, 10, 8), "float32")).shape
    (4, 32)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        reset_after=True,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.activation = get_activation("activation", activation)
        self.recurrent_activation = get_activation("recurrent_activation", recurrent_activation)
        self.reset_after = bool(reset_after)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        self.add_standard_weights(input_shape[-1], 3 * self.units, self.units, 3 * self.units)
        self.add_bias((2, 3 * self.units) if self.reset_after else (3 * self.units,))

    def _biases(self):
        """(input bias, recurrent bias); either may be None."""
        if not self.use_bias:
            return None, None
        if self.reset_after:
            return self.bias[0], self.bias[1]
        return self.bias, None

    def _fused_biases(self):
        """(projection bias, candidate bias) for the fused `reset_after=True` kernels.

        The z and r parts of the recurrent bias are added outside the reset
        gate, as the input bias is, so they join it in the hoisted projection;
        only the candidate's part b_h, which the reset gate multiplies, stays in
        the time loop. Either may be None.
        """
        input_bias, recurrent_bias = self._biases()
        if recurrent_bias is None:
            return input_bias, None
        gates = 2 * self.units
        folded = ops.concatenate(
            [recurrent_bias[:gates], ops.zeros_like(recurrent_bias[gates:])], axis=0
        )
        return input_bias + folded, recurrent_bias[gates:]

    def _project(self, inputs, bias):
        projected = ops.matmul(inputs, self.kernel)
        return projected if bias is None else loops.add_bias(projected, bias)

    def project_inputs(self, inputs):
        return self._project(inputs, self._biases()[0])

    def recurrent_step(self, projected, states, recurrent_mask=None):
        h_previous = states[0] if isinstance(states, (list, tuple)) else states
        h_in = h_previous * recurrent_mask if recurrent_mask is not None else h_previous
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        units = self.units
        if self.reset_after:
            recurrent = ops.matmul(h_in, self.recurrent_kernel)
            _, recurrent_bias = self._biases()
            if recurrent_bias is not None:
                recurrent = recurrent + recurrent_bias
            r_z, r_r, r_h = ops.split(recurrent, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            candidate = self.activation(x_h + r * r_h)
        else:
            r_z, r_r = ops.split(
                ops.matmul(h_in, self.recurrent_kernel[:, : 2 * units]), 2, axis=-1
            )
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            candidate = self.activation(
                x_h + ops.matmul(r * h_in, self.recurrent_kernel[:, 2 * units :])
            )
        h = z * h_previous + (1.0 - z) * candidate
        return h, [h]

    @property
    def has_fused_kernel(self):
        return (
            activation_name(self.activation) == "tanh"
            and activation_name(self.recurrent_activation) == "sigmoid"
        )

    def fused_final_states(self, inputs, initial_states, mask):
        if not (self.has_fused_kernel and self.use_bias):
            return None
        kernel, recurrent_kernel = ops.copy(self.kernel), ops.copy(self.recurrent_kernel)
        if not self.reset_after:
            return final_states.gru_reset_before_final_states(
                inputs, kernel, ops.copy(self.bias), initial_states[0], recurrent_kernel, mask
            )
        projection_bias, candidate_bias = self._fused_biases()
        return final_states.gru_final_states(
            inputs,
            kernel,
            projection_bias,
            initial_states[0],
            recurrent_kernel,
            candidate_bias,
            mask,
        )

    def fused_sequence(self, inputs, initial_states, mask, recurrent_mask, training):
        recurrent_kernel = ops.copy(self.recurrent_kernel)
        if not self.reset_after:
            return kernels.gru_reset_before_sequence(
                self.project_inputs(inputs),
                initial_states[0],
                recurrent_kernel,
                mask,
                recurrent_mask,
            )
        projection_bias, candidate_bias = self._fused_biases()
        return kernels.gru_sequence(
            self._project(inputs, projection_bias),
            initial_states[0],
            recurrent_kernel,
            candidate_bias,
            mask,
            recurrent_mask,
        )

    def get_config(self):
        config = {
            "activation": activation_name(self.activation),
            "recurrent_activation": activation_name(self.recurrent_activation),
            "reset_after": self.reset_after,
        }
        return {**super().get_config(), **config}
