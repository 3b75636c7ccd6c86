"""Attention options and edge cases: initial weights, defaults, half precision, exact errors.

The cases mutation testing found unguarded (docs/testing.md): options checked against the
NumPy reference with the option stated by the test, weights at their initial values,
float16 and bfloat16 masking, single queries with per-example masks, explicit keys.
"""

import os
import re
import types
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rnn_keras.attention import BahdanauAttention, BaseAttention, LuongAttention  # noqa: E402
from tests.test_attention import (  # noqa: E402
    LAYERS,
    QUERY,
    QUERY_MASK,
    VALUE,
    VALUE_MASK,
    _built_randomized,
    _numpy_attention,
    _query_for,
    _randomize,
)


def _declared(layer, score_mode, normalize=False, scale=False):
    """`layer`'s weights as the NumPy reference sees them, under options the test states.

    Handed the layer itself, the reference would check a layer that lost `normalize=True`
    against an equally unnormalised reference. Bahdanau's score is the `concat` formula.
    """
    return types.SimpleNamespace(
        weights=layer.weights, score_mode=score_mode, normalize=normalize, scale=scale
    )


def _weights_by_name(layer):
    return {variable.path.split("/")[-1]: variable for variable in layer.weights}


def _assert_outputs(outputs, expected, rtol=1e-4, atol=1e-5):
    for ours, theirs in zip(outputs, expected, strict=True):
        assert tuple(ours.shape) == theirs.shape
        np.testing.assert_allclose(np.asarray(ours, "float64"), theirs, rtol=rtol, atol=atol)


NORMALIZED_WEIGHTS = ["attention_b", "attention_g", "attention_v", "key_kernel", "query_kernel"]


def _check_normalized_bahdanau(layer, seed):
    layer.build((None, None, 5), VALUE.shape)
    assert sorted(_weights_by_name(layer)) == NORMALIZED_WEIGHTS
    _randomize(layer, np.random.default_rng(seed))
    outputs = layer(QUERY, VALUE, value_mask=VALUE_MASK)
    reference = _declared(layer, "concat", normalize=True)
    _assert_outputs(outputs, _numpy_attention(reference, QUERY, VALUE, VALUE_MASK))


def test_bahdanau_normalize_true_weight_normalises_v_and_adds_the_bias():
    _check_normalized_bahdanau(BahdanauAttention(8, normalize=True), seed=21)


def test_bahdanau_normalize_true_survives_get_config_from_config():
    config = BahdanauAttention(8, normalize=True).get_config()
    assert config["normalize"] is True
    _check_normalized_bahdanau(BahdanauAttention.from_config(config), seed=22)


@pytest.mark.parametrize("units", [1, 4, 8])
def test_bahdanau_normalization_weights_start_at_sqrt_one_over_units_and_zero(units):
    layer = BahdanauAttention(units, normalize=True)
    layer.build((None, 5), VALUE.shape)
    weights = _weights_by_name(layer)
    g, b = weights["attention_g"], weights["attention_b"]
    assert tuple(g.shape) == () and tuple(b.shape) == (units,)
    np.testing.assert_allclose(np.asarray(g), np.sqrt(1.0 / units), rtol=1e-7)
    np.testing.assert_array_equal(np.asarray(b), np.zeros(units, "float32"))


@pytest.mark.parametrize("score_mode", ["dot", "general", "concat"])
def test_luong_scale_is_a_scalar_starting_at_exactly_one(score_mode):
    layer = LuongAttention(score_mode, scale=True)
    layer.build((None, 7), VALUE.shape)
    scale = _weights_by_name(layer)["scale"]
    assert tuple(scale.shape) == ()
    assert np.asarray(scale).item() == 1.0


@pytest.mark.parametrize(
    "score_mode, names",
    [
        ("dot", []),
        ("general", ["kernel"]),
        ("concat", ["attention_v", "key_kernel", "query_kernel"]),
    ],
)
def test_luong_without_scale_has_no_scale_weight(score_mode, names):
    layer = LuongAttention(score_mode, scale=False)
    layer.build((None, 7), VALUE.shape)
    assert sorted(_weights_by_name(layer)) == names


def test_luong_defaults_are_general_score_without_scale():
    layer = LuongAttention()
    config = layer.get_config()
    assert config["score_mode"] == "general" and config["scale"] is False
    layer.build((None, None, 5), VALUE.shape)
    assert sorted(_weights_by_name(layer)) == ["kernel"]
    _randomize(layer, np.random.default_rng(23))
    outputs = layer(QUERY, VALUE, value_mask=VALUE_MASK, query_mask=QUERY_MASK)
    reference = _declared(layer, "general", scale=False)
    _assert_outputs(outputs, _numpy_attention(reference, QUERY, VALUE, VALUE_MASK, QUERY_MASK))
    explicit = LuongAttention(score_mode="general", scale=False)
    explicit.build((None, None, 5), VALUE.shape)
    explicit.set_weights(layer.get_weights())
    explicit_outputs = explicit(QUERY, VALUE, value_mask=VALUE_MASK, query_mask=QUERY_MASK)
    for ours, theirs in zip(outputs, explicit_outputs, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.parametrize("policy, atol", [("mixed_float16", 1e-2), ("mixed_bfloat16", 5e-2)])
def test_half_precision_masking_is_exact_and_finite(policy, atol):
    layer = LuongAttention("general", scale=True, dtype=policy)
    layer.build((None, None, 5), VALUE.shape)
    _randomize(layer, np.random.default_rng(24))
    context, weights = layer(QUERY, VALUE, value_mask=VALUE_MASK, query_mask=QUERY_MASK)
    half = policy.removeprefix("mixed_")
    # The outputs stay in the compute dtype: nothing promotes them back to float32.
    assert keras.backend.standardize_dtype(context.dtype) == half
    assert keras.backend.standardize_dtype(weights.dtype) == half
    weights, context = np.asarray(weights, "float64"), np.asarray(context, "float64")
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(context))
    assert np.all(weights[~np.broadcast_to(VALUE_MASK[:, None], weights.shape)] == 0.0)
    assert np.all(weights[2] == 0.0) and np.all(context[2] == 0.0)  # no value left: zeros
    np.testing.assert_allclose(weights[:2].sum(-1), QUERY_MASK[:2], atol=atol)
    expected = _numpy_attention(layer, QUERY, VALUE, VALUE_MASK, QUERY_MASK)
    _assert_outputs((context, weights), expected, rtol=0, atol=atol)


def test_float32_masking_holds_for_scores_far_below_minus_3e4():
    # Dot scores q . k = -1e5 + offset, exact in float32: a fill value of -3e4 (the
    # half-precision one) would outrank every real score and empty the row.
    offsets = np.array([[0.0, 1.0, 2.0, 3.0, -1.0, 5.0], [2.0, 0.0, -2.0, 1.0, 9.0, 9.0]])
    value = np.stack([np.full_like(offsets, -100.0), offsets], -1).astype("float32")
    query = np.array([[[1000.0, 1.0]], [[1000.0, 1.0]]], "float32")
    value_mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 1]], bool)
    layer = LuongAttention("dot")
    context, weights = layer(query, value, value_mask=value_mask)
    kept = np.where(value_mask, np.exp(offsets), 0.0)
    np.testing.assert_allclose(
        np.asarray(weights)[:, 0], kept / kept.sum(-1, keepdims=True), rtol=1e-6
    )
    assert np.all(np.asarray(weights)[:, 0][~value_mask] == 0.0)
    _assert_outputs((context, weights), _numpy_attention(layer, query, value, value_mask))


class _UserAttention(BaseAttention):
    """A user's subclass: the build error names it, not a library class."""

    def score(self, query, keys):
        return keras.ops.matmul(query, keras.ops.transpose(keys, (0, 2, 1)))


@pytest.mark.parametrize(
    "make",
    [LuongAttention, lambda: BahdanauAttention(4), _UserAttention],
    ids=["luong", "bahdanau", "subclass"],
)
def test_build_without_a_value_shape_names_the_class(make):
    name = type(make()).__name__
    message = f"^{re.escape(f'{name} needs the value (or key) shape to build.')}$"
    with pytest.raises(ValueError, match=message):
        make().build((None, 5))
    with pytest.raises(ValueError, match=message):
        make().build_from_config({"query_shape": (None, 5), "key_shape": None})
    with pytest.raises(ValueError, match=message):
        make()(QUERY, None)


# One value step: Keras warns that a softmax over one position is always 1, rightly so here.
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")
@pytest.mark.parametrize(
    "batch, value_time, value_dim",
    # Batch 1, one value step or one value feature: a squeeze without an axis drops those too.
    [(3, 6, 7), (1, 6, 7), (3, 6, 1), (3, 1, 7), (1, 1, 1)],
)
def test_single_query_with_a_per_example_query_mask(batch, value_time, value_dim):
    rng = np.random.default_rng(100 * batch + 10 * value_time + value_dim)
    query = rng.normal(size=(batch, 5)).astype("float32")
    value = rng.normal(size=(batch, value_time, value_dim)).astype("float32")
    layer = LuongAttention("general", scale=True)
    layer.build((None, 5), value.shape)
    _randomize(layer, rng)
    alternate = np.arange(batch) % 2 == 0
    for query_mask in (alternate, ~alternate):
        context, weights = layer(query, value, query_mask=query_mask)
        assert tuple(context.shape) == (batch, value_dim)
        assert tuple(weights.shape) == (batch, value_time)
        # A masked query gets an all-zero weight row and a zero context.
        assert np.all(np.asarray(weights)[~query_mask] == 0.0)
        assert np.all(np.asarray(context)[~query_mask] == 0.0)
        expected_context, expected_weights = _numpy_attention(
            layer, query[:, None], value, query_mask=query_mask[:, None]
        )
        _assert_outputs((context, weights), (expected_context[:, 0], expected_weights[:, 0]))


KEY = np.random.default_rng(25).normal(size=VALUE.shape).astype("float32")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_explicit_key_scores_and_value_is_summed(name):
    layer, query = _built_randomized(name, seed=26), _query_for(name)
    outputs = layer(query, VALUE, key=KEY, value_mask=VALUE_MASK)
    _assert_outputs(outputs, _numpy_attention(layer, query, VALUE, VALUE_MASK, key=KEY))


def test_key_of_another_size_than_the_value():
    key = KEY[..., :4]
    layer = LuongAttention("general")
    layer.build((None, None, 5), VALUE.shape, key.shape)
    assert tuple(_weights_by_name(layer)["kernel"].shape) == (5, 4)
    _randomize(layer, np.random.default_rng(27))
    context, weights = layer(QUERY, VALUE, key=key, query_mask=QUERY_MASK)
    assert tuple(context.shape) == (3, 4, 7) and tuple(weights.shape) == (3, 4, 6)
    expected = _numpy_attention(layer, QUERY, VALUE, query_mask=QUERY_MASK, key=key)
    _assert_outputs((context, weights), expected)
    # The dot score compares the query with the key, whatever the value's size.
    dot_context, _ = LuongAttention("dot")(QUERY[..., :4], VALUE, key=key)
    assert tuple(dot_context.shape) == (3, 4, 7)


def test_dot_score_size_mismatch_message_is_exact():
    message = (
        "LuongAttention(score_mode='dot') needs equal query and key sizes, got "
        "query_dim=5 and key_dim=7; use score_mode='general'."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        LuongAttention("dot")(QUERY, VALUE)
    with pytest.raises(ValueError, match=re.escape(message.replace("key_dim=7", "key_dim=4"))):
        LuongAttention("dot")(QUERY, VALUE, key=KEY[..., :4])


@pytest.mark.parametrize("normalize", [False, True])
def test_bahdanau_with_one_unit(normalize):
    layer = BahdanauAttention(1, normalize=normalize)
    layer.build((None, None, 5), VALUE.shape)
    assert tuple(_weights_by_name(layer)["query_kernel"].shape) == (5, 1)
    _randomize(layer, np.random.default_rng(28))
    outputs = layer(QUERY, VALUE, value_mask=VALUE_MASK)
    reference = _declared(layer, "concat", normalize=normalize)
    _assert_outputs(outputs, _numpy_attention(reference, QUERY, VALUE, VALUE_MASK))


@pytest.mark.parametrize("units", [0, -1])
def test_bahdanau_rejects_units_below_one(units):
    message = f"`units` must be a positive integer, got units={units}."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        BahdanauAttention(units)


def test_keras_masks_fill_the_mask_arguments_and_do_not_reach_the_outputs():
    layer = _built_randomized("luong_general", seed=29)
    # Masking marks the steps whose features are all zero: the query and value masks.
    query, value = QUERY * QUERY_MASK[..., None], VALUE * VALUE_MASK[..., None]
    masked_query, masked_value = keras.layers.Masking(0.0)(query), keras.layers.Masking(0.0)(value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        context, weights = layer(masked_query, masked_value)
    # supports_masking is False: Keras warns that the query's mask stops here.
    assert any("does not support masking" in str(warning.message) for warning in caught)
    assert getattr(context, "_keras_mask", None) is None
    assert getattr(weights, "_keras_mask", None) is None
    # Keras passes each input's mask as its `<name>_mask` argument.
    expected = _numpy_attention(layer, query, value, VALUE_MASK, QUERY_MASK)
    _assert_outputs((context, weights), expected)


def test_an_unbuilt_layer_serializes():
    # AttentionDecoder.get_config serializes its attention layer, built or not.
    for layer in (LuongAttention("concat", units=3), BahdanauAttention(4, normalize=True)):
        assert layer.get_build_config() is None
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(clone) is type(layer) and not clone.built
        assert clone.get_config() == layer.get_config()
