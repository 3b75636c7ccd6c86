"""Two small apps defined only here, to hold the shared pipeline to its contract (`App`).

`NumericApp` forecasts float windows of a series read from a `.npy` file: splits carved
in time order, windows cut from one element stream, `val_loss` minimised. `TaggerApp`
tags each token of variable-length sentences read from a text file: padded batches,
per-token labels, a callback-computed `val_token_accuracy` maximised.
"""

import dataclasses

import numpy as np

from apps.common.app import App
from apps.common.config import ExportConfig, TrainConfig, TuneConfig
from apps.common.errors import DataError, check_range


@dataclasses.dataclass
class SourceConfig:
    source: str = ""
    validation_fraction: float = 0.25


@dataclasses.dataclass
class SmallModelConfig:
    units: int = 8
    lookback: int = 6


def _config_class(name):
    def section(kind):
        return dataclasses.field(default_factory=kind)

    return dataclasses.make_dataclass(
        name,
        [
            ("seed", int, 7),
            ("data", SourceConfig, section(SourceConfig)),
            ("model", SmallModelConfig, section(SmallModelConfig)),
            ("train", TrainConfig, section(lambda: TrainConfig(epochs=2, batch_size=8))),
            ("tune", TuneConfig, section(lambda: TuneConfig(max_trials=2, epochs=1))),
            ("export", ExportConfig, section(ExportConfig)),
        ],
    )


class NumericApp(App):
    """Next value of a series from the `lookback` values before it."""

    name = "numeric"
    config_class = _config_class("NumericConfig")
    objective, objective_direction = "val_loss", "min"

    def load_data(self, config):
        import tensorflow as tf

        from apps.common.data import load_source

        def read_local(notes):
            series = np.load(config.data.source).astype("float32")
            if not np.all(np.isfinite(series)):
                row = int(np.argwhere(~np.isfinite(series))[0][0])
                raise DataError(config.data.source, row + 1, "value is not finite")
            return {"train": tf.data.Dataset.from_tensor_slices(series)}, {}

        return load_source(
            config.data.source,
            read_catalog=None,
            read_local=read_local,
            validation_fraction=config.data.validation_fraction,
            validation_strategy="tail",
        )

    def describe_data(self, config, loaded):
        values = np.fromiter(loaded.splits["train"].as_numpy_iterator(), dtype=np.float32)
        return {"mean": float(values.mean()), "std": float(values.std())}

    def examples(self, dataset, config, data_info, training):
        size = config.model.lookback + 1
        windows = dataset.window(size, shift=1, drop_remainder=True).flat_map(
            lambda window: window.batch(size)
        )
        return windows.map(lambda w: (w[:-1, None], w[-1:]))

    def build_model(self, config, data_info):
        import keras

        import rnn_keras

        history = keras.Input((config.model.lookback, 1), name="history")
        scaled = (history - data_info["mean"]) / data_info["std"]
        (encoder,) = rnn_keras.recurrent_layers(kind="gru", units=config.model.units)
        scaled_next = keras.layers.Dense(1)(keras.layers.Dropout(0.2)(encoder(scaled)))
        model = keras.Model(history, scaled_next * data_info["std"] + data_info["mean"])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        return model

    def serving_endpoints(self, model, config, data_info):
        import tensorflow as tf

        from apps.common import export

        spec = tf.TensorSpec((None, config.model.lookback, 1), tf.float32, name="history")

        def serve(history):
            return {"forecast": model(export.check_input_shape(history, spec), training=False)}

        return {"serving_default": (serve, [spec])}

    def search_space(self, hp):
        return {"model.units": hp.Choice("model.units", [4, 8])}

    def check_config(self, config):
        super().check_config(config)
        check_range("model.units", config.model.units, minimum=1)
        check_range("model.lookback", config.model.lookback, minimum=1)

    def parse_inputs(self, lines, options):
        rows = [[[float(value)] for value in line.split()] for line in lines]
        return {"history": np.array(rows, dtype=np.float32)}

    def format_outputs(self, lines, outputs, options):
        return [f"{float(value[0]):.4f}" for value in outputs["forecast"]]


class TaggerApp(App):
    """Tags each token 1 when it is written in capitals, else 0 (a learnable rule)."""

    name = "tagger"
    config_class = _config_class("TaggerConfig")
    objective, objective_direction = "val_token_accuracy", "max"

    def load_data(self, config):
        import tensorflow as tf

        from apps.common.data import load_source

        def read_local(notes):
            sentences = []
            with open(config.data.source, encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.split():
                        raise DataError(config.data.source, number, "empty sentence")
                    sentences.append(line.split())
            tokens = tf.ragged.constant(sentences)
            tags = tf.cast(tf.strings.upper(tokens) == tokens, tf.int64)
            return {
                "train": tf.data.Dataset.from_tensor_slices({"tokens": tokens, "tags": tags})
            }, {}

        return load_source(
            config.data.source,
            read_catalog=None,
            read_local=read_local,
            validation_fraction=config.data.validation_fraction,
            seed=config.seed,
        )

    def describe_data(self, config, loaded):
        words = set()
        for element in loaded.splits["train"].as_numpy_iterator():
            words.update(token.decode() for token in element["tokens"])
        return {"vocabulary": sorted(words)}

    def to_model_inputs(self, element):
        return element["tokens"], element["tags"]

    def build_model(self, config, data_info):
        import keras

        import rnn_keras

        tokens = keras.Input((None,), dtype="string", name="tokens")
        ids = keras.layers.StringLookup(vocabulary=data_info["vocabulary"], mask_token="")(tokens)
        embedded = keras.layers.Embedding(len(data_info["vocabulary"]) + 2, 8, mask_zero=True)(ids)
        (encoder,) = rnn_keras.recurrent_layers(
            kind="lstm", units=config.model.units, bidirectional=True, return_sequences=True
        )
        probabilities = keras.layers.Dense(2, activation="softmax")(encoder(embedded))
        model = keras.Model(tokens, probabilities)
        model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
        return model

    def callbacks(self, config, data_info, validation_batches):
        import keras

        from apps.common import metrics

        class TokenAccuracy(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                right = []
                for tokens, tags in validation_batches:
                    predicted = np.argmax(self.model(tokens, training=False), axis=-1)
                    right.append(metrics.masked_accuracy(tags, predicted, tokens.numpy() != b""))
                logs["val_token_accuracy"] = float(np.mean(right))

        return [TokenAccuracy()]

    def serving_endpoints(self, model, config, data_info):
        import tensorflow as tf

        from apps.common import export

        spec = tf.TensorSpec((None, None), tf.string, name="tokens")

        def serve(tokens):
            probabilities = model(export.check_input_shape(tokens, spec), training=False)
            tags = tf.argmax(probabilities, axis=-1)
            return {"tags": tf.where(tokens == "", tf.constant(-1, tf.int64), tags)}

        return {"serving_default": (serve, [spec])}

    def search_space(self, hp):
        return {"model.units": hp.Choice("model.units", [4, 8])}

    def parse_inputs(self, lines, options):
        rows = [line.split() for line in lines]
        width = max(len(row) for row in rows)
        return {"tokens": np.array([row + [""] * (width - len(row)) for row in rows], object)}

    def format_outputs(self, lines, outputs, options):
        return [
            " ".join(f"{token}/{tag}" for token, tag in zip(line.split(), row, strict=False))
            for line, row in zip(lines, outputs["tags"], strict=True)
        ]


NUMERIC = NumericApp()
TAGGER = TaggerApp()
