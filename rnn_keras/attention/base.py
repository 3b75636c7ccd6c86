"""Shared machinery of the attention layers: masking, softmax and the weighted sum."""

import keras
from keras import ops


def _masked_fill_value(dtype):
    # A finite "minus infinity": exp() underflows to exactly zero against any
    # real score, while a fully masked row stays finite (uniform, then zeroed).
    return -3.0e4 if dtype in ("float16", "bfloat16") else -1.0e9


@keras.saving.register_keras_serializable(package="rnn_keras")
class BaseAttention(keras.layers.Layer):
    """Base class of the attention mechanisms (Bahdanau et al. 2014; Luong et al. 2015).

    Subclasses supply the score function: `score(query, keys)` maps a query
    sequence `(batch, Tq, query_dim)` and keys `(batch, Tv, key_dim)` to scores
    `(batch, Tq, Tv)`. Everything else lives here: both query ranks, the value
    mask and the query mask, the softmax and the weighted sum.

    Scoring is split into two hooks so that a decoder can project the memory
    once per sequence instead of once per step: `prepare_keys(keys)` (default:
    identity) runs once, `score(query, prepared_keys)` runs at every step.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `(batch, query_dim)` (one decoder step) or `(batch, Tq, query_dim)`.
        value: the memory, `(batch, Tv, value_dim)`.
        key: optional keys `(batch, Tv, key_dim)`; defaults to `value`.
        value_mask: optional boolean `(batch, Tv)`; False positions get weight 0.
        query_mask: optional boolean `(batch,)` or `(batch, Tq)`; False queries
            get an all-zero weight row and a zero context.
        prepared_keys: optional result of `prepare_keys(key)` (skips recomputing it).

    Returns:
        `(context, weights)`: context `(batch, value_dim)` and weights `(batch, Tv)`
        for a single query; `(batch, Tq, value_dim)` and `(batch, Tq, Tv)` for a
        query sequence. A row whose values are all masked gives zeros, never NaN.

    Example:
        ```python
        attention = rnn_keras.LuongAttention(score_mode="general")
        context, weights = attention(decoder_state, encoder_outputs,
                                     value_mask=source_mask)
        ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = False

    def prepare_keys(self, keys):
        """Query-independent part of the score, computed once per memory."""
        return keys

    def score(self, query, keys):
        """Scores `(batch, Tq, Tv)` for queries `(batch, Tq, dq)` and prepared keys."""
        raise NotImplementedError(f"{type(self).__name__} must implement `score(query, keys)`.")

    def build(self, query_shape, value_shape=None, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        if key_shape is None:
            raise ValueError(f"{type(self).__name__} needs the value (or key) shape to build.")
        self._build_shapes = {"query_shape": tuple(query_shape), "key_shape": tuple(key_shape)}
        self.build_score(tuple(query_shape), tuple(key_shape))
        self.built = True

    def get_build_config(self):
        return getattr(self, "_build_shapes", None)

    def build_from_config(self, config):
        if config:
            self.build(config["query_shape"], key_shape=config["key_shape"])

    def build_score(self, query_shape, key_shape):
        """Creates the weights of the score function (default: none)."""

    def call(
        self,
        query,
        value,
        key=None,
        value_mask=None,
        query_mask=None,
        prepared_keys=None,
        training=None,
    ):
        single_query = len(query.shape) == 2
        if single_query:
            query = ops.expand_dims(query, 1)
            if query_mask is not None and len(query_mask.shape) == 1:
                query_mask = ops.expand_dims(query_mask, 1)
        if prepared_keys is None:
            prepared_keys = self.prepare_keys(value if key is None else key)
        scores = self.score(query, prepared_keys)
        weights = self.masked_softmax(scores, value_mask)
        if query_mask is not None:
            keep = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
            weights = ops.where(keep, weights, ops.zeros_like(weights))
        context = ops.matmul(weights, ops.cast(value, weights.dtype))
        if single_query:
            return ops.squeeze(context, 1), ops.squeeze(weights, 1)
        return context, weights

    def masked_softmax(self, scores, value_mask=None):
        """Softmax over the last axis that gives masked positions exactly zero weight."""
        if value_mask is None:
            return ops.softmax(scores, axis=-1)
        keep = ops.expand_dims(ops.cast(value_mask, "bool"), 1)
        fill = ops.cast(_masked_fill_value(scores.dtype), scores.dtype)
        weights = ops.softmax(ops.where(keep, scores, fill), axis=-1)
        return ops.where(keep, weights, ops.zeros_like(weights))

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        if len(query_shape) == 2:
            return (query_shape[0], value_shape[-1]), (query_shape[0], value_shape[1])
        context = (query_shape[0], query_shape[1], value_shape[-1])
        return context, (query_shape[0], query_shape[1], value_shape[1])
