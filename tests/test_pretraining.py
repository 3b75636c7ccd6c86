"""Language-model pretraining: windows of word ids, the tied softmax against NumPy, that
neither direction sees the word it predicts, and `pretrain` feeding a `train` warm start."""

import os

import keras
import numpy as np
import pytest

from apps.common import config as config_lib
from apps.common.text import pretraining
from apps.sentiment import APP
from apps.sentiment.config import SentimentConfig
from tests.test_sentiment_app import TINY, run_cli, train_arguments, write_reviews


def test_word_windows_tile_the_text_and_overlap_by_two_words():
    documents = [["a", "b", "c"], ["d", "zzz", "a", "b"], ["c", "d", "a"]]
    vocabulary = ["a", "b", "c", "d"]
    windows = pretraining.word_windows(documents, vocabulary, window=3)
    # Ids: padding 0, unknown 1, then the vocabulary from 2; "zzz" is unknown.
    stream = [2, 3, 4, 5, 1, 2, 3, 4, 5, 2]
    np.testing.assert_array_equal(windows, [stream[0:5], stream[3:8]])
    # Every word in the middle of a window is read once: the middles tile the text.
    middles = windows[:, 1:-1].reshape(-1)
    np.testing.assert_array_equal(middles, stream[1:7])


def test_word_windows_name_the_setting_when_the_text_is_too_short():
    with pytest.raises(config_lib.ConfigError, match=r"holds 5 words, too few .* pretrain.window"):
        pretraining.word_windows([["a"] * 5], ["a"], window=4)


def test_corpus_vocabulary_is_most_frequent_first():
    documents = [["b", "a", "b"], ["c", "b", "a"]]
    assert pretraining.corpus_vocabulary(documents, 2) == ["b", "a"]


@pytest.mark.parametrize("tie_weights", [True, False])
def test_sampled_softmax_loss_matches_numpy_cross_entropy(tie_weights):
    generator = np.random.default_rng(0)
    embedding = keras.layers.Embedding(7, 4)
    embedding.build((None, None))
    scores = pretraining.SampledSoftmaxLoss(embedding, num_sampled=3, tie_weights=tie_weights)
    states = generator.normal(size=(2, 5, 4)).astype("float32")
    targets = generator.integers(0, 7, size=(2, 5)).astype("int32")
    scores.build(states.shape)
    scores.bias.assign(generator.normal(size=7).astype("float32"))
    losses = keras.ops.convert_to_numpy(scores(states, targets, training=False))

    words = embedding.embeddings if tie_weights else scores.words
    assert hasattr(scores, "words") != tie_weights
    logits = states @ keras.ops.convert_to_numpy(words).T + scores.bias.numpy()
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probabilities, targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-5)
    # Sampled in training: finite, one loss per word, and not the full softmax's.
    sampled = keras.ops.convert_to_numpy(scores(states, targets, training=True))
    assert sampled.shape == (2, 5) and np.all(np.isfinite(sampled))
    assert not np.allclose(sampled, expected)


def _tiny_model(overrides):
    config = config_lib.apply_overrides(
        SentimentConfig(),
        {
            "model.units": 6,
            "model.embedding_dim": 5,
            "model.max_tokens": 12,
            "model.embedding_dropout": 0.0,
            "model.dropout": 0.0,
            "pretrain.window": 8,
            "pretrain.dropout": 0.0,
            **overrides,
        },
    )
    data_info = {"class_names": ["neg", "pos"], "vocabulary": [f"w{i}" for i in range(10)]}
    keras.utils.set_random_seed(0)
    return APP.build_model(config, data_info), config


@pytest.mark.parametrize("cell, bidirectional", [("gru", True), ("lstm", True), ("gru", False)])
def test_neither_direction_sees_the_word_it_predicts(cell, bidirectional):
    model, config = _tiny_model({"model.cell": cell, "model.bidirectional": bidirectional})
    language_model = pretraining.build_language_model(APP, model, config.pretrain)
    words = np.random.default_rng(1).integers(1, 12, size=(1, 10)).astype("int32")
    changed = words.copy()
    position = 5
    changed[0, position] = 1 + (words[0, position] % 11)
    before = keras.ops.convert_to_numpy(language_model(words, training=False))[0]
    after = keras.ops.convert_to_numpy(language_model(changed, training=False))[0]
    differs = ~np.isclose(before, after, rtol=0, atol=1e-7)
    # Output step j reads window word j + 1. Forward: reads words 1..j+1, predicts j + 2,
    # so word 5 can matter from step 3 on. Backward: reads j+1..8, predicts j: up to 5.
    assert differs.shape == (8, 2 if bidirectional else 1)
    forward = differs[:, 0]
    assert not forward[: position - 2].any() and forward[position - 2 :].all()
    if bidirectional:
        backward = differs[:, 1]
        assert not backward[position + 1 :].any() and backward[: position + 1].all()


def test_a_stacked_bidirectional_encoder_is_refused_by_name():
    model, config = _tiny_model({"model.bidirectional": True, "model.num_layers": 2})
    with pytest.raises(config_lib.ConfigError, match="model.num_layers=1 only"):
        pretraining.build_language_model(APP, model, config.pretrain)


def test_pretrain_command_writes_a_run_that_starts_training(tmp_path):
    from apps.common import training

    workspace = str(tmp_path)
    write_reviews(os.path.join(workspace, "reviews.csv"), count=200)
    data_dir = f"data.data_dir={os.path.join(workspace, 'tfds')}"
    model_settings = [item for item in TINY if item.startswith("model.")]
    arguments = [
        "pretrain",
        "--data",
        "reviews.csv",
        "--data",
        "reviews.csv",
        "--run-dir",
        "lm",
        data_dir,
        *model_settings,
        "pretrain.window=16",
        "pretrain.batch_size=8",
        "pretrain.num_sampled=8",
        "pretrain.learning_rate=0.01",
        "pretrain.epochs=2",
    ]
    too_long = run_cli([*arguments, "pretrain.window=100000"], workspace, check=False)
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr
    assert "too few for two windows of 100000 (set pretrain.window lower)" in too_long.stderr
    result = run_cli(arguments, workspace)
    assert "held-out cross-entropy" in result.stdout
    lm_dir = os.path.join(workspace, "lm")
    metrics = training.read_json(os.path.join(lm_dir, "metrics.json"))
    history = training.read_history(lm_dir)
    # Both sources read, two epochs run, and the held-out loss fell, below uniform guessing.
    assert result.stdout.count("reviews.csv: 180 train examples") == 2
    assert len(history) == 2 and history[1]["val_loss"] < history[0]["val_loss"]
    assert metrics["language_model"]["validation_loss"] < np.log(64)
    pretrained, _, pretrained_info = training.load_run(APP, lm_dir)

    warm = run_cli(
        [
            *train_arguments(workspace, "warm"),
            "train.epochs=1",
            "train.initialize_from=lm",
            "train.frozen_layers=embedding,recurrent_0",
        ],
        workspace,
    )
    assert "initialized from lm: copied embedding, recurrent_0" in warm.stdout
    model, _, info = training.load_run(APP, os.path.join(workspace, "warm"))
    # Frozen, so still exactly the pretrained encoder: the same recurrent weights, and
    # each word's embedding row moved to its place in the new vocabulary.
    for ours, theirs in zip(
        model.get_layer("recurrent_0").get_weights(),
        pretrained.get_layer("recurrent_0").get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(ours, theirs)
    rows = {word: row + 2 for row, word in enumerate(pretrained_info["vocabulary"])}
    embedding = model.get_layer("embedding").get_weights()[0]
    pretrained_embedding = pretrained.get_layer("embedding").get_weights()[0]
    shared = [word for word in info["vocabulary"][:62] if word in rows]
    assert len(shared) > 20
    for row, word in enumerate(info["vocabulary"][:62], start=2):
        if word in rows:
            np.testing.assert_array_equal(embedding[row], pretrained_embedding[rows[word]])
