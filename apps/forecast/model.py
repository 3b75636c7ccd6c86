"""Forecasting models: segment recurrence (SegRNN), direct, seq2seq with attention, baselines.

Every model maps a standardized look-back `(batch, time >= lookback, features)` to a
standardized forecast `(batch, horizon, targets)`; the serving function around it applies
the train-split scaler, so the export takes and returns raw units.

Example:

    model = build_model(ForecastConfig(), {"columns": [...], "target_indices": [0, 1], ...})
    forecast = model(np.zeros((4, 720, 7), "float32"))      # (4, 96, 2)
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

import rnn_keras
from apps.common import export

PACKAGE = "apps.forecast"
BASELINES = ("last", "seasonal")


@keras.saving.register_keras_serializable(package=PACKAGE)
class TakeLast(keras.layers.Layer):
    """The last `steps` time steps of `(batch, time, features)`: a longer history is cropped."""

    def __init__(self, steps, **kwargs):
        super().__init__(**kwargs)
        self.steps = int(steps)

    def call(self, inputs):
        return inputs[:, -self.steps :, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.steps, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "steps": self.steps}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WindowNormalize(keras.layers.Layer):
    """Per-window, per-channel normalisation; returns `(normalized, location, scale)`.

    `last` subtracts the window's last value (SegRNN, NLinear); `revin` subtracts the mean
    and divides by the standard deviation (RevIN, Kim et al. 2022, without its affine map);
    `none` leaves the window as it is. Location and scale are `(batch, 1, features)`.
    """

    def __init__(self, method="last", epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.method = method
        self.epsilon = float(epsilon)

    def call(self, inputs):
        if self.method == "last":
            location, scale = inputs[:, -1:, :], ops.ones_like(inputs[:, -1:, :])
        elif self.method == "revin":
            location = ops.mean(inputs, axis=1, keepdims=True)
            scale = ops.sqrt(ops.var(inputs, axis=1, keepdims=True) + self.epsilon)
        else:
            location, scale = ops.zeros_like(inputs[:, -1:, :]), ops.ones_like(inputs[:, -1:, :])
        return (inputs - location) / scale, location, scale

    def get_config(self):
        return {**super().get_config(), "method": self.method, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WindowDenormalize(keras.layers.Layer):
    """Undoes `WindowNormalize` on a forecast of the channels `indices`."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(index) for index in indices]

    def call(self, forecast, location, scale):
        location = ops.take(location, self.indices, axis=2)
        return forecast * ops.take(scale, self.indices, axis=2) + location

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelectChannels(keras.layers.Layer):
    """The channels `indices` of `(batch, time, channels)`."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(index) for index in indices]

    def call(self, inputs):
        return ops.take(inputs, self.indices, axis=2)

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package=PACKAGE)
class NaiveForecast(keras.layers.Layer):
    """Seasonal naive forecast: step h repeats the value `season` steps before it.

    `season=1` is the last-value forecast. Output `(batch, horizon, features)`; the
    look-back must hold at least `season` steps.
    """

    def __init__(self, horizon, season=1, **kwargs):
        super().__init__(**kwargs)
        self.horizon, self.season = int(horizon), int(season)

    def call(self, inputs):
        positions = [-self.season + step % self.season for step in range(self.horizon)]
        steps = ops.shape(inputs)[1]
        return ops.take(inputs, ops.convert_to_tensor(positions) + steps, axis=1)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon, "season": self.season}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LinearForecast(keras.layers.Layer):
    """One linear map from the look-back to the horizon (NLinear/DLinear-like, Zeng 2023).

    Channel-independent: the same `(lookback, horizon)` map for every channel; otherwise one
    map from the whole window to `(horizon, outputs)`.
    """

    def __init__(self, horizon, channel_independent=True, outputs=1, **kwargs):
        super().__init__(**kwargs)
        self.horizon, self.outputs = int(horizon), int(outputs)
        self.channel_independent = bool(channel_independent)
        width = horizon if channel_independent else horizon * outputs
        self.dense = keras.layers.Dense(width, name="linear")

    def build(self, input_shape):
        _, steps, channels = input_shape
        self.dense.build((None, steps if self.channel_independent else steps * channels))

    def call(self, inputs):
        if self.channel_independent:
            return ops.transpose(self.dense(ops.transpose(inputs, (0, 2, 1))), (0, 2, 1))
        steps, channels = inputs.shape[1], inputs.shape[2]
        flat = ops.reshape(inputs, (-1, steps * channels))
        return ops.reshape(self.dense(flat), (-1, self.horizon, self.outputs))

    def get_config(self):
        return {
            **super().get_config(),
            "horizon": self.horizon,
            "channel_independent": self.channel_independent,
            "outputs": self.outputs,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SegmentForecast(keras.layers.Layer):
    """Segment recurrence (SegRNN, Lin et al. 2023) with three decoders.

    The look-back is cut into segments of `segment_length` steps, each embedded (dense +
    ReLU) and read by one rnn_keras cell over lookback / w steps. Then:

    * `pmf` (SegRNN): every horizon segment decoded in parallel by one step of the same
      cell from the encoder state, its input a position (and channel) embedding;
    * `direct`: the last state mapped to all horizon steps by one dense layer;
    * `attention` (seq2seq): the `pmf` decoder states attend (Bahdanau or Luong) over the
      encoder outputs; state and context give the segment.

    Args:
        horizon, segment_length, units, cell (`gru`, `lstm`, `elman`, `mingru`,
        `minlstm`), dropout.
        channels: input channels (channel embedding of `pmf`).
        channel_independent: one series per channel with shared weights, else all channels
            in each segment; outputs: forecast channels when not channel-independent.
        attention: `bahdanau` or `luong` for the `attention` decoder.

    Shapes: `(batch, lookback, channels)` -> `(batch, horizon, channels or outputs)`.
    """

    def __init__(
        self,
        horizon,
        segment_length,
        units,
        channels,
        cell="gru",
        dropout=0.0,
        decoder="pmf",
        channel_independent=True,
        outputs=1,
        attention="bahdanau",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.horizon, self.segment_length, self.units = int(horizon), int(segment_length), units
        self.channels, self.cell, self.dropout = int(channels), cell, float(dropout)
        self.decoder, self.channel_independent = decoder, bool(channel_independent)
        self.outputs, self.attention = int(outputs), attention
        self.out_segments = -(-self.horizon // self.segment_length)
        self.width = 1 if self.channel_independent else self.outputs
        self.embed = keras.layers.Dense(units, activation="relu", name="segment_embedding")
        self.recurrent = rnn_keras.Recurrent(
            rnn_keras.make_cell(cell, units),
            return_sequences=decoder == "attention",
            return_state=True,
            name="recurrent",
        )
        self.drop = keras.layers.Dropout(dropout)
        width = self.horizon * self.width if decoder == "direct" else segment_length * self.width
        self.project = keras.layers.Dense(width, name="projection")
        self.scorer = None
        if decoder == "attention":
            self.scorer = (
                rnn_keras.BahdanauAttention(units, name="attention")
                if attention == "bahdanau"
                else rnn_keras.LuongAttention(score_mode="general", name="attention")
            )

    def build(self, input_shape):
        steps = input_shape[1]
        if steps % self.segment_length:
            raise ValueError(f"lookback {steps} is no multiple of segment_length")
        self.in_segments = steps // self.segment_length
        features = self.segment_length * (1 if self.channel_independent else self.channels)
        self.embed.build((None, self.in_segments, features))
        self.recurrent.build((None, self.in_segments, self.units))
        if self.decoder != "direct":
            half = self.units // 2 if self.channel_independent else self.units
            self.positions = self.add_weight(
                name="position_embedding",
                shape=(self.out_segments, half),
                initializer=keras.initializers.RandomNormal(stddev=1.0),
            )
            if self.channel_independent:
                self.channel_embedding = self.add_weight(
                    name="channel_embedding",
                    shape=(self.channels, self.units - half),
                    initializer=keras.initializers.RandomNormal(stddev=1.0),
                )
        extra = self.units if self.scorer is not None else 0
        self.project.build((None, self.units + extra))
        if self.scorer is not None:
            self.scorer.build((None, self.out_segments, self.units), (None, None, self.units))

    def _decoder_inputs(self, series):
        """Position (and channel) embeddings, `(series * out_segments, 1, units)`."""
        if self.channel_independent:
            shape = (self.channels, self.out_segments)
            positions = ops.broadcast_to(self.positions[None], (*shape, self.units // 2))
            channels = ops.broadcast_to(
                self.channel_embedding[:, None], (*shape, self.units - self.units // 2)
            )
            table = ops.concatenate([positions, channels], axis=-1)
        else:
            table = self.positions[None]
        batch = series // table.shape[0]
        table = ops.broadcast_to(table[None], (batch, *table.shape))
        return ops.reshape(table, (-1, 1, self.units))

    def call(self, inputs, training=False, return_attention=False):
        batch = ops.shape(inputs)[0]
        if self.channel_independent:  # (batch * channels, segments, w)
            series = ops.transpose(inputs, (0, 2, 1))
            series = ops.reshape(series, (-1, self.in_segments, self.segment_length))
        else:  # (batch, segments, w * channels)
            width = self.segment_length * self.channels
            series = ops.reshape(inputs, (-1, self.in_segments, width))
        encoded = self.recurrent(self.embed(series), training=training)
        outputs, states = encoded[0], list(encoded[1:])
        weights = None
        if self.decoder == "direct":
            result = self.project(self.drop(states[0], training=training))
        else:
            repeated = [ops.repeat(state, self.out_segments, axis=0) for state in states]
            decoder_inputs = self._decoder_inputs(ops.shape(series)[0])
            decoded = self.recurrent(decoder_inputs, initial_state=repeated, training=training)
            decoded = ops.reshape(decoded[0], (-1, self.out_segments, self.units))
            if self.scorer is not None:
                context, weights = self.scorer(decoded, outputs)
                decoded = ops.concatenate([decoded, context], axis=-1)
            result = self.project(self.drop(decoded, training=training))
        if self.channel_independent:  # (batch * channels, horizon or segments, w)
            result = ops.reshape(result, (batch, self.channels, -1))[:, :, : self.horizon]
            result = ops.transpose(result, (0, 2, 1))
        else:  # (batch, horizon * outputs) or (batch, segments, w * outputs)
            result = ops.reshape(result, (batch, -1, self.outputs))[:, : self.horizon]
        return (result, weights) if return_attention else result

    def get_config(self):
        return {
            **super().get_config(),
            "horizon": self.horizon,
            "segment_length": self.segment_length,
            "units": self.units,
            "channels": self.channels,
            "cell": self.cell,
            "dropout": self.dropout,
            "decoder": self.decoder,
            "channel_independent": self.channel_independent,
            "outputs": self.outputs,
            "attention": self.attention,
        }


DECODERS = {"segrnn": "pmf", "direct": "direct", "seq2seq": "attention"}


def build_model(config, data_info):
    """The compiled Keras model of `config.model.kind`; loss `model.loss`, metrics MSE, MAE."""
    from apps.common.training import make_optimizer

    model_config = config.model
    columns, targets = data_info["columns"], data_info["target_indices"]
    inputs = keras.Input((None, len(columns)), name="history")
    window = TakeLast(model_config.lookback, name="lookback")(inputs)
    if model_config.kind in BASELINES:
        season = model_config.season if model_config.kind == "seasonal" else 1
        forecast = NaiveForecast(model_config.horizon, season, name="naive")(window)
        forecast = SelectChannels(targets, name="targets")(forecast)
    else:
        normalized, location, scale = WindowNormalize(model_config.normalization, name="norm")(
            window
        )
        independent = model_config.channel_independent or model_config.kind == "segrnn"
        if model_config.kind == "linear":
            core = LinearForecast(
                model_config.horizon, independent, len(targets), name="linear_forecast"
            )
        else:
            core = SegmentForecast(
                model_config.horizon,
                model_config.segment_length,
                model_config.units,
                len(columns),
                cell=model_config.cell,
                dropout=model_config.dropout,
                decoder=DECODERS[model_config.kind],
                channel_independent=independent,
                outputs=len(targets),
                attention=model_config.attention,
                name="segment_forecast",
            )
        forecast = core(normalized)
        if independent and len(targets) != len(columns):
            forecast = SelectChannels(targets, name="targets")(forecast)
        forecast = WindowDenormalize(targets, name="denorm")(forecast, location, scale)
    model = keras.Model(inputs, forecast, name=f"forecast_{model_config.kind}")
    model.compile(
        optimizer=make_optimizer(config.train), loss=model_config.loss, metrics=["mse", "mae"]
    )
    return model


def serving_endpoints(model, config, data_info):
    """`serving_default`: raw history `(batch, lookback, features)` -> raw `forecast`."""
    features = len(data_info["columns"])
    signature = [
        tf.TensorSpec(
            shape=(None, config.model.lookback, features), dtype=tf.float32, name="history"
        )
    ]
    mean = np.asarray(data_info["mean"], np.float32)
    std = np.asarray(data_info["std"], np.float32)
    targets = data_info["target_indices"]

    def serve(history):
        history = export.check_input_shape(history, signature[0])
        standardized = model((history - mean) / std, training=False)
        return {"forecast": standardized * std[targets] + mean[targets]}

    return {"serving_default": (serve, signature)}
