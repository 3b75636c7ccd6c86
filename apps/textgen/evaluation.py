"""`evaluate` for text generation: nats and bits per character through the `score` endpoint.

Two figures, both from the same endpoint a deployed model answers with:

* `windows`: each evaluation window scored on its own from the zero state, exactly the
  `val_loss` training reports (mean over the same characters);
* `carried`: the windows joined back into the text they tile, scored in one call with the
  state carried across the whole text, as generation uses the model.
"""

import numpy as np
import tensorflow as tf

from apps.common import evaluation as common_evaluation
from apps.common.errors import DataSourceError
from apps.common.metrics import language_model_report
from apps.textgen import generation

# Stands for an out-of-vocabulary target when windows are turned back into text: it is
# not in any vocabulary built from text, so it maps to the out-of-vocabulary id again.
REPLACEMENT = "\ufffd"


def window_texts(batches, vocabulary):
    """The text of each window: its input characters and its last target."""
    table = np.array([REPLACEMENT] + list(vocabulary), dtype=object)
    texts = []
    for inputs, targets in batches:
        for chars, ids in zip(np.asarray(inputs), np.asarray(targets), strict=True):
            texts.append("".join(c.decode("utf-8") for c in chars) + table[int(ids[-1])])
    return texts


def scored(score, texts, batch_size=64):
    """`(total nats, characters scored)` of `texts` through a `score` endpoint."""
    total, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        outputs = score(text=tf.constant(texts[start : start + batch_size]))
        chars = np.asarray(outputs["chars_scored"], dtype=np.int64)
        nats = np.asarray(outputs["nats_per_char"], dtype=np.float64)
        total += float(np.sum(np.where(chars > 0, nats * chars, 0.0)))
        count += int(np.sum(chars))
    return total, count


def evaluate(serving_model, batches, output_dir):
    """Prints and writes `evaluation.json`: nats/bits per character, windows and carried."""
    score = generation.endpoints_of(serving_model)["score"]
    texts = window_texts(batches, serving_model.data_info["vocabulary"])
    if not texts:
        raise DataSourceError("nothing to evaluate: the text is shorter than one window")
    windows = language_model_report(*scored(score, texts))
    whole = "".join(text[:-1] for text in texts) + texts[-1][-1]
    carried = language_model_report(*scored(score, [whole]))
    report = {"windows": windows, "carried": carried, "loss": windows["nats_per_unit"]}
    for name, figures in (("windows (zero state)", windows), ("carried state", carried)):
        print(
            f"{name:<21} nats/char {figures['nats_per_unit']:.4f}  bits/char "
            f"{figures['bits_per_unit']:.4f}  perplexity {figures['perplexity']:.3f}  "
            f"chars {figures['units']:,}"
        )
    common_evaluation.write_report(report, output_dir)
    return report
