"""The forecast models: baselines against hand-computed values, save/load round trips, and a
segment-recurrent model that learns two seasonalities well below the last-value baseline."""

import os

import keras
import numpy as np
import pytest

from apps.common import config as config_lib
from apps.forecast import APP
from apps.forecast.config import ForecastConfig


def data_info(columns=3, targets=None):
    names = [f"c{index}" for index in range(columns)]
    indices = list(range(columns)) if targets is None else targets
    return {
        "columns": names,
        "targets": [names[index] for index in indices],
        "target_indices": indices,
        "mean": [0.0] * columns,
        "std": [1.0] * columns,
    }


def build(info, **overrides):
    config = config_lib.apply_overrides(ForecastConfig(), overrides)
    APP.check_config(config)
    return APP.build_model(config, info)


def test_last_value_and_seasonal_naive_equal_hand_computed_values():
    rng = np.random.default_rng(0)
    history = rng.normal(size=(2, 15, 3)).astype("float32")  # Longer than the look-back.
    info = data_info(3, targets=[2, 0])
    last = build(info, **{"model.kind": "last", "model.lookback": 12, "model.horizon": 7})
    expected = np.repeat(history[:, -1:, [2, 0]], 7, axis=1)
    np.testing.assert_allclose(last(history), expected)
    seasonal = build(
        info,
        **{"model.kind": "seasonal", "model.season": 5, "model.lookback": 12, "model.horizon": 7},
    )
    # Step h (0-based) repeats the value 5 steps before it: rows 10..14, then 10, 11.
    rows = [10, 11, 12, 13, 14, 10, 11]
    np.testing.assert_allclose(seasonal(history), history[:, rows][:, :, [2, 0]])


def test_linear_model_keeps_a_constant_series_with_last_value_normalization():
    model = build(data_info(2), **{"model.kind": "linear", "model.lookback": 8, "model.horizon": 4})
    history = np.full((3, 8, 2), 5.0, "float32") + np.arange(2, dtype="float32")
    # Normalized, the window is all zeros: the forecast is the bias plus the last value.
    bias = model.get_layer("linear_forecast").dense.bias.numpy()
    np.testing.assert_allclose(model(history), history[:, -1:, :] + bias[None, :, None], rtol=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        {"model.kind": "segrnn", "model.normalization": "revin"},
        {"model.kind": "seq2seq", "model.cell": "lstm", "model.attention": "luong"},
        {"model.kind": "direct", "model.channel_independent": False},
        {"model.kind": "segrnn", "model.cell": "mingru"},
        {"model.kind": "seq2seq", "model.cell": "minlstm"},
    ],
)
def test_models_round_trip_through_keras_files(tmp_path, overrides):
    info = data_info(3, targets=[1])
    settings = {"model.lookback": 24, "model.horizon": 10, "model.segment_length": 6}
    model = build(info, **settings, **{"model.units": 8, **overrides})
    history = np.random.default_rng(1).normal(size=(4, 24, 3)).astype("float32")
    expected = model(history)
    assert expected.shape == (4, 10, 1)
    path = os.path.join(tmp_path, "model.keras")
    # Built, so that the file holds the optimizer's slots and loading finds them all.
    model.optimizer.build(model.trainable_variables)
    model.save(path)
    APP.register_layers()
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(history), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        {"model.kind": "segrnn", "model.normalization": "revin", "model.cell": "minlstm"},
        {"model.kind": "seq2seq"},
        {"model.kind": "direct", "model.channel_independent": False},
        {"model.kind": "linear"},
    ],
)
def test_a_window_forecasts_the_same_alone_and_in_a_batch(overrides):
    """Batch invariance: per-window normalisation and channel folding keep windows apart."""
    info = data_info(3)
    settings = {"model.lookback": 24, "model.horizon": 10, "model.segment_length": 6}
    model = build(info, **settings, **{"model.units": 8, "model.dropout": 0.0, **overrides})
    rng = np.random.default_rng(2)
    history = (rng.normal(size=(5, 24, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, -3.0]).astype("float32")
    model(history[:1])
    for weight in model.trainable_weights:  # away from the initialisers (zero biases)
        weight.assign(rng.normal(scale=0.3, size=weight.shape).astype("float32"))
    batched = keras.ops.convert_to_numpy(model(history))
    for row in range(len(history)):
        alone = keras.ops.convert_to_numpy(model(history[row : row + 1]))[0]
        np.testing.assert_allclose(batched[row], alone, rtol=1e-5, atol=1e-5)


def two_seasons(rows, channels=2, seed=0):
    """Noisy sums of a period-12 and a period-30 sine, phase-shifted per channel."""
    rng = np.random.default_rng(seed)
    time = np.arange(rows)[:, None]
    phase = np.arange(channels)[None, :]
    clean = np.sin(2 * np.pi * time / 12 + phase) + 0.6 * np.sin(2 * np.pi * time / 30 + phase)
    return (clean + 0.1 * rng.normal(size=clean.shape)).astype("float32")


def windows(series, lookback, horizon):
    starts = range(lookback, len(series) - horizon + 1)
    history = np.stack([series[start - lookback : start] for start in starts])
    return history, np.stack([series[start : start + horizon] for start in starts])


def test_segment_recurrence_learns_two_seasonalities_below_last_value():
    keras.utils.set_random_seed(3)
    series = two_seasons(1100)
    train_x, train_y = windows(series[:900], 60, 12)
    test_x, test_y = windows(series[900 - 60 :], 60, 12)
    settings = {"model.lookback": 60, "model.horizon": 12, "model.segment_length": 12}
    model = build(
        data_info(2),
        **settings,
        **{"model.units": 32, "model.dropout": 0.0, "train.learning_rate": 0.005},
    )
    model.fit(train_x, train_y, batch_size=64, epochs=4, verbose=0, shuffle=True)
    model_mse = float(np.mean((model.predict(test_x, verbose=0) - test_y) ** 2))
    last = build(data_info(2), **settings, **{"model.kind": "last"})
    last_mse = float(np.mean((np.asarray(last(test_x)) - test_y) ** 2))
    # The noise alone costs 0.01; repeating the last value costs about 1.
    assert last_mse > 0.5
    assert model_mse < 0.2 * last_mse, (model_mse, last_mse)


def test_seq2seq_attention_rows_sum_to_one_and_are_plotted(tmp_path):
    from apps.forecast import windows as forecast_windows

    info = data_info(2)
    settings = {"model.lookback": 24, "model.horizon": 12, "model.segment_length": 6}
    model = build(info, **settings, **{"model.kind": "seq2seq", "model.units": 8})
    history = np.random.default_rng(2).normal(size=(1, 24, 2)).astype("float32")
    layer = model.get_layer("segment_forecast")
    _, weights = layer(model.get_layer("norm")(history)[0], return_attention=True)
    # (windows * channels, horizon segments, look-back segments)
    assert weights.shape == (2, 2, 4)
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, rtol=1e-5)
    forecast_windows.plot_attention(model, history, info, str(tmp_path))
    assert os.path.getsize(tmp_path / "attention.png") > 0
