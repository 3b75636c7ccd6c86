"""NER data: sentences of tokens with one IOB2 tag each, from the tfds catalog or CoNLL files.

`load(config)` returns `LoadedData` whose splits (`train`, `validation`, and `test` when the
source has one) are unbatched `tf.data.Dataset`s of
`{"tokens": tf.string (time,), "tags": tf.int64 (time,)}`, with `info["tag_names"]` in id
order (`O` first). Tag names are read from the data, never hard-coded, so any tag set works.
Sources (`NerDataConfig.source`):

* the tfds catalog `conll2003` (splits `train`, `dev` -> validation, `test`);
* a CoNLL file (train; validation carved from it) or a directory of split files
  (`train.txt`, `valid.txt`/`dev.txt`, `test.txt`; also `.conll`, `.iob`, `.bio`, `.tsv`).

CoNLL files hold one token per line with whitespace- (or tab-) separated columns, a blank
line between sentences and optional `-DOCSTART-` lines between documents. Which column holds
the tag is an option (`tag_column`, default the last), so `token tag` and
`token POS chunk NER` files both read. Every problem raises `DataError` naming file and line:
a line with another number of columns than the file's first, an empty token or tag, a tag
that is neither `O` nor `B-`/`I-<type>`, and, in IOB2 files, an `I-` tag that does not
continue an entity of its type. IOB1 files (`data.tag_scheme=iob1`) are converted to IOB2:
an `I-X` that starts an entity becomes `B-X`.

Example:

```python
data = load(NerDataConfig(source="../shared/data/conll2003"))
print(data.describe(), data.info["tag_names"])
```
"""

from __future__ import annotations

import re
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
    load_source,
    prepare_local_files,
    read_text_file,
)
from apps.common.errors import ConfigError
from apps.ner.config import TAG_SCHEMES, NerDataConfig

BUILDER_NAME = "ner_files"
CATALOG_NAME = "conll2003"
CATALOG_URLS = ("https://data.deepai.org/",)
LOCAL_ALTERNATIVE = "--data ../shared/data/conll2003"
SUFFIXES = (".txt", ".conll", ".iob", ".bio", ".tsv")
DOCUMENT_START = "-DOCSTART-"
_TAG = re.compile(r"^([BI])-(\S+)$")
# Bumped when the reading rules change, so prepared copies are read again.
READER_VERSION = 1


def load(config: NerDataConfig) -> LoadedData:
    """Loads the splits described by `config`; see the module docstring.

    Raises:
        ConfigError: a config field is invalid (named as `data.<field>`).
        DataError: a local file is malformed (names file, line and problem).
        DataSourceError: the source does not exist or holds no sentences.
        CatalogUnavailableError: `conll2003` is not prepared and the machine is offline;
            the message names the local alternative.
    """
    check_config(config)
    return load_source(
        config.source,
        read_catalog=lambda notes: _load_catalog(config, notes),
        read_local=lambda notes: _load_local(config, notes),
        validation_fraction=config.validation_fraction,
        validation_strategy="random",
        seed=config.seed,
        max_examples=config.max_examples,
    )


def check_config(config: NerDataConfig) -> None:
    """Raises ConfigError naming the `data.` key of a bad value."""
    if config.tag_scheme not in TAG_SCHEMES:
        raise ConfigError(f"data.tag_scheme: {config.tag_scheme!r} not in {TAG_SCHEMES}")
    if config.token_column < 0:
        raise ConfigError(f"data.token_column: must be >= 0, got {config.token_column}")
    if not 0 <= config.validation_fraction < 1:
        raise ConfigError(f"data.validation_fraction: {config.validation_fraction} not in [0, 1)")
    if config.max_examples < 0:
        raise ConfigError(f"data.max_examples: {config.max_examples} is negative")
    if config.delimiter not in ("", "\t", " "):
        raise ConfigError(f"data.delimiter: {config.delimiter!r}; use '' (whitespace) or a tab")
    try:
        check_encoding(config.encoding)
    except ValueError as error:
        raise ConfigError(f"data.encoding: {error}") from None


def repair_tag(tag: str, previous: str, scheme: str) -> str | None:
    """The IOB2 tag for `tag` after `previous`, or None when IOB2 forbids the transition.

    With `scheme="iob1"` an `I-X` that does not continue an `X` entity becomes `B-X`; with
    `iob2` it is invalid (None).
    """
    match = _TAG.match(tag)
    if match is None or match.group(1) == "B":
        return tag
    previous_match = _TAG.match(previous)
    if previous_match is not None and previous_match.group(2) == match.group(2):
        return tag
    return f"B-{match.group(2)}" if scheme == "iob1" else None


def read_conll(
    path: str | Path,
    *,
    token_column: int = 0,
    tag_column: int = -1,
    delimiter: str = "",
    tag_scheme: str = "iob2",
    encoding: str = "utf-8",
) -> list[tuple[int, list[str], list[str]]]:
    """Reads a CoNLL file into sentences; see the module docstring for the rules.

    Returns:
        `[(line number of the sentence's first token, tokens, IOB2 tags), ...]`.

    Raises:
        DataError: naming the file, the line and the problem.
    """
    path = Path(path)
    lines = read_text_file(path, encoding).split("\n")
    sentences: list[tuple[int, list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = columns = first_line = 0

    def close():
        nonlocal tokens, tags
        if tokens:
            sentences.append((start, tokens, tags))
        tokens, tags = [], []

    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            close()
            continue
        fields = line.split() if not delimiter else line.split(delimiter)
        if fields[0].strip() == DOCUMENT_START:
            close()
            continue
        if not columns:
            columns, first_line = len(fields), number
            for key, column in (
                ("data.tag_column", tag_column),
                ("data.token_column", token_column),
            ):
                if not -columns <= column < columns:
                    raise DataError(
                        path, number, f"{key}={column}, but the line has {columns} columns"
                    )
        if len(fields) != columns:
            raise DataError(
                path,
                number,
                f"expected {columns} columns (as on line {first_line}), found {len(fields)}: "
                f"{line.strip()[:60]!r}",
            )
        token, tag = fields[token_column].strip(), fields[tag_column].strip()
        if not token:
            raise DataError(path, number, f"empty token in column {token_column}")
        if not tag:
            raise DataError(path, number, f"empty tag in column {tag_column}")
        if tag != "O" and _TAG.match(tag) is None:
            raise DataError(path, number, f"tag {tag!r} is neither O nor B-<type> or I-<type>")
        repaired = repair_tag(tag, tags[-1] if tags else "O", tag_scheme)
        if repaired is None:
            previous = tags[-1] if tags else "the sentence start"
            raise DataError(
                path,
                number,
                f"tag {tag!r} after {previous!r} is not valid IOB2 (an entity starts with B-); "
                "if the file is IOB1, set data.tag_scheme=iob1 to convert it",
            )
        if not tokens:
            start = number
        tokens.append(token)
        tags.append(repaired)
    close()
    return sentences


def order_tags(tags) -> list[str]:
    """Tag names in id order: `O` first, then by entity type, `B-` before `I-`."""

    def key(tag):
        match = _TAG.match(tag)
        return (1, match.group(2), match.group(1)) if match else (0, tag, "")

    return sorted(set(tags) | {"O"}, key=key)


def _load_local(config: NerDataConfig, notes: list[str]):
    source = Path(config.source)
    if source.is_dir():
        files = find_split_files(source, SUFFIXES)
        if "train" not in files:
            raise DataSourceError(
                f"{source}: no train file (train{'/'.join(SUFFIXES)}) among "
                f"{', '.join(sorted(p.name for p in source.iterdir())) or 'no files'}"
            )
        root = source
    else:
        files, root = {"train": source}, source.parent
    options = {
        "token_column": config.token_column,
        "tag_column": config.tag_column,
        "delimiter": config.delimiter,
        "tag_scheme": config.tag_scheme,
        "encoding": config.encoding,
    }
    fingerprint = {
        "root": str(root.resolve()),
        "files": files_fingerprint(list(files.values()), root),
        "splits": {name: path.name for name, path in files.items()},
        "options": options,
        "reader": READER_VERSION,
    }

    def plan():
        read = {name: read_conll(path, **options) for name, path in files.items()}
        for name, sentences in read.items():
            if not sentences:
                raise DataError(files[name], 0, "no sentences (no token lines)")
        tag_names = order_tags(tag for s in read.values() for _, _, tags in s for tag in tags)
        features = tfds.features.FeaturesDict(
            {
                "tokens": tfds.features.Sequence(tfds.features.Text()),
                "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=tag_names)),
            }
        )

        def examples(sentences):
            def make():
                for index, (_, tokens, tags) in enumerate(sentences):
                    yield index, {"tokens": tokens, "tags": tags}

            return make

        return features, {name: examples(sentences) for name, sentences in read.items()}

    builder, prepared_now = prepare_local_files(
        builder_name=BUILDER_NAME,
        label=source.name,
        fingerprint=fingerprint,
        plan=plan,
        data_dir=config.data_dir,
        description=f"CoNLL files from {source}",
    )
    tag_names = list(builder.info.features["tags"].feature.names)
    splits = {name: builder.as_dataset(split=name).map(_cast_tags) for name in builder.info.splits}
    info = {
        "tag_names": tag_names,
        "source": f"{source} ({', '.join(f'{n}: {p.name}' for n, p in files.items())})",
        "prepared": "now" if prepared_now else "reused",
        "builder_dir": str(builder.data_dir),
    }
    if config.tag_scheme == "iob1":
        notes.append("tags: IOB1 converted to IOB2 (an I- tag starting an entity became B-)")
    return splits, info


def _cast_tags(example):
    return {"tokens": example["tokens"], "tags": tf.cast(example["tags"], tf.int64)}


def iob1_to_iob2_ids(tag_names):
    """A function converting a tag-id sequence from IOB1 to IOB2 in TensorFlow."""
    kinds = sorted({name[2:] for name in tag_names if _TAG.match(name)})
    type_of = [kinds.index(n[2:]) if _TAG.match(n) else -1 for n in tag_names]
    inside = [n.startswith("I-") for n in tag_names]
    begin = [
        tag_names.index(f"B-{n[2:]}") if f"B-{n[2:]}" in tag_names else i
        for i, n in enumerate(tag_names)
    ]
    outside = tag_names.index("O") if "O" in tag_names else 0

    def convert(tags):
        previous = tf.concat([[tf.cast(outside, tags.dtype)], tags[:-1]], axis=0)
        starts = tf.gather(inside, tags) & (
            tf.gather(type_of, previous) != tf.gather(type_of, tags)
        )
        return tf.where(starts, tf.cast(tf.gather(begin, tags), tags.dtype), tags)

    return convert


def _load_catalog(config: NerDataConfig, notes: list[str]):
    name = config.source.split(":")[0]
    builder = load_catalog_builder(
        config.source,
        config.data_dir,
        download_urls=CATALOG_URLS
        if name == CATALOG_NAME
        else ("https://storage.googleapis.com/",),
        local_alternative=LOCAL_ALTERNATIVE,
    )
    features = builder.info.features
    for key in ("tokens", "ner"):
        if key not in features:
            raise DataSourceError(
                f"{config.source} has no feature {key!r}; features: {list(features)}"
            )
    tag_names = list(features["ner"].feature.names)
    convert = iob1_to_iob2_ids(tag_names) if config.tag_scheme == "iob1" else None
    wanted = {"train": "train", "validation": "dev", "test": "test"}
    splits = {}
    for ours, theirs in wanted.items():
        if theirs not in builder.info.splits:
            theirs = ours if ours in builder.info.splits else None
        if theirs is None:
            continue

        def element(example):
            tags = tf.cast(example["ner"], tf.int64)
            return {"tokens": example["tokens"], "tags": convert(tags) if convert else tags}

        splits[ours] = builder.as_dataset(split=theirs).map(element)
    info = {
        "tag_names": tag_names,
        "source": f"tfds catalog {config.source}",
        "prepared": "catalog",
        "builder_dir": str(builder.data_dir),
    }
    return splits, info
