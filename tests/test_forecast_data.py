"""The forecast app's builders and windows on generated CSVs (and ETTh1 when present).

Borders and fractions give the documented rows; missing or non-numeric cells, unsorted
and repeated timestamps are errors naming line and column; fill policies fill; windows
start their target right after the look-back; the scaler never sees a test row.
"""

import csv
import os
import time

import numpy as np
import pytest

from apps.common import config as config_lib
from apps.common.errors import CatalogUnavailableError, ConfigError, DataError
from apps.forecast import APP
from apps.forecast import data as forecast_data
from apps.forecast.config import ForecastConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ETT_DIR = os.path.join(ROOT, "..", "shared", "data", "ett")


def write_series(path, values, columns=("a", "b"), times=None):
    """A CSV `date,<columns>` with hourly ISO timestamps (or `times`) and `values` rows."""
    times = times or [
        str(np.datetime64("2020-01-01T00:00") + np.timedelta64(hour, "h")).replace("T", " ")
        for hour in range(len(values))
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", *columns])
        for moment, row in zip(times, values, strict=True):
            writer.writerow([moment, *row])
    return str(path)


def make_config(tmp_path, source, **overrides):
    config = config_lib.apply_overrides(
        ForecastConfig(),
        {"data.source": str(source), "data.data_dir": str(tmp_path / "tfds"), **overrides},
    )
    APP.check_config(config)
    return config


def split_arrays(loaded):
    """Split name to `(context, values)` of its one element."""
    result = {}
    for name, dataset in loaded.splits.items():
        elements = list(dataset.as_numpy_iterator())
        assert len(elements) == 1
        result[name] = (int(elements[0]["context"]), elements[0]["values"])
    return result


def ramp(rows, columns=2):
    """Row r, column c holds 100 * c + r: every value tells its row."""
    return np.arange(rows)[:, None] + 100.0 * np.arange(columns)[None, :]


def test_fraction_splits_follow_dlinear_rounding(tmp_path):
    path = write_series(tmp_path / "series.csv", ramp(101))
    loaded = forecast_data.load(make_config(tmp_path, path).data)
    splits = split_arrays(loaded)
    # int(101 * 0.7) = 70 train, int(101 * 0.2) = 20 test, the rest (11) validation.
    assert splits["train"][0] == 0 and len(splits["train"][1]) == 70
    assert splits["validation"][0] == 70 and len(splits["validation"][1]) == 81
    assert splits["test"][0] == 81 and len(splits["test"][1]) == 101
    np.testing.assert_array_equal(splits["test"][1], ramp(101).astype(np.float32))
    assert loaded.info["num_examples"] == {"train": 70, "validation": 11, "test": 20}


def test_border_splits_and_columns(tmp_path):
    path = write_series(tmp_path / "series.csv", ramp(50, 3), columns=("x", "y", "OT"))
    config = make_config(
        tmp_path,
        path,
        **{"data.splits": "borders", "data.borders": [30, 40], "data.feature_columns": ["OT", "x"]},
    )
    loaded = forecast_data.load(config.data)
    splits = split_arrays(loaded)
    assert loaded.info["columns"] == ["OT", "x"]
    assert [splits[name][0] for name in ("train", "validation", "test")] == [0, 30, 40]
    assert [len(splits[name][1]) for name in ("train", "validation", "test")] == [30, 40, 50]
    np.testing.assert_array_equal(splits["train"][1][:, 0], 200 + np.arange(30))


def test_ett_borders_are_applied_by_file_name(tmp_path):
    path = write_series(tmp_path / "ETTh2.csv", ramp(14500))
    splits = split_arrays(forecast_data.load(make_config(tmp_path, path).data))
    assert [(splits[n][0], len(splits[n][1])) for n in ("train", "validation", "test")] == [
        (0, 8640),
        (8640, 11520),
        (11520, 14400),
    ]
    with pytest.raises(Exception, match="needs 57,600 rows"):
        forecast_data.load(make_config(tmp_path, path, **{"data.splits": "ett_15min"}).data)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("", "line 5: column 'b': missing value ''"),
        ("abc", "line 5: column 'b': 'abc' is not a number"),
    ],
)
def test_bad_cells_name_line_and_column(tmp_path, cell, message):
    values = ramp(20).astype(object)
    values[3, 1] = cell  # The fourth data row: line 5 of the file.
    path = write_series(tmp_path / "bad.csv", values.tolist())
    with pytest.raises(DataError, match=message):
        forecast_data.load(make_config(tmp_path, path).data)


@pytest.mark.parametrize(("policy", "expected"), [("ffill", 102.0), ("interpolate", 103.0)])
def test_missing_policies_fill(tmp_path, policy, expected):
    values = ramp(20).astype(object)
    values[3, 1] = "NaN"
    path = write_series(tmp_path / "gaps.csv", values.tolist())
    config = make_config(tmp_path, path, **{"data.missing": policy})
    splits = split_arrays(forecast_data.load(config.data))
    assert splits["train"][1][3, 1] == expected


def test_unsorted_and_repeated_timestamps_name_line_and_column(tmp_path):
    times = [f"2020-01-01 {hour:02d}:00:00" for hour in range(10)]
    repeated = times[:4] + [times[3]] + times[5:]
    path = write_series(tmp_path / "repeat.csv", ramp(10).tolist(), times=repeated)
    with pytest.raises(DataError, match=r"line 6: column 'date': timestamp .* repeats"):
        forecast_data.load(make_config(tmp_path, path).data)
    swapped = times[:4] + [times[5], times[4]] + times[6:]
    path = write_series(tmp_path / "unsorted.csv", ramp(10).tolist(), times=swapped)
    with pytest.raises(DataError, match=r"line 7: column 'date': .* is earlier than"):
        forecast_data.load(make_config(tmp_path, path).data)


def test_bad_split_settings_are_config_errors(tmp_path):
    path = write_series(tmp_path / "series.csv", ramp(30))
    with pytest.raises(ConfigError, match="data.fractions"):
        forecast_data.load(make_config(tmp_path, path, **{"data.fractions": [0.5, 0.5, 0.5]}).data)
    with pytest.raises(ConfigError, match="data.borders"):
        config = make_config(tmp_path, path, **{"data.splits": "borders", "data.borders": [20, 10]})
        forecast_data.load(config.data)


def test_ett_offline_fails_fast_naming_the_local_path(tmp_path, monkeypatch):
    monkeypatch.setattr(forecast_data, "network_available", lambda urls: False)
    config = make_config(tmp_path, "ett/ETTm2", **{"data.ett_dir": str(tmp_path / "none")})
    started = time.time()
    with pytest.raises(CatalogUnavailableError, match=r"none/ETTm2.csv.*--data path/to/ETTm2.csv"):
        forecast_data.load(config.data)
    assert time.time() - started < 10


def windows_of(loaded, config, split):
    data_info = APP.describe_data(config, loaded)
    examples = APP.examples(loaded.splits[split], config, data_info, training=split == "train")
    return data_info, [(h, t) for h, t in examples.as_numpy_iterator()]


def test_windows_align_and_the_scaler_sees_train_rows_only(tmp_path):
    values = ramp(100)
    values[85:] += 1e6  # Test rows (fractions: train 70, validation 10, test 20).
    path = write_series(tmp_path / "series.csv", values)
    config = make_config(
        tmp_path,
        path,
        **{
            "model.lookback": 8,
            "model.segment_length": 4,
            "model.horizon": 3,
            "data.stride": 2,
            "data.target_columns": ["b"],
        },
    )
    loaded = forecast_data.load(config.data)
    data_info, train = windows_of(loaded, config, "train")
    np.testing.assert_allclose(data_info["mean"], values[:70].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(data_info["std"], values[:70].std(axis=0), rtol=1e-5)
    mean, std = np.asarray(data_info["mean"]), np.asarray(data_info["std"])

    def rows_of(history, target):
        return np.rint(history[:, 0] * std[0] + mean[0]), np.rint(
            target[:, 0] * std[1] + mean[1] - 100
        )

    # Train: targets start at row 8 (right after the first look-back), every 2 rows.
    assert len(train) == len(range(8, 70 - 3 + 1, 2))
    for index, (history, target) in enumerate(train):
        start = 8 + 2 * index
        history_rows, target_rows = rows_of(history, target)
        np.testing.assert_array_equal(history_rows, np.arange(start - 8, start))
        np.testing.assert_array_equal(target_rows, np.arange(start, start + 3))
    # Validation: the first target is the first validation row; its look-back is in train.
    _, validation = windows_of(loaded, config, "validation")
    assert len(validation) == 10 - 3 + 1
    history_rows, target_rows = rows_of(*validation[0])
    np.testing.assert_array_equal(history_rows, np.arange(62, 70))
    np.testing.assert_array_equal(target_rows, np.arange(70, 73))
    _, test = windows_of(loaded, config, "test")
    assert len(test) == 20 - 3 + 1 and test[0][1].shape == (3, 1)


@pytest.mark.skipif(
    not os.path.exists(os.path.join(ETT_DIR, "ETTh1.csv")),
    reason="../shared/data/ett/ETTh1.csv is absent (real data lives outside the repository)",
)
def test_etth1_standard_protocol(tmp_path):
    config = make_config(tmp_path, "ett/ETTh1", **{"data.ett_dir": ETT_DIR})
    loaded = forecast_data.load(config.data)
    assert loaded.info["split_rows"] == {
        "train": [0, 8640],
        "validation": [8640, 11520],
        "test": [11520, 14400],
    }
    data_info = APP.describe_data(config, loaded)
    assert data_info["columns"][-1] == "OT" and data_info["scaler_rows"] == 8640
    # The train-split scaler of the DLinear/SegRNN code (OT column).
    assert data_info["mean"][-1] == pytest.approx(17.1285, abs=1e-3)


def test_forecast_timestamps_continue_hours_and_calendar_months():
    from apps.forecast.windows import _format_time, future_times

    months = np.array([forecast_data.parse_time(text) for text in ("1960-11", "1960-12")])
    assert [_format_time(t) for t in future_times(months, 3)] == [
        "1961-01-01 00:00:00",
        "1961-02-01 00:00:00",
        "1961-03-01 00:00:00",
    ]
    hours = np.array([forecast_data.parse_time(f"2020-01-01 0{h}:00") for h in (0, 1)])
    assert _format_time(future_times(hours, 1)[0]) == "2020-01-01 02:00:00"
