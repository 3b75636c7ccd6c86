"""NumPy reference implementations of the rnn_keras cells and of the Keras RNN loop.

Written from the equations (Elman 1990, Jordan 1986, Hochreiter & Schmidhuber 1997 with
Keras's gate order, Gers & Schmidhuber 2000 peepholes, Ba et al. 2016 layer normalisation as
TensorFlow Addons' LayerNormLSTMCell applied it, Cho et al. 2014 GRU and the cuDNN
"reset after" variant), independent of Keras, so tests can check the library against numbers
that no Keras code produced. Every step function takes `(x_t, states, weights)` where
`weights` is a dict of NumPy arrays named as the cell's weights, and returns
`(output, new_states)`; `run_rnn` iterates one over a sequence with Keras's semantics for
masks, `go_backwards` and `zero_output_for_mask`.
"""

import numpy as np

LAYER_NORM_EPSILON = 1e-3


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def linear(x):
    return x


ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "linear": linear,
    "relu": lambda x: np.maximum(x, 0.0),
}


def layer_norm(x, gamma, beta, epsilon=LAYER_NORM_EPSILON):
    """Normalises the last axis as keras.layers.LayerNormalization does."""
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def elman_step(x, states, weights, activation="tanh"):
    """h_t = act(x_t W + h_{t-1} U + b)."""
    (h,) = states
    z = x @ weights["kernel"] + h @ weights["recurrent_kernel"]
    if "bias" in weights:
        z = z + weights["bias"]
    h = ACTIVATIONS[activation](z)
    return h, [h]


def jordan_step(x, states, weights, activation="tanh", output_activation="linear"):
    """h_t = act(x_t W + y_{t-1} U + b); y_t = out_act(h_t V + c); the state is y."""
    (y,) = states
    z = x @ weights["kernel"] + y @ weights["recurrent_kernel"]
    if "bias" in weights:
        z = z + weights["bias"]
    h = ACTIVATIONS[activation](z)
    y = h @ weights["output_kernel"]
    if "output_bias" in weights:
        y = y + weights["output_bias"]
    y = ACTIVATIONS[output_activation](y)
    return y, [y]


def lstm_step(x, states, weights, peephole=False, layer_norm_gates=False):
    """LSTM step, gate order i, f, c, o, optionally with peepholes or layer normalisation."""
    h, c = states
    units = h.shape[-1]
    input_part = x @ weights["kernel"]
    recurrent_part = h @ weights["recurrent_kernel"]
    if layer_norm_gates:
        input_part = layer_norm(
            input_part, weights["kernel_norm_gamma"], weights["kernel_norm_beta"]
        )
        recurrent_part = layer_norm(
            recurrent_part, weights["recurrent_norm_gamma"], weights["recurrent_norm_beta"]
        )
    z = input_part + recurrent_part
    if "bias" in weights:
        z = z + weights["bias"]
    z_i, z_f, z_c, z_o = (z[:, k * units : (k + 1) * units] for k in range(4))
    if peephole:
        z_i = z_i + weights["input_peephole"] * c
        z_f = z_f + weights["forget_peephole"] * c
    i = sigmoid(z_i)
    f = sigmoid(z_f)
    c = f * c + i * np.tanh(z_c)
    if layer_norm_gates:
        c = layer_norm(c, weights["state_norm_gamma"], weights["state_norm_beta"])
    if peephole:
        z_o = z_o + weights["output_peephole"] * c
    o = sigmoid(z_o)
    h = o * np.tanh(c)
    return h, [h, c]


def gru_step(x, states, weights, reset_after=True):
    """GRU step in Keras's layout (gate order z, r, h); h_t = z h_{t-1} + (1 - z) h~."""
    (h,) = states
    units = h.shape[-1]
    kernel, recurrent_kernel = weights["kernel"], weights["recurrent_kernel"]
    bias = weights.get("bias")
    if bias is None:
        input_bias = np.zeros(3 * units)
        recurrent_bias = np.zeros(3 * units)
    elif reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, np.zeros(3 * units)
    x_part = x @ kernel + input_bias
    x_z, x_r, x_h = (x_part[:, k * units : (k + 1) * units] for k in range(3))
    u_z, u_r, u_h = (recurrent_kernel[:, k * units : (k + 1) * units] for k in range(3))
    b_z, b_r, b_h = (recurrent_bias[k * units : (k + 1) * units] for k in range(3))
    z = sigmoid(x_z + h @ u_z + b_z)
    r = sigmoid(x_r + h @ u_r + b_r)
    if reset_after:
        candidate = np.tanh(x_h + r * (h @ u_h + b_h))
    else:
        candidate = np.tanh(x_h + (r * h) @ u_h)
    h = z * h + (1.0 - z) * candidate
    return h, [h]


def run_rnn(
    step,
    sequences,
    initial_states,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
):
    """Runs `step` over `sequences` (batch, time, features) as keras.layers.RNN does.

    Masked steps keep the previous states; their output is the previous output (zeros before
    the first valid step) or zeros when `zero_output_for_mask`. With `go_backwards` the
    sequence (and mask) are read from the end and the outputs come back in that reversed
    order, as Keras returns them.

    Returns:
        (outputs (batch, time, units), last_output (batch, units), final_states list), where
        `last_output` is the output of the last step processed: the last valid output for a
        right-padded sequence when `zero_output_for_mask` is False.
    """
    sequences = np.asarray(sequences, dtype=np.float64)
    batch, time = sequences.shape[:2]
    if mask is None:
        mask = np.ones((batch, time), dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    order = range(time - 1, -1, -1) if go_backwards else range(time)
    states = [np.asarray(s, dtype=np.float64) for s in initial_states]
    outputs = []
    previous_output = None
    for t in order:
        output, new_states = step(sequences[:, t], states)
        keep = mask[:, t][:, None]
        if previous_output is None:
            previous_output = np.zeros_like(output)
        masked_output = np.zeros_like(output) if zero_output_for_mask else previous_output
        output = np.where(keep, output, masked_output)
        states = [np.where(keep, new, old) for new, old in zip(new_states, states, strict=True)]
        outputs.append(output)
        previous_output = output
    outputs = np.stack(outputs, axis=1)
    return outputs, outputs[:, -1], states


def cell_step_function(kind, weights, **options):
    """Returns `step(x, states)` for a cell kind with the given weights and options."""
    if kind == "elman":
        return lambda x, s: elman_step(x, s, weights, activation=options.get("activation", "tanh"))
    if kind == "jordan":
        return lambda x, s: jordan_step(
            x,
            s,
            weights,
            activation=options.get("activation", "tanh"),
            output_activation=options.get("output_activation", "linear"),
        )
    if kind == "lstm":
        return lambda x, s: lstm_step(
            x,
            s,
            weights,
            peephole=options.get("peephole", False),
            layer_norm_gates=options.get("layer_norm", False),
        )
    if kind == "gru":
        return lambda x, s: gru_step(x, s, weights, reset_after=options.get("reset_after", True))
    raise ValueError(f"Unknown cell kind {kind!r}")


# --------------------------------------------------------------------------------------------
# Keras-side helpers shared by the cell tests: the cell variants, random weights, copying.
# --------------------------------------------------------------------------------------------

# variant id -> (kind, constructor options, names of the weights the contract promises)
_BASE_WEIGHTS = ("kernel", "recurrent_kernel", "bias")
_PEEPHOLE_WEIGHTS = ("input_peephole", "forget_peephole", "output_peephole")
_LAYER_NORM_WEIGHTS = (
    "kernel_norm_gamma",
    "kernel_norm_beta",
    "recurrent_norm_gamma",
    "recurrent_norm_beta",
    "state_norm_gamma",
    "state_norm_beta",
)
JORDAN_OUTPUT_UNITS = 3
VARIANTS = {
    "elman": ("elman", {}, _BASE_WEIGHTS),
    "jordan": (
        "jordan",
        {"output_units": JORDAN_OUTPUT_UNITS},
        _BASE_WEIGHTS + ("output_kernel", "output_bias"),
    ),
    "lstm": ("lstm", {}, _BASE_WEIGHTS),
    "lstm_peephole": ("lstm", {"peephole": True}, _BASE_WEIGHTS + _PEEPHOLE_WEIGHTS),
    "lstm_layer_norm": ("lstm", {"layer_norm": True}, _BASE_WEIGHTS + _LAYER_NORM_WEIGHTS),
    "gru": ("gru", {"reset_after": True}, _BASE_WEIGHTS),
    "gru_reset_before": ("gru", {"reset_after": False}, _BASE_WEIGHTS),
}
# Variants that have a Keras built-in twin with the same weight layout.
KERAS_TWINS = ("elman", "lstm", "gru", "gru_reset_before")


def make_cell(variant, units, **options):
    """Builds the rnn_keras cell of a variant through the class the variant names."""
    import rnn_keras

    kind, variant_options, _ = VARIANTS[variant]
    classes = {
        "elman": rnn_keras.ElmanCell,
        "jordan": rnn_keras.JordanCell,
        "lstm": rnn_keras.LSTMCell,
        "gru": rnn_keras.GRUCell,
    }
    return classes[kind](units, **{**variant_options, **options})


def make_keras_twin_layer(variant, units, **layer_options):
    """The Keras built-in layer equal to a variant (SimpleRNN, LSTM, GRU)."""
    import keras

    if variant == "elman":
        return keras.layers.SimpleRNN(units, **layer_options)
    if variant == "lstm":
        return keras.layers.LSTM(units, **layer_options)
    if variant == "gru":
        return keras.layers.GRU(units, reset_after=True, **layer_options)
    if variant == "gru_reset_before":
        return keras.layers.GRU(units, reset_after=False, **layer_options)
    raise ValueError(f"{variant} has no Keras twin")


def get_weight(cell, name):
    """The variable `name` of a cell: an attribute, or a weight whose path ends with it."""
    import keras

    attribute = getattr(cell, name, None)
    if isinstance(attribute, keras.Variable):
        return attribute
    for variable in cell.weights:
        path = variable.path
        if path.endswith("/" + name) or path.replace("/", "_").endswith(name):
            return variable
    raise AssertionError(
        f"{type(cell).__name__} has no weight named {name!r}; "
        f"its weights: {[v.path for v in cell.weights]}"
    )


def weights_as_numpy(cell, variant):
    """{name: float64 array} for every weight the contract promises for the variant."""
    names = VARIANTS[variant][2]
    if not getattr(cell, "use_bias", True):
        names = [name for name in names if name not in ("bias", "output_bias")]
    return {name: np.asarray(get_weight(cell, name).numpy(), dtype=np.float64) for name in names}


def randomize_weights(cell, rng, scale=0.5):
    """Assigns random values to every weight (gammas around 1) so swapped blocks show."""
    for variable in cell.weights:
        shape = tuple(variable.shape)
        if "gamma" in variable.path:
            value = 1.0 + 0.3 * rng.standard_normal(shape)
        else:
            value = scale * rng.standard_normal(shape)
        variable.assign(value.astype(variable.dtype))


def copy_weights_by_name(source_cell, target_cell, names=_BASE_WEIGHTS):
    """Copies kernel / recurrent_kernel / bias (by name, not by position) across cells."""
    for name in names:
        source = get_weight(source_cell, name)
        target = get_weight(target_cell, name)
        assert tuple(source.shape) == tuple(target.shape), (
            f"{name}: {tuple(source.shape)} vs Keras {tuple(target.shape)}"
        )
        target.assign(source.numpy())


def reference_run(cell, variant, sequences, initial_states, **run_options):
    """Runs the NumPy reference of a variant with the cell's current weights."""
    kind, options, _ = VARIANTS[variant]
    config = cell.get_config()
    for key in ("activation", "output_activation"):
        if key in config and isinstance(config[key], str):
            options = {**options, key: config[key]}
    step = cell_step_function(kind, weights_as_numpy(cell, variant), **options)
    return run_rnn(step, sequences, initial_states, **run_options)


def right_padded_mask(lengths, time):
    """(batch, time) boolean mask, True on the first `length` steps of each row."""
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


def state_sizes(variant, units):
    kind = VARIANTS[variant][0]
    if kind == "lstm":
        return [units, units]
    if kind == "jordan":
        return [JORDAN_OUTPUT_UNITS]
    return [units]


def output_size(variant, units):
    return JORDAN_OUTPUT_UNITS if VARIANTS[variant][0] == "jordan" else units


def random_states(rng, variant, batch, units, dtype="float32"):
    return [
        (0.5 * rng.standard_normal((batch, size))).astype(dtype)
        for size in state_sizes(variant, units)
    ]
