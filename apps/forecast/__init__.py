"""Time-series forecasting (ETT, your own CSVs): look-back windows in, horizon out.

`APP` is this package's side of the contract in `apps.common.app`. Each split is one
element holding its series (`apps.forecast.data`); `examples` cuts it into windows,
standardized with the train split's mean and deviation (in `data_info`, inside exports).

Example:

    python -m apps.forecast train --data ett/ETTh1 model.lookback=720 model.horizon=96
    python -m apps.forecast evaluate --split test
    python -m apps.forecast predict --model RUN_OR_EXPORT ../shared/data/ett/ETTh1.csv
"""

from apps.common.app import App
from apps.forecast.config import ForecastConfig

# TensorFlow-backed modules are imported inside the methods (fast `--help`).

LOOKBACK_CHOICES = (96, 192, 336, 720)


class ForecastApp(App):
    """Forecasting: `history (batch, lookback, features)` -> `forecast (batch, horizon, targets)`."""

    name = "forecast"
    config_class = ForecastConfig
    objective = "val_loss"
    objective_direction = "min"
    compatibility_keys = ("columns", "targets")

    def __init__(self):
        # The configured look-back bounds the look-backs `tune` tries: windows are cut once.
        self._window_lookback = max(LOOKBACK_CHOICES)

    def load_data(self, config):
        from apps.forecast import data

        return data.load(config.data)

    def describe_data(self, config, loaded):
        """Columns, targets and the scaler: mean and deviation of the TRAIN rows only."""
        import numpy as np

        from apps.common.errors import ConfigError

        element = next(iter(loaded.splits["train"].take(1)))
        values = element["values"].numpy()[int(element["context"]) :]
        columns = list(loaded.info["columns"])
        targets = list(config.data.target_columns) or columns
        unknown = [name for name in targets if name not in columns]
        if unknown:
            raise ConfigError(f"data.target_columns: {unknown} not among the features {columns}")
        std = values.std(axis=0)
        return {
            "columns": columns,
            "targets": targets,
            "target_indices": [columns.index(name) for name in targets],
            "mean": values.mean(axis=0).astype(float).tolist(),
            "std": np.where(std > 1e-8, std, 1.0).astype(float).tolist(),
            "scaler_rows": int(len(values)),
            "source": loaded.info["source"],
            "split_rows": loaded.info["split_rows"],
        }

    def check_config(self, config):
        from apps.common.errors import ConfigError, check_range

        super().check_config(config)
        model = config.model
        check_range("model.lookback", model.lookback, minimum=1)
        check_range("model.horizon", model.horizon, minimum=1)
        check_range("model.segment_length", model.segment_length, minimum=1)
        check_range("model.units", model.units, minimum=2)
        check_range("model.dropout", model.dropout, minimum=0, maximum=0.95)
        check_range("model.lr_decay", model.lr_decay, minimum=0, maximum=1, exclusive_minimum=True)
        check_range("data.stride", config.data.stride, minimum=1)
        if model.lr_decay != 1.0 and config.train.learning_rate_schedule != "constant":
            raise ConfigError(
                "model.lr_decay and train.learning_rate_schedule both set the learning rate; "
                "choose one"
            )
        if model.kind in ("segrnn", "direct", "seq2seq") and model.lookback % model.segment_length:
            raise ConfigError(
                f"model.lookback {model.lookback} is no multiple of model.segment_length "
                f"{model.segment_length}"
            )
        if model.kind == "seasonal" and not 1 <= model.season <= model.lookback:
            raise ConfigError(
                f"model.season: must be in [1, model.lookback={model.lookback}], got {model.season}"
            )
        self._window_lookback = model.lookback

    def build_model(self, config, data_info):
        from apps.forecast import model

        return model.build_model(config, data_info)

    def serving_endpoints(self, keras_model, config, data_info):
        from apps.forecast import model

        return model.serving_endpoints(keras_model, config, data_info)

    def callbacks(self, config, data_info, validation_batches):
        """Multiplies the learning rate by `model.lr_decay` at the start of each later epoch.

        Multiplicative, so a tuning trial's own rate decays and a resumed run continues
        from the restored optimizer's rate.
        """
        decay = config.model.lr_decay
        if decay == 1.0:
            return []
        import keras

        return [
            keras.callbacks.LearningRateScheduler(
                lambda epoch, rate: rate * decay if epoch > 0 else rate
            )
        ]

    def register_layers(self):
        from apps.forecast import model  # noqa: F401

    def examples(self, dataset, config, data_info, training):
        """Windows `(lookback rows, the next horizon rows of the targets)`, standardized.

        Targets start at the split's own first row (at `lookback` for train), so the
        look-back of a validation or test window may lie in earlier splits; `data.stride`
        rows apart in training, every row in evaluation.
        """
        from apps.forecast import windows

        return windows.make_windows(
            dataset,
            data_info,
            config.model.lookback,
            config.model.horizon,
            config.data.stride if training else 1,
        )

    def search_space(self, hp):
        """Model kind, cell, units, segment length, look-back (up to the configured one)."""
        lookbacks = [v for v in LOOKBACK_CHOICES if v <= self._window_lookback]
        return {
            "model.kind": hp.Choice("model.kind", ["segrnn", "direct", "seq2seq"]),
            "model.cell": hp.Choice("model.cell", ["gru", "lstm", "mingru", "minlstm"]),
            "model.units": hp.Choice("model.units", [64, 128, 256, 512]),
            "model.segment_length": hp.Choice("model.segment_length", [12, 24, 48]),
            "model.lookback": hp.Choice("model.lookback", lookbacks or [self._window_lookback]),
            "model.dropout": round(hp.Float("model.dropout", 0.0, 0.5, step=0.1), 2),
            "train.learning_rate": hp.Float("train.learning_rate", 1e-4, 3e-3, sampling="log"),
        }

    def evaluate(self, serving_model, batches, output_dir):
        """MSE/MAE standardized and raw, overall and per step; PNGs; `evaluation.json`."""
        from apps.forecast import windows

        return windows.evaluate(serving_model, batches, output_dir)

    def whole_file_config(self, config):
        return config

    def add_predict_arguments(self, parser):
        parser.add_argument(
            "--output", default="forecast.png", help="PNG of the history tail and forecast"
        )

    def predict(self, serving_model, lines, options):
        """Each input is a CSV path: forecast after its last `lookback` rows, printed and plotted."""
        from apps.forecast import windows

        for path in lines:
            windows.predict_csv(serving_model, path, options.output)


APP = ForecastApp()
