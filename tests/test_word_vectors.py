"""Word vectors: the file reader's errors, co-occurrence counts against a plain loop, PPMI-SVD
neighbours on a corpus with known synonyms, and the `vectors` command feeding `train`."""

import json
import os
import random

import numpy as np
import pytest

from apps.common.text import word_vectors
from tests.test_sentiment_app import run_cli, train_arguments, write_reviews


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def test_reader_skips_a_word2vec_header_and_keeps_only_wanted_words(tmp_path):
    # GloVe 840B has a few words with spaces in them.
    path = write_text(tmp_path / "v.txt", "3 2\ngood 1 2\nbad -1 0.5\nfilm 0 0\nof course 3 4\n")
    vectors, dimension = word_vectors.read_word_vectors(str(path), words=["good", "bad", "x"])
    assert dimension == 2
    assert sorted(vectors) == ["bad", "good"]
    assert "of course" in word_vectors.read_word_vectors(str(path))[0]
    np.testing.assert_array_equal(vectors["bad"], [-1.0, 0.5])


@pytest.mark.parametrize(
    "text, problem",
    [
        ("good 1 2\nbad 1\n", "line 2: 1 values, earlier lines have 2"),
        ("good 1 2\nbad 1 2 3\n", "line 2: 3 values, earlier lines have 2"),
        ("good 1 2\nbad 1 x\n", "line 2: could not convert"),
        ("good 1 nan\n", "line 1: a value is NaN or infinite"),
        ("good\n", "line 1: expected a word and its values"),
        ("", "no word vectors in the file"),
    ],
)
def test_reader_names_file_line_and_problem(tmp_path, text, problem):
    path = write_text(tmp_path / "bad.txt", text)
    with pytest.raises(word_vectors.WordVectorsError) as error:
        word_vectors.read_word_vectors(str(path))
    assert str(path) in str(error.value) and problem in str(error.value)


def test_reader_names_the_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("good 1 2\ncaf\u00e9 3 4\n".encode("latin-1"))
    with pytest.raises(word_vectors.WordVectorsError, match="latin1.txt, line 2: not UTF-8"):
        word_vectors.read_word_vectors(str(path))


def test_embedding_rows_replaces_known_words_at_the_layers_scale(tmp_path):
    path = write_text(tmp_path / "v.txt", "good 3 4\nbad -3 -4\n")
    matrix = np.random.default_rng(0).uniform(-0.05, 0.05, (4, 2)).astype(np.float32)
    new, found = word_vectors.embedding_rows(str(path), ["", "[UNK]", "good", "film"], matrix)
    assert found == 1
    np.testing.assert_array_equal(new[[0, 1, 3]], matrix[[0, 1, 3]])
    scale = np.std(matrix) / np.std([3.0, 4.0])
    np.testing.assert_allclose(new[2], np.array([3.0, 4.0]) * scale, rtol=1e-6)
    with pytest.raises(word_vectors.WordVectorsError, match="2 values, the embedding has 3"):
        word_vectors.embedding_rows(str(path), ["good"], np.zeros((1, 3), np.float32))


def test_cooccurrence_counts_match_a_plain_loop():
    generator = random.Random(0)
    documents = [
        [generator.randrange(-1, 6) for _ in range(generator.randint(0, 12))] for _ in range(9)
    ]
    window = 3
    expected = np.zeros((6, 6))
    for ids in documents:
        for position, left in enumerate(ids):
            for distance in range(1, window + 1):
                if position + distance < len(ids):
                    right = ids[position + distance]
                    if left >= 0 and right >= 0:
                        expected[left, right] += 1 / distance
                        expected[right, left] += 1 / distance
    counts = word_vectors.cooccurrence_counts(documents, 6, window)
    np.testing.assert_allclose(counts, expected, rtol=1e-6)


def test_ppmi_svd_puts_words_of_the_same_contexts_together():
    # "good"/"great" and "bad"/"awful" never co-occur, but share their neighbours.
    generator = random.Random(1)
    positive = "warm bright happy sunny".split()
    negative = "cold dark sad rainy".split()
    documents = []
    for _ in range(400):
        documents.append(
            [
                generator.choice(positive),
                generator.choice(["good", "great"]),
                generator.choice(positive),
            ]
        )
        documents.append(
            [
                generator.choice(negative),
                generator.choice(["bad", "awful"]),
                generator.choice(negative),
            ]
        )
    # A word that never has a neighbour gets a zero vector, not NaN.
    documents += [["alone"]] * 3
    words, vectors = word_vectors.learn_word_vectors(
        documents, dimension=4, max_words=100, window=2, min_count=1
    )
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(np.delete(norms, words.index("alone")), 1.0, rtol=1e-5)
    assert norms[words.index("alone")] == 0
    assert word_vectors.nearest_words(words, vectors, "good", 1) == ["great"]
    assert word_vectors.nearest_words(words, vectors, "awful", 1) == ["bad"]
    with pytest.raises(ValueError, match="only 13 words occur 1 times or more"):
        word_vectors.learn_word_vectors(documents, dimension=13, min_count=1)


def test_vectors_command_output_starts_the_embedding_of_a_training_run(tmp_path):
    workspace = str(tmp_path)
    write_reviews(os.path.join(workspace, "reviews.csv"))
    output = os.path.join(workspace, "vectors.txt")
    result = run_cli(
        [
            "vectors",
            "--data",
            "reviews.csv",
            "--output",
            output,
            "--dim",
            "8",
            "--min-count",
            "2",
            f"data.data_dir={os.path.join(workspace, 'tfds')}",
        ],
        workspace,
    )
    assert "wrote" in result.stdout and "good:" in result.stdout
    vectors, dimension = word_vectors.read_word_vectors(output)
    assert dimension == 8 and {"good", "awful", "movie"} <= set(vectors)
    with open(output + ".json", encoding="utf-8") as handle:
        settings = json.load(handle)
    assert settings["data"] == ["reviews.csv"] and settings["dim"] == 8
    assert settings["words"] == len(vectors)

    wrong = run_cli(
        [
            *train_arguments(workspace, "run_wrong"),
            "model.embedding_dim=4",
            f"model.word_vectors={output}",
        ],
        workspace,
        check=False,
    )
    assert wrong.returncode == 2
    assert f"{output}: vectors have 8 values, the embedding has 4" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    from apps.common import training
    from apps.sentiment import APP

    run = run_cli(
        [
            *train_arguments(workspace, "run"),
            "train.epochs=1",
            f"model.word_vectors={output}",
            "train.frozen_layers=embedding",
        ],
        workspace,
    )
    assert "words from" in run.stdout
    model, _, info = training.load_run(APP, os.path.join(workspace, "run"))
    embedding = model.get_layer("embedding").get_weights()[0]
    tokens = ["", "[UNK]", *info["vocabulary"]]
    rows = [row for row, token in enumerate(tokens) if token in vectors]
    # The frozen rows are the file's vectors, all scaled by one factor.
    known = np.stack([vectors[tokens[row]] for row in rows])
    ratio = embedding[rows] / known
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-4)
