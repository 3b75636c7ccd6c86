"""The Jordan cell (Jordan 1986): the context is the previous output."""

import keras
from keras import ops

from rnn_keras.cells.base import RecurrentCell, activation_name, check_units, get_activation


@keras.saving.register_keras_serializable(package="rnn_keras")
class JordanCell(RecurrentCell):
    """Jordan recurrent cell (Jordan 1986): the previous *output* feeds back.

    h_t = act(x_t W + y_{t-1} U + b), y_t = out_act(h_t V + c). The state
    carried between steps is y, so `state_size == output_size == output_units`.

    Args:
        units: positive integer, dimensionality of the hidden layer h.
        output_units: positive integer, dimensionality of the output y.
        activation: activation of h ("tanh").
        output_activation: activation of y ("linear").
        **kwargs: the common cell arguments of `RecurrentCell`; the output
            weights use the kernel initialiser, regulariser and constraint.

    Weights: `kernel` (features, units), `recurrent_kernel` (output_units,
    units), `bias` (units,), `output_kernel` (units, output_units) and
    `output_bias` (output_units,).

    Call arguments:
        inputs: `(batch, features)`.
        states: `[y_{t-1}]`, `(batch, output_units)`.
        training: whether dropout is active (recurrent dropout acts on y_{t-1}).

    Returns:
        `(y_t, [y_t])`, each `(batch, output_units)`.

    Example:

    >>> cell = rnn_keras.JordanCell(32, output_units=4)
    >>> rnn_keras.Recurrent(cell)(np.zeros((2, 7, 3), "float32")).shape
    (2, 4)
    """

    def __init__(
        self, units, output_units, activation="tanh", output_activation="linear", **kwargs
    ):
        super().__init__(units, **kwargs)
        self.output_units = check_units("output_units", output_units)
        self.activation = get_activation("activation", activation)
        self.output_activation = get_activation("output_activation", output_activation)
        self.state_size = self.output_units
        self.output_size = self.output_units

    def build(self, input_shape):
        self.add_standard_weights(input_shape[-1], self.units, self.output_units, self.units)
        self.add_bias((self.units,))
        self.output_kernel = self.add_kernel(
            "output_kernel",
            (self.units, self.output_units),
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
        )
        self.output_bias = (
            self.add_kernel("output_bias", (self.output_units,), self.bias_initializer)
            if self.use_bias
            else None
        )

    def project_inputs(self, inputs):
        projected = ops.matmul(inputs, self.kernel)
        return projected + self.bias if self.use_bias else projected

    def recurrent_step(self, projected, states, recurrent_mask=None):
        y_previous = states[0] if isinstance(states, (list, tuple)) else states
        if recurrent_mask is not None:
            y_previous = y_previous * recurrent_mask
        hidden = self.activation(projected + ops.matmul(y_previous, self.recurrent_kernel))
        output = ops.matmul(hidden, self.output_kernel)
        if self.use_bias:
            output = output + self.output_bias
        output = self.output_activation(output)
        return output, [output]

    def get_config(self):
        config = {
            "output_units": self.output_units,
            "activation": activation_name(self.activation),
            "output_activation": activation_name(self.output_activation),
        }
        return {**super().get_config(), **config}
