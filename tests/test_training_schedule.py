"""The cosine learning-rate schedule: its curve, and that it follows the optimizer's step."""

import math

import keras
import numpy as np
import pytest

from apps.common import config as config_lib
from apps.common import training
from apps.common.config import TrainConfig
from apps.common.errors import ConfigError
from apps.forecast.config import ForecastConfig


class RecordRate(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        self.rates.append(float(rate))


def tiny_model(rate):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
    return model


def test_rate_falls_along_half_a_cosine_to_a_tenth_over_the_planned_steps():
    x = np.ones((12, 2), "float32")
    model = tiny_model(0.01)
    recorder = RecordRate()
    schedule = training.schedule_callbacks(TrainConfig(learning_rate_schedule="cosine"), 8)
    # Ten steps planned as eight: the last two stay at the final rate.
    model.fit(x, x[:, :1], batch_size=6, epochs=5, callbacks=[*schedule, recorder], verbose=0)
    expected = [
        0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1, step / 8)))) for step in range(10)
    ]
    np.testing.assert_allclose(recorder.rates, expected, rtol=1e-6)
    assert recorder.rates[0] == pytest.approx(0.01) and recorder.rates[-1] == pytest.approx(0.001)


def test_a_resumed_run_continues_on_the_curve_from_the_optimizer_step():
    model = tiny_model(0.5)  # a decayed rate restored with the optimizer is not the base
    model.optimizer.iterations.assign(4)
    recorder = RecordRate()
    callback = training.CosineLearningRate(8, base_rate=0.01)
    x = np.ones((6, 2), "float32")
    model.fit(x, x[:, :1], batch_size=6, epochs=1, callbacks=[callback, recorder], verbose=0)
    assert recorder.rates == [pytest.approx(0.01 * (0.1 + 0.9 * 0.5))]


def test_constant_adds_no_callback_and_unknown_schedules_are_config_errors():
    assert training.schedule_callbacks(TrainConfig(), 10) == []
    with pytest.raises(ConfigError, match="train.learning_rate_schedule"):
        config_lib.apply_overrides(ForecastConfig(), {"train.learning_rate_schedule": "linear"})


def test_without_a_base_rate_each_model_starts_from_its_own_rate():
    """Tuning trials share one callback list: each trial's rate is its own."""
    callback = training.CosineLearningRate(4)
    x = np.ones((6, 2), "float32")
    for rate in (0.02, 0.003):
        recorder = RecordRate()
        model = tiny_model(rate)
        model.fit(x, x[:, :1], batch_size=6, epochs=1, callbacks=[callback, recorder], verbose=0)
        assert recorder.rates == [pytest.approx(rate)]


def test_forecast_rejects_two_schedules_at_once():
    from apps.forecast import APP

    config = config_lib.apply_overrides(
        ForecastConfig(), {"model.lr_decay": 0.5, "train.learning_rate_schedule": "cosine"}
    )
    with pytest.raises(ConfigError, match="model.lr_decay and train.learning_rate_schedule"):
        APP.check_config(config)


def test_weight_decay_is_decoupled_from_the_gradient():
    """train.weight_decay gives AdamW: with a zero gradient a weight still shrinks by lr * wd."""
    optimizer = training.make_optimizer(TrainConfig(learning_rate=0.1, weight_decay=0.2))
    weight = keras.Variable(np.full((3,), 5.0, "float32"))
    optimizer.apply_gradients([(keras.ops.zeros((3,)), weight)])
    np.testing.assert_allclose(weight.numpy(), 5.0 * (1 - 0.1 * 0.2), rtol=1e-6)
    plain = training.make_optimizer(TrainConfig(learning_rate=0.1))
    weight = keras.Variable(np.full((3,), 5.0, "float32"))
    plain.apply_gradients([(keras.ops.zeros((3,)), weight)])
    np.testing.assert_allclose(weight.numpy(), 5.0)
    with pytest.raises(ConfigError, match=r"train.weight_decay: must be >= 0 and <= 1, got -0.1"):
        training.make_optimizer(TrainConfig(weight_decay=-0.1))
