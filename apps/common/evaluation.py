"""Evaluation of classifiers: accuracy, per-class precision / recall / F1, confusion matrix.

Works from any function returning class probabilities (a Keras model, a run dir's
serving function or a reloaded SavedModel signature), so a run and its export are
measured the same way.
"""

import json
import os

import numpy as np

from apps.common import plots


def classification_report(true_labels, predicted_labels, class_names):
    """Accuracy, per-class precision/recall/F1/support, macro F1 and the confusion matrix.

    Args:
        true_labels: integer class ids, shape `(examples,)`.
        predicted_labels: integer class ids, shape `(examples,)`.
        class_names: the name of each class id.

    Returns:
        dict with `accuracy`, `macro_f1`, `per_class` (name -> precision, recall, f1,
        support), `confusion_matrix` (rows true, columns predicted) and `examples`.
    """
    true_labels = np.asarray(true_labels, dtype=np.int64)
    predicted_labels = np.asarray(predicted_labels, dtype=np.int64)
    classes = len(class_names)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (true_labels, predicted_labels), 1)
    per_class = {}
    for index, name in enumerate(class_names):
        true_positive = matrix[index, index]
        predicted = matrix[:, index].sum()
        actual = matrix[index, :].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[str(name)] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    total = int(matrix.sum())
    return {
        "examples": total,
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "macro_f1": float(np.mean([row["f1"] for row in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


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
        raise SystemExit("nothing to evaluate: the data is empty")
    report = classification_report(
        np.concatenate(true_labels), np.concatenate(predicted_labels), class_names
    )
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "evaluation.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    plots.plot_confusion_matrix(
        report["confusion_matrix"],
        [str(name) for name in class_names],
        os.path.join(output_dir, "confusion_matrix.png"),
        title=title or "confusion matrix",
    )
    print(format_report(report))
    print(f"wrote {output_dir}/evaluation.json and confusion_matrix.png")
    return report


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
    file is evaluated whole: all of its splits together.
    """
    import dataclasses

    from apps.common import config as config_lib
    from apps.common import training

    config = serving_model.config
    overrides = list(arguments.overrides)
    source = arguments.file or arguments.data
    if source:
        overrides.insert(0, f"data.source={source}")
    config = config_lib.apply_overrides(config, overrides)
    if arguments.file and "validation_fraction" in {
        field.name for field in dataclasses.fields(config.data)
    }:
        # Nothing is carved off a file under evaluation; every row counts.
        config = config_lib.apply_overrides(config, {"data.validation_fraction": 0.0})
    loaded = app.load_data(config)
    for note in getattr(loaded, "notes", []) or []:
        print(f"data: {note}")
    known = serving_model.data_info.get("class_names")
    found = loaded.info.get("class_names") if isinstance(loaded.info, dict) else None
    if known is not None and found is not None and list(found) != list(known):
        raise SystemExit(
            f"{source or config.data.source}: classes {list(found)} differ from the model's "
            f"{list(known)}; set data.label_names to the model's classes"
        )
    if arguments.file:
        splits = list(loaded.splits.values())
        dataset = splits[0]
        for other in splits[1:]:
            dataset = dataset.concatenate(other)
        name = os.path.splitext(os.path.basename(arguments.file))[0]
    else:
        if arguments.split not in loaded.splits:
            raise SystemExit(
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
    batches, _ = training.make_batches(app, config, dataset, training=False)
    return app.evaluate(serving_model.call, batches, serving_model.data_info, output_dir)
