"""Additive attention of Bahdanau, Cho and Bengio (2014)."""

import keras
from keras import ops

from rnn_keras.attention.base import BaseAttention


@keras.saving.register_keras_serializable(package="rnn_keras")
class BahdanauAttention(BaseAttention):
    """Additive attention (Bahdanau et al. 2014, "Neural Machine Translation by Jointly
    Learning to Align and Translate").

    score(q, k) = v^T tanh(q W_q + k W_k + b). With `normalize=True` the vector v is
    weight-normalised, v = g * v / ||v|| with a learned scalar g (Salimans and
    Kingma 2016), as in TensorFlow Addons' normalized Bahdanau attention.

    Args:
        units: size of the hidden layer of the score network.
        normalize: weight-normalise v and add the bias b.
        kernel_initializer: initializer of `query_kernel`, `key_kernel`, `attention_v`.
        **kwargs: base layer arguments.

    Call arguments, returns: see `BaseAttention`. Shapes: query `(batch, query_dim)` or
    `(batch, Tq, query_dim)`, value `(batch, Tv, value_dim)`.

    Example:
        ```python
        attention = rnn_keras.BahdanauAttention(units=64)
        context, weights = attention(state, encoder_outputs, value_mask=source_mask)
        # context: (batch, value_dim), weights: (batch, Tv)
        ```
    """

    def __init__(self, units, normalize=False, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"`units` must be a positive integer, got units={units!r}.")
        self.units = int(units)
        self.normalize = bool(normalize)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build_score(self, query_shape, key_shape):
        self.query_kernel = self.add_weight(
            name="query_kernel",
            shape=(query_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.key_kernel = self.add_weight(
            name="key_kernel",
            shape=(key_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.attention_v = self.add_weight(
            name="attention_v", shape=(self.units,), initializer=self.kernel_initializer
        )
        if self.normalize:
            self.attention_g = self.add_weight(
                name="attention_g",
                shape=(),
                initializer=keras.initializers.Constant((1.0 / self.units) ** 0.5),
            )
            self.attention_b = self.add_weight(
                name="attention_b", shape=(self.units,), initializer="zeros"
            )

    def prepare_keys(self, keys):
        # The key projection does not depend on the query: a decoder computes it once.
        projected = ops.matmul(keys, self.key_kernel)
        if self.normalize:
            projected = projected + self.attention_b
        return projected

    def score(self, query, keys):
        projected_query = ops.matmul(query, self.query_kernel)
        hidden = ops.tanh(ops.expand_dims(projected_query, 2) + ops.expand_dims(keys, 1))
        v = self.attention_v
        if self.normalize:
            v = self.attention_g * v / ops.sqrt(ops.sum(ops.square(v)))
        return ops.einsum("bqvu,u->bqv", hidden, v)

    def get_config(self):
        config = {
            "units": self.units,
            "normalize": self.normalize,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
        return {**super().get_config(), **config}
