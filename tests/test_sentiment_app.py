"""The sentiment app end to end through its command line, on a tiny generated dataset.

Train two epochs, export, reload the SavedModel in a fresh process with plain TensorFlow
and compare with the Keras model; a run killed after its first epoch resumes from epoch 2
exactly where the uninterrupted run would be; a two-trial search writes a best config
that `train --config` accepts.
"""

import argparse
import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest

from apps.common.errors import RunError
from tests.saved_model_helpers import call_saved_model_in_fresh_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSITIVE = "good great excellent wonderful superb loved".split()
NEGATIVE = "bad awful terrible boring worst hated".split()
FILLER = "the movie film plot actor scene story was is and a of it this".split()
# Small and deterministic (seeded shuffling, no dropout): two runs of one command match.
TINY = [
    "model.units=8",
    "model.embedding_dim=8",
    "model.max_tokens=64",
    "model.sequence_length=24",
    "model.pooling=attention",
    "model.attention_units=8",
    "model.dropout=0",
    "model.embedding_dropout=0",
    "train.epochs=2",
    "train.batch_size=16",
    "train.learning_rate=0.01",
]
TEXTS = [
    "A GREAT, superb film!<br />Loved it.",
    "awful... boring plot; the worst",
    "zyzzyva quux",  # only unknown words
    " ".join(["great"] * 10 + ["bad"] * 30),  # longer than model.sequence_length
]


def write_reviews(path, count=160, seed=0):
    """A CSV of short reviews whose class shows in two sentiment words each."""
    generator = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for index in range(count):
            label = index % 2
            words = [generator.choice(FILLER) for _ in range(generator.randint(3, 20))]
            for _ in range(2):
                position = generator.randrange(len(words) + 1)
                words.insert(position, generator.choice(POSITIVE if label else NEGATIVE))
            writer.writerow([" ".join(words), label])


def run_cli(
    arguments, workspace, module="apps.sentiment", stdin=None, environment=None, check=True
):
    command = [sys.executable, "-m", module, *arguments]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, **(environment or {}))
    result = subprocess.run(
        command, cwd=workspace, env=env, input=stdin, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(arguments)} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


def train_arguments(workspace, run_dir):
    return [
        "train",
        "--data",
        os.path.join(workspace, "reviews.csv"),
        "--run-dir",
        run_dir,
        f"data.data_dir={os.path.join(workspace, 'tfds')}",
        *TINY,
    ]


def read_history(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("sentiment"))
    write_reviews(os.path.join(directory, "reviews.csv"))
    return directory


@pytest.fixture(scope="module")
def trained_run(workspace):
    run_dir = os.path.join(workspace, "run_a")
    result = run_cli(train_arguments(workspace, run_dir), workspace)
    assert "Epoch 2/2" in result.stdout
    return run_dir


@pytest.fixture(scope="module")
def exported(workspace, trained_run):
    base = os.path.join(workspace, "saved_models")
    # Through the `rnn-keras` console script's module.
    run_cli(
        ["sentiment", "export", "--model", trained_run, "--base-dir", base],
        workspace,
        module="apps.cli",
    )
    return os.path.join(base, "sentiment", "1")


def test_help_of_every_command_answers_without_loading_tensorflow():
    """`--help` and argument errors must not wait seconds for TensorFlow to import."""
    script = (
        "import contextlib, io, sys\n"
        "from apps import cli\n"
        "from apps.common.cli import commands_of\n"
        "from apps.sentiment import APP\n"
        "for command in commands_of(APP):\n"
        "    output = io.StringIO()\n"
        "    with contextlib.redirect_stdout(output), contextlib.suppress(SystemExit):\n"
        "        cli.main(['sentiment', command, '--help'])\n"
        "    print(command, output.getvalue().startswith(f'usage: rnn-keras sentiment {command}'))\n"
        "print('loaded', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "loaded False False"
    assert all(line.endswith("True") for line in lines[:-1]), lines


def test_unknown_key_on_the_command_line_is_an_error_naming_it(workspace):
    result = run_cli(["train", "model.unitz=8"], workspace, check=False)
    assert result.returncode == 2
    assert "model.unitz: unknown key 'unitz'" in result.stderr


def test_bad_data_file_is_an_error_naming_file_and_line_without_traceback(workspace):
    path = os.path.join(workspace, "bad_reviews.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("text,label\ngreat film,1\n   ,0\nawful film,0\n")
    result = run_cli(
        ["train", "--data", path, f"data.data_dir={os.path.join(workspace, 'tfds_bad')}"],
        workspace,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{path}, line 3:" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_directory_holds_every_artifact(trained_run):
    for name in (
        "config.json",
        "data_info.json",
        "checkpoints/best.keras",
        "history.csv",
        "training_curves.png",
        "metrics.json",
    ):
        assert os.path.exists(os.path.join(trained_run, name)), name
    assert os.listdir(os.path.join(trained_run, "logs"))
    assert not os.path.exists(os.path.join(trained_run, "backup"))  # removed when finished
    assert [row["epoch"] for row in read_history(trained_run)] == [0.0, 1.0]
    with open(os.path.join(trained_run, "config.json")) as handle:
        config = json.load(handle)
    assert config["model"]["units"] == 8 and config["train"]["epochs"] == 2
    with open(os.path.join(trained_run, "metrics.json")) as handle:
        metrics = json.load(handle)
    best = max(row["val_accuracy"] for row in read_history(trained_run))
    assert metrics["validation"]["accuracy"] == pytest.approx(best, abs=1e-6)


def test_export_answers_like_the_keras_model_in_a_fresh_process(trained_run, exported):
    import keras
    import tensorflow as tf

    from apps.sentiment import APP

    APP.register_layers()  # best.keras holds the app's own layers
    model = keras.saving.load_model(os.path.join(trained_run, "checkpoints", "best.keras"))
    expected = model.predict(tf.constant(TEXTS), verbose=0)
    outputs = call_saved_model_in_fresh_process(exported, {"text": np.array(TEXTS, dtype=object)})
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    class_names = ["negative", "positive"]
    assert [label.decode() for label in outputs["label"]] == [
        class_names[index] for index in np.argmax(expected, axis=-1)
    ]
    with (
        open(os.path.join(trained_run, "config.json")) as saved,
        open(os.path.join(exported, "assets.extra", "config.json")) as exported_config,
    ):
        assert json.load(saved) == json.load(exported_config)


def test_signature_rejects_wrong_dtype_and_shape_clearly(exported):
    import tensorflow as tf

    serve = tf.saved_model.load(exported).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a string tensor"):
        serve(text=tf.constant([1, 2]))
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Shape of tensor text \[2,1\] is not compatible with expected shape \[\?\]",
    ):
        serve(text=tf.constant([["a review"], ["another"]]))
    with pytest.raises(TypeError, match="missing a required argument: 'text'"):
        serve(review=tf.constant(["a review"]))


def test_predict_from_export_reads_stdin_and_explain_weights_tokens(
    workspace, trained_run, exported
):
    import tensorflow as tf

    result = run_cli(["predict", "--model", exported], workspace, stdin="\n".join(TEXTS[:2]))
    lines = result.stdout.strip().splitlines()[-2:]
    serve = tf.saved_model.load(exported).signatures["serving_default"]
    outputs = serve(text=tf.constant(TEXTS[:2]))
    for line, label, probabilities in zip(
        lines, outputs["label"].numpy(), outputs["probabilities"].numpy(), strict=True
    ):
        shown_label, shown_probability, _ = line.split("\t")
        assert shown_label == label.decode()
        assert float(shown_probability) == pytest.approx(probabilities.max(), abs=1e-4)

    from apps.common import export
    from apps.sentiment import APP

    picture = os.path.join(workspace, "explain.png")
    printed = io.StringIO()
    with redirect_stdout(printed):
        options = argparse.Namespace(explain=True, output=picture)
        APP.predict(export.open_model(APP, trained_run), [TEXTS[0]], options)
    rows = [line.split() for line in printed.getvalue().splitlines() if line.startswith("    ")]
    # Standardised tokens (lowercase, no punctuation, <br /> gone), weights summing to 1.
    assert [token for _, token in rows] == ["a", "great", "superb", "film", "loved", "it"]
    assert sum(float(weight) for weight, _ in rows) == pytest.approx(1.0, abs=1e-3)
    assert os.path.getsize(picture) > 0


def test_killed_run_resumes_from_epoch_two_as_if_never_interrupted(workspace, trained_run):
    run_dir = os.path.join(workspace, "run_b")
    arguments = train_arguments(workspace, run_dir)
    killed = run_cli(
        arguments, workspace, environment={"RNN_KERAS_CRASH_AFTER_EPOCH": "1"}, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [row["epoch"] for row in read_history(run_dir)] == [0.0]
    assert os.path.exists(os.path.join(run_dir, "backup"))

    resumed = run_cli(arguments, workspace)
    assert "resuming an unfinished run" in resumed.stdout
    assert "Epoch 2/2" in resumed.stdout and "Epoch 1/2" not in resumed.stdout
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == [0.0, 1.0]
    # Epoch 2 starts from the saved weights and optimizer state: its figures equal those
    # of the same command run without interruption.
    uninterrupted = read_history(trained_run)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert history[1][key] == pytest.approx(uninterrupted[1][key], rel=1e-4, abs=1e-6), key
    assert not os.path.exists(os.path.join(run_dir, "backup"))


def test_tune_two_trials_writes_a_best_config_that_train_accepts(workspace):
    directory = os.path.join(workspace, "search")
    common = [
        "--data",
        os.path.join(workspace, "reviews.csv"),
        f"data.data_dir={os.path.join(workspace, 'tfds')}",
        *TINY,
    ]
    result = run_cli(
        [
            "tune",
            "--tuner",
            "random",
            "--max-trials",
            "2",
            "--epochs",
            "1",
            "--directory",
            directory,
            *common,
        ],
        workspace,
    )
    with open(os.path.join(directory, "trials.json")) as handle:
        trials = json.load(handle)
    assert len(trials) == 2 and "val_accuracy" in result.stdout.split("best trial")[0]
    # The tuner names its best trial; ties in score are possible on tiny data.
    best_id = result.stdout.split("best trial ")[1].split(":")[0]
    best = next(trial for trial in trials if trial["trial"] == best_id)
    assert best["val_accuracy"] == max(trial["val_accuracy"] for trial in trials)
    with open(os.path.join(directory, "best_config.json")) as handle:
        best_config = json.load(handle)
    # The best trial's hyperparameters are in the config, the rest is the base config.
    for key in ("model.cell", "model.units", "model.pooling", "train.learning_rate"):
        section, name = key.split(".")
        assert best_config[section][name] == best[key], key
    assert best_config["model"]["sequence_length"] == 24

    # The search directory is resumable: a restart with a larger budget keeps both trials
    # and runs only the missing one.
    run_cli(
        [
            "tune",
            "--tuner",
            "random",
            "--max-trials",
            "3",
            "--epochs",
            "1",
            "--directory",
            directory,
            *common,
        ],
        workspace,
    )
    with open(os.path.join(directory, "trials.json")) as handle:
        continued = json.load(handle)
    assert len(continued) == 3 and continued[:2] == trials
    # The third trial may have become the best: train what the search now names.
    with open(os.path.join(directory, "best_config.json")) as handle:
        best_config = json.load(handle)

    run_dir = os.path.join(workspace, "run_best")
    run_cli(
        [
            "train",
            "--config",
            os.path.join(directory, "best_config.json"),
            "--run-dir",
            run_dir,
            "train.epochs=1",
        ],
        workspace,
    )
    with open(os.path.join(run_dir, "config.json")) as handle:
        trained_config = json.load(handle)
    assert trained_config["model"] == best_config["model"]
    assert trained_config["train"]["epochs"] == 1


def test_evaluate_on_a_file_matches_the_models_own_predictions(workspace, trained_run, exported):
    import argparse

    import keras
    import tensorflow as tf

    from apps.common import evaluation, export
    from apps.sentiment import APP

    APP.register_layers()  # best.keras below holds the app's own layers

    path = os.path.join(workspace, "held_out.csv")
    write_reviews(path, count=40, seed=1)
    arguments = argparse.Namespace(
        file=path,
        data=None,
        split="validation",
        output_dir=os.path.join(workspace, "eval"),
        overrides=[],
    )
    with redirect_stdout(io.StringIO()):
        report = evaluation.evaluate_command(APP, export.open_model(APP, exported), arguments)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    model = keras.saving.load_model(os.path.join(trained_run, "checkpoints", "best.keras"))
    predicted = np.argmax(model.predict(tf.constant([row["text"] for row in rows]), verbose=0), -1)
    truth = np.array([int(row["label"]) for row in rows])
    assert report["examples"] == 40
    assert report["accuracy"] == pytest.approx(np.mean(predicted == truth))
    positive = report["per_class"]["positive"]
    true_positives = np.sum((predicted == 1) & (truth == 1))
    assert positive["recall"] == pytest.approx(true_positives / np.sum(truth == 1))
    assert positive["precision"] == pytest.approx(true_positives / max(np.sum(predicted == 1), 1))
    assert np.sum(report["confusion_matrix"]) == 40
    assert os.path.getsize(os.path.join(workspace, "eval", "confusion_matrix.png")) > 0


def test_initialize_from_copies_shared_words_and_matching_layers(trained_run):
    """A warm start from another run: embedding rows follow the words, not the row numbers."""
    import keras

    from apps.common import config as config_lib
    from apps.common import training
    from apps.sentiment import APP

    source, config, source_info = training.load_run(APP, trained_run)
    shared = list(reversed(source_info["vocabulary"][:10]))
    info = {"class_names": source_info["class_names"], "vocabulary": ["zzznew", *shared]}
    config = config_lib.apply_overrides(config, {"train.initialize_from": trained_run})
    keras.utils.set_random_seed(7)
    model = APP.build_model(config, info)
    fresh_new_word = model.get_layer("embedding").get_weights()[0][2].copy()

    copied = training.initialize_from_run(APP, model, info, trained_run)

    embedding = model.get_layer("embedding").get_weights()[0]
    source_embedding = source.get_layer("embedding").get_weights()[0]
    source_row = {token: row + 2 for row, token in enumerate(source_info["vocabulary"])}
    for row, token in enumerate(shared, start=3):
        np.testing.assert_array_equal(embedding[row], source_embedding[source_row[token]])
    np.testing.assert_array_equal(embedding[2], fresh_new_word)
    recurrent = [layer for layer in model.layers if layer.name.startswith("recurrent_")]
    assert recurrent and all(layer.name in copied for layer in recurrent)
    for layer in recurrent + [model.get_layer("classifier")]:
        for ours, theirs in zip(
            layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)


def test_warm_start_vocabulary_adds_the_earlier_runs_words_after_its_own(trained_run, tmp_path):
    """Words the new train split lacks but the earlier run learned stay known."""
    from apps.common import config as config_lib
    from apps.common import training
    from apps.sentiment import APP

    _, config, source_info = training.load_run(APP, trained_run)
    loaded = APP.load_data(config)
    plain = APP.describe_data(config, loaded)["vocabulary"]
    source_info["vocabulary"] = ["zzzonly", plain[0], "yyyonly", "x1", "x2"]
    training.write_json(source_info, str(tmp_path / "data_info.json"))
    warm = {"train.initialize_from": str(tmp_path), "model.max_tokens": len(plain) + 2 + 3}
    vocabulary = APP.describe_data(config_lib.apply_overrides(config, warm), loaded)["vocabulary"]
    # The train split's own words first, in order; then the new ones, up to max_tokens.
    assert vocabulary == [*plain, "zzzonly", "yyyonly", "x1"]
    missing = {"train.initialize_from": str(tmp_path / "absent")}
    with pytest.raises(RunError, match="not a finished run directory"):
        APP.describe_data(config_lib.apply_overrides(config, missing), loaded)


def test_frozen_layers_keep_their_weights_while_the_rest_trains(trained_run):
    import keras
    import tensorflow as tf

    from apps.common import config as config_lib
    from apps.common import training
    from apps.sentiment import APP

    _, config, info = training.load_run(APP, trained_run)
    model = APP.build_model(config, info)
    with pytest.raises(config_lib.ConfigError, match="train.frozen_layers: .*'embeding'"):
        training.freeze_layers(model, ["embeding"])
    training.freeze_layers(model, ["embedding"])
    assert model.optimizer.learning_rate.numpy() == pytest.approx(config.train.learning_rate)
    before = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    batches = tf.data.Dataset.from_tensor_slices(
        (["good great film", "bad awful plot"] * 8, [1, 0] * 8)
    ).batch(8)
    model.fit(batches, epochs=2, verbose=0, shuffle=False)
    for layer in model.layers:
        if layer.name in before:
            same = all(
                np.array_equal(old, new)
                for old, new in zip(before[layer.name], layer.get_weights(), strict=True)
            )
            assert same == (layer.name == "embedding"), layer.name
    assert isinstance(model.get_layer("embedding"), keras.layers.Embedding)


def test_ema_validation_and_best_checkpoint_use_the_averaged_weights(workspace):
    """With train.ema_momentum, the logged validation loss is the saved checkpoint's."""
    from apps.common import config as config_lib
    from apps.common import training
    from apps.sentiment import APP

    overrides = [
        f"data.source={os.path.join(workspace, 'reviews.csv')}",
        f"data.data_dir={os.path.join(workspace, 'tfds')}",
        *TINY,
        "train.ema_momentum=0.9",
    ]
    config = config_lib.resolve_config(APP.config_class, None, overrides)
    run_dir = os.path.join(workspace, "run_ema")
    with redirect_stdout(io.StringIO()):
        metrics = training.train(APP, config, run_dir)
    history = read_history(run_dir)
    best = history[metrics["best_epoch"] - 1]
    assert metrics["validation"]["loss"] == pytest.approx(best["val_loss"], rel=1e-4)
    with pytest.raises(config_lib.ConfigError, match=r"train.ema_momentum: must be in \(0, 1\)"):
        training.make_optimizer(
            config_lib.apply_overrides(config, {"train.ema_momentum": 1.5}).train
        )


def test_tune_holds_fixed_keys_and_warm_starts_every_trial(workspace, trained_run):
    from apps.common import config as config_lib
    from apps.common import training, tuning
    from apps.sentiment import APP

    overrides = [
        f"data.source={os.path.join(workspace, 'reviews.csv')}",
        f"data.data_dir={os.path.join(workspace, 'tfds')}",
        *TINY,
        "tune.max_trials=2",
        "tune.epochs=1",
        "tune.fixed=model.cell,model.units,model.embedding_dim",
        f"train.initialize_from={trained_run}",
    ]
    config = config_lib.resolve_config(APP.config_class, None, overrides)
    directory = os.path.join(workspace, "search_warm")
    output = io.StringIO()
    with redirect_stdout(output):
        tuning.tune(APP, config, directory)
    with open(os.path.join(directory, "trials.json")) as handle:
        trials = json.load(handle)
    assert len(trials) == 2
    assert all(t["model.cell"] == "gru" and t["model.units"] == 8 for t in trials), trials
    # Same architecture as the earlier run, so every trial starts from its encoder.
    assert output.getvalue().count("copied embedding, recurrent_0") >= len(trials)
    # The best trial's own model is a run directory scoring what the search reported.
    best_run = os.path.join(directory, tuning.BEST_RUN)
    best_score = max(trial["val_accuracy"] for trial in trials)
    with open(os.path.join(best_run, "metrics.json")) as handle:
        metrics = json.load(handle)
    assert metrics["validation"]["accuracy"] == pytest.approx(best_score, abs=1e-6)
    model, best_config, _ = training.load_run(APP, best_run)
    assert best_config.train.initialize_from == trained_run and model.count_params() > 0
    bad = config_lib.apply_overrides(config, {"tune.fixed": ["model.colour"]})
    with pytest.raises(config_lib.ConfigError, match="tune.fixed: 'model.colour' not in"):
        tuning.fixed_hyperparameters(APP, bad)


def test_ensemble_averages_runs_and_exports_as_one_saved_model(workspace, trained_run, tmp_path):
    import shutil

    import keras
    import tensorflow as tf

    from apps.common import training
    from apps.sentiment import APP

    APP.register_layers()  # best.keras holds the app's own layers

    other_run = os.path.join(workspace, "run_seed5")
    run_cli([*train_arguments(workspace, other_run), "--seed", "5"], workspace)
    ensemble_run = str(tmp_path / "ensemble")
    result = run_cli(
        ["ensemble", "--models", trained_run, other_run, "--run-dir", ensemble_run], workspace
    )
    assert "ensemble of 2: validation accuracy" in result.stdout

    members = [
        keras.saving.load_model(os.path.join(run, training.BEST_MODEL))
        for run in (trained_run, other_run)
    ]
    expected = np.mean([m.predict(tf.constant(TEXTS), verbose=0) for m in members], axis=0)
    assert not np.allclose(expected, members[0].predict(tf.constant(TEXTS), verbose=0))
    base = str(tmp_path / "saved_models")
    run_cli(["export", "--model", ensemble_run, "--base-dir", base], workspace)
    outputs = call_saved_model_in_fresh_process(
        os.path.join(base, "sentiment", "1"), {"text": np.array(TEXTS, dtype=object)}
    )
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    with open(os.path.join(ensemble_run, "metrics.json")) as handle:
        metrics = json.load(handle)
    assert [member["run"] for member in metrics["members"]] == [trained_run, other_run]

    # Members must average the same classes.
    mismatched = str(tmp_path / "mismatched")
    shutil.copytree(trained_run, mismatched)
    info = training.read_json(os.path.join(mismatched, "data_info.json"))
    training.write_json(
        {**info, "class_names": ["pos", "neg"]}, os.path.join(mismatched, "data_info.json")
    )
    failed = run_cli(
        ["ensemble", "--models", trained_run, mismatched, "--run-dir", str(tmp_path / "bad")],
        workspace,
        check=False,
    )
    assert failed.returncode != 0 and f"--models {mismatched}: class_names" in failed.stderr
