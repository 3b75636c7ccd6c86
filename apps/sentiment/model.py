"""The sentiment classifier: raw strings in, class probabilities out, preprocessing in the graph.

    text (batch,) -> TextVectorization -> token ids (batch, time), cut to sequence_length
    -> Embedding(mask_zero=True) -> rnn_keras recurrent layers (lstm | gru | elman | jordan,
    stacked, optionally bidirectional) -> pooling (last | max | mean | attention)
    -> dropout -> Dense softmax

Texts are padded at the end (TextVectorization does), as cuDNN and the masked recurrent
layers expect. A batch is only as long as its longest text (at most `sequence_length`),
so batches of short texts run few recurrent steps. The embedding recomputes the mask from
the token ids, which is why masking also works in a reloaded SavedModel.

Attention pooling (Bahdanau et al. 2014 or Luong et al. 2015 score) scores every token
against a learned query and returns one weight per token, so `predict --explain` can show
which words decided the class.
"""

import keras
import tensorflow as tf
from keras import ops

import rnn_keras
from apps.common import export, training
from apps.common.text import layers as text_layers
from apps.common.text.layers import (
    PADDING_AND_UNKNOWN,
    TokenDropout,
    TruncateSequences,
    load_word_vectors,
)
from rnn_keras.attention import BahdanauAttention, LuongAttention

_PUNCTUATION = r"""[!"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']"""


@keras.saving.register_keras_serializable(package="apps.sentiment")
def standardize_text(text):
    """Lowercases, turns HTML line breaks (`<br />`, as in IMDB) into spaces, strips punctuation."""
    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    return tf.strings.regex_replace(text, _PUNCTUATION, " ")


@keras.saving.register_keras_serializable(package="apps.sentiment")
class MaskedPooling(keras.layers.Layer):
    """Max or mean over the unmasked time steps of `(batch, time, features)`.

    A fully masked row gives zeros. Returns `(batch, features)`.
    """

    def __init__(self, mode="max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, sequences, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(sequences)[:2], dtype="bool")
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
        if self.mode == "mean":
            weights = ops.cast(keep, sequences.dtype)
            count = ops.maximum(ops.sum(weights, axis=1), 1.0)
            return ops.sum(sequences * weights, axis=1) / count
        lowest = ops.cast(-1e9, sequences.dtype)
        pooled = ops.max(ops.where(keep, sequences, lowest), axis=1)
        any_kept = ops.any(keep, axis=1)
        return ops.where(any_kept, pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="apps.sentiment")
class AttentionPooling(keras.layers.Layer):
    """Attention pooling: a learned query scores every time step (Bahdanau 2014 or Luong 2015).

    The score function is the library's `BahdanauAttention` (additive) or
    `LuongAttention(score_mode="general")`; masked steps get weight exactly 0.

    Args:
        score: "bahdanau" or "luong".
        units: hidden size of the Bahdanau score network.

    Call arguments:
        sequences: `(batch, time, features)`.
        mask: optional boolean `(batch, time)`.

    Returns:
        `(pooled, weights)`: `(batch, features)` and `(batch, time)`.

    Example:
        ```python
        pooled, weights = AttentionPooling("luong")(encoder_outputs)
        ```
    """

    def __init__(self, score="bahdanau", units=64, **kwargs):
        super().__init__(**kwargs)
        if score not in ("bahdanau", "luong"):
            raise ValueError(f"score must be 'bahdanau' or 'luong', got {score!r}")
        self.score = score
        self.units = int(units)
        if score == "bahdanau":
            self.attention = BahdanauAttention(units=self.units, name="score")
        else:
            self.attention = LuongAttention(score_mode="general", name="score")
        self.supports_masking = True

    def build(self, input_shape):
        features = input_shape[-1]
        self.query = self.add_weight(
            name="query",
            shape=(features,),
            initializer=keras.initializers.RandomNormal(stddev=features**-0.5),
        )
        self.attention.build((None, features), (None, None, features))

    def call(self, sequences, mask=None):
        batch = ops.shape(sequences)[0]
        query = ops.broadcast_to(ops.expand_dims(self.query, 0), (batch, ops.shape(self.query)[0]))
        return self.attention(query, sequences, value_mask=mask)

    def compute_mask(self, inputs, mask=None):
        return [None, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1]), (input_shape[0], input_shape[1])

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}


def adapt_vocabulary(texts, max_tokens):
    """The `max_tokens - 2` most frequent words of `texts`, standardised as the model does."""
    return text_layers.adapt_vocabulary(texts, max_tokens, standardize=standardize_text)


def _recurrent_layers(model_config, return_sequences):
    """The encoder layers, named `recurrent_<index>` so that warm starts find them."""
    cell_options = {"output_units": model_config.units} if model_config.cell == "jordan" else {}
    return rnn_keras.recurrent_layers(
        kind=model_config.cell,
        units=model_config.units,
        num_layers=model_config.num_layers,
        bidirectional=model_config.bidirectional,
        return_sequences=return_sequences,
        name="recurrent",
        recurrent_dropout=model_config.recurrent_dropout,
        **cell_options,
    )


def build_model(config, data_info):
    """The compiled classifier for `config` and the data's vocabulary and class names."""
    model_config = config.model
    vocabulary = list(data_info["vocabulary"])[: model_config.max_tokens - len(PADDING_AND_UNKNOWN)]
    class_names = data_info["class_names"]
    text = keras.Input(shape=(), dtype="string", name="text")
    vectorizer = keras.layers.TextVectorization(
        max_tokens=model_config.max_tokens,
        standardize=standardize_text,
        vocabulary=vocabulary,
        # Each batch is padded to its longest text only (texts are cut at
        # sequence_length below), so batches of short texts run fewer steps.
        output_sequence_length=None,
        name="vectorizer",
    )
    token_ids = TruncateSequences(model_config.sequence_length, name="truncate")(vectorizer(text))
    if model_config.token_dropout:
        token_ids = TokenDropout(model_config.token_dropout, name="token_dropout")(token_ids)
    x = keras.layers.Embedding(
        len(vocabulary) + len(PADDING_AND_UNKNOWN),
        model_config.embedding_dim,
        mask_zero=True,
        name="embedding",
    )(token_ids)
    if model_config.embedding_dropout:
        x = keras.layers.SpatialDropout1D(model_config.embedding_dropout, name="embedding_dropout")(
            x
        )
    pooling = model_config.pooling
    for layer in _recurrent_layers(model_config, pooling != "last"):
        x = layer(x)
    if pooling in ("max", "mean"):
        x = MaskedPooling(pooling, name="pooling")(x)
    elif pooling == "attention":
        x, _ = AttentionPooling(
            model_config.attention_score, model_config.attention_units, name="pooling"
        )(x)
    x = keras.layers.Dropout(model_config.dropout, name="dropout")(x)
    probabilities = keras.layers.Dense(len(class_names), activation="softmax", name="classifier")(x)
    model = keras.Model(text, probabilities, name="sentiment_classifier")
    if model_config.word_vectors:
        load_word_vectors(model.get_layer("embedding"), model_config.word_vectors, vocabulary)
    model.compile(
        optimizer=training.make_optimizer(config.train),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def serving_endpoints(model, config, data_info):
    """`serving_default`: text (batch,) -> probabilities, label; `explain` with attention."""
    class_names = list(data_info["class_names"])
    signature = [tf.TensorSpec(shape=(None,), dtype=tf.string, name="text")]

    def label_of(probabilities):
        return tf.gather(tf.constant(class_names), tf.argmax(probabilities, axis=-1))

    layer_names = {layer.name for layer in model.layers}
    vectorizer = model.get_layer("vectorizer") if "vectorizer" in layer_names else None

    def serve(text):
        text = export.check_input_shape(text, signature[0])
        probabilities = model(text, training=False)
        outputs = {"probabilities": probabilities, "label": label_of(probabilities)}
        if vectorizer is not None:
            # Ids above 1 are known words (0 pads, 1 is the unknown word): a text without
            # any gets the model's prior, which `predict` says.
            token_ids = vectorizer(text)
            outputs["known_words"] = tf.reduce_sum(tf.cast(token_ids > 1, tf.int32), axis=-1)
        return outputs

    endpoints = {"serving_default": (serve, signature)}
    # An ensemble (apps.common.ensemble) holds whole models, not one attention layer.
    if config.model.pooling == "attention" and {"truncate", "pooling"} <= layer_names:
        explainer = keras.Model(
            model.inputs,
            [
                model.outputs[0],
                model.get_layer("truncate").output,
                model.get_layer("pooling").output[1],
            ],
        )
        vocabulary = (
            list(PADDING_AND_UNKNOWN) + list(model.get_layer("vectorizer").get_vocabulary())[2:]
        )

        def explain(text):
            text = export.check_input_shape(text, signature[0])
            probabilities, token_ids, weights = explainer(text, training=False)
            return {
                "probabilities": probabilities,
                "label": label_of(probabilities),
                "tokens": tf.gather(tf.constant(vocabulary), token_ids),
                "token_ids": token_ids,
                "weights": weights,
            }

        endpoints["explain"] = (explain, signature)
    return endpoints
