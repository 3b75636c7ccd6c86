"""Sentiment data: texts with a class label, from the tfds catalog or from local files.

`load(config)` returns `LoadedData` whose splits (`train`, `validation`, and `test` when the
source has labelled test data) are unbatched `tf.data.Dataset`s of
`{"text": tf.string scalar, "label": tf.int64 scalar}`, with `info["class_names"]` in index
order. Sources (`SentimentDataConfig.source`):

* a tfds catalog name: `imdb_reviews` (train, test; validation carved from train),
  `glue/sst2` (train, validation; its test labels are hidden, so test is dropped), or any
  catalog dataset with one `Text` and one `ClassLabel` feature;
* a CSV or TSV file with a header (columns chosen by `text_column`, `label_column`);
* a directory of split files: `train.*`, `dev.*`/`valid.*`/`validation.*`, `test.*`;
* a directory with one sub-folder per class holding one text file per example, either
  directly or below split folders (aclImdb's `train/pos`, `train/neg`, `test/...`).

Local files become a tfds dataset, prepared once in `data_dir` (see `apps.common.data`).
Labels may be class names, their common spellings (`neg`, `pos`) or 0-based indices; binary
sentiment labels become `["negative", "positive"]` (0 = negative) unless `label_names`
fixes the classes and their order.

Example:

```python
data = load(SentimentDataConfig(source="../shared/data/sst2"))
print(data.describe())
for example in data.splits["train"].take(1):
    print(example["text"].numpy(), data.info["class_names"][example["label"]])
```
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common.data import (
    SPLIT_ALIASES,
    DataError,
    DataSourceError,
    LoadedData,
    check_encoding,
    files_fingerprint,
    find_split_files,
    is_catalog_name,  # noqa: F401 (re-exported: part of this module's interface)
    load_catalog_builder,
    load_source,
    prepare_local_files,
    read_table,
    read_text_file,
    resolve_data_dir,
)
from apps.common.errors import ConfigError
from apps.sentiment.config import FORMATS, SentimentDataConfig

BUILDER_NAME = "sentiment_files"
BINARY_CLASS_NAMES = ["negative", "positive"]
# Common spellings of the two sentiment classes in files and folder names.
_SPELLINGS = {"negative": {"0", "neg", "negative"}, "positive": {"1", "pos", "positive"}}
_TEXT_COLUMNS = ("text", "sentence", "review", "content")
_LABEL_COLUMNS = ("label", "sentiment", "polarity")
_UNLABELLED_FOLDERS = {"unsup", "unsupervised", "unlabeled", "unlabelled"}
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_HTML_TAG = r"<[^>]*>"


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """How to read one tfds catalog dataset as sentiment data."""

    text_key: str
    label_key: str
    splits: Mapping[str, str]  # Our split name to the catalog's.
    download_urls: tuple[str, ...]
    local_alternative: str
    is_imdb: bool = False
    notes: tuple[str, ...] = ()


CATALOG = {
    "imdb_reviews": CatalogEntry(
        text_key="text",
        label_key="label",
        splits={"train": "train", "test": "test"},
        download_urls=("https://ai.stanford.edu/",),
        local_alternative="--data ../shared/data/imdb/train.csv",
        is_imdb=True,
        notes=("unsupervised: the 50,000 unlabelled imdb_reviews examples are not used",),
    ),
    "glue/sst2": CatalogEntry(
        text_key="sentence",
        label_key="label",
        splits={"train": "train", "validation": "validation"},
        download_urls=("https://dl.fbaipublicfiles.com/",),
        local_alternative="--data ../shared/data/sst2",
        notes=("test: dropped, the glue/sst2 test labels are hidden (all -1)",),
    ),
}


def load(config: SentimentDataConfig) -> LoadedData:
    """Loads the splits described by `config`; see the module docstring.

    Raises:
        ConfigError: a config field is invalid (named as `data.<field>`).
        DataError: a local file is malformed (names file, line and problem).
        DataSourceError: the source does not exist or holds no examples.
        CatalogUnavailableError: a catalog dataset is not prepared and the machine is offline.
    """
    _check_config(config)
    found = {}

    def read_catalog(notes):
        splits, info, found["is_imdb"] = _load_catalog(config, notes)
        return splits, info

    def read_local(notes):
        splits, info, found["is_imdb"] = _load_local(config, notes)
        return splits, info

    def strip_html(splits, info, notes):
        if not _wants_html_stripped(config.strip_html, found["is_imdb"]):
            return splits
        notes.append("html: tags such as <br /> replaced by a space")
        return {name: dataset.map(_strip_html) for name, dataset in splits.items()}

    return load_source(
        config.source,
        read_catalog=read_catalog,
        read_local=read_local,
        validation_fraction=config.validation_fraction,
        validation_strategy="random",
        seed=config.seed,
        max_examples=config.max_examples,
        transform=strip_html,
    )


def _check_config(config: SentimentDataConfig) -> None:
    if config.format not in FORMATS:
        raise ConfigError(f"data.format: {config.format!r} is not one of {', '.join(FORMATS)}")
    if not 0 <= config.validation_fraction < 1:
        raise ConfigError(f"data.validation_fraction: {config.validation_fraction} not in [0, 1)")
    if config.max_examples < 0:
        raise ConfigError(f"data.max_examples: {config.max_examples} is negative")
    names = list(config.label_names or [])
    if len(set(names)) != len(names):
        raise ConfigError(f"data.label_names: {config.label_names} repeats a name")
    try:
        check_encoding(config.encoding)
    except ValueError as error:
        raise ConfigError(f"data.encoding: {error}") from None
    _wants_html_stripped(config.strip_html, False)


def _wants_html_stripped(value, is_imdb: bool) -> bool:
    text = str(value).strip().lower()
    if text == "auto":
        return is_imdb
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"data.strip_html: {value!r} is not one of auto, true, false")


def _strip_html(example):
    return {**example, "text": tf.strings.regex_replace(example["text"], _HTML_TAG, " ")}


def match_label(raw: str, names: list[str]) -> int | None:
    """Returns the index in `names` of a raw label (a name, a spelling or an index), or None."""
    lowered = raw.strip().lower()
    for index, name in enumerate(names):
        if lowered == name.lower() or lowered in _SPELLINGS.get(name.lower(), ()):
            return index
    if lowered.isdigit() and int(lowered) < len(names):
        return int(lowered)
    return None


def infer_class_names(raw_labels, where=None) -> list[str]:
    """Class names for the labels seen in files, when `data.label_names` does not fix them.

    The rule: the labels must be (a) spellings of the two sentiment classes (0/1, neg/pos,
    negative/positive), (b) integers only, which become classes "0", "1", ..., or (c) names
    only (no integer among them), sorted. A mix, e.g. `maybe` among 0 and 1, is a typo
    far more often than a third class, so it is an error naming where the odd label is;
    set `data.label_names` to accept it.

    Args:
        raw_labels: the distinct labels.
        where: optional `label -> (path, line)` of each label's first occurrence.
    """
    lowered = {label.strip().lower() for label in raw_labels}
    if lowered <= set().union(*_SPELLINGS.values()):
        return list(BINARY_CLASS_NAMES)
    if all(label.isdigit() for label in lowered):
        return [str(number) for number in sorted({int(label) for label in lowered})]
    names = sorted(label for label in raw_labels if not label.strip().isdigit())
    if len(names) < len(raw_labels):  # Integers mixed with names.
        label = names[0]
        path, line = (where or {}).get(label, ("data.source", 0))
        raise DataError(
            path,
            line,
            f"label {label!r} does not fit the other labels ({', '.join(sorted(raw_labels))});"
            " set data.label_names to the classes in order if it is meant as a class",
        )
    return sorted({label.strip() for label in raw_labels})


def _example(text, label) -> dict:
    return {"text": text, "label": tf.cast(label, tf.int64)}


def _load_catalog(config: SentimentDataConfig, notes: list[str]):
    name = config.source.split(":")[0]
    entry = CATALOG.get(name) or CATALOG.get(name.split("/")[0])
    builder = load_catalog_builder(
        config.source,
        config.data_dir,
        download_urls=entry.download_urls if entry else ("https://storage.googleapis.com/",),
        local_alternative=entry.local_alternative if entry else "--data path/to/train.csv",
    )
    features = builder.info.features
    if entry is None:
        entry = _generic_entry(builder, config)
    text_key = config.text_column or entry.text_key
    label_key = config.label_column or entry.label_key
    for key in (text_key, label_key):
        if key not in features:
            raise DataSourceError(
                f"{config.source} has no feature {key!r}; features: {list(features)}"
            )
    catalog_names = list(features[label_key].names)
    class_names = list(config.label_names or []) or infer_class_names(set(catalog_names))
    remap = []
    for catalog_name in catalog_names:
        index = match_label(catalog_name, class_names)
        if index is None:
            raise DataSourceError(f"{config.source}: class {catalog_name!r} not in {class_names}")
        remap.append(index)
    remap = tf.constant(remap, tf.int64)

    def convert(example):
        return _example(example[text_key], tf.gather(remap, example[label_key]))

    splits = {
        ours: builder.as_dataset(split=theirs, shuffle_files=False).map(convert)
        for ours, theirs in entry.splits.items()
    }
    notes.extend(entry.notes)
    source = f"tfds catalog {config.source} ({builder.data_dir})"
    info = {"class_names": class_names, "source": source, "prepared": "catalog"}
    info["builder_dir"] = str(builder.data_dir)
    return splits, info, entry.is_imdb


def _generic_entry(builder: tfds.core.DatasetBuilder, config) -> CatalogEntry:
    """Reads any catalog dataset with one Text and one ClassLabel feature."""
    features = builder.info.features
    texts = [key for key, f in features.items() if isinstance(f, tfds.features.Text)]
    labels = [key for key, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    text_key = config.text_column or (texts[0] if len(texts) == 1 else "")
    label_key = config.label_column or (labels[0] if len(labels) == 1 else "")
    if not text_key or not label_key:
        raise DataSourceError(
            f"{config.source}: set data.text_column and data.label_column; features: "
            f"{list(features)}"
        )
    splits = {SPLIT_ALIASES[s]: s for s in builder.info.splits if s in SPLIT_ALIASES}
    return CatalogEntry(text_key, label_key, splits, (), "")


@dataclasses.dataclass
class _SplitSource:
    split: str
    path: Path
    delimiter: str | None  # None: a directory with one folder per class.


def _plan_sources(config: SentimentDataConfig) -> list[_SplitSource]:
    """Finds the files of each split under `config.source`."""
    root = Path(config.source)
    if not root.exists():
        raise DataSourceError(f"data.source: {config.source} does not exist")
    forced = {"csv": ",", "tsv": "\t"}.get(config.format)
    if root.is_file():
        if config.format == "folders":
            raise DataSourceError(f"data.format: folders needs a directory, {root} is a file")
        return [_SplitSource("train", root, forced or _delimiter(root))]
    if config.format != "folders":
        suffixes = (".csv", ".tsv", ".tab") if forced is None else (".csv", ".tsv", ".tab", ".txt")
        files = find_split_files(root, suffixes)
        if files:
            return [_SplitSource(s, p, forced or _delimiter(p)) for s, p in files.items()]
        if forced:
            raise DataSourceError(
                f"{root}: no split files (train.*, dev.*, test.*) for format {forced}"
            )
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    split_folders = [p for p in folders if p.name.lower() in SPLIT_ALIASES]
    if split_folders:
        return [_SplitSource(SPLIT_ALIASES[p.name.lower()], p, None) for p in split_folders]
    if not folders:
        raise DataSourceError(
            f"{root}: no split files (train.csv, dev.tsv, ...) and no class folders"
        )
    return [_SplitSource("train", root, None)]


def _delimiter(path: Path) -> str:
    delimiter = _DELIMITERS.get(path.suffix.lower())
    if delimiter is None:
        raise DataSourceError(f"{path}: cannot tell CSV from TSV by the suffix; set data.format")
    return delimiter


def _class_folders(directory: Path) -> list[Path]:
    return [
        p
        for p in sorted(directory.iterdir())
        if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in _UNLABELLED_FOLDERS
    ]


def _text_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]


def _pick_column(path: Path, header: list[str], wanted: str, candidates, role: str) -> str:
    if wanted:
        if wanted not in header:
            raise DataError(
                path, 1, f"missing column {wanted!r} ({role}); the header has: {', '.join(header)}"
            )
        return wanted
    for name in candidates:
        if name in header:
            return name
    raise DataError(
        path,
        1,
        f"no {role} among {', '.join(candidates)}; set data.{role} to one of: {', '.join(header)}",
    )


def _raw_examples(source: _SplitSource, config: SentimentDataConfig) -> Iterator[tuple]:
    """Yields `(key, path, line, text, raw label)` of one split, checking every row."""
    if source.delimiter is None:
        for folder in _class_folders(source.path):
            for path in _text_files(folder):
                text = read_text_file(path, config.encoding)
                if not text.strip():
                    raise DataError(path, 1, "empty text")
                yield path.relative_to(source.path).as_posix(), path, 1, text, folder.name
        return
    path = source.path
    header, rows = read_table(path, delimiter=source.delimiter, encoding=config.encoding)
    text_column = _pick_column(path, header, config.text_column, _TEXT_COLUMNS, "text_column")
    label_column = _pick_column(path, header, config.label_column, _LABEL_COLUMNS, "label_column")
    for line, row in rows:
        text, label = row[text_column], row[label_column].strip()
        if not text.strip():
            raise DataError(path, line, f"empty text in column {text_column!r}")
        if not label:
            raise DataError(path, line, f"empty label in column {label_column!r}")
        yield f"{path.name}:{line}", path, line, text, label


def _local_plan(sources: list[_SplitSource], config: SentimentDataConfig, timings: dict):
    """Returns the `plan` of `prepare_local_files`: check every file, then fix the classes."""

    def plan():
        started = time.perf_counter()
        raw_labels: set[str] = set()
        where: dict[str, tuple] = {}
        for source in sources:
            for _, path, line, _, raw in _raw_examples(source, config):
                where.setdefault(raw, (path, line))
                if config.label_names and match_label(raw, config.label_names) is None:
                    raise DataError(
                        path, line, f"unknown label {raw!r}; label_names are {config.label_names}"
                    )
                raw_labels.add(raw)
        if not raw_labels:
            raise DataSourceError(f"data.source: {config.source} holds no examples")
        class_names = list(config.label_names or []) or infer_class_names(raw_labels, where)
        timings["checked_s"] = time.perf_counter() - started

        def examples(source: _SplitSource) -> Callable[[], Iterator[tuple[str, dict]]]:
            def generate():
                for key, _, _, text, raw in _raw_examples(source, config):
                    yield key, {"text": text, "label": match_label(raw, class_names)}

            return generate

        features = tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=class_names)}
        )
        return features, {source.split: examples(source) for source in sources}

    return plan


def _load_local(config: SentimentDataConfig, notes: list[str]):
    sources = _plan_sources(config)
    root = Path(config.source).resolve()
    base = root if root.is_dir() else root.parent
    files = []
    for source in sources:
        if source.delimiter is None:
            for folder in _class_folders(source.path):
                files.extend(_text_files(folder))
        else:
            files.append(source.path)
    fingerprint = {
        "reader": 1,  # Bump when the way files are read changes, to prepare them again.
        "source": str(root),
        "splits": {s.split: [s.path.resolve().as_posix(), s.delimiter] for s in sources},
        "files": files_fingerprint([f.resolve() for f in files], base),
        "options": [config.text_column, config.label_column, config.encoding],
        "label_names": list(config.label_names or []),
    }
    kind = "folders" if sources[0].delimiter is None else "files"
    description = (
        f"local {kind} {root} (encoding {config.encoding}, text column "
        f"{config.text_column or 'auto'}, label column {config.label_column or 'auto'})"
    )
    timings: dict = {}
    started = time.perf_counter()
    builder, prepared_now = prepare_local_files(
        builder_name=BUILDER_NAME,
        label=root.name,
        fingerprint=fingerprint,
        plan=_local_plan(sources, config, timings),
        data_dir=config.data_dir,
        description=description,
    )
    if prepared_now:
        notes.append(
            f"prepared {len(files):,} file(s) into {builder.data_dir} in "
            f"{time.perf_counter() - started:.1f} s (checking them took "
            f"{timings['checked_s']:.1f} s, the rest is tfds writing)"
        )
    splits = {
        split: builder.as_dataset(split=split, shuffle_files=False).map(
            lambda example: _example(example["text"], example["label"])
        )
        for split in builder.info.splits
    }
    info = {
        "class_names": list(builder.info.features["label"].names),
        "source": description,
        "prepared": "now" if prepared_now else "reused",
        "builder_dir": str(builder.data_dir),
        "data_dir": resolve_data_dir(config.data_dir),
    }
    is_imdb = "imdb" in str(root).lower()
    return splits, info, is_imdb
