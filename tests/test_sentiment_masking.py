"""Masked paths of the sentiment model against NumPy over the valid steps, and batch invariance.

A text must score the same alone as padded beside a longer one: padding is masked in the
recurrent layers, the pooling and the attention, for every pooling mode.
"""

import numpy as np
import pytest
import tensorflow as tf

from apps.common import config as config_lib
from apps.sentiment import APP
from apps.sentiment.model import MaskedPooling

VOCABULARY = "the a film movie good bad great awful plot was is and".split()


def random_sequences(seed=0):
    generator = np.random.default_rng(seed)
    sequences = generator.normal(size=(4, 6, 3)).astype("float32")
    lengths = np.array([6, 1, 3, 0])
    mask = np.arange(6)[None, :] < lengths[:, None]
    return sequences, mask, lengths


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_masked_pooling_equals_numpy_over_the_valid_steps(mode):
    sequences, mask, lengths = random_sequences()
    pooled = np.asarray(MaskedPooling(mode)(sequences, mask=mask))
    for row, length in enumerate(lengths):
        valid = sequences[row, :length]
        if length == 0:
            expected = np.zeros(3)
        else:
            expected = valid.mean(axis=0) if mode == "mean" else valid.max(axis=0)
        np.testing.assert_allclose(pooled[row], expected, atol=1e-6)


def build(pooling, cell, bidirectional=True):
    overrides = {
        "model.pooling": pooling,
        "model.cell": cell,
        "model.bidirectional": bidirectional,
        "model.units": 6,
        "model.embedding_dim": 5,
        "model.attention_units": 4,
        "model.max_tokens": 32,
    }
    config = config_lib.apply_overrides(APP.config_class(), overrides)
    model = APP.build_model(config, {"class_names": ["n", "p"], "vocabulary": VOCABULARY})
    generator = np.random.default_rng(1)
    # Weights away from their initialisers (zero biases would hide a bias on padding).
    model.set_weights([generator.normal(scale=0.5, size=w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize(
    ("pooling", "cell"),
    [("mean", "gru"), ("max", "lstm"), ("last", "gru"), ("attention", "lstm"), ("mean", "elman")],
)
def test_a_text_scores_the_same_alone_and_beside_a_longer_one(pooling, cell):
    model = build(pooling, cell)
    short = "good film"
    long = " ".join(["the plot was awful and the movie is bad"] * 3)
    alone = np.asarray(model(tf.constant([short]), training=False))
    batched = np.asarray(model(tf.constant([short, long]), training=False))
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-5)
    # And the answer depends on the text at all (the comparison is not vacuous).
    assert not np.allclose(batched[0], batched[1], atol=1e-3)
