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
from apps.common import export, training, word_vectors
from rnn_keras.attention import BahdanauAttention, LuongAttention

_PUNCTUATION = r"""[!"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']"""
PADDING_AND_UNKNOWN = ("", "[UNK]")


@keras.saving.register_keras_serializable(package="apps.sentiment")
def standardize_text(text):
    """Lowercases, turns HTML line breaks (`<br />`, as in IMDB) into spaces, strips punctuation."""
    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    return tf.strings.regex_replace(text, _PUNCTUATION, " ")


@keras.saving.register_keras_serializable(package="apps.sentiment")
class TruncateSequences(keras.layers.Layer):
    """Cuts token ids `(batch, time)` to at most `max_length` steps, and to at least one.

    A batch of empty texts would otherwise have no time step at all; its one padding
    step is masked, so the recurrent layers see a valid (fully masked) sequence.
    """

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        if int(max_length) <= 0:
            raise ValueError(f"max_length must be positive, got {max_length!r}")
        self.max_length = int(max_length)

    def call(self, token_ids):
        token_ids = token_ids[:, : self.max_length]
        padding = ops.zeros((ops.shape(token_ids)[0], 1), dtype=token_ids.dtype)
        length = ops.maximum(ops.shape(token_ids)[1], 1)
        return ops.concatenate([token_ids, padding], axis=1)[:, :length]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


@keras.saving.register_keras_serializable(package="apps.sentiment")
class TokenDropout(keras.layers.Layer):
    """Word dropout (Iyyer et al. 2015): in training, replaces token ids by the unknown id.

    Whole words are hidden, not embedding channels, so the classifier cannot lean on a few
    frequent words. Padding (id 0) stays padding. Identity at inference.

    Args:
        rate: probability of hiding each token, in [0, 1).
        unknown_id: the id that replaces a hidden token (TextVectorization's OOV id, 1).
        seed: optional seed.
    """

    def __init__(self, rate, unknown_id=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= float(rate) < 1:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.unknown_id = int(unknown_id)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, token_ids, training=False):
        if not training or self.rate == 0:
            return token_ids
        draw = keras.random.uniform(ops.shape(token_ids), seed=self.seed_generator)
        hide = ops.logical_and(draw < self.rate, token_ids != 0)
        return ops.where(hide, ops.cast(self.unknown_id, token_ids.dtype), token_ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "unknown_id": self.unknown_id,
            "seed": self.seed,
        }


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
    """The `max_tokens - 2` most frequent tokens of `texts` (a dataset of strings), in order."""
    vectorizer = keras.layers.TextVectorization(max_tokens=max_tokens, standardize=standardize_text)
    vectorizer.adapt(texts.batch(1024))
    return [token for token in vectorizer.get_vocabulary() if token not in PADDING_AND_UNKNOWN]


def extend_vocabulary(vocabulary, extra_words, max_tokens):
    """`vocabulary` followed by the `extra_words` it lacks, `max_tokens - 2` words in all."""
    known = set(vocabulary)
    room = max_tokens - len(PADDING_AND_UNKNOWN) - len(vocabulary)
    added = [word for word in extra_words if word not in known and word not in PADDING_AND_UNKNOWN]
    return list(vocabulary) + added[: max(room, 0)]


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


def transfer_embedding(layer, source_layer, data_info, source_data_info):
    """Warm start of the embedding from another run: rows of the words both vocabularies hold.

    The other rows keep their fresh initialisation. Returns False for any other layer, or
    when the embedding sizes differ.
    """
    if layer.name != "embedding":
        return False
    source_weights = source_layer.get_weights()[0]
    weights = layer.get_weights()[0]
    if source_weights.shape[1] != weights.shape[1]:
        return False
    source_rows = {
        token: row
        for row, token in enumerate(
            list(PADDING_AND_UNKNOWN) + list(source_data_info["vocabulary"])
        )
        if row < source_weights.shape[0]
    }
    tokens = list(PADDING_AND_UNKNOWN) + list(data_info["vocabulary"])
    shared = 0
    for row, token in enumerate(tokens[: weights.shape[0]]):
        if token in source_rows:
            weights[row] = source_weights[source_rows[token]]
            shared += 1
    layer.set_weights([weights])
    print(f"embedding: {shared - 2:,} of {weights.shape[0] - 2:,} words from the earlier run")
    return True


def load_word_vectors(embedding, path, vocabulary):
    """Sets the embedding rows of the vocabulary words that the vectors file `path` holds."""
    tokens = list(PADDING_AND_UNKNOWN) + list(vocabulary)
    matrix, found = word_vectors.embedding_rows(path, tokens, embedding.get_weights()[0])
    embedding.set_weights([matrix])
    print(f"embedding: {found:,} of {len(tokens) - 2:,} words from {path}")


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

    def serve(text):
        text = export.check_input_shape(text, signature[0])
        probabilities = model(text, training=False)
        return {"probabilities": probabilities, "label": label_of(probabilities)}

    endpoints = {"serving_default": (serve, signature)}
    layer_names = {layer.name for layer in model.layers}
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
