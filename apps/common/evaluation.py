"""The `evaluate` command, and evaluation helpers that apps reuse (classifiers).

`evaluate_command` loads the data a model should be measured on (a split of its own
source, another source, or a file) and hands batches to the app's `App.evaluate`, with a
`ServingModel` from a run directory or an export, so both are measured the same way.
"""

import json
import os

import numpy as np

from apps.common import plots
from apps.common.errors import DataSourceError, UserError
from apps.common.metrics import classification_report


def evaluate_classifier(predict_probabilities, batches, class_names, output_dir, title=""):
    """Runs `predict_probabilities` over `(inputs, labels)` batches and reports.

    Writes `evaluation.json` and `confusion_matrix.png` into `output_dir` and prints a
    table of per-class figures.
    """
    true_labels, predicted_labels = [], []
    for inputs, labels in batches:
        probabilities = np.asarray(predict_probabilities(inputs))
        true_labels.append(np.asarray(labels).reshape(-1))
        predicted_labels.append(np.argmax(probabilities, axis=-1).reshape(-1))
    if not true_labels:
        raise DataSourceError("nothing to evaluate: the data is empty")
    report = classification_report(
        np.concatenate(true_labels), np.concatenate(predicted_labels), class_names
    )
    print(format_report(report))
    write_report(report, output_dir)
    plots.plot_confusion_matrix(
        report["confusion_matrix"],
        [str(name) for name in class_names],
        os.path.join(output_dir, "confusion_matrix.png"),
        title=title or "confusion matrix",
    )
    print(f"wrote {output_dir}/confusion_matrix.png")
    return report


def write_report(report, output_dir):
    """Writes `evaluation.json` into `output_dir`; the figures were printed before this."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "evaluation.json"), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    except OSError as error:
        raise UserError(
            f"cannot write {output_dir}/evaluation.json ({error.strerror}); the metrics are "
            "printed above; choose a writable --output-dir"
        ) from None
    print(f"wrote {output_dir}/evaluation.json")


def format_report(report):
    """The report as a small text table."""
    width = max([len(name) for name in report["per_class"]] + [9])
    lines = [
        f"examples: {report['examples']}  accuracy: {report['accuracy']:.4f}  "
        f"macro F1: {report['macro_f1']:.4f}",
        f"{'class':<{width}}  precision  recall     f1  support",
    ]
    for name, row in report["per_class"].items():
        lines.append(
            f"{name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}"
            f"  {row['support']:7d}"
        )
    return "\n".join(lines)


def evaluate_command(app, serving_model, arguments):
    """`evaluate`: a split of the model's own data, another `--data` source, or a `--file`.

    The data section of the model's config is reused (columns, encoding, label names),
    with `--data`/`--file` replacing `data.source` and `key=value` overrides on top. A
    file is evaluated whole: all of its splits together (`App.whole_file_config`).
    """
    from apps.common import config as config_lib
    from apps.common import training

    config = serving_model.config
    overrides = list(arguments.overrides)
    source = arguments.file or arguments.data
    if source:
        overrides.insert(0, f"data.source={source}")
    config = config_lib.apply_overrides(config, overrides)
    if arguments.file:
        config = app.whole_file_config(config)
    loaded = app.load_data(config)
    for note in loaded.notes:
        print(f"data: {note}")
    app.check_compatible(serving_model.data_info, loaded.info, source or config.data.source)
    if arguments.file:
        splits = list(loaded.splits.values())
        dataset = splits[0]
        for other in splits[1:]:
            dataset = dataset.concatenate(other)
        name = os.path.splitext(os.path.basename(arguments.file))[0]
    else:
        if arguments.split not in loaded.splits:
            raise DataSourceError(
                f"--split {arguments.split}: not in the data (splits: {sorted(loaded.splits)})"
            )
        dataset = loaded.splits[arguments.split]
        name = arguments.split
    output_dir = arguments.output_dir or os.path.join(
        serving_model.source
        if not os.path.exists(os.path.join(serving_model.source, "saved_model.pb"))
        else ".",
        f"evaluation_{name}",
    )
    batches, _ = training.make_batches(
        app, config, serving_model.data_info, dataset, training=False
    )
    return app.evaluate(serving_model, batches, output_dir)
