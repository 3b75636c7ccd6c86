"""Data helpers shared by every app: tfds catalog loading, local-file tfds builders, splits.

An app's `data.load(config)` returns a `LoadedData` whose splits are `tf.data.Dataset`s that
tensorflow-datasets reads, whatever the source:

* a catalog dataset (`imdb_reviews`, `glue/sst2`, ...) through `load_catalog_builder`, which
  uses the prepared copy in the data directory and otherwise downloads it, after a probe of a
  few seconds that fails fast, naming the local-files alternative, when no download is possible
  (tfds on its own retries for minutes);
* the user's own files through `prepare_local_files`, which writes them once into the tfds data
  directory as a real tfds dataset (dataset info, split sizes) under a builder config named
  from a hash of the source paths, file sizes, modification times and reading options, so a
  second load reads the prepared records and never the files, and a changed file is prepared
  again.

Input files are checked while they are prepared: every problem raises `DataError` naming the
file, the line and the problem, before anything reaches a `tf.data` pipeline.

Example:

```python
builder = load_catalog_builder("imdb_reviews", data_dir="~/tensorflow_datasets",
                               local_alternative="--data ../shared/data/imdb/train.csv")
train, validation, note = carve_validation(builder.as_dataset(split="train"), 0.1, seed=1234)
```
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import json
import os
import re
import threading
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common.errors import CatalogUnavailableError, DataError, DataSourceError

# Where tfds looks for prepared datasets when download URLs of a catalog entry are unknown.
DEFAULT_PROBE_URLS = ("https://storage.googleapis.com/",)
PROBE_TIMEOUT_SECONDS = 5.0
LOCAL_BUILDER_VERSION = "1.0.0"
# File stems that name a split, as used by GLUE (dev), CoNLL (valid) and tfds (validation).
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "dev": "validation",
    "valid": "validation",
    "val": "validation",
    "validation": "validation",
    "test": "test",
}


# The errors live in apps.common.errors (no TensorFlow import); re-exported for callers here.
__all__ = ["CatalogUnavailableError", "DataError", "DataSourceError"]


@dataclasses.dataclass
class LoadedData:
    """The splits of a dataset, what they hold, and what was done to them.

    Attributes:
        splits: split name (`train`, `validation`, `test`) to an unbatched `tf.data.Dataset`.
        info: `class_names` (or other app vocabularies), `num_examples` per split, `source`
            (a description), `prepared` (`now`, `reused` or `catalog`), `builder_dir`.
        notes: human-readable lines on carved or dropped splits and other choices made.
    """

    splits: dict[str, tf.data.Dataset]
    info: dict[str, Any]
    notes: list[str]

    def describe(self) -> str:
        """Returns the source, split sizes and notes as a few printable lines."""
        sizes = ", ".join(f"{name} {count:,}" for name, count in self.info["num_examples"].items())
        lines = [f"data: {self.info.get('source', 'unknown source')}", f"examples: {sizes}"]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str:
    """Returns `data_dir` expanded, or tfds' default (`$TFDS_DATA_DIR`, ~/tensorflow_datasets)."""
    chosen = str(data_dir) if data_dir else os.environ.get("TFDS_DATA_DIR", "")
    return os.path.abspath(os.path.expanduser(chosen or "~/tensorflow_datasets"))


def network_available(
    urls: Sequence[str] = DEFAULT_PROBE_URLS, timeout: float = PROBE_TIMEOUT_SECONDS
) -> bool:
    """True when one of `urls` answers an HTTP HEAD request within `timeout` seconds in all.

    Any HTTP status counts as an answer. Runs in a daemon thread so that a slow DNS lookup,
    which socket timeouts do not bound, cannot hold the caller past `timeout`. Proxies from
    the environment are honoured, as they are by the tfds download.
    """
    answered = threading.Event()

    def attempt() -> None:
        for url in urls:
            try:
                request = urllib.request.Request(url, method="HEAD")
                with urllib.request.urlopen(request, timeout=timeout):
                    pass
            except urllib.error.HTTPError:
                pass  # The server answered with an error status: the network works.
            except (OSError, ValueError):
                continue
            answered.set()
            return

    thread = threading.Thread(target=attempt, name="network-probe", daemon=True)
    thread.start()
    thread.join(timeout)  # Returns early when every URL failed fast (no DNS, no route).
    return answered.is_set()


def load_catalog_builder(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download_urls: Sequence[str] = DEFAULT_PROBE_URLS,
    local_alternative: str = "",
    probe: Callable[[Sequence[str]], bool] | None = None,
) -> tfds.core.DatasetBuilder:
    """Returns the prepared tfds builder of catalog dataset `name`, downloading it if needed.

    Args:
        name: catalog name with optional config and version, e.g. `imdb_reviews`, `glue/sst2`.
        data_dir: tfds data directory; `None` for tfds' default.
        download_urls: URLs the download would fetch; probed before downloading.
        local_alternative: how to read the same data from local files, quoted in the error.
        probe: `probe(urls) -> bool`, default `network_available` (tests substitute their own).

    Raises:
        DataSourceError: `name` is not in the tfds catalog.
        CatalogUnavailableError: not prepared and none of `download_urls` answers; raised
            within `PROBE_TIMEOUT_SECONDS` instead of after tfds' minutes of retries.
    """
    data_dir = resolve_data_dir(data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as error:
        first_line = str(error).splitlines()[0]
        raise DataSourceError(
            f"data source {name!r} is neither an existing file or directory nor a tfds "
            f"catalog dataset ({first_line})"
        ) from None
    if builder.is_prepared():
        return builder
    probe = probe or network_available  # Looked up per call so tests can monkeypatch it.
    if not probe(tuple(download_urls)):
        alternative = f" Read the same data from local files instead, e.g. {local_alternative}."
        raise CatalogUnavailableError(
            f"tfds catalog dataset '{name}' is not prepared in {data_dir} and cannot be "
            f"downloaded: none of {', '.join(download_urls)} answered (probe limit "
            f"{PROBE_TIMEOUT_SECONDS:g} s; offline?).{alternative if local_alternative else ''} "
            f"Or prepare it on a machine with internet and copy {builder.data_dir} here."
        )
    builder.download_and_prepare()
    return builder


class LocalFilesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A tfds dataset builder over local files; `local_builder_class` names one per app.

    Args:
        features: the `tfds.features.FeaturesDict` of one example.
        split_examples: split name to a function yielding `(unique key, example dict)`.
        description: recorded in the dataset info.
        **kwargs: `config` and `data_dir`, as for any tfds builder.
    """

    VERSION = tfds.core.Version(LOCAL_BUILDER_VERSION)
    RELEASE_NOTES = {LOCAL_BUILDER_VERSION: "Local files prepared by rnn_keras apps."}

    def __init__(
        self,
        *,
        features: tfds.features.FeaturesDict,
        split_examples: Mapping[str, Callable[[], Iterator[tuple[str, dict]]]],
        description: str = "",
        **kwargs,
    ):
        self._features = features
        self._split_examples = dict(split_examples)
        self._description = description
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, description=self._description, features=self._features
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files: nothing to download.
        return {name: self._generate_examples(make) for name, make in self._split_examples.items()}

    def _generate_examples(self, make_examples):
        yield from make_examples()


_BUILDER_CLASSES: dict[str, type[LocalFilesBuilder]] = {}


def local_builder_class(builder_name: str) -> type[LocalFilesBuilder]:
    """Returns the `LocalFilesBuilder` subclass whose tfds name is `builder_name`."""
    if builder_name not in _BUILDER_CLASSES:
        class_name = "".join(part.title() for part in builder_name.split("_"))
        namespace = {"name": builder_name, "__module__": __name__}
        _BUILDER_CLASSES[builder_name] = types.new_class(
            class_name,
            (LocalFilesBuilder,),
            {"skip_registration": True},
            lambda body: body.update(namespace),
        )
    return _BUILDER_CLASSES[builder_name]


def files_fingerprint(paths: Sequence[Path], root: Path) -> list[list]:
    """Returns `[relative path, size, modification time in ns]` for each of `paths`."""
    entries = []
    for path in paths:
        status = path.stat()
        entries.append([path.relative_to(root).as_posix(), status.st_size, status.st_mtime_ns])
    return entries


def config_name(label: str, fingerprint: Mapping) -> str:
    """Returns a builder config name: a readable `label` and a hash of `fingerprint`."""
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "files"
    return f"{slug}_{digest}"


def prepare_local_files(
    *,
    builder_name: str,
    label: str,
    fingerprint: Mapping,
    plan: Callable[[], tuple[tfds.features.FeaturesDict, Mapping[str, Callable]]],
    data_dir: str | os.PathLike | None = None,
    description: str = "",
) -> tuple[tfds.core.DatasetBuilder, bool]:
    """Prepares local files once as a tfds dataset and returns its builder.

    Args:
        builder_name: tfds builder name, one per app (e.g. `sentiment_files`).
        label: readable start of the config name (e.g. the source file name).
        fingerprint: JSON-serialisable identity of the source: paths, `files_fingerprint`,
            reading options. Equal fingerprints share one prepared dataset.
        plan: reads and checks the files (raising `DataError`), then returns the features and
            the `split_examples` of `LocalFilesBuilder`; called only when not yet prepared.
        data_dir: tfds data directory; `None` for tfds' default.
        description: recorded in the dataset info.

    Returns:
        `(builder, prepared_now)`: a tfds builder read from the prepared directory, whether
        this call prepared it.
    """
    data_dir = resolve_data_dir(data_dir)
    name = config_name(label, fingerprint)
    builder_dir = Path(data_dir, builder_name, name, LOCAL_BUILDER_VERSION)
    prepared_now = not (builder_dir / "dataset_info.json").exists()
    if prepared_now:
        features, split_examples = plan()
        config = tfds.core.BuilderConfig(
            name=name, version=LOCAL_BUILDER_VERSION, description=description
        )
        builder = local_builder_class(builder_name)(
            features=features,
            split_examples=split_examples,
            description=description,
            config=config,
            data_dir=data_dir,
        )
        download_config = tfds.download.DownloadConfig(
            compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
        builder.download_and_prepare(download_config=download_config)
    return tfds.builder_from_directory(str(builder_dir)), prepared_now


def find_split_files(directory: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Maps split names to files such as `train.csv`, `dev.tsv`, `valid.txt`, `test.csv`.

    Raises:
        DataSourceError: two files name the same split (e.g. `dev.tsv` and `valid.tsv`).
    """
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        split = SPLIT_ALIASES.get(path.stem.lower())
        if split is None or path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if split in found:
            raise DataSourceError(
                f"{directory}: both {found[split].name} and {path.name} hold {split}"
            )
        found[split] = path
    return found


def _decoded_lines(path: Path, encoding: str, position: list[int]) -> Iterator[str]:
    """Yields the lines of `path` decoded, counting them in `position[0]`."""
    if "\n".encode(encoding) != b"\n":  # UTF-16 and UTF-32: bytes do not split at b"\n".
        with open(path, encoding=encoding, newline="") as handle:
            try:
                for position[0], line in enumerate(handle, start=1):
                    yield line
            except UnicodeDecodeError as error:
                raise DataError(path, position[0] + 1, f"not valid {encoding}: {error}") from None
        return
    with open(path, "rb") as handle:
        for position[0], raw in enumerate(handle, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as error:
                bad = raw[error.start : error.end]
                raise DataError(
                    path,
                    position[0],
                    f"bytes {bad!r} at column {error.start + 1} are not valid {encoding}; "
                    "set the encoding option to the file's encoding (e.g. latin-1)",
                ) from None
            yield line.removeprefix("\ufeff") if position[0] == 1 else line


def check_encoding(encoding: str) -> str:
    """Returns the codec's canonical name; raises ValueError naming an unknown encoding."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataSourceError(f"unknown encoding {encoding!r}") from None


def read_table(
    path: str | os.PathLike, *, delimiter: str = ",", encoding: str = "utf-8"
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Reads a CSV (`delimiter=","`, quoted fields) or TSV (`"\\t"`, no quoting) with a header.

    Returns:
        `(header, rows)`: the column names, and an iterator of `(line number where the row
        starts, {column: value})`. Blank lines are skipped.

    Raises:
        DataError: bytes not in `encoding`, broken quoting, or a row whose number of fields
            differs from the header's; raised while iterating, naming file and line.
    """
    path = Path(path)
    position = [0]
    lines = _decoded_lines(path, check_encoding(encoding), position)
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    csv.field_size_limit(1 << 30)  # Reviews can be long; the default limit is 128 KiB.
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise DataError(path, 1, f"malformed header: {error}") from None
    if not header:
        raise DataError(path, 1, "empty file: expected a header line naming the columns")
    header = [name.strip() for name in header]

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        while True:
            start = position[0] + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise DataError(path, start, f"malformed row: {error}") from None
            if not fields:
                continue
            if len(fields) != len(header):
                raise DataError(
                    path,
                    start,
                    f"expected {len(header)} fields ({', '.join(header)}), found {len(fields)}"
                    + ("" if delimiter == "," else "; fields are separated by tabs"),
                )
            yield start, dict(zip(header, fields, strict=True))

    return header, rows()


def read_text_file(path: Path, encoding: str) -> str:
    """Returns the whole text of `path`; raises DataError naming the line of undecodable bytes."""
    data = path.read_bytes()
    try:
        return data.decode(check_encoding(encoding)).removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            path,
            line,
            f"bytes {data[error.start : error.end]!r} are not valid {encoding}; "
            "set the encoding option to the file's encoding (e.g. latin-1)",
        ) from None


def known_size(dataset: tf.data.Dataset) -> int:
    """Returns the number of elements of `dataset`, counting them if tf.data does not know."""
    size = int(dataset.cardinality())
    if size >= 0:
        return size
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def carve_validation(
    dataset: tf.data.Dataset, fraction: float, seed: int, *, num_examples: int | None = None
) -> tuple[tf.data.Dataset, tf.data.Dataset, str]:
    """Splits a random `fraction` of `dataset` off as validation, fixed by `seed`.

    The chosen indices come from `numpy.random.default_rng(seed)`, so the carve is the same
    on every run and machine as long as `dataset` yields its elements in the same order (tfds
    does without `shuffle_files`).

    Returns:
        `(train, validation, note)`, both datasets with known cardinality, and a note such as
        `"validation: 10% of train (2,500 of 25,000 examples) carved with seed 1234"`.
    """
    total = num_examples if num_examples is not None else known_size(dataset)
    if not 0 < fraction < 1 or total < 2:
        raise DataSourceError(
            f"cannot carve validation_fraction {fraction} of {total} examples; choose a "
            "fraction in (0, 1), provide more examples or a validation split"
        )
    # At least one example each side, so that tiny smoke-test datasets still have both.
    count = min(total - 1, max(1, int(round(total * fraction))))
    chosen = np.zeros(total, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(total)[:count]] = True
    tagged = tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(chosen)))
    shapes = [spec.shape for spec in tf.nest.flatten(dataset.element_spec)]
    # A filter calls a function per example, five times slower here than masking batches;
    # batches need fixed shapes, so variable-length examples (token lists) use the filter.
    batchable = all(shape.is_fully_defined() for shape in shapes)

    def part(wanted: bool, size: int) -> tf.data.Dataset:
        def select(examples, in_validation):
            keep = in_validation if wanted else tf.logical_not(in_validation)
            return tf.nest.map_structure(lambda tensor: tf.boolean_mask(tensor, keep), examples)

        if batchable:
            selected = tagged.batch(1024).map(select).unbatch()
        else:
            selected = tagged.filter(lambda _, in_validation: in_validation == wanted)
            selected = selected.map(lambda example, _: example)
        return selected.apply(tf.data.experimental.assert_cardinality(size))

    note = (
        f"validation: {fraction * 100:g}% of train ({count:,} of {total:,} examples) "
        f"carved with seed {seed}"
    )
    return part(False, total - count), part(True, count), note


def limit_examples(
    splits: Mapping[str, tf.data.Dataset], max_examples: int, notes: list[str]
) -> tuple[dict[str, tf.data.Dataset], dict[str, int]]:
    """Keeps the first `max_examples` of each split (0 keeps all); returns splits and sizes."""
    limited, sizes = {}, {}
    for name, dataset in splits.items():
        size = known_size(dataset)
        if 0 < max_examples < size:
            dataset, size = dataset.take(max_examples), max_examples
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(size))
        limited[name], sizes[name] = dataset, size
    if max_examples > 0:
        notes.append(f"max_examples: each split limited to its first {max_examples:,} examples")
    return limited, sizes


VALIDATION_STRATEGIES = ("random", "tail")


def carve_tail(
    dataset: tf.data.Dataset, fraction: float, *, num_examples: int | None = None
) -> tuple[tf.data.Dataset, tf.data.Dataset, str]:
    """Splits the last `fraction` of `dataset` off as validation, in order, never shuffled.

    For data ordered in time (series, one long text): validation comes after everything
    the model trains on, so it never sees the future. Counts are rounded, with at least
    one element on each side.
    """
    total = num_examples if num_examples is not None else known_size(dataset)
    if not 0 < fraction < 1 or total < 2:
        raise DataSourceError(
            f"cannot carve the last {fraction} of {total} elements as validation; choose a "
            "fraction in (0, 1), provide more data or a validation split"
        )
    count = min(total - 1, max(1, int(round(total * fraction))))
    train = dataset.take(total - count).apply(
        tf.data.experimental.assert_cardinality(total - count)
    )
    validation = dataset.skip(total - count).apply(tf.data.experimental.assert_cardinality(count))
    note = (
        f"validation: the last {fraction * 100:g}% of train ({count:,} of {total:,} elements), "
        "in order"
    )
    return train, validation, note


def is_catalog_name(source: str) -> bool:
    """True when `source` is no existing path and reads as a tfds name like `glue/sst2:2.0.0`."""
    if not source or os.path.exists(source):
        return False
    name = source.split(":")[0]
    return all(part and part.replace("_", "").isalnum() for part in name.split("/")) and (
        name.count("/") <= 1 and name == name.lower()
    )


def load_source(
    source: str,
    *,
    read_catalog: Callable[[list[str]], tuple[dict, dict]],
    read_local: Callable[[list[str]], tuple[dict, dict]],
    validation_fraction: float = 0.0,
    validation_strategy: str = "random",
    seed: int = 0,
    max_examples: int = 0,
    transform: Callable[[dict, dict, list[str]], dict] | None = None,
) -> LoadedData:
    """The load skeleton every app shares: catalog or local files, carve, order, limit.

    Args:
        source: a tfds catalog name or a path; a path that does not exist and does not read
            as a catalog name is a `DataSourceError`.
        read_catalog, read_local: `(notes) -> (splits, info)`, the app's two readers; they
            append lines for the user to `notes`.
        validation_fraction: carved from train when the source has no validation split
            (0: no validation).
        validation_strategy: `random` (examples drawn with `seed`; independent examples) or
            `tail` (the last elements in order; data ordered in time).
        max_examples: keep the first N elements of each split (0 keeps all).
        transform: `(splits, info, notes) -> splits`, applied after carving (e.g. cleaning).

    Returns:
        `LoadedData` with splits ordered train, validation, test and `info["num_examples"]`.
    """
    if validation_strategy not in VALIDATION_STRATEGIES:
        raise DataSourceError(
            f"validation strategy {validation_strategy!r} is not one of "
            f"{', '.join(VALIDATION_STRATEGIES)}"
        )
    notes: list[str] = []
    if is_catalog_name(source):
        splits, info = read_catalog(notes)
    else:
        if not source or not os.path.exists(source):
            raise DataSourceError(f"data.source: {source!r} does not exist")
        splits, info = read_local(notes)
    splits = dict(splits)
    if "train" not in splits:
        raise DataSourceError(f"{source}: no train split (found: {', '.join(sorted(splits))})")
    if "validation" not in splits and validation_fraction > 0:
        if validation_strategy == "tail":
            splits["train"], splits["validation"], note = carve_tail(
                splits["train"], validation_fraction
            )
        else:
            splits["train"], splits["validation"], note = carve_validation(
                splits["train"], validation_fraction, seed
            )
        notes.append(note)
    elif "validation" not in splits:
        notes.append("validation: none (the source has none and the validation fraction is 0)")
    if transform is not None:
        splits = transform(splits, info, notes)
    order = [name for name in ("train", "validation", "test") if name in splits]
    order += sorted(set(splits) - set(order))
    splits, sizes = limit_examples({name: splits[name] for name in order}, max_examples, notes)
    info.setdefault("source", source)
    info["num_examples"] = sizes
    return LoadedData(splits=splits, info=info, notes=notes)
