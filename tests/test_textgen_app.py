"""The textgen app end to end through its command line, on a tiny generated text.

Train (stateful mode) two epochs, export, reload the SavedModel in a fresh process with
plain TensorFlow: `score`, `generate`, `step` and `initial_state` answer as the Keras
model does; wrong inputs are errors naming the input; `predict` streams the greedy text;
`evaluate` reports the validation loss training logged; a two-trial search runs.
"""

import io
import json
import os
import random
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow as tf

from apps.common import cli, export, training
from apps.textgen import APP, generation
from tests.saved_model_helpers import call_saved_model_in_fresh_process

WORDS = "to be or not that is the question whether tis nobler in mind suffer".split()
TINY = [
    "model.units=16",
    "model.embedding_dim=8",
    "model.dropout=0",
    "data.window=32",
    "data.mode=stateful",
    "train.batch_size=8",
    "train.epochs=2",
    "train.learning_rate=0.01",
    "sample.length=30",
    "sample.prompt=to be",
]


def run(arguments):
    """Runs the CLI in this process; returns (status, stdout)."""
    output = io.StringIO()
    with redirect_stdout(output):
        status = cli.main(APP, arguments)
    return status, output.getvalue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    directory = tmp_path_factory.mktemp("textgen")
    generator = random.Random(0)
    lines = [" ".join(generator.choice(WORDS) for _ in range(8)) for _ in range(120)]
    (directory / "play.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def trained_run(workspace):
    run_dir = str(workspace / "run")
    status, output = run(
        [
            "train",
            "--data",
            str(workspace / "play.txt"),
            "--run-dir",
            run_dir,
            f"data.data_dir={workspace / 'tfds'}",
            *TINY,
        ]
    )
    assert status == 0, output
    assert output.count("sample after epoch") == 2
    return run_dir


@pytest.fixture(scope="module")
def exported(workspace, trained_run):
    base = str(workspace / "saved_models")
    status, output = run(["export", "--model", trained_run, "--base-dir", base])
    assert status == 0, output
    return os.path.join(base, "textgen", "1")


def test_export_answers_like_the_keras_model_in_a_fresh_process(trained_run, exported):
    model, config, data_info = training.load_run(APP, trained_run)
    local = generation.endpoint_functions(model, config, data_info)
    texts = np.array(["to be or not to be that is", "whether tis nobler ~ in mind"], dtype=object)
    scores = call_saved_model_in_fresh_process(exported, {"text": texts}, "score")
    lookup = model.get_layer("lookup")
    for text, nats in zip(texts, scores["nats_per_char"], strict=True):
        ids = tf.cast(lookup(tf.constant([list(text)])), tf.int32)
        logits = model(np.array([list(text[:-1])], dtype=object))
        expected = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(ids[:, 1:], logits)
        )
        np.testing.assert_allclose(nats, float(expected), rtol=1e-4)
    arguments = {
        "prompt": np.array(["to be", "qu€"], dtype=object),  # "€" is out of vocabulary
        "length": np.int32(40),
        "temperature": np.float32(0.0),
        "top_k": np.int32(0),
        "top_p": np.float32(1.0),
        "seed": np.int32(3),
    }
    fresh = call_saved_model_in_fresh_process(exported, arguments, "serving_default")
    greedy = local["generate"](**{k: tf.constant(v) for k, v in arguments.items()})
    assert fresh["text"].tolist() == greedy["text"].numpy().tolist()
    assert all(len(text.decode()) == 40 for text in fresh["text"])
    # Seeded sampling: the export (loaded here) draws what the Keras model draws.
    loaded = tf.saved_model.load(exported)
    sampled = {k: tf.constant(v) for k, v in arguments.items()}
    sampled.update(temperature=tf.constant(1.0), top_p=tf.constant(0.9))
    first = loaded.signatures["generate"](**sampled)["text"].numpy().tolist()
    assert first == local["generate"](**sampled)["text"].numpy().tolist()
    start = loaded.signatures["initial_state"](batch_size=tf.constant(2))
    assert [v.decode() for v in start["vocabulary"].numpy()] == [""] + data_info["vocabulary"]
    states = {name: value.numpy() for name, value in start.items() if name.startswith("state_")}
    assert len(states) == 4  # two LSTM layers: h and c each
    stepped = call_saved_model_in_fresh_process(
        exported, {"chars": np.array(["t", "€"], dtype=object), **states}, "step"
    )
    whole = model(np.array([["t"], ["€"]], dtype=object))[:, 0]
    np.testing.assert_allclose(
        stepped["log_probs"], tf.nn.log_softmax(whole).numpy(), rtol=1e-4, atol=1e-5
    )


def test_signatures_reject_wrong_dtype_and_shape_naming_the_input(exported):
    loaded = tf.saved_model.load(exported)
    score = loaded.signatures["score"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a string tensor"):
        score(text=tf.constant([1, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor text \[1,1\]"):
        score(text=tf.constant([["to be"]]))
    generate = loaded.signatures["generate"]
    good = {
        "prompt": tf.constant(["to"]),
        "length": tf.constant(3),
        "temperature": tf.constant(0.5),
        "top_k": tf.constant(0),
        "top_p": tf.constant(1.0),
        "seed": tf.constant(1),
    }
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor length \[2\]"):
        generate(**dict(good, length=tf.constant([3, 4])))
    with pytest.raises(TypeError, match="missing a required argument: 'seed'"):
        generate(**{k: v for k, v in good.items() if k != "seed"})
    step = loaded.signatures["step"]
    states = loaded.signatures["initial_state"](batch_size=tf.constant(1))
    states = {k: v for k, v in states.items() if k.startswith("state_")}
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor state_1"):
        step(chars=tf.constant(["t"]), **dict(states, state_1=tf.zeros((1, 3))))


def test_predict_streams_the_greedy_text_and_evaluate_reports_nats(
    workspace, trained_run, exported
):
    status, output = run(
        ["predict", "--model", exported, "to be", "--length", "25", "--temperature", "0"]
    )
    assert status == 0
    loaded = tf.saved_model.load(exported)
    expected = loaded.signatures["generate"](
        prompt=tf.constant(["to be"]),
        length=tf.constant(25),
        temperature=tf.constant(0.0),
        top_k=tf.constant(0),
        top_p=tf.constant(1.0),
        seed=tf.constant(0),
    )["text"].numpy()[0]
    assert output == "to be" + expected.decode() + "\n"
    status, output = run(["evaluate", "--model", trained_run])
    assert status == 0 and "bits/char" in output
    with open(os.path.join(trained_run, "evaluation_validation", "evaluation.json")) as handle:
        report = json.load(handle)
    with open(os.path.join(trained_run, "metrics.json")) as handle:
        validation_loss = json.load(handle)["validation"]["loss"]
    # The same windows, each from the zero state: the loss training reported.
    np.testing.assert_allclose(report["windows"]["nats_per_unit"], validation_loss, rtol=1e-4)
    assert report["windows"]["bits_per_unit"] == pytest.approx(
        report["windows"]["nats_per_unit"] / np.log(2)
    )
    assert report["carried"]["units"] >= report["windows"]["units"]
    assert export.is_export_dir(exported)


def test_tune_two_trials_writes_a_best_config(workspace):
    directory = str(workspace / "search")
    status, output = run(
        [
            "tune",
            "--data",
            str(workspace / "play.txt"),
            "--max-trials",
            "2",
            "--epochs",
            "1",
            "--directory",
            directory,
            f"data.data_dir={workspace / 'tfds'}",
            *[item for item in TINY if not item.startswith("train.epochs")],
            "sample.every_epochs=0",
            "tune.fixed=model.units,model.num_layers,data.window",
        ]
    )
    assert status == 0, output
    with open(os.path.join(directory, "best_config.json")) as handle:
        best = json.load(handle)
    assert best["model"]["units"] == 16 and best["data"]["window"] == 32
    assert best["model"]["cell"] in ("lstm", "gru")
