"""Metrics shared by the apps, in NumPy: classification, tagging, regression, language models.

Each function takes plain arrays (targets and predictions gathered over a split) and
returns a dict of floats that `evaluate` writes to `evaluation.json`. Masks mark the
valid steps of padded sequences; padded steps never count.

Example:

    report = classification_report([0, 1, 1], [0, 1, 0], ["negative", "positive"])
    spans = entity_spans(["B-PER", "I-PER", "O"], scheme="iob2")   # [("PER", 0, 2)]
"""

import math

import numpy as np

LN2 = math.log(2.0)


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
        per_class[str(name)] = _precision_recall_f1(
            matrix[index, index], matrix[:, index].sum(), matrix[index, :].sum()
        )
    total = int(matrix.sum())
    return {
        "examples": total,
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "macro_f1": float(np.mean([row["f1"] for row in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def _precision_recall_f1(correct, predicted, actual):
    precision = correct / predicted if predicted else 0.0
    recall = correct / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "support": int(actual),
    }


def masked_accuracy(true_ids, predicted_ids, mask):
    """Share of valid steps (mask true) whose prediction equals the target."""
    mask = np.asarray(mask, dtype=bool)
    valid = int(mask.sum())
    correct = int(np.sum((np.asarray(true_ids) == np.asarray(predicted_ids)) & mask))
    return correct / valid if valid else 0.0


def _split_tag(tag):
    if tag in ("O", "", None):
        return "O", None
    prefix, _, kind = tag.partition("-")
    # IOBES's E- and S- would be scored wrongly (an S- entity dropped, an E- one cut
    # short) by the IOB span rules below: refused, as the message says.
    if not kind or prefix not in ("B", "I"):
        raise ValueError(f"tag {tag!r} is neither O nor <B|I>-<type>")
    return prefix, kind


def entity_spans(tags, scheme="iob2"):
    """Entities in one sentence's tags as `(type, start, end)` with `end` exclusive.

    Follows conlleval: an entity starts at a B- tag, at an I- tag after O or after another
    type, and (IOB1 only distinguishes) at B- between two entities of the same type. With
    `scheme="iob2"` an I- tag that does not continue an entity still starts one, as
    conlleval counts it.
    """
    if scheme not in ("iob1", "iob2"):
        raise ValueError(f"scheme must be 'iob1' or 'iob2', got {scheme!r}")
    spans, kind, start = [], None, None
    for position, tag in enumerate(list(tags) + ["O"]):
        prefix, tag_kind = _split_tag(tag)
        continues = prefix == "I" and tag_kind == kind
        if kind is not None and not continues:
            spans.append((kind, start, position))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = tag_kind, position
    return spans


def entity_report(true_sentences, predicted_sentences, scheme="iob2"):
    """Entity-level precision, recall and F1, micro and per type (conlleval's definition).

    A predicted entity counts only when its type and both ends equal a true entity's.

    Args:
        true_sentences, predicted_sentences: lists of tag-string lists, one per sentence,
            of equal lengths (padding removed).
        scheme: `iob2` or `iob1`.

    Returns:
        dict with `precision`, `recall`, `f1`, `per_type` (type -> precision, recall, f1,
        support), `true_entities`, `predicted_entities`, `correct_entities`,
        `token_accuracy`.
    """
    correct, predicted, actual = {}, {}, {}
    tokens = right = 0
    for number, (truth, guess) in enumerate(zip(true_sentences, predicted_sentences, strict=True)):
        truth, guess = list(truth), list(guess)
        if len(truth) != len(guess):
            raise ValueError(f"sentence {number}: {len(truth)} true tags, {len(guess)} predicted")
        tokens += len(truth)
        right += sum(a == b for a, b in zip(truth, guess, strict=True))
        true_spans = set(entity_spans(truth, scheme))
        guessed = set(entity_spans(guess, scheme))
        for kind, _, _ in true_spans:
            actual[kind] = actual.get(kind, 0) + 1
        for kind, _, _ in guessed:
            predicted[kind] = predicted.get(kind, 0) + 1
        for kind, _, _ in true_spans & guessed:
            correct[kind] = correct.get(kind, 0) + 1
    kinds = sorted(set(actual) | set(predicted))
    per_type = {
        kind: _precision_recall_f1(
            correct.get(kind, 0), predicted.get(kind, 0), actual.get(kind, 0)
        )
        for kind in kinds
    }
    overall = _precision_recall_f1(
        sum(correct.values()), sum(predicted.values()), sum(actual.values())
    )
    return {
        "precision": overall["precision"],
        "recall": overall["recall"],
        "f1": overall["f1"],
        "per_type": per_type,
        "true_entities": sum(actual.values()),
        "predicted_entities": sum(predicted.values()),
        "correct_entities": sum(correct.values()),
        "token_accuracy": right / tokens if tokens else 0.0,
    }


def regression_report(targets, predictions, scale=None):
    """MSE and MAE overall and per horizon step, on the given scale and optionally raw.

    Args:
        targets, predictions: `(windows, horizon, features)` (or `(windows, horizon)`).
        scale: optional `(mean, std)` per feature: the arrays are standardized values and
            raw-unit figures (`value * std + mean`) are reported too, as `raw_mse`, ...

    Returns:
        dict with `mse`, `mae`, `mse_by_step`, `mae_by_step` (lists over the horizon),
        `windows`, and the `raw_` versions when `scale` is given.
    """
    targets = np.asarray(targets, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    if targets.shape != predictions.shape:
        raise ValueError(f"targets {targets.shape} and predictions {predictions.shape} differ")
    if targets.ndim == 2:
        targets, predictions = targets[..., None], predictions[..., None]
    report = _errors(targets, predictions, "")
    if scale is not None:
        mean, std = (np.asarray(part, dtype=np.float64) for part in scale)
        report.update(_errors(targets * std + mean, predictions * std + mean, "raw_"))
    report["windows"] = int(targets.shape[0])
    return report


def _errors(targets, predictions, prefix):
    error = predictions - targets
    return {
        f"{prefix}mse": float(np.mean(error**2)),
        f"{prefix}mae": float(np.mean(np.abs(error))),
        f"{prefix}mse_by_step": np.mean(error**2, axis=(0, 2)).tolist(),
        f"{prefix}mae_by_step": np.mean(np.abs(error), axis=(0, 2)).tolist(),
    }


def language_model_report(total_nats, units):
    """Mean cross-entropy per unit (character, word) in nats and bits, and perplexity."""
    if units <= 0:
        raise ValueError("no units were scored")
    nats = total_nats / units
    return {
        "nats_per_unit": float(nats),
        "bits_per_unit": float(nats / LN2),
        "perplexity": float(math.exp(nats)),
        "units": int(units),
    }


def entity_confusion(true_sentences, predicted_sentences, scheme="iob2"):
    """Which entity type was predicted for each true entity span, as a confusion matrix.

    A true entity whose exact span was predicted counts in row (true type, predicted type);
    one with no predicted entity of the same span in column `(none)` (missed, or found
    with other boundaries); a predicted entity whose span is no true entity's in row
    `(none)` (spurious).

    Args:
        true_sentences, predicted_sentences: lists of tag-string lists, as `entity_report`.
        scheme: `iob2` or `iob1`.

    Returns:
        dict with `labels` (the types, sorted, then `(none)`) and `matrix` (rows true,
        columns predicted, lists of ints).

    Example:
        entity_confusion([["B-PER", "O"]], [["B-ORG", "O"]])["matrix"][0]  # [0, 1, 0]
    """
    pairs = []
    for truth, guess in zip(true_sentences, predicted_sentences, strict=True):
        true_spans = {(start, end): kind for kind, start, end in entity_spans(truth, scheme)}
        guessed = {(start, end): kind for kind, start, end in entity_spans(guess, scheme)}
        for span, kind in true_spans.items():
            pairs.append((kind, guessed.get(span)))
        pairs.extend((None, kind) for span, kind in guessed.items() if span not in true_spans)
    kinds = sorted({kind for pair in pairs for kind in pair if kind is not None})
    labels = kinds + ["(none)"]
    index = {kind: position for position, kind in enumerate(kinds)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true_kind, predicted_kind in pairs:
        matrix[index.get(true_kind, len(kinds)), index.get(predicted_kind, len(kinds))] += 1
    return {"labels": labels, "matrix": matrix.tolist()}
