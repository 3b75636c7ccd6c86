"""Times preparing and reading the sentiment data from local files (IMDB, SST-2).

For each source: the first `load` (checks the files and writes the tfds dataset), a second
`load` (reuses the prepared dataset), and one pass over every split, both example by example
(eager Python loop) and in batches of 256 as training reads it. Prints examples per split.

Usage:
    .venv/bin/python benchmarks/data_prepare.py [--data-root ../shared/data] [--data-dir DIR]

Without --data-dir a fresh temporary tfds data directory is used (and removed), so the first
load really prepares.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf  # noqa: E402

from apps.sentiment.data import SentimentDataConfig, load  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def count_examples(dataset: tf.data.Dataset) -> int:
    return sum(1 for _ in dataset)


def count_batched(dataset: tf.data.Dataset, batch_size: int = 256) -> int:
    batches = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return sum(int(tf.shape(batch["label"])[0]) for batch in batches)


def benchmark(name: str, source: Path, data_dir: str) -> list[str]:
    config = SentimentDataConfig(source=str(source), data_dir=data_dir)
    first, prepare_seconds = timed(lambda: load(config))
    second, reuse_seconds = timed(lambda: load(config))
    assert second.info["prepared"] == "reused", second.info
    lines = [
        f"## {name}: {source}",
        f"first load (prepare): {prepare_seconds:6.2f} s   [{first.info['prepared']}]",
        f"second load (reuse):  {reuse_seconds:6.2f} s",
    ]
    for split, dataset in second.splits.items():
        counted, eager_seconds = timed(lambda dataset=dataset: count_examples(dataset))
        batched, batch_seconds = timed(lambda dataset=dataset: count_batched(dataset))
        assert counted == batched == second.info["num_examples"][split], (split, counted, batched)
        lines.append(
            f"{split:<10} {counted:>7,} examples   iterate: {eager_seconds:6.2f} s one by one "
            f"({counted / eager_seconds:8,.0f}/s), {batch_seconds:6.2f} s in batches of 256 "
            f"({counted / batch_seconds:8,.0f}/s)"
        )
    lines.append(f"classes: {second.info['class_names']}")
    lines.extend(f"note: {note}" for note in first.notes)
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(REPOSITORY.parent / "shared" / "data"))
    parser.add_argument("--data-dir", default="", help="tfds data directory (default: fresh)")
    arguments = parser.parse_args()
    root = Path(arguments.data_root)
    sources = [("IMDB train.csv", root / "imdb" / "train.csv"), ("SST-2", root / "sst2")]
    print(f"tensorflow {tf.__version__}, {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory(prefix="rnn_keras_tfds_") as scratch:
        data_dir = arguments.data_dir or scratch
        for name, source in sources:
            if not source.exists():
                print(f"## {name}: skipped, {source} not found")
                continue
            print("\n".join(benchmark(name, source, data_dir)), flush=True)
