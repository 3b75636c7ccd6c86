"""Text generation data: the local text-files builder, the 90/5/5 split, errors, catalog."""

import os

import pytest

from apps.common import data as common_data
from apps.common.errors import CatalogUnavailableError, DataError, DataSourceError
from apps.textgen import data
from apps.textgen.config import TextGenDataConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAKESPEARE = os.path.join(ROOT, "..", "shared", "data", "tiny_shakespeare")


def texts_of(loaded):
    return {name: data.split_text(split) for name, split in loaded.splits.items()}


def test_directory_of_split_files_gives_one_text_per_split(tmp_path):
    source = tmp_path / "corpus"
    source.mkdir()
    (source / "train.txt").write_text("First Citizen:\nBefore we proceed — any further.\n")
    (source / "valid.txt").write_text("All:\nSpeak, speak.\n")
    (source / "test.txt").write_text("Résumé: naïve.\n")
    config = TextGenDataConfig(source=str(source), data_dir=str(tmp_path / "tfds"))
    loaded = data.load(config)
    assert texts_of(loaded) == {
        "train": "First Citizen:\nBefore we proceed — any further.\n",
        "validation": "All:\nSpeak, speak.\n",
        "test": "Résumé: naïve.\n",
    }
    assert loaded.info["prepared"] == "now"
    assert data.load(config).info["prepared"] == "reused"


def test_one_file_is_split_90_5_5_in_order(tmp_path):
    text = "".join(chr(ord("a") + index % 26) for index in range(1000))
    (tmp_path / "book.txt").write_text(text)
    config = TextGenDataConfig(source=str(tmp_path / "book.txt"), data_dir=str(tmp_path / "t"))
    texts = texts_of(data.load(config))
    assert texts == {"train": text[:900], "validation": text[900:950], "test": text[950:]}
    limited = TextGenDataConfig(source=config.source, data_dir=config.data_dir, max_chars=7)
    assert texts_of(data.load(limited))["validation"] == text[900:907]


def test_empty_file_and_wrong_encoding_name_the_file(tmp_path):
    source = tmp_path / "corpus"
    source.mkdir()
    (source / "train.txt").write_text("")
    (source / "validation.txt").write_text("ok text\n")
    config = TextGenDataConfig(source=str(source), data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataError, match=r"train\.txt: empty file"):
        data.load(config)
    (source / "train.txt").write_bytes("line one\nline two caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train\.txt, line 2: bytes b'\\xe9'.*not valid utf-8"):
        data.load(config)
    latin = TextGenDataConfig(source=str(source), data_dir=config.data_dir, encoding="latin-1")
    assert texts_of(data.load(latin))["train"].endswith("café\n")


def test_directory_without_validation_file_says_what_is_missing(tmp_path):
    (tmp_path / "train.txt").write_text("some text")
    with pytest.raises(DataSourceError, match="no validation.txt"):
        data.load(TextGenDataConfig(source=str(tmp_path), data_dir=str(tmp_path / "tfds")))
    with pytest.raises(DataSourceError, match="neither an existing file"):
        data.load(TextGenDataConfig(source="no_such_thing", data_dir=str(tmp_path)))


def test_catalog_offline_fails_fast_naming_the_local_files(tmp_path, monkeypatch):
    monkeypatch.setattr(common_data, "network_available", lambda urls: False)
    config = TextGenDataConfig(source="tiny_shakespeare", data_dir=str(tmp_path))
    with pytest.raises(CatalogUnavailableError, match="--data ../shared/data/tiny_shakespeare"):
        data.load(config)


@pytest.mark.skipif(
    not os.path.isdir(SHAKESPEARE), reason="../shared/data/tiny_shakespeare is absent"
)
def test_tiny_shakespeare_files_have_the_65_character_vocabulary(tmp_path):
    config = TextGenDataConfig(source=SHAKESPEARE, data_dir=str(tmp_path))
    texts = texts_of(data.load(config))
    assert sorted(texts) == ["train", "validation"]
    assert len(set(texts["train"])) == 65
    assert texts["validation"].startswith(
        open(os.path.join(SHAKESPEARE, "validation.txt")).read(50)
    )
