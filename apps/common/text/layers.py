"""Layers and helpers of models that read words: truncation, word dropout, vocabularies.

Shared by the text apps (sentiment, NER): the token ids follow Keras' `TextVectorization`
and `StringLookup` convention, 0 for padding and 1 for the unknown word.

Example:

    vocabulary = adapt_vocabulary(texts, max_tokens=20000, standardize=standardize_text)
    ids = TokenDropout(0.1)(TruncateSequences(400)(vectorizer(text)), training=True)
"""

import keras
from keras import ops

from apps.common.text import word_vectors

PADDING_AND_UNKNOWN = ("", "[UNK]")


@keras.saving.register_keras_serializable(package="apps.text")
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


@keras.saving.register_keras_serializable(package="apps.text")
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


def adapt_vocabulary(texts, max_tokens, standardize="lower_and_strip_punctuation"):
    """The `max_tokens - 2` most frequent tokens of `texts` (a dataset of strings), in order."""
    vectorizer = keras.layers.TextVectorization(max_tokens=max_tokens, standardize=standardize)
    vectorizer.adapt(texts.batch(1024))
    return [token for token in vectorizer.get_vocabulary() if token not in PADDING_AND_UNKNOWN]


def extend_vocabulary(vocabulary, extra_words, max_tokens):
    """`vocabulary` followed by the `extra_words` it lacks, `max_tokens - 2` words in all."""
    known = set(vocabulary)
    room = max_tokens - len(PADDING_AND_UNKNOWN) - len(vocabulary)
    added = [word for word in extra_words if word not in known and word not in PADDING_AND_UNKNOWN]
    return list(vocabulary) + added[: max(room, 0)]


def transfer_embedding(layer, source_layer, data_info, source_data_info):
    """Warm start of an embedding from another run: rows of the words both vocabularies hold.

    The other rows keep their fresh initialisation. Returns False for any other layer, or
    when the embedding sizes differ.
    """
    if not isinstance(layer, keras.layers.Embedding):
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
