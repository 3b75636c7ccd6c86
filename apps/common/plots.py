"""PNG figures a person would rather look at than read: training curves, confusion
matrices and attention weights per token. Matplotlib's Agg backend, no display needed."""

import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(figure, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_training_curves(history, path):
    """One panel per metric (loss, accuracy, ...), train and validation per epoch.

    Args:
        history: list of dicts per epoch, as read from the history CSV
            (keys `epoch`, `loss`, `val_loss`, `accuracy`, ...).
        path: where to write the PNG.
    """
    if not history:
        return None
    # A score computed only on validation (e.g. an entity F1 from a callback) gets a panel too.
    names = sorted(
        {key.removeprefix("val_") for row in history for key in row}
        - {"epoch", "learning_rate", "elapsed_seconds"}
    )
    epochs = [int(row.get("epoch", index)) + 1 for index, row in enumerate(history)]
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        for key, style in ((name, "o-"), (f"val_{name}", "s--")):
            values = [row.get(key, np.nan) for row in history]
            if not np.all(np.isnan(values)):
                axis.plot(epochs, values, style, label="validation" if key != name else "train")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(figure, path)


def plot_confusion_matrix(matrix, class_names, path, title="confusion matrix"):
    """Counts of true class (rows) against predicted class (columns), annotated."""
    matrix = np.asarray(matrix)
    size = max(3.5, 0.7 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            axis.text(
                column,
                row,
                str(matrix[row, column]),
                ha="center",
                va="center",
                color="white" if matrix[row, column] > threshold else "black",
            )
    return _save(figure, path)


def plot_token_weights(rows, path, title="attention weight per token"):
    """A heatmap strip per text: its tokens and the weight each one received.

    Args:
        rows: list of `(label, tokens, weights)`; tokens and weights of equal length.
        path: where to write the PNG.
    """
    longest = max((len(tokens) for _, tokens, _ in rows), default=1)
    wrap = min(max(longest, 1), 20)
    lines = []
    for label, tokens, weights in rows:
        for start in range(0, max(len(tokens), 1), wrap):
            lines.append(
                (
                    label if start == 0 else "",
                    tokens[start : start + wrap],
                    weights[start : start + wrap],
                )
            )
    figure, axis = plt.subplots(figsize=(1.0 * wrap + 2, 0.55 * len(lines) + 1.2))
    grid = np.full((len(lines), wrap), np.nan)
    for index, (_, _, weights) in enumerate(lines):
        grid[index, : len(weights)] = weights
    image = axis.imshow(grid, cmap="Reds", aspect="auto", vmin=0)
    figure.colorbar(image, ax=axis, fraction=0.03)
    for index, (_, tokens, weights) in enumerate(lines):
        for column, (token, weight) in enumerate(zip(tokens, weights, strict=True)):
            axis.text(
                column,
                index,
                token,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if weight > 0.6 * np.nanmax(grid) else "black",
            )
    axis.set_yticks(range(len(lines)), [label for label, _, _ in lines])
    axis.set_xticks([])
    axis.set_title(title)
    return _save(figure, path)


def plot_forecasts(rows, path, title="forecast and actual"):
    """One panel per series window: its history, the actual continuation and the forecast.

    Args:
        rows: list of `(label, history, actual, forecast)`, 1-D arrays; `actual` may be None
            (a forecast past the end of the data). The forecast is drawn right after the
            history.
        path: where to write the PNG.

    Example:
        plot_forecasts([("window 0", x[:96], y, y_hat)], "forecasts.png")
    """
    figure, axes = plt.subplots(len(rows), 1, figsize=(9, 2.4 * len(rows)), squeeze=False)
    for axis, (label, history, actual, forecast) in zip(axes[:, 0], rows, strict=True):
        past = np.arange(-len(history), 0)
        axis.plot(past, history, color="0.45", linewidth=1, label="history")
        future = np.arange(len(forecast))
        if actual is not None:
            axis.plot(future, actual, color="tab:blue", linewidth=1.2, label="actual")
        axis.plot(future, forecast, color="tab:red", linewidth=1.2, label="forecast")
        axis.axvline(-0.5, color="0.7", linestyle=":")
        axis.set_title(label, fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
    axes[0, 0].set_title(f"{title}\n{rows[0][0]}", fontsize=9)
    axes[-1, 0].set_xlabel("step (0 = first forecast step)")
    return _save(figure, path)


def plot_error_by_step(series, path, title="error by step"):
    """Lines of an error measure against the forecast step (1 = the first step ahead).

    Args:
        series: name (e.g. `MSE`) to a list of values, one per step.
        path: where to write the PNG.
    """
    figure, axis = plt.subplots(figsize=(6.5, 3.6))
    for name, values in series.items():
        axis.plot(np.arange(1, len(values) + 1), values, label=name)
    axis.set_xlabel("step ahead")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def plot_attention_map(
    weights, path, xlabel="source position", ylabel="output position", title="attention weights"
):
    """A heatmap of attention weights, one row per output position (rows sum to 1).

    Args:
        weights: `(outputs, sources)` array.
        path: where to write the PNG.
    """
    weights = np.asarray(weights)
    figure, axis = plt.subplots(
        figsize=(min(12, 2 + 0.45 * weights.shape[1]), 1.5 + 0.4 * len(weights))
    )
    image = axis.imshow(weights, cmap="Reds", aspect="auto", vmin=0)
    figure.colorbar(image, ax=axis, fraction=0.03)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    return _save(figure, path)
