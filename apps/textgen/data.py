"""Text generation data: one long text per split, cut into (input, next-character) windows.

`load(config)` returns `LoadedData` whose splits (`train`, `validation`, and `test` when the
source has one) each hold ONE element `{"text": tf.string scalar}`: the whole text of that
split, as tfds' `tiny_shakespeare` does. Sources (`TextGenDataConfig.source`):

* the tfds catalog name `tiny_shakespeare` (fails within seconds when offline, naming
  `--data ../shared/data/tiny_shakespeare`);
* a directory of split files: `train.txt`, `validation.txt` (or `dev.txt`/`valid.txt`),
  optionally `test.txt`;
* one text file, split in order into the first 90% (train), the next 5% (validation) and
  the last 5% (test) of its characters, as tfds splits Tiny Shakespeare.

Local files become a tfds dataset prepared once in `data_dir` (see `apps.common.data`); an
empty file or bytes that are not in `encoding` raise `DataError` naming the file and line.

Windows (`windows`): a text of n characters gives `(n - 1) // window` windows; window k reads
characters `[k w, (k + 1) w)` and predicts `[k w + 1, (k + 1) w + 1)`, so the targets are the
inputs shifted by one and windows tile the text (window k + 1 starts where window k's
inputs stopped). Windows are cut per split element, so none crosses a split.

Two training modes (`data.mode`):

* `shuffled`: windows in random order, each from the zero state. Every batch mixes the
  whole text, so gradients are the least correlated; but the model never learns to use
  context longer than a window, and at generation time (where the state runs on for
  thousands of characters) it meets states it never saw in training. Pays with long
  windows (128 and up) and short training runs.
* `stateful` (truncated backpropagation through time): batch row b reads the b-th of
  `batch_size` equal stretches of the text, one window per batch, in order; the final state
  of each row starts the same row in the next batch, and all states are reset at the start
  of every epoch. Context flows across window borders (forward only: gradients stop at the
  border), so short windows (cheaper steps) lose little, and training matches how the model
  generates. Batches are correlated in time (each covers the same few spots of the text);
  it pays with shorter windows and when the state must span long structure (speakers,
  verse). Windows that do not fill the last batch are dropped (at most
  `batch_size - 1` of them).

Validation and evaluation always read the windows in order, each from the zero state, in
either mode, so their losses compare across modes; `score` (the export) carries the state
over a whole text.
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common.data import (
    DataError,
    DataSourceError,
    LoadedData,
    check_encoding,
    files_fingerprint,
    find_split_files,
    load_catalog_builder,
    prepare_local_files,
    read_text_file,
    resolve_data_dir,
)

BUILDER_NAME = "textgen_files"
CATALOG_NAME = "tiny_shakespeare"
CATALOG_URLS = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
)
LOCAL_ALTERNATIVE = "--data ../shared/data/tiny_shakespeare"
# One file is split in order as tfds splits Tiny Shakespeare: train, validation, test.
SINGLE_FILE_FRACTIONS = (0.9, 0.05, 0.05)
SUFFIXES = (".txt", ".text", "")
SPLIT_ORDER = ("train", "validation", "test")


def read_local_text(path: Path, encoding: str) -> str:
    """The whole text of `path`; DataError for an empty file or undecodable bytes."""
    text = read_text_file(path, encoding)
    if len(text) < 2:
        raise DataError(
            path,
            0,
            "empty file: a text needs at least 2 characters (one input, one target)"
            if not text
            else f"only {len(text)} character: a text needs at least 2",
        )
    return text


def split_single_text(text: str) -> dict[str, str]:
    """The first 90%, next 5% and last 5% of `text` (by characters), in order."""
    total = len(text)
    train_end = int(total * SINGLE_FILE_FRACTIONS[0])
    validation_end = int(total * (SINGLE_FILE_FRACTIONS[0] + SINGLE_FILE_FRACTIONS[1]))
    return {
        "train": text[:train_end],
        "validation": text[train_end:validation_end],
        "test": text[validation_end:],
    }


def local_split_files(source: Path) -> dict[str, Path]:
    """Split name to file: a directory's split files, or `{"file": path}` for one file."""
    if source.is_file():
        return {"file": source}
    found = find_split_files(source, SUFFIXES)
    if "train" not in found:
        raise DataSourceError(
            f"{source}: no train.txt (a directory needs train.txt and validation.txt, "
            "optionally test.txt; or give one text file, split 90/5/5)"
        )
    if "validation" not in found:
        raise DataSourceError(
            f"{source}: no validation.txt (or dev.txt, valid.txt) beside "
            f"{found['train'].name}; or give one text file, split 90/5/5"
        )
    return found


def prepare_local(source: str, encoding: str, data_dir: str):
    """Prepares a text file or a directory of split files as tfds builder `textgen_files`."""
    path = Path(source).resolve()
    files = local_split_files(path)
    root = path.parent if path.is_file() else path
    encoding = check_encoding(encoding)
    fingerprint = {
        "source": str(path),
        "files": files_fingerprint(list(files.values()), root),
        "encoding": encoding,
        "fractions": SINGLE_FILE_FRACTIONS if "file" in files else None,
    }

    def plan():
        if "file" in files:
            texts = split_single_text(read_local_text(files["file"], encoding))
            for name, text in texts.items():
                if len(text) < 2:
                    raise DataError(
                        files["file"], 0, f"too short to split 90/5/5: the {name} split is empty"
                    )
        else:
            texts = {name: read_local_text(file, encoding) for name, file in files.items()}
        features = tfds.features.FeaturesDict({"text": tfds.features.Text()})

        def examples_of(name, text):
            return lambda: iter([(name, {"text": text})])

        return features, {name: examples_of(name, text) for name, text in texts.items()}

    return prepare_local_files(
        builder_name=BUILDER_NAME,
        label=path.name,
        fingerprint=fingerprint,
        plan=plan,
        data_dir=data_dir,
        description=f"text files from {path}",
    )


def limit_chars(dataset: tf.data.Dataset, max_chars: int) -> tf.data.Dataset:
    """Keeps the first `max_chars` characters of every text (0 keeps all)."""
    if max_chars <= 0:
        return dataset

    def cut(element):
        chars = tf.strings.unicode_split(element["text"], "UTF-8")[:max_chars]
        return {"text": tf.strings.reduce_join(chars)}

    return dataset.map(cut)


def load(config) -> LoadedData:
    """The splits of `config.source` (a `TextGenDataConfig`), one text element each."""
    source = config.source
    notes: list[str] = []
    data_dir = resolve_data_dir(config.data_dir)
    if source and os.path.exists(source):
        builder, prepared_now = prepare_local(source, config.encoding, data_dir)
        prepared = "now" if prepared_now else "reused"
        if Path(source).is_file():
            notes.append("one file: split in order into train 90%, validation 5%, test 5%")
    elif source == CATALOG_NAME:
        builder = load_catalog_builder(
            CATALOG_NAME,
            data_dir,
            download_urls=CATALOG_URLS,
            local_alternative=LOCAL_ALTERNATIVE,
        )
        prepared = "catalog"
    else:
        raise DataSourceError(
            f"data.source: {source!r} is neither an existing file or directory nor the tfds "
            f"catalog dataset {CATALOG_NAME!r}"
        )
    splits = {
        name: limit_chars(builder.as_dataset(split=name), config.max_chars)
        for name in SPLIT_ORDER
        if name in builder.info.splits
    }
    if config.max_chars > 0:
        notes.append(f"max_chars: each split limited to its first {config.max_chars:,} characters")
    info = {
        "source": source,
        "prepared": prepared,
        "builder_dir": str(builder.data_dir),
        "num_examples": {name: 1 for name in splits},
    }
    return LoadedData(splits=splits, info=info, notes=notes)


def split_text(dataset: tf.data.Dataset) -> str:
    """The text of a split (its elements joined), as a Python string."""
    return "".join(element["text"].decode("utf-8") for element in dataset.as_numpy_iterator())


def windows(dataset: tf.data.Dataset, window: int, lookup) -> tf.data.Dataset:
    """`(input characters (window,), target ids (window,))` tiling each element's text.

    Args:
        dataset: elements `{"text": tf.string scalar}`.
        window: characters per window.
        lookup: maps a tensor of characters to int64 ids (a `StringLookup`).
    """

    def cut(element):
        chars = tf.strings.unicode_split(element["text"], "UTF-8")
        count = (tf.size(chars) - 1) // window
        inputs = tf.reshape(chars[: count * window], (count, window))
        targets = tf.reshape(lookup(chars[1 : count * window + 1]), (count, window))
        return tf.data.Dataset.from_tensor_slices((inputs, tf.cast(targets, tf.int64)))

    return dataset.flat_map(cut)


def stateful_batches(examples: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Batches whose row b holds consecutive windows of the b-th stretch of the text.

    With m = n // batch_size of the n windows per row, batch k holds windows
    `k, m + k, 2m + k, ...`: the windows of a row follow each other in the text, so a
    state carried from batch k to batch k + 1 continues where row b stopped. The last
    `n - m * batch_size` windows are dropped.
    """

    def rows(inputs, targets):
        per_row = tf.shape(inputs)[0] // batch_size

        def arrange(tensor):
            window = tf.shape(tensor)[1]
            kept = tensor[: per_row * batch_size]
            return tf.transpose(tf.reshape(kept, (batch_size, per_row, window)), (1, 0, 2))

        return tf.data.Dataset.from_tensor_slices((arrange(inputs), arrange(targets)))

    # All windows as one element (batch reserves at most 2**16 slots, whatever its size).
    return examples.batch(2**31 - 1).flat_map(rows)
