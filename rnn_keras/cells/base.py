"""The cell base class: argument checks, dropout and the input-projection hook.

Every rnn_keras cell splits its step into two parts:

* `project_inputs(inputs)`: everything that depends on the input alone
  (x W + b, and for the layer-normalised LSTM the normalisation of x W). It
  works on one step `(batch, features)` or on a whole sequence
  `(batch, time, features)`, which is what lets `rnn_keras.Recurrent` hoist
  it out of the time loop into one matrix product, as cuDNN and PyTorch do.
* `recurrent_step(projected, states, recurrent_mask)`: the part that needs the
  previous state.

`call(inputs, states, training)` is the two composed, so the cell also works
unchanged inside `keras.layers.RNN`, `Bidirectional` and `StackedRNNCells`.
"""

import keras
from keras import ops


def check_units(name, value):
    """Returns `value` as an int, or raises ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return value


def check_rate(name, value):
    """Returns `value` as a float in [0, 1), or raises ValueError naming the argument."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = None
    if rate is None or not 0.0 <= rate < 1.0:
        raise ValueError(f"Argument `{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return rate


def get_activation(name, value):
    """Resolves an activation, raising ValueError that names the argument."""
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Argument `{name}` is not a known activation. Received: {name}={value!r}"
        ) from error


def activation_name(activation):
    """The serialisable name of an activation function."""
    return keras.activations.serialize(activation)


class RecurrentCell(keras.layers.Layer):
    """Base class of the rnn_keras cells (not used on its own).

    Subclasses set `state_size` and `output_size`, create their weights in
    `build`, and override `project_inputs` and `recurrent_step`. They may
    also set `has_fused_kernel` and override `fused_sequence` to run a whole
    sequence with a hand-written backward pass, and `fused_final_states` for
    inference that needs only the final states; or set `scans_in_parallel`
    when `fused_sequence` runs the sequence without a time loop.

    Args:
        units: positive integer, dimensionality of the hidden state.
        use_bias: whether the cell uses a bias vector.
        kernel_initializer, recurrent_initializer, bias_initializer: initialisers
            of the input kernel, recurrent kernel and bias.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional
            regularisers of the same weights.
        kernel_constraint, recurrent_constraint, bias_constraint: optional
            constraints of the same weights.
        dropout: float in [0, 1), fraction of the input units to drop.
        recurrent_dropout: float in [0, 1), fraction of the recurrent state
            units to drop before the recurrent product.
        seed: random seed for dropout.

    Dropout is variational (Gal & Ghahramani 2016, one mask per sequence,
    reused at every step) when the cell runs inside `rnn_keras.Recurrent`,
    which draws the masks once per call. `keras.layers.RNN` only does that for
    Keras's own cells, so there a mask is drawn at every step.
    """

    def __init__(
        self,
        units,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units("units", units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = check_rate("dropout", dropout)
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    # -- weights ---------------------------------------------------------------

    def add_kernel(self, name, shape, initializer, regularizer=None, constraint=None):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
        )

    def add_standard_weights(self, input_dim, input_width, recurrent_dim, recurrent_width):
        """Creates `kernel`, `recurrent_kernel` and (optionally) `bias`."""
        self.kernel = self.add_kernel(
            "kernel",
            (input_dim, input_width),
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_kernel(
            "recurrent_kernel",
            (recurrent_dim, recurrent_width),
            self.recurrent_initializer,
            self.recurrent_regularizer,
            self.recurrent_constraint,
        )

    def add_bias(self, shape, initializer=None):
        if not self.use_bias:
            self.bias = None
            return
        self.bias = self.add_kernel(
            "bias",
            shape,
            initializer or self.bias_initializer,
            self.bias_regularizer,
            self.bias_constraint,
        )

    # -- the hooks ---------------------------------------------------------------

    def project_inputs(self, inputs):
        """The input-only part of a step, for `(batch, features)` or `(batch, time, features)`."""
        raise NotImplementedError

    def recurrent_step(self, projected, states, recurrent_mask=None):
        """One step from projected inputs; returns `(output, new_states)`.

        The output must be the first new state (`Recurrent` collects only states).
        """
        raise NotImplementedError

    @property
    def has_fused_kernel(self):
        """Whether `fused_sequence` has a hand-written kernel for this cell's settings."""
        return False

    @property
    def scans_in_parallel(self):
        """Whether `fused_sequence` needs no time loop (a parallel scan, as in the minimal
        cells): `Recurrent` then calls it for every sequence, in training and inference, in
        one piece."""
        return False

    def fused_final_states(self, inputs, initial_states, mask):
        """Inference without the output sequence: the final states, or None.

        A cell that `scans_in_parallel` is asked in training too: its final
        states must then carry their gradient.

        Args:
            inputs: `(time, batch, features)`, not projected.
            initial_states: list of `(batch, state)` tensors.
            mask: `(time, batch, 1)` float mask or None.
        """
        return None

    def fused_sequence(self, inputs, initial_states, mask, recurrent_mask, training):
        """Runs a whole time-major sequence with a hand-written gradient.

        `Recurrent` calls it only when `has_fused_kernel` is True. The cell
        projects the inputs itself: a fused kernel may want a projection
        other than `project_inputs` (the GRU folds part of its recurrent
        bias into it).

        Args:
            inputs: `(time, batch, features)`, not projected.
            initial_states: list of `(batch, state)` tensors.
            mask: `(time, batch, 1)` float mask or None.
            recurrent_mask: `(batch, state)` dropout mask for the recurrent
                state or None.
            training: whether gradients will be needed.

        Returns:
            The list of per-state sequences `(time, batch, state)`, the first
            of which is the output sequence.
        """
        raise NotImplementedError

    # -- the Keras cell contract -----------------------------------------------------

    def dropout_masks(self, inputs, states, training):
        """Draws an input and a recurrent dropout mask (None when unused)."""
        input_mask = recurrent_mask = None
        if training and self.dropout > 0:
            input_mask = keras.random.dropout(
                ops.ones_like(inputs), self.dropout, seed=self.seed_generator
            )
        if training and self.recurrent_dropout > 0:
            recurrent_mask = keras.random.dropout(
                ops.ones_like(states[0]), self.recurrent_dropout, seed=self.seed_generator
            )
        return input_mask, recurrent_mask

    def call(self, inputs, states, training=False):
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        input_mask, recurrent_mask = self.dropout_masks(inputs, states, training)
        if input_mask is not None:
            inputs = inputs * input_mask
        output, new_states = self.recurrent_step(
            self.project_inputs(inputs), states, recurrent_mask
        )
        return output, new_states

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def get_config(self):
        config = {
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
