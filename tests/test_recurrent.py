"""Tests of rnn_keras.Recurrent: gradients, Bidirectional, stacking, state, dropout, streaming."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import rnn_keras  # noqa: E402
from tests.reference_cells import (  # noqa: E402
    VARIANTS,
    copy_weights_by_name,
    get_weight,
    make_cell,
    make_keras_twin_layer,
    random_states,
    randomize_weights,
    right_padded_mask,
)

BATCH, TIME, FEATURES, UNITS = 4, 6, 3, 5
LENGTHS = [6, 4, 1, 5]
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def make_inputs(seed, batch=BATCH, time=TIME, features=FEATURES, lengths=LENGTHS):
    rng = np.random.default_rng(seed)
    sequences = rng.standard_normal((batch, time, features)).astype("float32")
    return rng, sequences, right_padded_mask(lengths, time)


def as_list(states):
    return list(states) if isinstance(states, list | tuple) else [states]


# ----------------------------------------------------------------------------- gradients


def gradients(layer, cell, sequences, initial, mask, projections, training):
    """d(loss)/d(inputs, initial states, weights), loss = random projection of the outputs."""
    inputs = tf.convert_to_tensor(sequences)
    initial = [tf.convert_to_tensor(state) for state in initial]
    with tf.GradientTape() as tape:
        tape.watch([inputs, *initial])
        outputs, *states = layer(inputs, initial_state=initial, mask=mask, training=training)
        loss = tf.reduce_sum(outputs * projections[0])
        for state, projection in zip(states, projections[1:], strict=True):
            loss += tf.reduce_sum(state * projection)
    names = ["kernel", "recurrent_kernel", "bias"]
    variables = [inputs, *initial] + [get_weight(cell, name).value for name in names]
    values = tape.gradient(loss, variables)
    names = ["inputs"] + [f"initial_state_{i}" for i in range(len(initial))] + names
    return dict(zip(names, values, strict=True))


@pytest.mark.parametrize(
    "variant,masked,training,go_backwards",
    [
        ("elman", False, True, False),
        ("elman", True, True, True),
        ("lstm", False, True, False),
        ("lstm", True, True, False),
        ("lstm", True, True, True),
        ("lstm", True, False, False),
        ("gru", False, True, False),
        ("gru", True, True, True),
        ("gru_reset_before", True, True, False),
        ("gru_reset_before", False, False, True),
    ],
)
def test_gradients_through_50_steps_match_keras_builtin(variant, masked, training, go_backwards):
    """training=True runs the fused kernels with hand-written backward passes; False, autodiff
    of the step loop. Gradients for inputs, initial states and every weight."""
    time = 50
    rng, sequences, mask = make_inputs(10, batch=3, lengths=[50, 31, 7], time=time)
    mask = mask if masked else None
    options = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    # zero_output_for_mask=False: padded steps repeat the last output, as keras.layers.LSTM.
    cell = make_cell(variant, UNITS)
    layer = rnn_keras.Recurrent(cell, zero_output_for_mask=False, **options)
    layer(sequences)
    randomize_weights(cell, rng, scale=0.4)
    keras_layer = make_keras_twin_layer(variant, UNITS, **options)
    keras_layer(sequences)
    copy_weights_by_name(cell, keras_layer.cell)
    initial = random_states(rng, variant, 3, UNITS)
    projections = [rng.standard_normal((3, time, UNITS)).astype("float32")]
    projections += [rng.standard_normal((3, UNITS)).astype("float32") for _ in initial]

    ours = gradients(layer, cell, sequences, initial, mask, projections, training)
    expected = gradients(
        keras_layer, keras_layer.cell, sequences, initial, mask, projections, training
    )
    for name, value in expected.items():
        assert ours[name] is not None, f"no gradient for {name}"
        scale = float(np.max(np.abs(value)))
        np.testing.assert_allclose(ours[name], value, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


@pytest.mark.parametrize(
    "variant,use_bias", [("lstm", True), ("gru", True), ("gru", False), ("gru_reset_before", True)]
)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("time", [1, 5])
def test_training_gradients_of_the_last_output_alone_match_keras_builtin(
    variant, use_bias, masked, time
):
    """The fused kernels in training when only the last output reaches the loss (no output
    sequence, no final states in it), for one-step sequences too, and a GRU without bias."""
    rng, sequences, mask = make_inputs(12, batch=3, lengths=[time, 1, max(time - 2, 0)], time=time)
    mask = mask if masked else None
    cell = make_cell(variant, UNITS, use_bias=use_bias)
    layer = rnn_keras.Recurrent(cell)
    layer(sequences)
    randomize_weights(cell, rng, scale=0.4)
    keras_layer = make_keras_twin_layer(variant, UNITS, use_bias=use_bias)
    keras_layer(sequences)
    names = ("kernel", "recurrent_kernel", "bias") if use_bias else ("kernel", "recurrent_kernel")
    copy_weights_by_name(cell, keras_layer.cell, names)
    projection = rng.standard_normal((3, UNITS)).astype("float32")

    def last_output_gradients(layer, cell):
        inputs = tf.convert_to_tensor(sequences)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs, mask=mask, training=True) * projection)
        variables = [inputs] + [get_weight(cell, name).value for name in names]
        return loss, tape.gradient(loss, variables)

    loss, ours = last_output_gradients(layer, cell)
    expected_loss, expected = last_output_gradients(keras_layer, keras_layer.cell)
    np.testing.assert_allclose(float(loss), float(expected_loss), rtol=1e-5, atol=1e-5)
    for name, value, reference in zip(("inputs", *names), ours, expected, strict=True):
        assert value is not None, f"no gradient for {name}"
        np.testing.assert_allclose(value, reference, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before", "elman"])
@pytest.mark.parametrize("masked", [False, True])
def test_inference_final_states_gradients_match_keras_builtin(variant, masked):
    """training=False without the output sequence runs a loop that only carries the states,
    with a hand-written gradient (it reruns the fused training kernel): outputs, final
    states and gradients for inputs, initial states and every weight equal Keras's."""
    time = 40
    rng, sequences, mask = make_inputs(11, batch=3, lengths=[40, 17, 0], time=time)
    mask = mask if masked else None
    cell = make_cell(variant, UNITS)
    layer = rnn_keras.Recurrent(cell, return_state=True)
    layer(sequences)
    randomize_weights(cell, rng, scale=0.4)
    keras_layer = make_keras_twin_layer(variant, UNITS, return_state=True)
    keras_layer(sequences)
    copy_weights_by_name(cell, keras_layer.cell)
    initial = random_states(rng, variant, 3, UNITS)
    projections = [
        rng.standard_normal((3, UNITS)).astype("float32") for _ in range(1 + len(initial))
    ]

    def outputs_and_gradients(layer, cell):
        inputs = tf.convert_to_tensor(sequences)
        states = [tf.convert_to_tensor(state) for state in initial]
        with tf.GradientTape() as tape:
            tape.watch([inputs, *states])
            results = layer(inputs, initial_state=states, mask=mask, training=False)
            loss = sum(
                tf.reduce_sum(result * projection)
                for result, projection in zip(results, projections, strict=True)
            )
        weights = [get_weight(cell, name).value for name in ("kernel", "recurrent_kernel", "bias")]
        return results, tape.gradient(loss, [inputs, *states, *weights])

    ours, our_gradients = outputs_and_gradients(layer, cell)
    expected, expected_gradients = outputs_and_gradients(keras_layer, keras_layer.cell)
    for value, reference in zip(ours, expected, strict=True):
        np.testing.assert_allclose(value, reference, **TOLERANCE)
    for value, reference in zip(our_gradients, expected_gradients, strict=True):
        scale = float(np.max(np.abs(reference)))
        np.testing.assert_allclose(value, reference, rtol=1e-4, atol=1e-5 * scale)


@pytest.fixture
def float64():
    """float64 everywhere (the global dtype policy, cached once any layer exists, and floatx)."""
    previous_floatx, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(previous_floatx)
        keras.config.set_dtype_policy(previous_policy)


FINITE_DIFFERENCE_CASES = [
    ("jordan", {}),
    ("lstm_peephole", {}),
    ("lstm_layer_norm", {}),
    ("elman", {"activation": "relu"}),
    # With dropout: the seed generator is rewound before every evaluation, so each one draws
    # the same masks and the hand-written backward passes are checked with masks applied.
    ("elman", {"dropout": 0.3, "recurrent_dropout": 0.4}),
    ("jordan", {"dropout": 0.3, "recurrent_dropout": 0.4}),
    ("lstm", {"dropout": 0.3, "recurrent_dropout": 0.4}),
    ("lstm_layer_norm", {"recurrent_dropout": 0.4}),
    ("gru", {"recurrent_dropout": 0.4}),
    ("gru_reset_before", {"dropout": 0.3, "recurrent_dropout": 0.4}),
    # Recurrent dropout alone: training must differ from inference through it, not only
    # through the input mask.
    ("elman", {"recurrent_dropout": 0.4}),
    ("lstm", {"recurrent_dropout": 0.4}),
    ("gru_reset_before", {"recurrent_dropout": 0.4}),
]


@pytest.mark.parametrize(
    "variant,options",
    FINITE_DIFFERENCE_CASES,
    ids=[f"{v}-{'-'.join(o) or 'default'}" for v, o in FINITE_DIFFERENCE_CASES],
)
def test_gradients_match_central_finite_differences(variant, options, float64):
    """Directional derivatives along a random direction per weight (and the inputs and
    initial states), in float64, through Recurrent in training mode (the fused kernels)."""
    rng = np.random.default_rng(11)
    batch, units = 3, 3
    sequences = rng.standard_normal((batch, 4, 2))
    mask = right_padded_mask([4, 2, 3], 4)
    cell = make_cell(variant, units, seed=5, **options)
    layer = rnn_keras.Recurrent(cell, return_sequences=True, return_state=True)
    layer(sequences)
    randomize_weights(cell, rng)
    assert all(v.dtype == "float64" for v in cell.weights), [v.dtype for v in cell.weights]
    initial = random_states(rng, variant, batch, units, dtype="float64")
    seed_state = cell.seed_generator.state.numpy()
    outputs, *states = layer(sequences, initial_state=initial, mask=mask)
    projections = [rng.standard_normal(np.shape(t)) for t in [outputs, *states]]

    def loss(inputs, initial=initial, training=True):
        cell.seed_generator.state.assign(seed_state)
        outputs, *states = layer(inputs, initial_state=initial, mask=mask, training=training)
        return sum(
            tf.reduce_sum(tf.cast(t, tf.float64) * p)
            for t, p in zip([outputs, *states], projections, strict=True)
        )

    if "dropout" in options or "recurrent_dropout" in options:
        assert abs(float(loss(sequences)) - float(loss(sequences, training=False))) > 1e-3
    inputs = tf.constant(sequences)
    initial_tensors = [tf.constant(state) for state in initial]
    with tf.GradientTape() as tape:
        tape.watch([inputs, *initial_tensors])
        value = loss(inputs, initial_tensors)
    weights = cell.trainable_weights
    analytic = tape.gradient(value, [inputs, *initial_tensors] + [v.value for v in weights])
    epsilon = 1e-6

    def check(gradient, numeric_plus_minus, direction, name):
        plus, minus = numeric_plus_minus
        numeric = (float(plus) - float(minus)) / (2 * epsilon)
        assert gradient is not None, f"no gradient for {name}"
        directional = float(np.sum(np.asarray(gradient) * direction))
        np.testing.assert_allclose(directional, numeric, rtol=1e-6, atol=1e-8, err_msg=name)

    direction = rng.standard_normal(sequences.shape)
    pair = [loss(sequences + sign * epsilon * direction) for sign in (1, -1)]
    check(analytic[0], pair, direction, "inputs")
    for index, state in enumerate(initial):
        direction = rng.standard_normal(state.shape)
        pair = []
        for sign in (1, -1):
            moved = list(initial)
            moved[index] = state + sign * epsilon * direction
            pair.append(loss(sequences, moved))
        check(analytic[1 + index], pair, direction, f"initial_state_{index}")
    for variable, gradient in zip(weights, analytic[1 + len(initial) :], strict=True):
        original = variable.numpy()
        direction = rng.standard_normal(original.shape)
        pair = []
        for sign in (1, -1):
            variable.assign(original + sign * epsilon * direction)
            pair.append(loss(sequences))
        variable.assign(original)
        check(gradient, pair, direction, variable.path)


# ----------------------------------------------------------------- Bidirectional, stacking


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_bidirectional_matches_keras_builtin(variant, return_sequences, masked):
    rng, sequences, mask = make_inputs(20)
    mask = mask if masked else None
    options = {"return_sequences": return_sequences, "return_state": True}
    ours = keras.layers.Bidirectional(rnn_keras.Recurrent(make_cell(variant, UNITS), **options))
    theirs = keras.layers.Bidirectional(make_keras_twin_layer(variant, UNITS, **options))
    ours(sequences)
    theirs(sequences)
    for direction in ("forward_layer", "backward_layer"):
        randomize_weights(getattr(ours, direction).cell, rng)
        copy_weights_by_name(getattr(ours, direction).cell, getattr(theirs, direction).cell)
    expected = theirs(sequences, mask=mask)
    for training in (False, True):
        actual = ours(sequences, mask=mask, training=training)
        assert len(actual) == len(expected)
        for index, (value, reference) in enumerate(zip(actual, expected, strict=True)):
            message = f"output {index}, training={training}"
            np.testing.assert_allclose(value, reference, err_msg=message, **TOLERANCE)


def functional(layers, masked):
    inputs = keras.Input((TIME, FEATURES))
    hidden = keras.layers.Masking(0.0)(inputs) if masked else inputs
    for layer in layers:
        hidden = layer(hidden)
    return keras.Model(inputs, hidden)


@pytest.mark.parametrize("batch_groups", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_recurrent_layers_stack_matches_keras_builtin(variant, bidirectional, batch_groups):
    rng, sequences, mask = make_inputs(21)
    sequences = np.where(mask[:, :, None], sequences, 0.0).astype("float32")
    kind = VARIANTS[variant][0]
    layers = rnn_keras.recurrent_layers(
        kind,
        units=UNITS,
        num_layers=2,
        bidirectional=bidirectional,
        batch_groups=batch_groups,
        **VARIANTS[variant][1],
    )
    assert len(layers) == 2
    twins = [
        make_keras_twin_layer(variant, UNITS, return_sequences=True),
        make_keras_twin_layer(variant, UNITS),
    ]
    if bidirectional:
        twins = [keras.layers.Bidirectional(twin) for twin in twins]
    ours, theirs = functional(layers, masked=True), functional(twins, masked=True)
    pairs = []
    for layer, twin in zip(layers, twins, strict=True):
        if bidirectional:
            pairs += [(layer.forward_layer.cell, twin.forward_layer.cell)]
            pairs += [(layer.backward_layer.cell, twin.backward_layer.cell)]
        else:
            pairs += [(layer.cell, twin.cell)]
    for cell, twin_cell in pairs:
        randomize_weights(cell, rng)
        copy_weights_by_name(cell, twin_cell)
    np.testing.assert_allclose(ours(sequences), theirs(sequences), **TOLERANCE)


@pytest.mark.parametrize("wrapper", ["keras_rnn", "recurrent"])
def test_stacked_rnn_cells_of_our_cells_match_stacked_keras_layers(wrapper):
    rng, sequences, mask = make_inputs(22)
    cells = [make_cell("lstm", UNITS), make_cell("gru", UNITS)]
    stacked = keras.layers.StackedRNNCells(cells)
    layer_class = keras.layers.RNN if wrapper == "keras_rnn" else rnn_keras.Recurrent
    layer = layer_class(stacked, return_sequences=True)
    layer(sequences)
    twins = [
        make_keras_twin_layer("lstm", UNITS, return_sequences=True),
        make_keras_twin_layer("gru", UNITS, return_sequences=True),
    ]
    twins[1](twins[0](sequences))
    for cell, twin in zip(cells, twins, strict=True):
        randomize_weights(cell, rng)
        copy_weights_by_name(cell, twin.cell)
    expected = twins[1](twins[0](sequences, mask=mask), mask=mask)
    actual = layer(sequences, mask=mask)
    keep = mask[:, :, None] if wrapper == "recurrent" else True  # zero_output_for_mask default
    np.testing.assert_allclose(actual, np.where(keep, expected, 0.0), **TOLERANCE)


# ----------------------------------------------------------------- stateful, streaming step


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("variant", ["elman", "jordan", "lstm", "gru"])
def test_stateful_carries_state_across_calls_and_reset_clears_it(variant, training):
    rng, sequences, _ = make_inputs(30, time=2 * TIME)
    first, second = sequences[:, :TIME], sequences[:, TIME:]
    cell = make_cell(variant, UNITS)
    stateful = rnn_keras.Recurrent(cell, return_sequences=True, stateful=True)
    whole = rnn_keras.Recurrent(cell, return_sequences=True)
    whole(sequences)
    randomize_weights(cell, rng)
    expected = np.asarray(whole(sequences))
    outputs = stateful(first, training=training)
    np.testing.assert_allclose(outputs, expected[:, :TIME], **TOLERANCE)
    outputs = stateful(second, training=training)
    np.testing.assert_allclose(outputs, expected[:, TIME:], **TOLERANCE)
    stateful.reset_states()
    outputs = stateful(second, training=training)
    np.testing.assert_allclose(outputs, whole(second), **TOLERANCE)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(first), expected[:, :TIME], **TOLERANCE)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_step_iterated_over_time_equals_the_sequence_output(variant):
    """Streaming inference: `step` one frame at a time gives the full-sequence outputs."""
    rng, sequences, _ = make_inputs(31)
    cell = make_cell(variant, UNITS)
    layer = rnn_keras.Recurrent(cell, return_sequences=True, return_state=True)
    layer(sequences)
    randomize_weights(cell, rng)
    initial = random_states(rng, variant, BATCH, UNITS)
    outputs, *final_states = layer(sequences, initial_state=initial)
    states = list(initial)
    for t in range(TIME):
        output, states = layer.step(sequences[:, t], states)
        states = as_list(states)
        np.testing.assert_allclose(output, outputs[:, t], err_msg=f"step {t}", **TOLERANCE)
    for state, expected in zip(states, final_states, strict=True):
        np.testing.assert_allclose(state, expected, **TOLERANCE)
    # The same step traced, as a streaming export would serve it (state in, state out).
    traced_step = tf.function(layer.step)
    output, states = traced_step(tf.constant(sequences[:, 0]), [tf.constant(s) for s in initial])
    np.testing.assert_allclose(output, outputs[:, 0], **TOLERANCE)


# ------------------------------------------------------------------------------- dropout


def make_memoryless(cell, variant):
    """Zeroes the recurrence (and saturates forget / update gates) so h_t depends on x_t only."""
    kind = VARIANTS[variant][0]
    units = cell.units
    get_weight(cell, "recurrent_kernel").assign(
        np.zeros(get_weight(cell, "recurrent_kernel").shape)
    )
    bias = get_weight(cell, "bias")
    value = np.array(bias.numpy())
    if kind == "lstm":
        value[units : 2 * units] = -30.0  # forget gate closed: c_t = i * g only
        for name in VARIANTS[variant][2]:
            if name.endswith("_peephole"):
                get_weight(cell, name).assign(np.zeros(units))
    elif kind == "gru":
        if value.ndim == 2:
            value[0, :units] = -30.0  # update gate z = 0: h_t = candidate(x_t)
        else:
            value[:units] = -30.0
    bias.assign(value)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_input_dropout_mask_is_the_same_at_every_step_and_differs_between_sequences(variant):
    batch = 8
    rng = np.random.default_rng(40)
    frame = rng.standard_normal((1, 1, 5)).astype("float32")
    sequences = np.tile(frame, (batch, TIME, 1))  # every row and every step the same input
    cell = make_cell(variant, UNITS, dropout=0.5, seed=7)
    layer = rnn_keras.Recurrent(cell, return_sequences=True)
    clean = np.asarray(layer(sequences, training=False))
    randomize_weights(cell, rng)
    make_memoryless(cell, variant)
    clean = np.asarray(layer(sequences, training=False))
    np.testing.assert_allclose(clean, np.broadcast_to(clean[:1, :1], clean.shape), atol=1e-6)
    dropped = np.asarray(layer(sequences, training=True))
    assert not np.allclose(dropped, clean, atol=1e-4), "dropout changed nothing in training"
    # Variational: one mask per sequence, so every step of a row gives the same output.
    np.testing.assert_allclose(dropped, np.broadcast_to(dropped[:, :1], dropped.shape), atol=1e-6)
    distinct_rows = {tuple(np.round(row, 4)) for row in dropped[:, 0]}
    assert len(distinct_rows) >= 3, f"masks hardly differ between sequences: {distinct_rows}"
    again = np.asarray(layer(sequences, training=True))
    assert not np.allclose(again, dropped), "the same masks were drawn for two batches"


@pytest.mark.parametrize("variant", ["elman", "jordan"])
def test_recurrent_dropout_mask_is_the_same_at_every_step(variant):
    """Identity recurrence, linear activations: h_t = h_0 * (m / (1 - p))^t for a fixed m."""
    batch, units, rate = 8, 5, 0.5
    options = {"activation": "linear", "recurrent_dropout": rate, "seed": 3}
    if variant == "jordan":
        cell = rnn_keras.JordanCell(units, output_units=units, **options)
    else:
        cell = rnn_keras.ElmanCell(units, **options)
    layer = rnn_keras.Recurrent(cell, return_sequences=True)
    sequences = np.zeros((batch, TIME, 3), "float32")
    initial = [np.ones((batch, units), "float32")]
    layer(sequences, initial_state=initial)
    for variable in cell.weights:
        variable.assign(np.zeros(variable.shape))
    get_weight(cell, "recurrent_kernel").assign(np.eye(units))
    if variant == "jordan":
        get_weight(cell, "output_kernel").assign(np.eye(units))
    np.testing.assert_allclose(layer(sequences, initial_state=initial), 1.0)
    outputs = np.asarray(layer(sequences, initial_state=initial, training=True))
    kept = outputs[:, 0] != 0
    assert 0 < kept.sum() < kept.size, "recurrent dropout dropped nothing or everything"
    for t in range(TIME):
        expected = np.where(kept, (1.0 / (1.0 - rate)) ** (t + 1), 0.0)
        np.testing.assert_allclose(outputs[:, t], expected, rtol=1e-5, err_msg=f"step {t}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_dropout_does_nothing_at_inference(variant):
    rng, sequences, mask = make_inputs(41)
    with_dropout = make_cell(variant, UNITS, dropout=0.4, recurrent_dropout=0.3, seed=1)
    without = make_cell(variant, UNITS)
    layer = rnn_keras.Recurrent(with_dropout, return_sequences=True)
    reference = rnn_keras.Recurrent(without, return_sequences=True)
    layer(sequences)
    reference(sequences)
    randomize_weights(with_dropout, rng)
    without.set_weights(with_dropout.get_weights())
    expected = np.asarray(reference(sequences, mask=mask))
    np.testing.assert_allclose(layer(sequences, mask=mask), expected, **TOLERANCE)
    np.testing.assert_allclose(layer(sequences, mask=mask, training=False), expected, **TOLERANCE)
    trained = np.asarray(layer(sequences, mask=mask, training=True))
    assert not np.allclose(trained, expected, atol=1e-4), "dropout inactive in training"


# ----------------------------------------------------------------------------- batch groups


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before", "elman", "jordan"])
def test_batch_groups_give_the_outputs_states_and_gradients_of_one_loop(variant, training):
    """Groups of 2, 2 and 3 sequences, masked, backwards, from given initial states."""
    rng, sequences, mask = make_inputs(42, batch=7, lengths=[6, 4, 1, 5, 6, 2, 3])
    cell = make_cell(variant, UNITS)
    options = {"return_sequences": True, "return_state": True, "go_backwards": True}
    one_loop = rnn_keras.Recurrent(cell, **options)
    grouped = rnn_keras.Recurrent(cell, batch_groups=3, **options)  # the same weights
    outputs = one_loop(sequences)
    randomize_weights(cell, rng)
    initial = random_states(rng, variant, 7, UNITS)
    expected = one_loop(sequences, initial_state=initial, mask=mask, training=training)
    results = grouped(sequences, initial_state=initial, mask=mask, training=training)
    assert len(results) == len(expected)
    for index, (value, result) in enumerate(zip(expected, results, strict=True)):
        name = "outputs" if index == 0 else f"final state {index - 1}"
        np.testing.assert_allclose(result, value, err_msg=name, **TOLERANCE)
    projections = [rng.standard_normal(np.shape(output)).astype("float32") for output in outputs]
    expected = gradients(one_loop, cell, sequences, initial, mask, projections, training)
    ours = gradients(grouped, cell, sequences, initial, mask, projections, training)
    for name, value in expected.items():
        np.testing.assert_allclose(ours[name], value, err_msg=name, **TOLERANCE)


@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_batch_groups_with_recurrent_dropout_slice_the_one_mask(variant):
    """Same seed, same masks: the grouped layer drops the same units of each sequence."""
    rng, sequences, mask = make_inputs(43)
    cells = [make_cell(variant, UNITS, recurrent_dropout=0.4, seed=3) for _ in range(2)]
    one_loop = rnn_keras.Recurrent(cells[0], return_sequences=True)
    grouped = rnn_keras.Recurrent(cells[1], return_sequences=True, batch_groups=2)
    one_loop(sequences)
    grouped(sequences)
    randomize_weights(cells[0], rng)
    cells[1].set_weights(cells[0].get_weights())
    expected = np.asarray(one_loop(sequences, mask=mask, training=True))
    np.testing.assert_allclose(grouped(sequences, mask=mask, training=True), expected, **TOLERANCE)
    without_dropout = np.asarray(one_loop(sequences, mask=mask))
    assert not np.allclose(expected, without_dropout, atol=1e-4), "dropout inactive in training"


def test_batch_groups_follow_the_run_time_batch_size_even_below_the_group_count():
    """Bounds come from the batch size at run time: 1 sequence in 2 groups leaves one empty."""
    rng, _, _ = make_inputs(44)
    cell = make_cell("gru", UNITS)
    one_loop = rnn_keras.Recurrent(cell, return_sequences=True)
    grouped = rnn_keras.Recurrent(cell, return_sequences=True, batch_groups=2)
    spec = tf.TensorSpec((None, None, FEATURES), "float32")
    run = tf.function(lambda x: grouped(x, training=True), input_signature=[spec])
    for batch in (1, 5):
        sequences = rng.standard_normal((batch, 3, FEATURES)).astype("float32")
        expected = one_loop(sequences, training=True)
        np.testing.assert_allclose(run(sequences), expected, **TOLERANCE)


def test_batch_groups_survive_get_config_and_bad_values_name_the_argument():
    layer = rnn_keras.Recurrent(rnn_keras.GRUCell(UNITS), batch_groups=3)
    assert rnn_keras.Recurrent.from_config(layer.get_config()).batch_groups == 3
    for value in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match=rf"batch_groups={value!r}"):
            rnn_keras.Recurrent(rnn_keras.GRUCell(UNITS), batch_groups=value)
    with pytest.raises(ValueError, match="batch_groups.*rnn_keras cell.*GRUCell"):
        rnn_keras.Recurrent(keras.layers.GRUCell(UNITS), batch_groups=2)
