"""The NER model's own layers: token features from raw strings, and the character encoder.

`TokenFeatures` turns tokens `(batch, time)` tf.string, padded with "", into word ids
(lower-cased, digits mapped to 0), casing ids and character ids, inside the graph, so an
export takes raw tokens. `CharacterEncoder` turns each token's characters into one vector:
a character BiLSTM's final states (Lample et al. 2016) or a CNN with max pooling over the
characters (Ma & Hovy 2016).

Example:

    words, casing, chars, mask = TokenFeatures(["the", "eu"], list("theEU"))(tokens)
    vectors = CharacterEncoder("cnn", num_chars=7)(chars)      # (batch, time, 50)
"""

import keras
import tensorflow as tf
from keras import ops

import rnn_keras

# Casing classes of a token (id 0 is padding).
CASING = ("pad", "lower", "upper", "title", "numeric", "has_digit", "mixed", "other")


def normalize_words(tokens):
    """Lower-cases tokens and maps every digit to 0 (`"1996"` and `"1997"` share a row)."""
    return tf.strings.regex_replace(tf.strings.lower(tokens), "[0-9]", "0")


def casing_ids(tokens):
    """The `CASING` id of each token `(batch, time)` tf.string; 0 where the token is ""."""

    def matches(pattern):
        return tf.strings.regex_full_match(tokens, pattern)

    has_lower, has_upper = matches(".*[a-z].*"), matches(".*[A-Z].*")
    has_digit = matches(".*[0-9].*")
    ids = tf.fill(tf.shape(tokens), CASING.index("other"))
    ids = tf.where(has_lower & ~has_upper, CASING.index("lower"), ids)
    ids = tf.where(has_upper & ~has_lower, CASING.index("upper"), ids)
    ids = tf.where(has_upper & has_lower, CASING.index("mixed"), ids)
    ids = tf.where(matches("[A-Z][^A-Z]*") & has_lower, CASING.index("title"), ids)
    ids = tf.where(has_digit & ~has_lower & ~has_upper, CASING.index("has_digit"), ids)
    ids = tf.where(matches("[0-9.,:/+-]+") & has_digit, CASING.index("numeric"), ids)
    return tf.where(tokens == "", CASING.index("pad"), ids)


@keras.saving.register_keras_serializable(package="apps.ner")
class TokenFeatures(keras.layers.Layer):
    """Raw tokens to word ids, casing ids, character ids and the token mask.

    Ids follow `StringLookup`: 0 is padding, 1 the unknown word (or character), so words
    and characters never seen in training are never an error. Invalid UTF-8 bytes become
    U+FFFD before the character lookup.

    Args:
        vocabulary: normalized words (see `normalize_words`), most frequent first.
        characters: characters of the training tokens.
        max_word_chars: characters kept per token.

    Call arguments:
        tokens: `(batch, time)` tf.string, padded with "".

    Returns:
        word ids `(batch, time)`, casing ids `(batch, time)`, character ids
        `(batch, time, chars)` (chars <= max_word_chars) and the mask `(batch, time)`.
    """

    def __init__(self, vocabulary, characters, max_word_chars=20, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        self.characters = list(characters)
        self.max_word_chars = int(max_word_chars)
        self.word_lookup = keras.layers.StringLookup(
            vocabulary=self.vocabulary, mask_token="", name="words"
        )
        self.char_lookup = keras.layers.StringLookup(
            vocabulary=self.characters, mask_token="", name="chars"
        )

    def build(self, input_shape):
        self.built = True  # The lookups hold their vocabularies from the start.

    def call(self, tokens):
        tokens = tf.convert_to_tensor(tokens)
        mask = tf.not_equal(tokens, "")
        words = self.word_lookup(normalize_words(tokens))
        chars = tf.strings.unicode_split(tokens, "UTF-8", errors="replace").to_tensor("")
        chars = chars[:, :, : self.max_word_chars]
        # At least one character column, so a batch of padding still has a shape.
        chars = tf.pad(chars, [[0, 0], [0, 0], [0, 1]], constant_values="")
        chars = chars[:, :, : tf.maximum(tf.shape(chars)[2] - 1, 1)]
        char_ids = self.char_lookup(chars)
        return (
            tf.cast(words, "int32"),
            tf.cast(casing_ids(tokens), "int32"),
            tf.cast(char_ids, "int32"),
            mask,
        )

    def compute_output_spec(self, tokens):
        batch, time = tokens.shape
        return (
            keras.KerasTensor((batch, time), dtype="int32"),
            keras.KerasTensor((batch, time), dtype="int32"),
            keras.KerasTensor((batch, time, None), dtype="int32"),
            keras.KerasTensor((batch, time), dtype="bool"),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "characters": self.characters,
            "max_word_chars": self.max_word_chars,
        }


@keras.saving.register_keras_serializable(package="apps.ner")
class CharacterEncoder(keras.layers.Layer):
    """One vector per token from its characters: BiLSTM (Lample et al. 2016) or CNN (Ma & Hovy 2016).

    Args:
        kind: `lstm` (final states of a character BiLSTM, `2 * units` features) or `cnn`
            (convolution over the characters, then max over them, `filters` features).
        num_chars: character vocabulary size, padding and unknown included.
        embedding_dim: character embedding size.
        units: LSTM units per direction.
        filters, kernel_size: the CNN's.

    Call arguments:
        char_ids: `(batch, time, chars)` int, 0 at padding.

    Returns:
        `(batch, time, features)`; zeros for padding tokens.
    """

    def __init__(
        self, kind, num_chars, embedding_dim=25, units=25, filters=50, kernel_size=3, **kwargs
    ):
        super().__init__(**kwargs)
        if kind not in ("lstm", "cnn"):
            raise ValueError(f"kind must be 'lstm' or 'cnn', got {kind!r}")
        self.kind = kind
        self.num_chars = int(num_chars)
        self.embedding_dim = int(embedding_dim)
        self.units = int(units)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.embedding = keras.layers.Embedding(self.num_chars, self.embedding_dim, name="embed")
        if kind == "lstm":
            self.encoder = rnn_keras.recurrent_layers(
                "lstm", self.units, bidirectional=True, name="char_lstm"
            )[0]
        else:
            self.encoder = keras.layers.Conv1D(
                self.filters, self.kernel_size, padding="same", activation="tanh", name="conv"
            )

    @property
    def output_dim(self):
        return 2 * self.units if self.kind == "lstm" else self.filters

    def build(self, input_shape):
        self.embedding.build((None, None))
        if self.kind == "lstm":
            self.encoder.build((None, None, self.embedding_dim))
        else:
            self.encoder.build((None, None, self.embedding_dim))

    def call(self, char_ids, training=None):
        shape = ops.shape(char_ids)
        flat = ops.reshape(char_ids, (-1, shape[2]))
        mask = ops.not_equal(flat, 0)
        vectors = self.embedding(flat)
        if self.kind == "lstm":
            encoded = self.encoder(vectors, mask=mask, training=training)
        else:
            encoded = self.encoder(vectors)
            low = ops.cast(-1e4, encoded.dtype)
            encoded = ops.max(ops.where(mask[..., None], encoded, low), axis=1)
        real = ops.cast(ops.any(mask, axis=1), encoded.dtype)[:, None]
        return ops.reshape(encoded * real, (shape[0], shape[1], self.output_dim))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "num_chars": self.num_chars,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
        }
