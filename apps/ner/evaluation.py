"""`evaluate` of the NER app: the conlleval table per entity type and an entity-type confusion.

Tags come from the model's `serving_default` (a run directory and an export are measured
the same way) and are compared with the true tags, padding removed.
"""

import os

import numpy as np

from apps.common import plots
from apps.common.errors import DataSourceError
from apps.common.evaluation import write_report
from apps.common.metrics import entity_confusion, entity_report


def format_conlleval(report):
    """The report as conlleval prints it: overall line, then one line per type (percent)."""
    lines = [
        f"processed {report['tokens']} tokens with {report['true_entities']} phrases; found: "
        f"{report['predicted_entities']} phrases; correct: {report['correct_entities']}.",
        f"accuracy: {100 * report['token_accuracy']:6.2f}%; precision: "
        f"{100 * report['precision']:6.2f}%; recall: {100 * report['recall']:6.2f}%; "
        f"FB1: {100 * report['f1']:6.2f}",
    ]
    for kind, row in report["per_type"].items():
        lines.append(
            f"{kind:>17}: precision: {100 * row['precision']:6.2f}%; recall: "
            f"{100 * row['recall']:6.2f}%; FB1: {100 * row['f1']:6.2f}  {row['support']}"
        )
    return "\n".join(lines)


def evaluate(serving_model, batches, output_dir):
    """Runs the model over `(tokens, tag ids)` batches; prints, writes and returns the report."""
    tag_names = np.array(serving_model.data_info["tag_names"], dtype=object)
    truth, guesses = [], []
    for tokens, tags in batches:
        tokens, tags = np.asarray(tokens), np.asarray(tags)
        predicted = serving_model.call({"tokens": tokens})["tags"]
        for row in range(tokens.shape[0]):
            length = int(np.sum(tokens[row] != b""))
            truth.append(list(tag_names[tags[row, :length]]))
            guesses.append([tag.decode() for tag in predicted[row, :length]])
    if not truth:
        raise DataSourceError("nothing to evaluate: the data is empty")
    report = entity_report(truth, guesses)
    report["tokens"] = sum(len(sentence) for sentence in truth)
    confusion = entity_confusion(truth, guesses)
    report["entity_confusion"] = confusion
    print(format_conlleval(report))
    write_report(report, output_dir)
    path = os.path.join(output_dir, "entity_confusion.png")
    plots.plot_confusion_matrix(
        confusion["matrix"], confusion["labels"], path, title="entity types (same span)"
    )
    print(f"wrote {path}")
    return report
