"""The forecast app end to end through its command line, on a generated two-season CSV.

Train, export, reload the SavedModel in a fresh process with plain TensorFlow and compare
with the Keras model in raw units; a wrong feature count is an error naming `history`;
`evaluate` reports standardized and raw errors per step with PNGs; `predict` forecasts
after the tail of a CSV; a two-trial `tune` writes a config that `train --config` accepts.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from apps.common import training
from apps.common.cli import main
from apps.forecast import APP
from tests.saved_model_helpers import call_saved_model_in_fresh_process
from tests.test_forecast_data import write_series
from tests.test_forecast_model import two_seasons

TINY = [
    "model.lookback=48",
    "model.horizon=12",
    "model.segment_length=12",
    "model.units=16",
    "model.dropout=0",
    "train.epochs=2",
    "train.batch_size=64",
    "train.learning_rate=0.005",
    "data.stride=2",
]


def run(arguments, capsys):
    status = main(APP, arguments)
    captured = capsys.readouterr()
    assert status == 0, captured.err[-3000:]
    return captured.out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    directory = tmp_path_factory.mktemp("forecast")
    # Raw units far from standardized ones: level 50, amplitude 10 (and a third column).
    series = 50 + 10 * two_seasons(400, channels=3)
    write_series(directory / "series.csv", series, columns=("load", "temp", "OT"))
    return directory


def common(workspace):
    return [
        "--data",
        str(workspace / "series.csv"),
        f"data.data_dir={workspace / 'tfds'}",
        f"export.base_dir={workspace / 'saved_models'}",
    ]


@pytest.fixture(scope="module")
def trained(workspace):
    run_dir = str(workspace / "run")
    status = main(APP, ["train", "--run-dir", run_dir, *common(workspace), *TINY])
    assert status == 0
    return run_dir


def test_train_export_fresh_process_equals_keras_in_raw_units(workspace, trained, capsys):
    out = run(["export", "--model", trained, "--base-dir", str(workspace / "saved_models")], capsys)
    export_dir = out.strip().split(" to ")[-1].split(" (")[0]
    model, config, data_info = training.load_run(APP, trained)
    history = 50 + 10 * two_seasons(48 * 3, channels=3, seed=5).reshape(3, 48, 3)
    mean, std = np.asarray(data_info["mean"]), np.asarray(data_info["std"])
    keras_forecast = np.asarray(model((history - mean) / std)) * std + mean
    outputs = call_saved_model_in_fresh_process(export_dir, {"history": history.astype("float32")})
    assert outputs["forecast"].shape == (3, 12, 3)
    np.testing.assert_allclose(outputs["forecast"], keras_forecast, rtol=1e-4, atol=1e-3)
    # Raw units: the forecast lives around the level 50, not around 0.
    assert 30 < outputs["forecast"].mean() < 70
    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError), match="history"):
        serving(history=tf.zeros((1, 48, 2)))


def test_evaluate_reports_standardized_and_raw_errors_per_step(workspace, trained, capsys):
    output = workspace / "evaluation"
    run(["evaluate", "--model", trained, "--split", "test", "--output-dir", str(output)], capsys)
    with open(output / "evaluation.json", encoding="utf-8") as handle:
        report = json.load(handle)
    # Test: the last int(400 * 0.2) = 80 rows, one window per target start.
    assert report["windows"] == 80 - 12 + 1
    assert len(report["mse_by_step"]) == 12 and len(report["raw_mae_by_step"]) == 12
    # Raw errors are the standardized ones times the (train) deviation, squared for MSE.
    _, _, data_info = training.load_run(APP, trained)
    variance = np.mean(np.square(data_info["std"]))
    assert report["raw_mse"] == pytest.approx(report["mse"] * variance, rel=0.3)
    assert os.path.getsize(output / "forecasts.png") > 0
    assert os.path.getsize(output / "error_by_step.png") > 0


def test_predict_reads_the_tail_of_a_csv(workspace, trained, capsys):
    image = workspace / "forecast.png"
    out = run(
        ["predict", "--model", trained, str(workspace / "series.csv"), "--output", str(image)],
        capsys,
    )
    lines = out.strip().splitlines()
    assert lines[1] == "time\tload\ttemp\tOT"
    # 400 hourly rows from 2020-01-01 00:00: the first forecast is for 2020-01-17 16:00.
    assert lines[2].startswith("2020-01-17 16:00:00\t")
    assert len([line for line in lines if line.startswith("2020-")]) == 12
    assert os.path.getsize(image) > 0
    status = main(APP, ["predict", "--model", trained, str(workspace / "missing.csv")])
    assert status == 2 and "missing.csv: no such file" in capsys.readouterr().err


def test_tune_two_trials_writes_a_trainable_config(workspace, capsys):
    directory = workspace / "tune"
    run(
        [
            "tune",
            *common(workspace),
            *TINY,
            "--max-trials",
            "2",
            "--epochs",
            "1",
            "--directory",
            str(directory),
            # Units and cell held at the tiny base values: two quick trials.
            'tune.fixed=["model.units", "model.cell"]',
        ],
        capsys,
    )
    with open(directory / "trials.json", encoding="utf-8") as handle:
        trials = json.load(handle)
    assert len(trials) == 2 and all(row["val_loss"] is not None for row in trials)
    # Look-backs tried never exceed the windows cut for the search (48 here).
    assert all(row["model.lookback"] <= 48 and row["model.units"] == 16 for row in trials)
    run_dir = str(workspace / "tuned_run")
    run(
        [
            "train",
            "--config",
            str(directory / "best_config.json"),
            "--run-dir",
            run_dir,
            "train.epochs=1",
            "train.steps_per_epoch=2",
        ],
        capsys,
    )
    assert os.path.exists(os.path.join(run_dir, "metrics.json"))
