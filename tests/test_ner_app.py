"""The NER app end to end on a tiny generated tagging task.

Train through the command line (BiLSTM + character CNN + CRF): validation entity F1 near 1.
Export, reload the SavedModel in a fresh process with plain TensorFlow and compare its tags
and confidences with the Keras model's; the `text` signature agrees with `tokens`; a wrong
dtype or rank is an error naming `tokens`; unknown words and characters never fail;
`predict` prints entity spans and `evaluate` the conlleval table and the confusion PNG.
"""

import io
import json
import os
import random
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest

from tests.saved_model_helpers import call_saved_model_in_fresh_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST = ["John", "Mary", "Peter", "Anna", "Paul", "Linda", "Omar", "Yuki"]
LAST = ["Smith", "Brown", "Jones", "Clark", "Novak"]
CITIES = ["Paris", "London", "Berlin", "Madrid", "Rome", "Oslo"]
ORGS = ["Acme", "Globex", "Initech", "Umbrella"]
TINY = [
    "model.units=16",
    "model.word_embedding_dim=16",
    "model.case_embedding_dim=4",
    "model.char_filters=8",
    "model.char_embedding_dim=8",
    "model.word_dropout=0",
    "model.embedding_dropout=0",
    "model.dropout=0",
    "train.epochs=8",
    "train.batch_size=16",
    "train.learning_rate=0.02",
    "train.early_stopping_patience=8",
]
SENTENCES = [
    ["John", "Smith", "visited", "Paris", "."],
    ["the", "Zyxcorp", "office", "in", "Ōsaka", "☃", "is", "big"],  # unknown words and chars
    ["Mary"],
    ["", ""],  # all padding
]


def sentence(generator):
    """One sentence of the generated task and its IOB2 tags."""
    person = [generator.choice(FIRST)] + (
        [generator.choice(LAST)] if generator.random() < 0.5 else []
    )
    person_tags = ["B-PER"] + ["I-PER"] * (len(person) - 1)
    org = [generator.choice(ORGS)] + (["Corp"] if generator.random() < 0.5 else [])
    org_tags = ["B-ORG"] + ["I-ORG"] * (len(org) - 1)
    city = generator.choice(CITIES)
    template = generator.randrange(3)
    if template == 0:
        return person + ["visited", city, "."], person_tags + ["O", "B-LOC", "O"]
    if template == 1:
        tokens = person + ["works", "for"] + org + ["in", city]
        return tokens, person_tags + ["O", "O"] + org_tags + ["O", "B-LOC"]
    return ["the"] + org + ["office", "in", city], ["O"] + org_tags + ["O", "O", "B-LOC"]


def write_conll(path, count, seed):
    generator = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("-DOCSTART- O\n\n")
        for _ in range(count):
            tokens, tags = sentence(generator)
            handle.write("".join(f"{t} {g}\n" for t, g in zip(tokens, tags, strict=True)) + "\n")


def run_cli(arguments, workspace):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "apps.ner", *arguments],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise AssertionError(f"{arguments} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("ner")
    (root / "data").mkdir()
    write_conll(root / "data" / "train.txt", 240, seed=0)
    write_conll(root / "data" / "valid.txt", 60, seed=1)
    return root


@pytest.fixture(scope="module")
def trained_run(workspace):
    run_dir = workspace / "run"
    run_cli(
        [
            "train",
            "--data",
            "data",
            "--run-dir",
            str(run_dir),
            f"data.data_dir={workspace / 'tfds'}",
            *TINY,
        ],
        workspace,
    )
    return run_dir


@pytest.fixture(scope="module")
def exported(workspace, trained_run):
    run_cli(["export", "--model", str(trained_run), "--base-dir", "exports"], workspace)
    return workspace / "exports" / "ner" / "1"


def keras_answers(run_dir, tokens):
    import tensorflow as tf

    from apps.common import training
    from apps.ner import APP
    from apps.ner.model import tag_and_confidence

    model, _, data_info = training.load_run(APP, str(run_dir))
    tags, confidence, mask = tag_and_confidence(model, tf.constant(tokens))
    names = np.array(data_info["tag_names"], dtype=object)[tags.numpy()]
    return np.where(mask.numpy(), names, ""), confidence.numpy()


def test_crf_model_reaches_near_perfect_entity_f1_on_the_generated_task(trained_run):
    with open(trained_run / "metrics.json") as handle:
        metrics = json.load(handle)
    assert metrics["objective"] == {"name": "val_entity_f1", "direction": "max"}
    assert metrics["validation"]["entity_f1"] >= 0.95
    with open(trained_run / "data_info.json") as handle:
        tag_names = json.load(handle)["tag_names"]
    assert tag_names == ["O", "B-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_export_gives_the_keras_tags_in_a_fresh_process(trained_run, exported):
    tokens = np.array([row + [""] * (8 - len(row)) for row in SENTENCES], dtype=object)
    outputs = call_saved_model_in_fresh_process(exported, {"tokens": tokens})
    expected_tags, expected_confidence = keras_answers(trained_run, tokens)
    tags = outputs["tags"].astype(str)
    np.testing.assert_array_equal(tags, expected_tags.astype(str))
    np.testing.assert_allclose(outputs["confidence"], expected_confidence, atol=1e-5)
    assert list(tags[0][:5]) == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert np.all(tags[3] == "") and np.all(outputs["confidence"][3] == 0)
    assert np.all((outputs["confidence"][0][:5] > 0.5) & (outputs["confidence"][0][:5] <= 1))


def test_text_signature_agrees_with_tokens_and_inputs_are_checked(exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported))
    texts = ["John Smith visited Paris .", "  the Zyxcorp office in Ōsaka ☃ is big", "Mary", ""]
    by_text = loaded.signatures["text"](text=tf.constant(texts))
    tokens = tf.strings.split(tf.constant(texts)).to_tensor("")
    by_tokens = loaded.signatures["serving_default"](tokens=tokens)
    np.testing.assert_array_equal(by_text["tags"].numpy()[:, :8], by_tokens["tags"].numpy())
    np.testing.assert_allclose(by_text["confidence"].numpy()[:, :8], by_tokens["confidence"])
    # Invalid UTF-8 and a batch with no token at all answer too.
    odd = loaded.signatures["serving_default"](tokens=tf.constant([[b"\xff\xfe", b"Paris"]]))
    assert odd["tags"].shape == (1, 2)
    empty = loaded.signatures["serving_default"](tokens=tf.zeros((2, 0), tf.string))
    assert empty["tags"].numpy().tolist() == [[b""], [b""]]
    serve = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor tokens \[2\]"):
        serve(tokens=tf.constant(["John", "Paris"]))
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError)) as error:
        serve(tokens=tf.constant([[1, 2]]))
    assert "string" in str(error.value)
    with pytest.raises(TypeError, match="tokens"):
        serve(words=tf.constant([["John"]]))


def test_predict_prints_spans_and_evaluate_the_conlleval_table(workspace, exported):
    from apps.common import export, training
    from apps.ner import APP, evaluation

    serving = export.open_model(APP, str(exported))
    output = io.StringIO()
    with redirect_stdout(output):
        APP.predict(serving, ["Anna Novak works for Globex Corp in Oslo"], None)
    lines = output.getvalue().splitlines()
    assert lines[0].endswith("(3 entities)")
    assert lines[1].startswith("  PER\ttokens 0-1\tAnna Novak\t")
    assert lines[2].startswith("  ORG\ttokens 4-5\tGlobex Corp\t")
    assert lines[3].startswith("  LOC\ttokens 7-7\tOslo\t")
    from apps.common.config import apply_overrides

    # The run read "data" relative to the workspace; this process runs elsewhere.
    config = apply_overrides(serving.config, {"data.source": str(workspace / "data")})
    loaded = APP.load_data(config)
    batches, _ = training.make_batches(
        APP, config, serving.data_info, loaded.splits["validation"], False
    )
    output = io.StringIO()
    with redirect_stdout(output):
        report = evaluation.evaluate(serving, batches, str(workspace / "evaluation"))
    assert "FB1:" in output.getvalue() and "PER: precision:" in output.getvalue()
    assert report["f1"] >= 0.95
    assert (workspace / "evaluation" / "entity_confusion.png").stat().st_size > 1000
