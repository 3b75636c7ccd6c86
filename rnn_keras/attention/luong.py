"""Multiplicative attention of Luong, Pham and Manning (2015)."""

import keras
from keras import ops

from rnn_keras.attention.base import BaseAttention

SCORE_MODES = ("dot", "general", "concat")


@keras.saving.register_keras_serializable(package="rnn_keras")
class LuongAttention(BaseAttention):
    """Global attention of Luong et al. (2015), "Effective Approaches to Attention-based
    Neural Machine Translation".

    Score modes:
        - `dot`: score(q, k) = q . k (query and key sizes must match);
        - `general`: score(q, k) = q W k^T;
        - `concat`: score(q, k) = v^T tanh(W [q; k]) = v^T tanh(q W_q + k W_k).
    With `scale=True` the score is multiplied by a learned scalar g (initialised to 1).

    Args:
        score_mode: one of "dot", "general", "concat".
        units: hidden size of the `concat` score (default: the key size).
        scale: learn the scalar g.
        kernel_initializer: initializer of the score weights.
        **kwargs: base layer arguments.

    Call arguments, returns: see `BaseAttention`. Shapes: query `(batch, query_dim)` or
    `(batch, Tq, query_dim)`, value `(batch, Tv, value_dim)`.

    Example:
        ```python
        attention = rnn_keras.LuongAttention(score_mode="general", scale=True)
        context, weights = attention(decoder_outputs, encoder_outputs, value_mask=source_mask)
        # context: (batch, Tq, value_dim), weights: (batch, Tq, Tv)
        ```
    """

    def __init__(
        self,
        score_mode="general",
        units=None,
        scale=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if score_mode not in SCORE_MODES:
            raise ValueError(f"`score_mode` must be one of {SCORE_MODES}, got {score_mode!r}.")
        self.score_mode = score_mode
        self.units = None if units is None else int(units)
        self.scale = bool(scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build_score(self, query_shape, key_shape):
        query_dim, key_dim = query_shape[-1], key_shape[-1]
        if self.score_mode == "dot" and query_dim != key_dim:
            raise ValueError(
                "LuongAttention(score_mode='dot') needs equal query and key sizes, got "
                f"query_dim={query_dim} and key_dim={key_dim}; use score_mode='general'."
            )
        if self.score_mode == "general":
            self.kernel = self.add_weight(
                name="kernel", shape=(query_dim, key_dim), initializer=self.kernel_initializer
            )
        if self.score_mode == "concat":
            units = self.units or key_dim
            self.query_kernel = self.add_weight(
                name="query_kernel", shape=(query_dim, units), initializer=self.kernel_initializer
            )
            self.key_kernel = self.add_weight(
                name="key_kernel", shape=(key_dim, units), initializer=self.kernel_initializer
            )
            self.attention_v = self.add_weight(
                name="attention_v", shape=(units,), initializer=self.kernel_initializer
            )
        if self.scale:
            self.scale_factor = self.add_weight(name="scale", shape=(), initializer="ones")

    def prepare_keys(self, keys):
        # q W k^T = q (k W^T)^T: project the keys once instead of every query step.
        if self.score_mode == "general":
            return ops.matmul(keys, ops.transpose(self.kernel))
        if self.score_mode == "concat":
            return ops.matmul(keys, self.key_kernel)
        return keys

    def score(self, query, keys):
        if self.score_mode == "concat":
            projected_query = ops.expand_dims(ops.matmul(query, self.query_kernel), 2)
            hidden = ops.tanh(projected_query + ops.expand_dims(keys, 1))
            scores = ops.einsum("bqvu,u->bqv", hidden, self.attention_v)
        else:
            scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))
        if self.scale:
            scores = scores * self.scale_factor
        return scores

    def get_config(self):
        config = {
            "score_mode": self.score_mode,
            "units": self.units,
            "scale": self.scale,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
        return {**super().get_config(), **config}
