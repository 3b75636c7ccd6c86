"""The shared pipeline through two apps it has never heard of (`tests/contract_apps.py`).

Each app is trained, killed and resumed, evaluated, exported and reloaded in a fresh
process with plain TensorFlow, asked to predict, and tuned for two trials, all through
`apps.common` alone.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.saved_model_helpers import call_saved_model_in_fresh_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = (
    "import sys\n"
    "from apps.common.cli import main\n"
    "from tests import contract_apps\n"
    "sys.exit(main(getattr(contract_apps, sys.argv[1].upper()), sys.argv[2:], program='t'))\n"
)


def run(app, arguments, workspace, environment=None, stdin=None, check=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, **(environment or {}))
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, app, *arguments],
        cwd=workspace,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{arguments} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def write_series(path, length=240):
    steps = np.arange(length)
    series = np.sin(steps * 2 * np.pi / 12) + 0.05 * np.random.default_rng(0).normal(size=length)
    np.save(path, series.astype("float32"))


def write_sentences(path, count=96):
    generator = np.random.default_rng(1)
    words = ["ann", "BOB", "cat", "DOG", "eel", "FOX", "gnu", "HEN"]
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(count):
            handle.write(" ".join(generator.choice(words, generator.integers(1, 9))) + "\n")


SOURCES = {"numeric": ("series.npy", write_series), "tagger": ("sentences.txt", write_sentences)}


@pytest.fixture(scope="module", params=["numeric", "tagger"])
def trained(request, tmp_path_factory):
    app = request.param
    workspace = str(tmp_path_factory.mktemp(app))
    name, write = SOURCES[app]
    write(os.path.join(workspace, name))
    arguments = ["train", "--data", name, "--run-dir", "run_a", "train.epochs=3"]
    run(app, arguments, workspace)
    return app, workspace, arguments


def read_history(path):
    with open(path, encoding="utf-8") as handle:
        header, *rows = [line.strip().split(",") for line in handle if line.strip()]
    return [dict(zip(header, map(float, row), strict=True)) for row in rows]


def test_killed_run_resumes_with_the_same_randomness(trained):
    """With dropout on (numeric) the resumed epochs match an uninterrupted run exactly."""
    app, workspace, arguments = trained
    resumed = [*arguments[:4], "run_b", *arguments[5:]]
    killed = run(app, resumed, workspace, {"RNN_KERAS_CRASH_AFTER_EPOCH": "1"}, check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run(app, resumed, workspace)
    whole = read_history(os.path.join(workspace, "run_a", "history.csv"))
    again = read_history(os.path.join(workspace, "run_b", "history.csv"))
    assert [row["epoch"] for row in again] == [0, 1, 2]
    for key in whole[0]:
        np.testing.assert_allclose([r[key] for r in again], [r[key] for r in whole], rtol=1e-5)


def test_objective_drives_the_checkpoint_and_metrics(trained):
    app, workspace, _ = trained
    with open(os.path.join(workspace, "run_a", "metrics.json"), encoding="utf-8") as handle:
        metrics = json.load(handle)
    history = read_history(os.path.join(workspace, "run_a", "history.csv"))
    objective = {"numeric": "val_loss", "tagger": "val_token_accuracy"}[app]
    scores = [row[objective] for row in history]
    best = (np.argmin if app == "numeric" else np.argmax)(scores)
    assert metrics["best_epoch"] == best + 1
    assert metrics["objective"]["name"] == objective
    assert metrics["validation"][objective.removeprefix("val_")] == pytest.approx(scores[best])


def test_export_in_a_fresh_process_answers_like_predict(trained):
    app, workspace, _ = trained
    run(app, ["export", "--model", "run_a", "--base-dir", "exports"], workspace)
    export_dir = os.path.join(workspace, "exports", app, "1")
    lines = {"numeric": ["0 0.5 0.87 1 0.87 0.5"], "tagger": ["ann BOB zzz", "DOG"]}[app]
    from tests import contract_apps

    app_object = getattr(contract_apps, app.upper())
    inputs = app_object.parse_inputs(lines, None)
    fresh = call_saved_model_in_fresh_process(export_dir, inputs)
    printed = run(app, ["predict", "--model", "run_a", *lines], workspace).stdout.splitlines()
    assert printed == app_object.format_outputs(lines, fresh, None)
    if app == "tagger":
        # Known words tagged by the rule; padding answers -1 (the unknown "zzz" is free).
        assert fresh["tags"][0, :2].tolist() == [0, 1] and fresh["tags"][1].tolist() == [1, -1, -1]


def test_evaluate_reports_the_runs_validation_loss(trained):
    app, workspace, _ = trained
    result = run(app, ["evaluate", "--model", "run_a"], workspace)
    with open(os.path.join(workspace, "run_a", "metrics.json"), encoding="utf-8") as handle:
        loss = json.load(handle)["validation"]["loss"]
    printed = dict(part.split(": ") for part in result.stdout.strip().splitlines()[-2].split("  "))
    assert float(printed["loss"]) == pytest.approx(loss, rel=1e-4)
    with open(os.path.join(workspace, "run_a", "evaluation_validation", "evaluation.json")) as f:
        assert json.load(f)["loss"] == pytest.approx(loss, rel=1e-4)


def test_tune_runs_two_trials_and_writes_a_config_train_accepts(trained):
    app, workspace, _ = trained
    name = SOURCES[app][0]
    run(app, ["tune", "--data", name, "--directory", "search", "train.epochs=1"], workspace)
    with open(os.path.join(workspace, "search", "trials.json"), encoding="utf-8") as handle:
        trials = json.load(handle)
    assert len(trials) == 2 and {trial["model.units"] for trial in trials} <= {4, 8}
    best = os.path.join(workspace, "search", "best_config.json")
    checked = run(app, ["train", "--config", best, "train.epochs=0"], workspace, check=False)
    assert checked.returncode == 2 and "train.epochs: must be >= 1, got 0" in checked.stderr


def test_time_ordered_validation_is_the_tail_of_the_series(tmp_path):
    from tests.contract_apps import NUMERIC

    path = str(tmp_path / "series.npy")
    np.save(path, np.arange(10, dtype="float32"))
    config = NUMERIC.config_class()
    config.data.source = path
    loaded = NUMERIC.load_data(config)
    assert list(loaded.splits["train"].as_numpy_iterator()) == list(range(8))
    assert list(loaded.splits["validation"].as_numpy_iterator()) == [8, 9]
    assert loaded.notes == ["validation: the last 25% of train (2 of 10 elements), in order"]
