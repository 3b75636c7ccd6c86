"""Shared metrics against hand-computed values, and the validation carves at their edges."""

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
