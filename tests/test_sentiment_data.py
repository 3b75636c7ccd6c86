"""Tests of apps.sentiment.data: every source kind, label mapping, errors, reuse, catalog."""

import csv
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from apps.common import data as common_data  # noqa: E402
from apps.common.data import CatalogUnavailableError, DataError  # noqa: E402
from apps.sentiment import data  # noqa: E402
from apps.sentiment.data import SentimentDataConfig, load  # noqa: E402

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"

REVIEWS = [
    ("pos/1", 9, 1, 'A "great" film,<br />truly.'),
    ("pos/2", 8, 1, "Loved it.\nSecond line of the same review."),
    ("pos/3", 10, 1, "Wonderful."),
    ("neg/1", 2, 0, "Dull."),
    ("neg/2", 1, 0, "Awful, awful, awful."),
    ("neg/3", 3, 0, "Not for me."),
] * 2


def write_csv(path, rows, header=("id", "rating", "label", "text")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_tsv(path, rows, header=("sentence", "label")):
    lines = ["\t".join(header)] + ["\t".join(str(field) for field in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def as_pairs(loaded, split):
    names = loaded.info["class_names"]
    return sorted(
        (example["text"].decode(), names[example["label"]])
        for example in tfds.as_numpy(loaded.splits[split])
    )


def test_csv_file_round_trips_with_carved_validation(tmp_path):
    source = write_csv(tmp_path / "reviews.csv", REVIEWS)
    config = SentimentDataConfig(source=str(source), data_dir=str(tmp_path / "tfds"))
    config.validation_fraction = 0.25
    loaded = load(config)
    assert loaded.info["class_names"] == ["negative", "positive"]
    assert loaded.info["num_examples"] == {"train": 9, "validation": 3}
    assert loaded.info["prepared"] == "now"
    assert "validation: 25% of train (3 of 12 examples) carved with seed 1234" in loaded.notes
    assert not any(note.startswith("html") for note in loaded.notes)  # No "imdb" in the path.
    expected = sorted((text, ["negative", "positive"][label]) for _, _, label, text in REVIEWS)
    assert sorted(as_pairs(loaded, "train") + as_pairs(loaded, "validation")) == expected
    spec = loaded.splits["train"].element_spec
    assert spec == {
        "text": tf.TensorSpec((), tf.string),
        "label": tf.TensorSpec((), tf.int64),
    }


def test_second_load_reuses_prepared_data_and_changed_file_is_prepared_again(tmp_path, monkeypatch):
    source = write_csv(tmp_path / "reviews.csv", REVIEWS)
    config = SentimentDataConfig(source=str(source), data_dir=str(tmp_path / "tfds"))
    first = load(config)

    def no_reading(*args, **kwargs):
        raise AssertionError("a prepared dataset must not read the source files again")

    monkeypatch.setattr(data, "_raw_examples", no_reading)
    second = load(config)
    assert second.info["prepared"] == "reused"
    assert second.info["builder_dir"] == first.info["builder_dir"]
    assert as_pairs(second, "validation") == as_pairs(first, "validation")
    monkeypatch.undo()

    write_csv(source, REVIEWS[:8])
    os.utime(source, ns=(1, 1))  # A different modification time, whatever the clock says.
    changed = load(config)
    assert changed.info["prepared"] == "now"
    assert changed.info["builder_dir"] != first.info["builder_dir"]
    assert sum(changed.info["num_examples"].values()) == 8


def test_imdb_path_strips_html_and_max_examples_limits(tmp_path):
    folder = tmp_path / "imdb"
    folder.mkdir()
    source = write_csv(folder / "train.csv", REVIEWS)
    config = SentimentDataConfig(source=str(folder), data_dir=str(tmp_path / "tfds"))
    loaded = load(config)
    texts = [text for text, _ in as_pairs(loaded, "train") + as_pairs(loaded, "validation")]
    assert 'A "great" film, truly.' in texts and not any("<br" in text for text in texts)
    assert "html: tags such as <br /> replaced by a space" in loaded.notes

    config.strip_html = "false"
    config.max_examples = 3
    raw = load(config)
    assert raw.info["num_examples"] == {"train": 3, "validation": 1}
    assert str(source) in raw.info["source"] or str(folder) in raw.info["source"]


def test_directory_of_split_files_with_string_labels_and_label_order(tmp_path):
    rows = [('" starts with a quote', "positive"), ("meh", "neutral"), ("bad", "negative")]
    write_tsv(tmp_path / "train.tsv", rows * 3)
    write_tsv(tmp_path / "dev.tsv", rows)
    write_tsv(tmp_path / "test.tsv", rows[:2])
    config = SentimentDataConfig(source=str(tmp_path), data_dir=str(tmp_path / "tfds"))
    loaded = load(config)
    assert loaded.info["class_names"] == ["negative", "neutral", "positive"]
    assert loaded.info["num_examples"] == {"train": 9, "validation": 3, "test": 2}
    assert not any(note.startswith("validation:") for note in loaded.notes)
    assert as_pairs(loaded, "validation") == sorted(rows)

    config.label_names = ["positive", "neutral", "negative"]
    ordered = load(config)
    assert ordered.info["class_names"] == ["positive", "neutral", "negative"]
    labels = {e["text"].decode(): int(e["label"]) for e in tfds.as_numpy(ordered.splits["test"])}
    assert labels == {'" starts with a quote': 0, "meh": 1}


def test_class_folders_below_split_folders_like_aclimdb(tmp_path):
    root = tmp_path / "aclImdb"
    reviews = {
        ("train", "pos"): ["good one", "great<br />fun"],
        ("train", "neg"): ["bad one", "poor", "weak"],
        ("train", "unsup"): ["no label here"],
        ("test", "pos"): ["fine"],
        ("test", "neg"): ["boring"],
    }
    for (split, label), texts in reviews.items():
        (root / split / label).mkdir(parents=True)
        for index, text in enumerate(texts):
            (root / split / label / f"{index}_7.txt").write_text(text, encoding="utf-8")
    (root / "train" / "urls_pos.txt").write_text("http://example.com\n", encoding="utf-8")
    config = SentimentDataConfig(source=str(root), data_dir=str(tmp_path / "tfds"))
    config.validation_fraction = 0.2
    loaded = load(config)
    assert loaded.info["class_names"] == ["negative", "positive"]
    assert loaded.info["num_examples"] == {"train": 4, "validation": 1, "test": 2}
    assert as_pairs(loaded, "test") == [("boring", "negative"), ("fine", "positive")]
    train = as_pairs(loaded, "train") + as_pairs(loaded, "validation")
    assert sorted(train) == sorted(
        [("good one", "positive"), ("great fun", "positive")]  # "imdb" in the path: no tags.
        + [("bad one", "negative"), ("poor", "negative"), ("weak", "negative")]
    )


def test_class_folders_directly_in_source(tmp_path):
    for label, text in (("happy", "yay"), ("sad", "oh no"), ("angry", "grr")):
        (tmp_path / "texts" / label).mkdir(parents=True)
        (tmp_path / "texts" / label / "a.txt").write_text(text, encoding="utf-8")
    config = SentimentDataConfig(
        source=str(tmp_path / "texts"), data_dir=str(tmp_path / "tfds"), validation_fraction=0
    )
    loaded = load(config)
    assert loaded.info["class_names"] == ["angry", "happy", "sad"]
    assert as_pairs(loaded, "train") == [("grr", "angry"), ("oh no", "sad"), ("yay", "happy")]
    assert "validation: none (the source has none and the validation fraction is 0)" in loaded.notes


def error_from(tmp_path, file_name, content, **options):
    path = tmp_path / file_name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    config = SentimentDataConfig(source=str(path), data_dir=str(tmp_path / "tfds"), **options)
    with pytest.raises(DataError) as caught:
        load(config)
    assert not (tmp_path / "tfds" / "sentiment_files").exists() or not any(
        (tmp_path / "tfds" / "sentiment_files").rglob("dataset_info.json")
    )  # Nothing half-prepared is left to be reused.
    return str(caught.value)


@pytest.mark.parametrize(
    ("file_name", "content", "options", "expected"),
    [
        (
            "rows.csv",
            "id,label,text\n1,1,good\n2,0,bad,extra\n",
            {},
            "rows.csv, line 3: expected 3 fields (id, label, text), found 4",
        ),
        (
            "rows.tsv",
            "sentence\tlabel\nfine\t1\nno tab here\n",
            {},
            "rows.tsv, line 3: expected 2 fields (sentence, label), found 1; fields are "
            "separated by tabs",
        ),
        (
            "columns.csv",
            "id,label,text\n1,1,good\n",
            {"text_column": "review_body"},
            "columns.csv, line 1: missing column 'review_body' (text_column); the header has: "
            "id, label, text",
        ),
        (
            "nolabel.csv",
            "id,stars,text\n1,5,good\n",
            {},
            "nolabel.csv, line 1: no label_column among label, sentiment, polarity",
        ),
        (
            "labels.csv",
            "label,text\npositive,good\nnegative,bad\nmixed,so-so\n",
            {"label_names": ["negative", "positive"]},
            "labels.csv, line 4: unknown label 'mixed'; label_names are ['negative', 'positive']",
        ),
        (
            "empty.csv",
            'label,text\n1,good\n0,"   "\n',
            {},
            "empty.csv, line 3: empty text in column 'text'",
        ),
        (
            "encoding.csv",
            "label,text\n1,good\n0,caf\xe9 bad\n".encode("latin-1"),
            {},
            "encoding.csv, line 3: bytes b'\\xe9' at column 6 are not valid utf-8",
        ),
    ],
)
def test_bad_files_raise_naming_file_line_and_problem(
    tmp_path, file_name, content, options, expected
):
    message = error_from(tmp_path, file_name, content, **options)
    assert str(tmp_path / file_name) in message
    assert expected in message


def test_bad_text_files_in_class_folders(tmp_path):
    (tmp_path / "texts" / "pos").mkdir(parents=True)
    (tmp_path / "texts" / "neg").mkdir(parents=True)
    (tmp_path / "texts" / "pos" / "a.txt").write_bytes(b"fine\nthen \xff broken")
    (tmp_path / "texts" / "neg" / "b.txt").write_text("", encoding="utf-8")
    config = SentimentDataConfig(source=str(tmp_path / "texts"), data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataError, match=r"neg/b.txt, line 1: empty text"):
        load(config)
    (tmp_path / "texts" / "neg" / "b.txt").write_text("bad", encoding="utf-8")
    with pytest.raises(DataError, match=r"pos/a.txt, line 2: bytes b'\\xff' are not valid utf-8"):
        load(config)
    config.encoding = "latin-1"
    assert load(config).info["num_examples"] == {"train": 1, "validation": 1}


def test_bad_config_values_name_the_field(tmp_path):
    for field, value, expected in (
        ("format", "xlsx", "data.format: 'xlsx' is not one of auto, csv, tsv, folders"),
        ("validation_fraction", 1.5, "data.validation_fraction: 1.5 not in [0, 1)"),
        ("encoding", "utf-9", "data.encoding: unknown encoding 'utf-9'"),
        ("strip_html", "maybe", "data.strip_html: 'maybe' is not one of auto, true, false"),
    ):
        config = SentimentDataConfig(source=str(tmp_path), **{field: value})
        with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace(")", r"\)")):
            load(config)
    with pytest.raises(ValueError, match="data.source: .*missing.csv.* does not exist"):
        load(SentimentDataConfig(source=str(tmp_path / "missing.csv")))


def test_catalog_names_are_told_from_paths(tmp_path):
    assert data.is_catalog_name("imdb_reviews")
    assert data.is_catalog_name("glue/sst2")
    assert data.is_catalog_name("imdb_reviews/plain_text:1.0.0")
    assert not data.is_catalog_name("reviews.csv")
    assert not data.is_catalog_name("../shared/data/sst2")
    assert not data.is_catalog_name(str(tmp_path))
    with pytest.raises(ValueError, match="'mydata/train' is neither an existing file or dir"):
        load(SentimentDataConfig(source="mydata/train", data_dir=str(tmp_path)))


@pytest.mark.parametrize(
    ("name", "alternative"),
    [
        ("imdb_reviews", "--data ../shared/data/imdb/train.csv"),
        ("glue/sst2", "--data ../shared/data/sst2"),
    ],
)
def test_offline_catalog_request_fails_fast_naming_local_files(
    tmp_path, monkeypatch, name, alternative
):
    monkeypatch.setattr(common_data, "network_available", lambda urls: False)
    started = time.monotonic()
    with pytest.raises(CatalogUnavailableError) as caught:
        load(SentimentDataConfig(source=name, data_dir=str(tmp_path)))
    assert time.monotonic() - started < 15
    assert f"tfds catalog dataset '{name}' is not prepared" in str(caught.value)
    assert f"Read the same data from local files instead, e.g. {alternative}" in str(caught.value)


def test_catalog_imdb_and_sst2_splits_through_tfds_mock_data(tmp_path, monkeypatch):
    monkeypatch.setattr(common_data, "network_available", lambda urls: True)
    with tfds.testing.mock_data(num_examples=20, data_dir=str(tmp_path)):
        imdb = load(SentimentDataConfig(source="imdb_reviews", data_dir=str(tmp_path)))
        sst2 = load(SentimentDataConfig(source="glue/sst2", data_dir=str(tmp_path)))
        imdb_labels = {int(e["label"]) for e in tfds.as_numpy(imdb.splits["train"])}
        sst2_text = next(iter(tfds.as_numpy(sst2.splits["validation"])))["text"]
    assert imdb.info["class_names"] == ["negative", "positive"]
    assert imdb.info["num_examples"] == {"train": 18, "validation": 2, "test": 20}
    assert "validation: 10% of train (2 of 20 examples) carved with seed 1234" in imdb.notes
    assert "html: tags such as <br /> replaced by a space" in imdb.notes
    assert imdb_labels <= {0, 1}
    assert sst2.info["class_names"] == ["negative", "positive"]
    assert sst2.info["num_examples"] == {"train": 20, "validation": 20}
    assert any(note.startswith("test: dropped") for note in sst2.notes)
    assert isinstance(sst2_text, bytes)


@pytest.mark.skipif(
    not (SHARED_DATA / "sst2" / "dev.tsv").exists(),
    reason=f"real SST-2 data not found at {SHARED_DATA / 'sst2' / 'dev.tsv'} (../shared/data "
    "relative to the repository root exists only on the development machine)",
)
def test_real_sst2_dev_split_round_trips(tmp_path):
    path = SHARED_DATA / "sst2" / "dev.tsv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    expected = sorted((text, ["negative", "positive"][int(label)]) for text, label in rows)
    config = SentimentDataConfig(source=str(path), data_dir=str(tmp_path), validation_fraction=0)
    loaded = load(config)
    assert loaded.info["num_examples"] == {"train": 872}
    assert as_pairs(loaded, "train") == expected
