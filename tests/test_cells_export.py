"""Serialization of the rnn_keras cells: get_config/from_config, `.keras` files, SavedModel.

The SavedModel test loads the export in a fresh Python process that imports only TensorFlow
(tests/saved_model_helpers.py), which is what TF Serving sees.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import rnn_keras  # noqa: E402
from tests.reference_cells import (  # noqa: E402
    VARIANTS,
    make_cell,
    output_size,
    randomize_weights,
    right_padded_mask,
)
from tests.saved_model_helpers import call_saved_model_in_fresh_process  # noqa: E402

BATCH, TIME, FEATURES, UNITS = 4, 6, 3, 5
LENGTHS = [6, 4, 1, 5]
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}

# (variant, cell options, Recurrent options): every cell type and the options worth keeping.
CASES = [
    ("elman", {"activation": "relu", "use_bias": False}, {"go_backwards": True}),
    ("elman", {"dropout": 0.2, "recurrent_dropout": 0.1, "seed": 5}, {}),
    ("jordan", {"activation": "sigmoid", "output_activation": "tanh"}, {}),
    ("jordan", {"dropout": 0.3, "seed": 2}, {"zero_output_for_mask": False}),
    ("lstm", {"unit_forget_bias": False, "recurrent_activation": "hard_sigmoid"}, {}),
    ("lstm_peephole", {"recurrent_dropout": 0.2}, {"go_backwards": True}),
    ("lstm_layer_norm", {"dropout": 0.1, "seed": 1}, {}),
    ("gru", {"kernel_initializer": "he_normal"}, {"zero_output_for_mask": False}),
    ("gru_reset_before", {"use_bias": False}, {"go_backwards": True}),
]
# Keras's `.keras` writer calls np.array() on TensorFlow variables, whose __array__ lacks
# NumPy 2's `copy` keyword: a warning from inside Keras + TF, not from rnn_keras.
KERAS_SAVE_WARNING = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
CASE_IDS = [f"{variant}-{'-'.join(options) or 'default'}" for variant, options, _ in CASES]


def make_inputs(seed):
    """Right-padded sequences with zeros in the padding (for keras.layers.Masking)."""
    rng = np.random.default_rng(seed)
    sequences = rng.standard_normal((BATCH, TIME, FEATURES)).astype("float32")
    mask = right_padded_mask(LENGTHS, TIME)
    return rng, np.where(mask[:, :, None], sequences, 0.0).astype("float32"), mask


def masked_model(cell, name="sequences", **layer_options):
    inputs = keras.Input((TIME, FEATURES), name=name)
    masked = keras.layers.Masking(0.0)(inputs)
    outputs = rnn_keras.Recurrent(cell, return_sequences=True, **layer_options)(masked)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("variant,cell_options,layer_options", CASES, ids=CASE_IDS)
def test_cell_config_round_trip_keeps_options_and_outputs(variant, cell_options, layer_options):
    rng, sequences, mask = make_inputs(50)
    cell = make_cell(variant, UNITS, **cell_options)
    config = cell.get_config()
    kind_options = VARIANTS[variant][1]
    for key, value in {"units": UNITS, **kind_options, **cell_options}.items():
        if key.endswith("initializer"):
            continue
        assert config[key] == value, (key, config[key], value)
    clone = type(cell).from_config(config)
    assert clone.get_config() == config
    layer = rnn_keras.Recurrent(cell, return_sequences=True, **layer_options)
    layer(sequences)
    randomize_weights(cell, rng)
    layer_config = layer.get_config()
    clone_layer = rnn_keras.Recurrent.from_config(layer_config)
    assert type(clone_layer.cell) is type(cell)
    assert clone_layer.cell.get_config() == config
    for key in ("return_sequences", "return_state", "go_backwards", "stateful"):
        assert getattr(clone_layer, key) == getattr(layer, key), key
    assert clone_layer.zero_output_for_mask == layer.zero_output_for_mask
    clone_layer(sequences)
    clone_layer.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        clone_layer(sequences, mask=mask), layer(sequences, mask=mask), **TOLERANCE
    )


@KERAS_SAVE_WARNING
@pytest.mark.parametrize("variant,cell_options,layer_options", CASES, ids=CASE_IDS)
def test_keras_file_round_trip_keeps_outputs(variant, cell_options, layer_options, tmp_path):
    rng, sequences, _ = make_inputs(51)
    cell = make_cell(variant, UNITS, **cell_options)
    model = masked_model(cell, **layer_options)
    randomize_weights(cell, rng)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded_layer = loaded.layers[-1]
    assert type(loaded_layer) is rnn_keras.Recurrent
    assert type(loaded_layer.cell) is type(cell)
    assert loaded_layer.cell.get_config() == cell.get_config()
    np.testing.assert_array_equal(loaded(sequences), model(sequences))


@KERAS_SAVE_WARNING
def test_keras_file_round_trip_of_bidirectional_stack(tmp_path):
    rng, sequences, _ = make_inputs(52)
    inputs = keras.Input((TIME, FEATURES))
    hidden = keras.layers.Masking(0.0)(inputs)
    layers = rnn_keras.recurrent_layers(
        "lstm", units=UNITS, num_layers=2, bidirectional=True, layer_norm=True
    )
    for layer in layers:
        hidden = layer(hidden)
    model = keras.Model(inputs, hidden)
    for layer in layers:
        randomize_weights(layer.forward_layer.cell, rng)
        randomize_weights(layer.backward_layer.cell, rng)
    path = tmp_path / "stack.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(sequences), model(sequences))


def test_saved_model_of_every_cell_runs_in_a_fresh_tensorflow_process(tmp_path):
    """One model with an output per cell variant; served by plain TensorFlow, no rnn_keras."""
    rng, sequences, mask = make_inputs(53)
    inputs = keras.Input((TIME, FEATURES), name="sequences")
    masked = keras.layers.Masking(0.0)(inputs)
    outputs, cells = {}, []
    for variant in VARIANTS:
        cell = make_cell(variant, UNITS, dropout=0.25, recurrent_dropout=0.25, seed=3)
        layer = rnn_keras.Recurrent(cell, return_sequences=True, zero_output_for_mask=True)
        outputs[variant] = layer(masked)
        cells.append(cell)
    backwards = make_cell("gru", UNITS)
    outputs["gru_backwards_last"] = rnn_keras.Recurrent(backwards, go_backwards=True)(masked)
    bidirectional = keras.layers.Bidirectional(rnn_keras.Recurrent(make_cell("lstm", UNITS)))
    outputs["bidirectional_lstm"] = bidirectional(masked)
    cells += [backwards, bidirectional.forward_layer.cell, bidirectional.backward_layer.cell]
    model = keras.Model(inputs, outputs)
    for cell in cells:
        randomize_weights(cell, rng)
    expected = {name: np.asarray(value) for name, value in model(sequences).items()}
    # The masked padding really matters to these numbers: zeros at padded steps.
    assert np.all(expected["lstm"][~mask] == 0.0)

    export_dir = tmp_path / "export"
    model.export(str(export_dir), format="tf_saved_model", verbose=False)
    # The serving signature takes the input by the keras.Input's name ("sequences"): the
    # fresh process calls it with that keyword and fails on any other name.
    served = call_saved_model_in_fresh_process(export_dir, {"sequences": sequences})
    assert sorted(served) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(served[name], value, err_msg=name, **TOLERANCE)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("variant", ["elman", "jordan", "lstm", "gru"])
def test_sequences_of_unknown_length_in_a_graph(variant, training, masked):
    """Text models feed (batch, None, features), usually with a mask (Embedding(mask_zero=True))
    and model.fit traces the layer and its gradient with that unknown time dimension: the
    traced graph must run and give the eager outputs and (in training) the eager gradients."""
    rng, sequences, mask = make_inputs(54)
    mask = mask if masked else np.ones_like(mask)
    cell = make_cell(variant, UNITS)
    layer = rnn_keras.Recurrent(cell, return_sequences=True, zero_output_for_mask=True)
    layer(sequences)
    randomize_weights(cell, rng)
    width = output_size(variant, UNITS)

    def outputs_and_gradients(sequences, mask):
        with tf.GradientTape() as tape:
            outputs = layer(sequences, mask=mask if masked else None, training=training)
            loss = tf.reduce_sum(outputs * tf.range(1.0, width + 1.0))
        return outputs, tape.gradient(loss, cell.trainable_weights)

    traced = tf.function(
        outputs_and_gradients,
        input_signature=[
            tf.TensorSpec((None, None, FEATURES), tf.float32),
            tf.TensorSpec((None, None), tf.bool),
        ],
    )
    for length in (TIME, 3):
        expected, expected_gradients = outputs_and_gradients(
            sequences[:, :length], mask[:, :length]
        )
        actual, actual_gradients = traced(sequences[:, :length], mask[:, :length])
        np.testing.assert_allclose(actual, expected, **TOLERANCE)
        for value, reference in zip(actual_gradients, expected_gradients, strict=True):
            np.testing.assert_allclose(value, reference, rtol=1e-5, atol=1e-5)
