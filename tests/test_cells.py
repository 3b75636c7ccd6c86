"""Tests of the rnn_keras cells: Keras twins, NumPy equations, contract, config, errors.

Weights are random (never constant initialisers, which hide swapped gate blocks), copied by
name into the Keras built-in twin, and inputs are right-padded with random values in the
padding so that a mask that is ignored changes the numbers.
"""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import rnn_keras  # noqa: E402
from tests.reference_cells import (  # noqa: E402
    KERAS_TWINS,
    VARIANTS,
    copy_weights_by_name,
    get_weight,
    make_cell,
    make_keras_twin_layer,
    output_size,
    random_states,
    randomize_weights,
    reference_run,
    right_padded_mask,
    state_sizes,
)

BATCH, TIME, FEATURES, UNITS = 4, 6, 3, 5
LENGTHS = [6, 4, 1, 5]
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def make_inputs(seed):
    rng = np.random.default_rng(seed)
    sequences = rng.standard_normal((BATCH, TIME, FEATURES)).astype("float32")
    return rng, sequences, right_padded_mask(LENGTHS, TIME)


WRAPPERS = ["keras_rnn", "recurrent", "recurrent_training"]


def wrap(cell, wrapper, **options):
    """The sequence layer under test around `cell`.

    "recurrent_training" is rnn_keras.Recurrent called with training=True (no dropout here, so
    the same numbers), which runs the fused kernels with hand-written backward passes.
    Recurrent gets zero_output_for_mask=True explicitly (its default, tested on its own).
    """
    if wrapper == "keras_rnn":
        return keras.layers.RNN(cell, **options)
    return rnn_keras.Recurrent(cell, **{"zero_output_for_mask": True, **options})


def call(layer, wrapper, sequences, **kwargs):
    return layer(sequences, training=wrapper == "recurrent_training", **kwargs)


def processed_mask(mask, go_backwards):
    """The mask in the order the outputs come back (reversed with go_backwards, as Keras)."""
    return mask[:, ::-1] if go_backwards else mask


def as_numpy_list(values):
    return [np.asarray(value) for value in values]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("variant", KERAS_TWINS)
def test_reference_equations_match_keras_builtin(variant, go_backwards):
    """The NumPy reference itself agrees with keras SimpleRNN / LSTM / GRU (self-check)."""
    rng, sequences, mask = make_inputs(1)
    keras_layer = make_keras_twin_layer(
        variant, UNITS, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    keras_layer(sequences)
    randomize_weights(keras_layer.cell, rng)
    initial = random_states(rng, variant, BATCH, UNITS)
    outputs, *states = keras_layer(sequences, initial_state=initial, mask=mask)
    expected_outputs, _, expected_states = reference_run(
        keras_layer.cell, variant, sequences, initial, mask=mask, go_backwards=go_backwards
    )
    np.testing.assert_allclose(outputs, expected_outputs, **TOLERANCE)
    for state, expected in zip(states, expected_states, strict=True):
        np.testing.assert_allclose(state, expected, **TOLERANCE)


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize(
    "masked,go_backwards", [(False, False), (False, True), (True, False), (True, True)]
)
@pytest.mark.parametrize("variant", KERAS_TWINS)
def test_matches_keras_builtin_layer(variant, masked, go_backwards, wrapper):
    """ElmanCell / LSTMCell / GRUCell equal SimpleRNN / LSTM / GRU with copied weights."""
    rng, sequences, mask = make_inputs(2)
    mask = mask if masked else None
    initial = random_states(rng, variant, BATCH, UNITS) if masked else None
    cell = make_cell(variant, UNITS)
    layer = wrap(cell, wrapper, return_sequences=True, return_state=True, go_backwards=go_backwards)
    # zero_output_for_mask=False here; the last output with True is tested on its own below.
    last_layer = wrap(cell, wrapper, go_backwards=go_backwards, zero_output_for_mask=False)
    layer(sequences)
    randomize_weights(cell, rng)
    keras_layer = make_keras_twin_layer(
        variant, UNITS, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    keras_layer(sequences)
    copy_weights_by_name(cell, keras_layer.cell)

    outputs, *states = call(layer, wrapper, sequences, initial_state=initial, mask=mask)
    last_output = call(last_layer, wrapper, sequences, initial_state=initial, mask=mask)
    expected_outputs, *expected_states = as_numpy_list(
        keras_layer(sequences, initial_state=initial, mask=mask)
    )
    assert len(states) == len(expected_states)
    for state, expected in zip(states, expected_states, strict=True):
        np.testing.assert_allclose(state, expected, **TOLERANCE)
    # With a right-padded mask the last output is the last valid one, as keras.layers.LSTM.
    np.testing.assert_allclose(last_output, expected_outputs[:, -1], **TOLERANCE)
    if wrapper != "keras_rnn" and mask is not None:
        # Recurrent defaults to zero_output_for_mask=True: padded steps give zeros.
        keep = processed_mask(mask, go_backwards)[:, :, None]
        expected_outputs = np.where(keep, expected_outputs, 0.0)
    np.testing.assert_allclose(outputs, expected_outputs, **TOLERANCE)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_last_output_of_a_padded_sequence_is_its_last_valid_output(zero_output_for_mask, training):
    """return_sequences=False with a right-padded mask returns the output at the last real
    step, as keras.layers.LSTM/GRU/SimpleRNN and Bidirectional do (never zeros): a classifier
    over padded batches depends on it. (keras.layers.RNN(zero_output_for_mask=True) returns
    zeros there; Keras's own recurrent layers default to False and Bidirectional forces
    zero_output_for_mask=return_sequences to avoid exactly that.)"""
    rng, sequences, mask = make_inputs(5)
    cell = make_cell("lstm", UNITS)
    layer = rnn_keras.Recurrent(cell, zero_output_for_mask=zero_output_for_mask)
    layer(sequences)
    randomize_weights(cell, rng)
    keras_layer = make_keras_twin_layer("lstm", UNITS)
    keras_layer(sequences)
    copy_weights_by_name(cell, keras_layer.cell)
    np.testing.assert_allclose(
        layer(sequences, mask=mask, training=training),
        keras_layer(sequences, mask=mask),
        **TOLERANCE,
    )


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("variant", ["lstm", "gru", "elman"])
def test_final_output_and_states_with_an_empty_sequence_match_keras(variant, training):
    """return_sequences=False with a row that has no real step: that row outputs zeros and
    keeps its initial states, the other rows end at their last real step, as in Keras's
    built-in layers; in training (fused kernels, in chunks of time) and at inference."""
    rng, sequences, _ = make_inputs(6)
    mask = right_padded_mask([6, 0, 3, 1], TIME)
    cell = make_cell(variant, UNITS)
    layer = rnn_keras.Recurrent(cell, return_state=True)
    layer(sequences)
    randomize_weights(cell, rng)
    keras_layer = make_keras_twin_layer(variant, UNITS, return_state=True)
    keras_layer(sequences)
    copy_weights_by_name(cell, keras_layer.cell)
    initial = random_states(rng, variant, BATCH, UNITS)
    ours = layer(sequences, initial_state=initial, mask=mask, training=training)
    expected = keras_layer(sequences, initial_state=initial, mask=mask)
    for value, reference in zip(ours, expected, strict=True):
        np.testing.assert_allclose(value, reference, **TOLERANCE)
    np.testing.assert_array_equal(ours[0][1], np.zeros(UNITS))
    np.testing.assert_allclose(ours[1][1], initial[0][1], **TOLERANCE)


@pytest.mark.parametrize(
    "masked,go_backwards,wrapper",
    [
        (False, False, "recurrent"),
        (True, False, "recurrent"),
        (True, True, "recurrent"),
        (True, False, "recurrent_training"),
        (True, True, "recurrent_training"),
        (True, False, "keras_rnn"),
        (True, True, "keras_rnn"),
    ],
)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_matches_numpy_equations(variant, masked, go_backwards, wrapper):
    """Every variant (Jordan, peephole and layer-norm LSTM included) equals the NumPy equations."""
    rng, sequences, mask = make_inputs(3)
    mask = mask if masked else None
    cell = make_cell(variant, UNITS)
    options = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    layer = wrap(cell, wrapper, **options)
    layer(sequences)
    randomize_weights(cell, rng)
    initial = random_states(rng, variant, BATCH, UNITS)
    outputs, *states = call(layer, wrapper, sequences, initial_state=initial, mask=mask)
    expected_outputs, _, expected_states = reference_run(
        cell,
        variant,
        sequences,
        initial,
        mask=mask,
        go_backwards=go_backwards,
        zero_output_for_mask=wrapper != "keras_rnn",
    )
    np.testing.assert_allclose(outputs, expected_outputs, **TOLERANCE)
    for state, expected in zip(states, expected_states, strict=True):
        np.testing.assert_allclose(state, expected, **TOLERANCE)


@pytest.mark.parametrize(
    "zero_output_for_mask,go_backwards,training",
    [(False, False, True), (True, False, False), (True, True, True), (False, True, False)],
)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_recurrent_equals_keras_rnn_loop(variant, zero_output_for_mask, go_backwards, training):
    """The fast layer (input projection hoisted) equals keras.layers.RNN over the same cell."""
    rng, sequences, mask = make_inputs(4)
    cell = make_cell(variant, UNITS)
    options = {
        "return_sequences": True,
        "return_state": True,
        "go_backwards": go_backwards,
        "zero_output_for_mask": zero_output_for_mask,
    }
    fast = rnn_keras.Recurrent(cell, **options)
    plain = keras.layers.RNN(cell, **options)
    fast(sequences)
    plain(sequences)
    randomize_weights(cell, rng)
    initial = random_states(rng, variant, BATCH, UNITS)
    kwargs = {"initial_state": initial, "mask": mask, "training": training}
    for actual, expected in zip(fast(sequences, **kwargs), plain(sequences, **kwargs), strict=True):
        np.testing.assert_allclose(actual, expected, **TOLERANCE)


def test_recurrent_defaults_follow_the_contract():
    """Recurrent(cell, return_sequences=False, return_state=False, go_backwards=False,
    stateful=False, zero_output_for_mask=True)."""
    layer = rnn_keras.Recurrent(rnn_keras.ElmanCell(UNITS))
    assert layer.return_sequences is False
    assert layer.return_state is False
    assert layer.go_backwards is False
    assert layer.stateful is False
    assert layer.zero_output_for_mask is True


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cell_contract_sizes_shapes_and_initial_state(variant):
    """state_size, output_size, weight shapes and get_initial_state follow the Keras cell contract."""
    cell = make_cell(variant, UNITS)
    cell.build((None, FEATURES))
    sizes = state_sizes(variant, UNITS)
    state_size = cell.state_size
    assert (list(state_size) if isinstance(state_size, list | tuple) else [state_size]) == sizes
    assert cell.output_size == output_size(variant, UNITS)
    kind, options, names = VARIANTS[variant]
    gates = {"elman": 1, "jordan": 1, "lstm": 4, "gru": 3}[kind]
    expected_shapes = {
        "kernel": (FEATURES, gates * UNITS),
        "recurrent_kernel": (sizes[0] if kind == "jordan" else UNITS, gates * UNITS),
        "bias": (2, 3 * UNITS) if options.get("reset_after") else (gates * UNITS,),
        "output_kernel": (UNITS, sizes[0]),
        "output_bias": (sizes[0],),
    }
    # Every weight is one the NumPy reference reads: none escapes randomize_weights' check.
    assert sorted(id(get_weight(cell, name)) for name in names) == sorted(
        id(variable) for variable in cell.weights
    ), [variable.path for variable in cell.weights]
    for name in names:
        expected = expected_shapes.get(name, (4 * UNITS,) if "_norm_" in name else (UNITS,))
        if name.startswith("state_norm"):
            expected = (UNITS,)
        assert tuple(get_weight(cell, name).shape) == expected, name
    initial = cell.get_initial_state(batch_size=BATCH)
    initial = list(initial) if isinstance(initial, list | tuple) else [initial]
    assert [tuple(np.shape(state)) for state in initial] == [(BATCH, size) for size in sizes]
    for state in initial:
        np.testing.assert_array_equal(state, 0.0)


def test_lstm_default_initialisers():
    """Unit forget bias (1 on the forget block only), orthogonal recurrent kernel."""
    cell = rnn_keras.LSTMCell(UNITS)
    cell.build((None, FEATURES))
    bias = np.asarray(cell.bias)
    expected = np.zeros(4 * UNITS)
    expected[UNITS : 2 * UNITS] = 1.0
    np.testing.assert_array_equal(bias, expected)
    recurrent = np.asarray(cell.recurrent_kernel)
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(UNITS), atol=1e-5)
    assert not rnn_keras.LSTMCell(UNITS, unit_forget_bias=False).get_config()["unit_forget_bias"]


@pytest.mark.parametrize(
    "kind,options,cls_name",
    [
        ("elman", {}, "ElmanCell"),
        ("jordan", {"output_units": 2}, "JordanCell"),
        ("lstm", {"peephole": True}, "LSTMCell"),
        ("gru", {"reset_after": False}, "GRUCell"),
    ],
)
def test_make_cell(kind, options, cls_name):
    cell = rnn_keras.make_cell(kind, 7, **options)
    assert type(cell) is getattr(rnn_keras, cls_name)
    config = cell.get_config()
    assert config["units"] == 7
    for key, value in options.items():
        assert config[key] == value


JORDAN = {"units": 4, "output_units": 2}
BAD_ARGUMENTS = [
    ("ElmanCell", {"units": -3}, "units", "-3"),
    ("JordanCell", {"units": 0, "output_units": 2}, "units", "0"),
    ("LSTMCell", {"units": -3}, "units", "-3"),
    ("GRUCell", {"units": 0}, "units", "0"),
    ("JordanCell", {"units": 4, "output_units": -2}, "output_units", "-2"),
    ("ElmanCell", {"units": 4, "activation": "bogus_fn"}, "activation", "bogus_fn"),
    (
        "LSTMCell",
        {"units": 4, "recurrent_activation": "bogus_fn"},
        "recurrent_activation",
        "bogus_fn",
    ),
    ("JordanCell", {**JORDAN, "output_activation": "bogus_fn"}, "output_activation", "bogus_fn"),
    ("GRUCell", {"units": 4, "dropout": 1.0}, "dropout", r"1(\.0)?"),
    ("LSTMCell", {"units": 4, "dropout": -0.1}, "dropout", "-0.1"),
    ("ElmanCell", {"units": 4, "recurrent_dropout": 1.5}, "recurrent_dropout", "1.5"),
    ("JordanCell", {**JORDAN, "recurrent_dropout": -0.5}, "recurrent_dropout", "-0.5"),
]


@pytest.mark.parametrize(
    "cls_name,kwargs,argument,value",
    BAD_ARGUMENTS,
    ids=[f"{case[0]}-{case[2]}={case[3]}" for case in BAD_ARGUMENTS],
)
def test_bad_arguments_raise_value_error_naming_them(cls_name, kwargs, argument, value):
    with pytest.raises(ValueError) as error:
        getattr(rnn_keras, cls_name)(**kwargs)
    message = str(error.value)
    assert argument in message, message
    assert re.search(value, message), message


@pytest.mark.parametrize(
    "call,argument,value",
    [
        (lambda: rnn_keras.make_cell("transformer", 4), "kind", "transformer"),
        (lambda: rnn_keras.recurrent_layers("lstm", units=-3), "units", "-3"),
        (lambda: rnn_keras.recurrent_layers("gru", units=4, dropout=1.5), "dropout", "1.5"),
    ],
    ids=["make_cell-kind", "recurrent_layers-units", "recurrent_layers-dropout"],
)
def test_bad_factory_arguments(call, argument, value):
    with pytest.raises(ValueError) as error:
        call()
    assert argument in str(error.value) and value in str(error.value), str(error.value)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize(
    "variant,options",
    [
        ("elman", {"activation": "relu"}),
        ("elman", {"activation": "linear"}),
        ("jordan", {"activation": "sigmoid", "output_activation": "tanh"}),
        ("gru_reset_before", {"use_bias": False}),
    ],
    ids=["elman-relu", "elman-linear", "jordan-sigmoid-tanh", "gru_reset_before-no_bias"],
)
def test_other_options_match_numpy_equations(variant, options, training):
    rng, sequences, mask = make_inputs(6)
    cell = make_cell(variant, UNITS, **options)
    layer = rnn_keras.Recurrent(
        cell, return_sequences=True, return_state=True, zero_output_for_mask=True
    )
    layer(sequences)
    randomize_weights(cell, rng, scale=0.3)
    initial = random_states(rng, variant, BATCH, UNITS)
    outputs, *states = layer(sequences, initial_state=initial, mask=mask, training=training)
    expected_outputs, _, expected_states = reference_run(
        cell, variant, sequences, initial, mask=mask, zero_output_for_mask=True
    )
    np.testing.assert_allclose(outputs, expected_outputs, **TOLERANCE)
    for state, expected in zip(states, expected_states, strict=True):
        np.testing.assert_allclose(state, expected, **TOLERANCE)


def test_one_fit_step_matches_keras_builtin_layers():
    """model.fit (graph mode, fused kernels, masks from Masking) takes the same SGD step."""
    rng, sequences, mask = make_inputs(7)
    sequences = np.where(mask[:, :, None], sequences, 0.0).astype("float32")
    targets = rng.standard_normal((BATCH, 1)).astype("float32")

    def build(layers):
        inputs = keras.Input((TIME, FEATURES))
        masked = keras.layers.Masking(0.0)(inputs)
        merged = keras.layers.Concatenate()([layer(masked) for layer in layers])
        model = keras.Model(inputs, keras.layers.Dense(1)(merged))
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse", jit_compile=False)
        return model

    variants = ["lstm", "gru", "gru_reset_before", "elman"]
    ours = [rnn_keras.Recurrent(make_cell(variant, UNITS)) for variant in variants]
    theirs = [make_keras_twin_layer(variant, UNITS) for variant in variants]
    our_model, their_model = build(ours), build(theirs)
    for layer, twin in zip(ours, theirs, strict=True):
        randomize_weights(layer.cell, rng)
        copy_weights_by_name(layer.cell, twin.cell)
    their_model.layers[-1].set_weights(our_model.layers[-1].get_weights())
    for model in (our_model, their_model):
        model.fit(sequences, targets, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    for layer, twin in zip(ours, theirs, strict=True):
        for name in ("kernel", "recurrent_kernel", "bias"):
            np.testing.assert_allclose(
                get_weight(layer.cell, name).numpy(),
                get_weight(twin.cell, name).numpy(),
                rtol=1e-4,
                atol=1e-5,
                err_msg=f"{layer.cell.name}.{name}",
            )


def test_recurrent_runs_a_keras_builtin_cell_like_keras_rnn():
    """Recurrent's docstring: any other Keras cell runs step by step, as in keras.layers.RNN;
    Keras's cells cache their dropout mask, so the layer must reset it after every call."""
    rng, sequences, mask = make_inputs(8)
    cell = keras.layers.LSTMCell(UNITS, dropout=0.5, seed=1)
    ours = rnn_keras.Recurrent(cell, return_sequences=True, zero_output_for_mask=True)
    theirs = keras.layers.RNN(cell, return_sequences=True, zero_output_for_mask=True)
    ours(sequences)
    randomize_weights(cell, rng)
    np.testing.assert_allclose(
        ours(sequences, mask=mask), theirs(sequences, mask=mask), **TOLERANCE
    )
    first = np.asarray(ours(sequences, training=True))
    second = np.asarray(ours(sequences, training=True))
    assert not np.allclose(first, second), "the same dropout mask was reused for a new batch"
