"""Windows of a series, evaluation in standardized and raw units, and `predict` on a CSV.

Example:

    examples = make_windows(loaded.splits["validation"], data_info, lookback=720, horizon=96)
    history, target = next(iter(examples))          # (720, features), (96, targets)
"""

import os

import numpy as np
import tensorflow as tf

from apps.common import plots
from apps.common.errors import InputError
from apps.common.metrics import regression_report


def make_windows(dataset, data_info, lookback, horizon, stride=1):
    """`(history, target)` windows of one-series elements, standardized with the train scaler.

    An element `{"values": (time, features), "context": c}` gives targets starting at rows
    `max(c, lookback)`, `+ stride`, ... while `horizon` rows remain; each history is the
    `lookback` rows just before its target, so it may reach into the first `c` rows.
    """
    mean = tf.constant(data_info["mean"], tf.float32)
    std = tf.constant(data_info["std"], tf.float32)
    targets = tf.constant(data_info["target_indices"], tf.int32)
    features = len(data_info["columns"])

    def windows_of(element):
        values = (element["values"] - mean) / std
        first = tf.maximum(element["context"], lookback)
        rows = tf.cast(tf.shape(values)[0], tf.int64)
        starts = tf.data.Dataset.range(first, rows - horizon + 1, stride)

        def window(start):
            history = tf.ensure_shape(values[start - lookback : start], (lookback, features))
            future = tf.gather(values[start : start + horizon], targets, axis=1)
            return history, tf.ensure_shape(future, (horizon, len(data_info["target_indices"])))

        return starts.map(window)

    return dataset.flat_map(windows_of)


def standardized_predictions(serving_model, batches):
    """`(standardized histories, targets, predictions)` through the raw-unit serving function."""
    info = serving_model.data_info
    mean, std = np.asarray(info["mean"], np.float32), np.asarray(info["std"], np.float32)
    targets = info["target_indices"]
    lookback = serving_model.config.model.lookback
    histories, truths, predictions = [], [], []
    for inputs, outputs in batches:
        history = np.asarray(inputs)[:, -lookback:]
        raw = serving_model.call({"history": history * std + mean})["forecast"]
        histories.append(history)
        truths.append(np.asarray(outputs))
        predictions.append((raw - mean[targets]) / std[targets])
    if not truths:
        raise InputError("nothing to evaluate: no window fits in the split")
    return np.concatenate(histories), np.concatenate(truths), np.concatenate(predictions)


def evaluate(serving_model, batches, output_dir):
    """Writes `evaluation.json`, `forecasts.png` and `error_by_step.png`; returns the report."""
    from apps.common.evaluation import write_report

    info = serving_model.data_info
    histories, truths, predictions = standardized_predictions(serving_model, batches)
    targets = info["target_indices"]
    scale = (np.asarray(info["mean"])[targets], np.asarray(info["std"])[targets])
    report = regression_report(truths, predictions, scale=scale)
    report["targets"] = info["targets"]
    print(
        f"windows: {report['windows']}  MSE {report['mse']:.4f}  MAE {report['mae']:.4f} "
        f"(standardized)  raw MSE {report['raw_mse']:.4f}  raw MAE {report['raw_mae']:.4f}"
    )
    write_report(report, output_dir)
    channel = len(targets) - 1  # The last target (OT in ETT files).
    picks = np.linspace(0, len(truths) - 1, num=min(4, len(truths))).astype(int)
    mean, std = scale[0][channel], scale[1][channel]
    plots.plot_forecasts(
        [
            (
                f"window {index}",
                histories[index][:, targets[channel]] * std + mean,
                truths[index][:, channel] * std + mean,
                predictions[index][:, channel] * std + mean,
            )
            for index in picks
        ],
        os.path.join(output_dir, "forecasts.png"),
        title=f"{info['targets'][channel]}: forecast and actual (raw units)",
    )
    plots.plot_error_by_step(
        {"MSE": report["mse_by_step"], "MAE": report["mae_by_step"]},
        os.path.join(output_dir, "error_by_step.png"),
        title="error by horizon step (standardized)",
    )
    print(f"wrote {output_dir}/forecasts.png, {output_dir}/error_by_step.png")
    if serving_model.keras_model is not None:
        plot_attention(serving_model.keras_model, histories[:1], info, output_dir)
    return report


def plot_attention(keras_model, history, info, output_dir):
    """`attention.png` of a seq2seq model: horizon segments against look-back segments.

    Shows the first window's last target channel; models without attention are skipped.
    """
    names = [layer.name for layer in keras_model.layers]
    if "segment_forecast" not in names:
        return
    layer = keras_model.get_layer("segment_forecast")
    if layer.decoder != "attention":
        return
    normalized = keras_model.get_layer("norm")(history)[0]
    _, weights = layer(normalized, return_attention=True)
    # Channel-independent: one row per (window, channel); else one per window.
    row = info["target_indices"][-1] if layer.channel_independent else 0
    path = os.path.join(output_dir, "attention.png")
    plots.plot_attention_map(
        np.asarray(weights)[row],
        path,
        xlabel=f"look-back segment ({layer.segment_length} steps each; last = latest)",
        ylabel="horizon segment",
        title=f"attention over the look-back ({info['columns'][row] if layer.channel_independent else 'all channels'})",
    )
    print(f"wrote {path}")


def predict_csv(serving_model, path, output):
    """Prints the forecast after the last `lookback` rows of CSV `path`; plots it to `output`."""
    from apps.forecast import data

    config, info = serving_model.config, serving_model.data_info
    lookback = config.model.lookback
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (predict takes CSV paths)")
    times, values, columns = data.read_series(
        path, config.data.timestamp_column, info["columns"], config.data.missing
    )
    if len(values) < lookback:
        raise InputError(f"{path}: {len(values)} rows, the model needs the last {lookback}")
    history = values[-lookback:][None]
    forecast = serving_model.call({"history": history})["forecast"][0]
    future = future_times(times[-lookback:], len(forecast))
    print(f"forecast after {path} (last row {_format_time(times[-1])}):")
    print("time\t" + "\t".join(info["targets"]))
    for moment, row in zip(future, forecast, strict=True):
        print(_format_time(moment) + "\t" + "\t".join(f"{value:.4f}" for value in row))
    channel = len(info["targets"]) - 1
    shown = min(lookback, 4 * len(forecast))
    plots.plot_forecasts(
        [
            (
                os.path.basename(path),
                values[-shown:, info["target_indices"][channel]],
                None,
                forecast[:, channel],
            )
        ],
        output,
        title=f"{info['targets'][channel]}: history and forecast",
    )
    print(f"wrote {output}")


def future_times(times, steps):
    """The next `steps` timestamps after `times` (seconds): its median step, or calendar
    months when the step is a month (28 to 31 days)."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    if 27 * 86400 <= step <= 32 * 86400:
        last = np.datetime64(int(times[-1]), "s")
        month = last.astype("datetime64[M]")
        offset = last - month.astype("datetime64[s]")
        following = month + np.arange(1, steps + 1)
        return (following.astype("datetime64[s]") + offset).astype(np.int64).astype(float)
    return times[-1] + step * np.arange(1, steps + 1)


def _format_time(seconds):
    if abs(seconds) < 1e8:  # A step index, not a date.
        return f"{seconds:g}"
    return str(np.datetime64(int(round(seconds)), "s")).replace("T", " ")
