"""Shared metrics against hand-computed values, and the validation carves at their edges."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from apps.common import data, metrics


def test_classification_report_by_hand():
    report = metrics.classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_masked_accuracy_counts_only_valid_steps():
    true = np.array([[1, 2, 0], [3, 0, 0]])
    predicted = np.array([[1, 0, 9], [3, 9, 9]])
    mask = true != 0
    assert metrics.masked_accuracy(true, predicted, mask) == pytest.approx(2 / 3)
    assert metrics.masked_accuracy(true, predicted, np.zeros_like(mask)) == 0.0


def test_regression_report_per_step_and_in_raw_units():
    targets = np.zeros((2, 3, 2))
    predictions = np.zeros((2, 3, 2))
    predictions[:, 0, :] = 1.0  # step 1 off by one everywhere
    predictions[0, 2, 1] = -2.0  # one value of step 3 off by two
    report = metrics.regression_report(targets, predictions, scale=([10.0, 0.0], [2.0, 5.0]))
    assert report["mse_by_step"] == pytest.approx([1.0, 0.0, 1.0])
    assert report["mae_by_step"] == pytest.approx([1.0, 0.0, 0.5])
    assert report["mse"] == pytest.approx((4 * 1 + 4) / 12)
    # Raw units: feature 0 has std 2, feature 1 std 5 (means cancel in the errors).
    assert report["raw_mse_by_step"] == pytest.approx([(4 + 25) / 2, 0.0, 100 / 4])
    assert report["raw_mae"] == pytest.approx((2 * 2 + 2 * 5 + 10) / 12)
    assert report["windows"] == 2
    with pytest.raises(ValueError, match="differ"):
        metrics.regression_report(np.zeros((2, 3)), np.zeros((2, 4)))


def test_language_model_report_units():
    report = metrics.language_model_report(total_nats=2 * math.log(4), units=2)
    assert report["nats_per_unit"] == pytest.approx(math.log(4))
    assert report["bits_per_unit"] == pytest.approx(2.0)
    assert report["perplexity"] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no units"):
        metrics.language_model_report(1.0, 0)


@pytest.mark.parametrize(
    ("total", "fraction", "expected"),
    [(10, 0.25, 2), (10, 0.15, 2), (10, 0.14, 1), (7, 0.5, 4), (2, 0.01, 1), (3, 0.99, 2)],
)
def test_carves_round_and_keep_one_example_on_each_side(total, fraction, expected):
    dataset = tf.data.Dataset.range(total)
    train, validation, _ = data.carve_validation(dataset, fraction, seed=3)
    held = sorted(validation.as_numpy_iterator())
    assert len(held) == expected == int(validation.cardinality())
    assert sorted([*train.as_numpy_iterator(), *held]) == list(range(total))
    train, validation, _ = data.carve_tail(dataset, fraction)
    assert list(validation.as_numpy_iterator()) == list(range(total - expected, total))
    assert list(train.as_numpy_iterator()) == list(range(total - expected))


def test_a_carve_of_one_example_is_an_error():
    for carve in (lambda d: data.carve_tail(d, 0.5), lambda d: data.carve_validation(d, 0.5, 1)):
        with pytest.raises(data.DataSourceError, match="of 1"):
            carve(tf.data.Dataset.range(1))


def test_classification_report_keys_and_a_class_predicted_but_never_true():
    # Class "c" is predicted once and never true: its recall is 0.0, not 0/0 or 1.0.
    report = metrics.classification_report([0, 0, 1, 1], [0, 2, 1, 1], ["a", "b", "c"])
    assert set(report) == {"examples", "accuracy", "macro_f1", "per_class", "confusion_matrix"}
    assert report["examples"] == 4
    assert report["accuracy"] == 0.75
    assert report["confusion_matrix"] == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    assert report["per_class"]["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert report["per_class"]["b"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)


def test_classification_report_of_no_examples_is_all_zero():
    report = metrics.classification_report([], [], ["a", "b"])
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report == {
        "examples": 0,
        "accuracy": 0.0,
        "macro_f1": 0.0,
        "per_class": {"a": zero, "b": zero},
        "confusion_matrix": [[0, 0], [0, 0]],
    }


@pytest.mark.parametrize(
    "convert",
    [list, np.array, lambda x: np.asarray(x, np.float32), lambda x: [float(v) for v in x]],
    ids=["ints", "int-array", "float32-array", "floats"],
)
def test_classification_report_takes_float_labels_as_class_ids(convert):
    # Binary labels are often stored as floats; 1.0 is class 1. The matrix is of ints, so
    # evaluation.json shows counts as 1, not 1.0.
    report = metrics.classification_report(
        convert([0, 1, 1, 0]), convert([0, 1, 0, 0]), ["no", "yes"]
    )
    assert report["confusion_matrix"] == [[2, 0], [1, 1]]
    assert json.dumps(report["confusion_matrix"]) == "[[2, 0], [1, 1]]"
    assert all(type(count) is int for row in report["confusion_matrix"] for count in row)
    assert type(report["examples"]) is int and report["accuracy"] == 0.75


@pytest.mark.parametrize(
    "mask",
    [
        np.array([[1, 1, 0], [1, 0, 0]]),
        np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32),
        np.array([[5, 2, 0], [7, 0, 0]]),  # any nonzero value marks a valid step
        [[True, True, False], [True, False, False]],
    ],
    ids=["int01", "float01", "nonzero-ids", "bool-list"],
)
def test_masked_accuracy_treats_any_mask_as_true_or_false(mask):
    true = np.array([[1, 2, 0], [3, 0, 0]])
    predicted = np.array([[1, 0, 0], [3, 0, 0]])  # padded steps "right", must not count
    assert metrics.masked_accuracy(true, predicted, mask) == pytest.approx(2 / 3)


def _reference_errors(targets, predictions):
    """MSE/MAE overall and per step of `(windows, horizon, features)` nested lists, in floats."""
    errors = [
        [[p - t for t, p in zip(ts, ps, strict=True)] for ts, ps in zip(tw, pw, strict=True)]
        for tw, pw in zip(targets, predictions, strict=True)
    ]
    horizon = len(errors[0])
    flat = [e for window in errors for step in window for e in step]
    by_step = [[e for window in errors for e in window[step]] for step in range(horizon)]
    return {
        "mse": math.fsum(e * e for e in flat) / len(flat),
        "mae": math.fsum(abs(e) for e in flat) / len(flat),
        "mse_by_step": [math.fsum(e * e for e in s) / len(s) for s in by_step],
        "mae_by_step": [math.fsum(abs(e) for e in s) / len(s) for s in by_step],
    }


def test_regression_report_raw_units_are_errors_of_unstandardized_values():
    targets = [[[0.5, -1.0], [1.5, 2.0]], [[-0.25, 0.75], [3.0, -2.0]]]
    predictions = [[[1.0, -1.5], [1.0, 2.5]], [[0.0, 0.0], [2.0, -1.0]]]
    mean, std = [10.0, -3.0], [2.0, 0.5]
    report = metrics.regression_report(targets, predictions, scale=(mean, std))

    def raw(values):
        return [
            [[v * s + m for v, m, s in zip(step, mean, std, strict=True)] for step in w]
            for w in values
        ]

    expected = _reference_errors(targets, predictions)
    expected.update(
        {
            f"raw_{key}": value
            for key, value in _reference_errors(raw(targets), raw(predictions)).items()
        }
    )
    expected["windows"] = 2
    assert set(report) == set(expected)
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=1e-12), key


def test_regression_report_takes_windows_by_horizon_arrays():
    # (windows, horizon) is one feature; scale then is one mean and one std.
    targets = np.array([[1.0, 2.0], [3.0, 4.0]])
    predictions = np.array([[1.0, 4.0], [0.0, 4.0]])  # errors [[0, 2], [-3, 0]]
    report = metrics.regression_report(targets, predictions, scale=([5.0], [2.0]))
    assert report == {
        "mse": 13 / 4,
        "mae": 5 / 4,
        "mse_by_step": [4.5, 2.0],
        "mae_by_step": [1.5, 1.0],
        "raw_mse": 13.0,
        "raw_mae": 2.5,
        "raw_mse_by_step": [18.0, 8.0],
        "raw_mae_by_step": [3.0, 2.0],
        "windows": 2,
    }


def test_regression_report_of_float32_arrays_is_computed_in_float64():
    # The forecast app passes float32 arrays; squares are not rounded to float32.
    values = np.array([[[0.1], [0.3]], [[0.7], [-1.9]]], dtype=np.float32)
    report = metrics.regression_report(np.zeros_like(values), values)
    as_floats = [float(v) for v in values.reshape(-1)]
    assert report["mse"] == pytest.approx(math.fsum(v * v for v in as_floats) / 4, rel=1e-15)
    assert report["mse_by_step"][1] == pytest.approx(
        (as_floats[1] ** 2 + as_floats[3] ** 2) / 2, rel=1e-15
    )


def test_language_model_report_keys_and_a_single_unit():
    report = metrics.language_model_report(math.log(8.0), 1)
    assert set(report) == {"nats_per_unit", "bits_per_unit", "perplexity", "units"}
    assert report["nats_per_unit"] == pytest.approx(math.log(8.0))
    assert report["bits_per_unit"] == pytest.approx(3.0)
    assert report["perplexity"] == pytest.approx(8.0)
    assert report["units"] == 1 and type(report["units"]) is int
    assert metrics.language_model_report(0.0, np.int64(3))["units"] == 3


@pytest.mark.parametrize("units", [0, -1])
def test_language_model_report_without_units_is_an_error(units):
    with pytest.raises(ValueError, match=r"^no units were scored$"):
        metrics.language_model_report(1.0, units)
