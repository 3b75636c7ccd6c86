"""The NER model's parts: CRF marginals against brute force, token features, both heads."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from apps.common.config import apply_overrides
from apps.ner import APP
from apps.ner.config import NerConfig
from apps.ner.layers import CASING, TokenFeatures, casing_ids
from apps.ner.model import build_model, build_vocabularies, crf_marginals, tag_and_confidence


def brute_force_marginals(potentials, length, transitions, start, end):
    """p(y_t = k) by enumerating every tag sequence of `length` steps."""
    tags = potentials.shape[-1]
    marginals = np.zeros((potentials.shape[0], tags))
    total = 0.0
    for path in itertools.product(range(tags), repeat=length):
        score = start[path[0]] + end[path[-1]]
        score += sum(potentials[t, tag] for t, tag in enumerate(path))
        score += sum(transitions[a, b] for a, b in itertools.pairwise(path))
        weight = np.exp(score)
        total += weight
        for t, tag in enumerate(path):
            marginals[t, tag] += weight
    return marginals / total


def test_crf_marginals_equal_brute_force_for_every_length_in_a_padded_batch():
    rng = np.random.default_rng(0)
    batch, time, tags = 5, 4, 3
    potentials = rng.normal(size=(batch, time, tags))
    transitions, start, end = (
        rng.normal(size=(tags, tags)),
        rng.normal(size=tags),
        rng.normal(size=tags),
    )
    lengths = [0, 1, 2, 3, 4]
    mask = np.arange(time)[None] < np.array(lengths)[:, None]
    got = crf_marginals(potentials, mask, transitions, start, end).numpy()
    for row, length in enumerate(lengths):
        if length:
            expected = brute_force_marginals(potentials[row], length, transitions, start, end)
            np.testing.assert_allclose(got[row, :length], expected[:length], atol=1e-6)
        np.testing.assert_array_equal(got[row, length:], 0.0)
    # One step: the scans run over a single element.
    one = crf_marginals(potentials[:, :1], mask[:, :1], transitions, start, end).numpy()
    expected = brute_force_marginals(potentials[1, :1], 1, transitions, start, end)
    np.testing.assert_allclose(one[1], expected, atol=1e-6)


def test_casing_ids_and_unknown_words_and_characters():
    tokens = tf.constant([["the", "EU", "Peter", "1996", "1996-08-22", "iPhone", ",", ""]])
    expected = ["lower", "upper", "title", "numeric", "numeric", "mixed", "other", "pad"]
    assert casing_ids(tokens).numpy().tolist() == [[CASING.index(name) for name in expected]]
    features = TokenFeatures(["the", "0000"], list("theEU"), max_word_chars=3)
    words, casing, chars, mask = features(tf.constant([["The", "1997", "Zürich", b"\xff\xfe", ""]]))
    # Lower-cased, digits to 0: "The" and "1997" are known; the rest are unknown (1).
    assert words.numpy().tolist() == [[2, 3, 1, 1, 0]]
    assert mask.numpy().tolist() == [[True, True, True, True, False]]
    assert chars.shape[-1] == 3  # cut to max_word_chars
    # Characters: 0 pads, 1 is unknown ("T" is not among "theEU"), then t h e E U from 2.
    assert chars.numpy()[0, 0].tolist() == [1, 3, 4]
    assert chars.numpy()[0, 3, 0] == 1  # invalid UTF-8 became U+FFFD, an unknown character
    assert chars.numpy()[0, 4].tolist() == [0, 0, 0]


def tiny_config(head):
    return apply_overrides(
        NerConfig(),
        {
            "model.head": head,
            "model.units": 8,
            "model.word_embedding_dim": 8,
            "model.char_filters": 4,
            "model.char_embedding_dim": 4,
        },
    )


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_both_heads_tag_padding_with_zero_and_confidence_is_a_probability(head):
    data_info = {
        "tag_names": ["O", "B-PER", "I-PER"],
        "vocabulary": ["john"],
        "characters": list("john"),
    }
    model = build_model(tiny_config(head), data_info)
    tokens = tf.constant([["John", "smiled", ""], ["", "", ""]])
    tags, confidence, mask = tag_and_confidence(model, tokens)
    assert tags.shape == (2, 3) and tags.numpy()[:, 2].tolist() == [0, 0]
    assert np.all(tags.numpy()[1] == 0) and np.all(confidence.numpy()[~mask.numpy()] == 0)
    assert np.all((confidence.numpy()[mask.numpy()] > 0) & (confidence.numpy()[mask.numpy()] <= 1))


def test_vocabularies_and_search_space_give_a_valid_config():
    vocabulary, characters = build_vocabularies([["The", "EU", "1996"], ["the", "Eu"]], 100, 1)
    assert vocabulary[:2] == ["the", "eu"] and "0000" in vocabulary
    assert characters[0] in ("E", "h", "e", "T", "t")
    import keras_tuner

    overrides = APP.search_space(keras_tuner.HyperParameters())
    config = apply_overrides(NerConfig(), overrides)
    APP.check_config(config)
    assert {"model.head", "model.char_encoder", "model.units"} <= set(overrides)


@pytest.mark.parametrize(
    "head, cell", [("crf", "lstm"), ("softmax", "gru"), ("crf", "mingru"), ("softmax", "minlstm")]
)
def test_a_sentence_tags_the_same_alone_and_padded_beside_a_longer_one(head, cell):
    """Batch invariance: padding must reach neither direction of the tagger nor the CRF."""
    data_info = {
        "tag_names": ["O", "B-PER", "I-PER", "B-LOC"],
        "vocabulary": ["john", "lives", "in", "paris", "and"],
        "characters": sorted(set("johnlivesparisd")),
    }
    config = apply_overrides(
        tiny_config(head), {"model.cell": cell, "model.num_layers": 2, "model.units": 6}
    )
    tf.keras.utils.set_random_seed(3)
    model = build_model(config, data_info)
    rng = np.random.default_rng(3)
    for weight in model.trainable_weights:  # away from the initialisers (zero biases, CRF)
        weight.assign(rng.normal(scale=0.5, size=weight.shape).astype("float32"))
    short = ["John", "lives", "in", "Paris"]
    long = ["John", "and", "John", "lives", "in", "Paris", "and", "in", "Rome"]
    alone = model.potentials_and_mask(tf.constant([short]), training=False)[0].numpy()[0]
    padded_batch = tf.constant([long, short + [""] * (len(long) - len(short))])
    beside = model.potentials_and_mask(padded_batch, training=False)[0].numpy()[1, : len(short)]
    np.testing.assert_allclose(beside, alone, rtol=1e-5, atol=1e-5)
    tags_alone, confidence_alone, _ = tag_and_confidence(model, tf.constant([short]))
    tags_beside, confidence_beside, mask = tag_and_confidence(model, padded_batch)
    assert mask.numpy()[1].tolist() == [True] * len(short) + [False] * (len(long) - len(short))
    assert tags_beside.numpy()[1, : len(short)].tolist() == tags_alone.numpy()[0].tolist()
    np.testing.assert_allclose(
        confidence_beside.numpy()[1, : len(short)], confidence_alone.numpy()[0], rtol=1e-5
    )
