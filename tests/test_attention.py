"""Bahdanau and Luong attention against a NumPy reference, masking, serialization, export.

Every learnable weight is set to a random value away from its initialiser before a layer is
compared with the reference (Luong's scale and Bahdanau's g around 1.7, the normalisation bias
nonzero): with the initial scale of 1 and bias of 0 a score that divides by the scale or drops
the bias gives the same numbers.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from rnn_keras.attention import BahdanauAttention, BaseAttention, LuongAttention
from tests.saved_model_helpers import call_saved_model_in_fresh_process

RNG = np.random.default_rng(7)
QUERY = RNG.normal(size=(3, 4, 5)).astype("float32")
VALUE = RNG.normal(size=(3, 6, 7)).astype("float32")
VALUE_MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], bool)
QUERY_MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)

LAYERS = {
    "bahdanau": lambda: BahdanauAttention(8),
    "bahdanau_normalized": lambda: BahdanauAttention(8, normalize=True),
    "luong_dot": lambda: LuongAttention("dot"),
    "luong_general": lambda: LuongAttention("general"),
    "luong_general_scaled": lambda: LuongAttention("general", scale=True),
    "luong_concat": lambda: LuongAttention("concat", units=6, scale=True),
}


# Scalars that multiply a score: random, positive and far from their initial value.
SCALARS = ("scale", "attention_g")


def _randomize(layer, rng):
    """Assigns random values to every weight of a built layer."""
    assert layer.weights, f"{layer.name} has no weights to randomise"
    for variable in layer.weights:
        shape = tuple(variable.shape)
        if variable.path.split("/")[-1] in SCALARS:
            value = 1.7 + 0.2 * rng.standard_normal(shape)
        else:
            value = 0.5 * rng.standard_normal(shape)
        variable.assign(value.astype(variable.dtype))


def _built_randomized(name, seed):
    layer = LAYERS[name]()
    layer.build((None, None, _query_for(name).shape[-1]), VALUE.shape)
    if layer.weights:
        _randomize(layer, np.random.default_rng(seed))
    return layer


class _TrackedWeights(dict):
    """The layer's weights by name; records which ones the reference read."""

    def __init__(self, layer):
        super().__init__((w.path.split("/")[-1], np.asarray(w, "float64")) for w in layer.weights)
        self.read = set()

    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)


def _numpy_scores(layer, query, key):
    weights = _TrackedWeights(layer)
    scores = _numpy_scores_from(layer, weights, query.astype("float64"), key.astype("float64"))
    # A weight the reference never reads would be one the test cannot check.
    assert weights.read == set(weights), f"unread weights: {set(weights) - weights.read}"
    return scores


def _numpy_scores_from(layer, weights, query, key):
    if isinstance(layer, BahdanauAttention) or layer.score_mode == "concat":
        hidden = (query @ weights["query_kernel"])[:, :, None] + (key @ weights["key_kernel"])[
            :, None
        ]
        v = weights["attention_v"]
        if getattr(layer, "normalize", False):
            hidden = hidden + weights["attention_b"]
            v = weights["attention_g"] * v / np.linalg.norm(v)
        scores = np.tanh(hidden) @ v
    elif layer.score_mode == "general":
        scores = query @ weights["kernel"] @ key.transpose(0, 2, 1)
    else:
        scores = query @ key.transpose(0, 2, 1)
    if getattr(layer, "scale", False):
        scores = scores * weights["scale"]
    return scores


def _numpy_attention(layer, query, value, value_mask=None, query_mask=None, key=None):
    scores = _numpy_scores(layer, query, value if key is None else key).astype("float64")
    if value_mask is None:
        value_mask = np.ones(scores.shape[::2], bool)
    keep = value_mask[:, None, :]
    exp = np.where(keep, np.exp(scores - scores.max(-1, keepdims=True)), 0.0)
    total = exp.sum(-1, keepdims=True)
    weights = np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)
    if query_mask is not None:
        weights = weights * query_mask[:, :, None]
    return weights @ value, weights


DOT_QUERY = QUERY @ RNG.normal(size=(5, 7)).astype("float32")


def _query_for(name):
    # The dot score needs equal query and key sizes.
    return DOT_QUERY if name == "luong_dot" else QUERY


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("masked", [False, True])
def test_matches_numpy_reference(name, masked):
    layer, query = _built_randomized(name, seed=len(name) + masked), _query_for(name)
    value_mask, query_mask = (VALUE_MASK, QUERY_MASK) if masked else (None, None)
    context, weights = layer(query, VALUE, value_mask=value_mask, query_mask=query_mask)
    expected_context, expected_weights = _numpy_attention(
        layer, query, VALUE, value_mask, query_mask
    )
    np.testing.assert_allclose(np.asarray(weights), expected_weights, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(context), expected_context, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["bahdanau_normalized", "luong_general", "luong_concat"])
def test_single_query_equals_first_row_of_sequence(name):
    layer, query = _built_randomized(name, seed=3), _query_for(name)
    sequence_context, sequence_weights = layer(query, VALUE, value_mask=VALUE_MASK)
    context, weights = layer(query[:, 1], VALUE, value_mask=VALUE_MASK)
    assert tuple(context.shape) == (3, 7) and tuple(weights.shape) == (3, 6)
    np.testing.assert_allclose(np.asarray(context), np.asarray(sequence_context)[:, 1], atol=1e-6)
    np.testing.assert_allclose(np.asarray(weights), np.asarray(sequence_weights)[:, 1], atol=1e-6)


def test_masked_positions_get_exactly_zero_and_full_mask_no_nan():
    layer = LuongAttention("general")
    # Huge scores must not leak weight into masked positions.
    value = VALUE * 100.0
    context, weights = layer(QUERY, value, value_mask=VALUE_MASK, query_mask=QUERY_MASK)
    weights, context = np.asarray(weights), np.asarray(context)
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(context))
    assert np.all(weights[~np.broadcast_to(VALUE_MASK[:, None], weights.shape)] == 0.0)
    assert np.all(weights[2] == 0.0) and np.all(context[2] == 0.0)
    assert np.all(weights[1, 2:] == 0.0)
    np.testing.assert_allclose(weights[0].sum(-1), 1.0, rtol=1e-6)


def test_gradient_of_fully_masked_row_is_finite():
    import tensorflow as tf

    layer = BahdanauAttention(4)
    value = tf.constant(VALUE)
    with tf.GradientTape() as tape:
        tape.watch(value)
        context, _ = layer(QUERY, value, value_mask=VALUE_MASK)
        loss = keras.ops.sum(context)
    gradient = tape.gradient(loss, [value, *layer.trainable_weights])
    assert all(np.all(np.isfinite(np.asarray(g))) for g in gradient)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="score_mode.*'cosine'"):
        LuongAttention("cosine")
    with pytest.raises(ValueError, match="query_dim=5 and key_dim=7"):
        LuongAttention("dot")(QUERY, VALUE)
    with pytest.raises(ValueError, match="units=0"):
        BahdanauAttention(0)
    with pytest.raises(NotImplementedError, match="BaseAttention must implement `score"):
        BaseAttention()(QUERY, VALUE)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_get_config_round_trip(name):
    layer = LAYERS[name]()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("name", ["bahdanau_normalized", "luong_concat"])
def test_build_config_rebuilds_a_layer_that_takes_the_weights(name):
    layer = _built_randomized(name, seed=4)
    clone = type(layer).from_config(layer.get_config())
    clone.build_from_config(layer.get_build_config())
    clone.set_weights(layer.get_weights())
    query = _query_for(name)
    for ours, theirs in zip(clone(query, VALUE), layer(query, VALUE), strict=True):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-6)


def test_kernel_initializer_survives_the_config():
    for layer in (
        BahdanauAttention(4, kernel_initializer="ones"),
        LuongAttention("general", kernel_initializer="ones"),
        LuongAttention("concat", units=4, kernel_initializer="ones"),
    ):
        clone = type(layer).from_config(layer.get_config())
        clone.build((None, 5), VALUE.shape)
        if getattr(clone, "score_mode", None) == "concat":
            assert tuple(clone.query_kernel.shape) == (5, 4)  # `units`, not the key size
        for variable in clone.weights:
            np.testing.assert_array_equal(np.asarray(variable), 1.0, err_msg=variable.path)


def test_compute_output_shape_for_one_query_and_a_query_sequence():
    layer = LuongAttention("general")
    assert layer.compute_output_shape((3, 5), (3, 6, 7)) == ((3, 7), (3, 6))
    assert layer.compute_output_shape((3, 4, 5), (3, 6, 7)) == ((3, 4, 7), (3, 4, 6))


def _functional_model(layer, query_dim=5):
    query = keras.Input((None, query_dim), name="query")
    value = keras.Input((None, 7), name="value")
    value_mask = keras.Input((None,), dtype="bool", name="value_mask")
    context, weights = layer(query, value, value_mask=value_mask)
    return keras.Model([query, value, value_mask], {"context": context, "weights": weights})


def test_keras_file_round_trip(tmp_path):
    model = _functional_model(BahdanauAttention(8, normalize=True, name="attention"))
    _randomize(model.get_layer("attention"), np.random.default_rng(5))
    path = tmp_path / "attention.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    inputs = [QUERY, VALUE, VALUE_MASK]
    for key in ("context", "weights"):
        np.testing.assert_allclose(
            np.asarray(reloaded(inputs)[key]), np.asarray(model(inputs)[key]), atol=1e-6
        )


def test_saved_model_in_fresh_process(tmp_path):
    model = _functional_model(LuongAttention("concat", scale=True, name="attention"))
    _randomize(model.get_layer("attention"), np.random.default_rng(6))
    export_dir = tmp_path / "export"
    model.export(
        export_dir,
        input_signature=[
            [
                keras.InputSpec(shape=(None, None, 5), dtype="float32", name="query"),
                keras.InputSpec(shape=(None, None, 7), dtype="float32", name="value"),
                keras.InputSpec(shape=(None, None), dtype="bool", name="value_mask"),
            ]
        ],
        verbose=False,
    )
    outputs = call_saved_model_in_fresh_process(
        export_dir, {"query": QUERY, "value": VALUE, "value_mask": VALUE_MASK}
    )
    expected = model([QUERY, VALUE, VALUE_MASK])
    np.testing.assert_allclose(outputs["context"], np.asarray(expected["context"]), atol=1e-5)
    np.testing.assert_allclose(outputs["weights"], np.asarray(expected["weights"]), atol=1e-6)


# Behaviour that mutation testing found unpinned. The reference reads `normalize`, `scale` and
# `score_mode` from the object it is handed, so where an option is what is under test the test
# states it (`_declared`) instead of taking the layer's word for it.
