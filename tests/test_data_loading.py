"""apps.common.data's loading skeleton and builders: catalog names, `load_source`, local
tfds builder classes, carving and limiting splits, config names and the data directory
(the cases mutation testing found unguarded; docs/testing.md)."""

import hashlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from apps.common import data  # noqa: E402
from tests.test_common_data import tiny_plan  # noqa: E402
from tests.test_data_messages import raised_message  # noqa: E402


def test_is_catalog_name_existing_paths_case_slashes_and_underscores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert data.is_catalog_name("imdb_reviews") and data.is_catalog_name("glue/sst2:2.0.0")
    # An existing file or folder is read as a path, even under a catalog name.
    (tmp_path / "imdb_reviews").mkdir()
    assert not data.is_catalog_name("imdb_reviews")
    for name in ("IMDB_reviews", "glue/SST2", "a/b/c", "a//b", "__", "glue/_", ""):
        assert not data.is_catalog_name(name), name


def _one_split_reader(count):
    def read(notes):
        return {"train": tf.data.Dataset.range(count)}, {}

    return read


def _unused_reader(notes):
    raise AssertionError("the other reader was called")


def test_load_source_defaults_keep_every_example_and_carve_nothing(tmp_path):
    loaded = data.load_source(
        str(tmp_path), read_catalog=_unused_reader, read_local=_one_split_reader(7)
    )
    assert list(loaded.splits) == ["train"]
    assert [int(x) for x in loaded.splits["train"]] == list(range(7))
    assert loaded.notes == [
        "validation: none (the source has none and the validation fraction is 0)"
    ]
    assert loaded.info["num_examples"] == {"train": 7}


def test_load_source_carves_with_seed_0_by_default_and_names_bad_strategies(tmp_path):
    def carve(**options):
        loaded = data.load_source(
            str(tmp_path),
            read_catalog=_unused_reader,
            read_local=_one_split_reader(20),
            validation_fraction=0.25,
            **options,
        )
        return sorted(int(x) for x in loaded.splits["validation"])

    default = carve()
    assert len(default) == 5 and default == carve(seed=0) and default != carve(seed=1)
    kind, message = raised_message(
        data.load_source,
        str(tmp_path),
        read_catalog=_unused_reader,
        read_local=_unused_reader,
        validation_strategy="last",
    )
    assert (kind, message) == (
        data.DataSourceError,
        "validation strategy 'last' is not one of random, tail",
    )


def test_load_source_tail_strategy_transform_order_and_info(tmp_path):
    def read(notes):
        notes.append("read")
        splits = {"extra": tf.data.Dataset.range(2), "train": tf.data.Dataset.range(10)}
        splits["test"] = tf.data.Dataset.range(3)
        return splits, {"kind": "numbers"}

    def transform(splits, info, notes):
        notes.append(f"transform saw {sorted(splits)} and {info}")
        return {name: split.map(lambda x: x * 10) for name, split in splits.items()}

    loaded = data.load_source(
        str(tmp_path),
        read_catalog=_unused_reader,
        read_local=read,
        validation_fraction=0.2,
        validation_strategy="tail",
        seed=3,
        transform=transform,
    )
    # train, validation, test first, then the rest by name.
    assert list(loaded.splits) == ["train", "validation", "test", "extra"]
    values = {name: [int(x) for x in split] for name, split in loaded.splits.items()}
    assert values == {
        "train": [0, 10, 20, 30, 40, 50, 60, 70],
        "validation": [80, 90],
        "test": [0, 10, 20],
        "extra": [0, 10],
    }
    assert loaded.notes[0] == "read"
    assert loaded.notes[1].startswith("validation: the last 20% of train (2 of 10 elements)")
    assert loaded.notes[2] == (
        "transform saw ['extra', 'test', 'train', 'validation'] and {'kind': 'numbers'}"
    )
    assert loaded.info == {
        "kind": "numbers",
        "source": str(tmp_path),
        "num_examples": {"train": 8, "validation": 2, "test": 3, "extra": 2},
    }


def test_load_source_names_a_missing_path_and_a_source_without_train(tmp_path):
    missing = str(tmp_path / "nowhere.csv")
    for source in (missing, ""):
        kind, message = raised_message(
            data.load_source, source, read_catalog=_unused_reader, read_local=_unused_reader
        )
        assert (kind, message) == (
            data.DataSourceError,
            f"data.source: {source!r} does not exist",
        )

    def no_train(notes):
        return {"test": tf.data.Dataset.range(1), "dev": tf.data.Dataset.range(1)}, {}

    kind, message = raised_message(
        data.load_source, str(tmp_path), read_catalog=_unused_reader, read_local=no_train
    )
    assert (kind, message) == (
        data.DataSourceError,
        f"{tmp_path}: no train split (found: dev, test)",
    )


def test_local_builder_class_names_module_description_and_cache(tmp_path):
    # A name whose CamelCase class name does not map back to it: tfds must get `name` as given.
    builder_class = data.local_builder_class("ab_2c_files")
    assert builder_class.__name__ == "Ab2CFiles"
    assert builder_class.name == "ab_2c_files"
    assert builder_class.__module__ == "apps.common.data"
    assert data.local_builder_class("ab_2c_files") is builder_class
    # Never in tfds' catalog: a catalog name must not resolve to a user's local files.
    assert "ab_2c_files" not in tfds.list_builders(with_community_datasets=False)
    features = tfds.features.FeaturesDict({"x": tf.int64})

    def examples():
        yield "0", {"x": 0}

    described = builder_class(
        features=features,
        split_examples={"train": examples},
        description="two numbers",
        data_dir=str(tmp_path),
    )
    assert described.info.description == "two numbers"
    plain = builder_class(
        features=features, split_examples={"train": examples}, data_dir=str(tmp_path)
    )
    assert plain.info.description == ""


def test_carve_validation_bounds_and_a_given_count_reads_nothing():
    dataset = tf.data.Dataset.range(10)
    for fraction in (0.0, 1.0, 1.5):
        kind, message = raised_message(data.carve_validation, dataset, fraction, 0)
        assert (kind, message) == (
            data.DataSourceError,
            f"cannot carve validation_fraction {fraction} of 10 examples; choose a "
            "fraction in (0, 1), provide more examples or a validation split",
        )
    read = []

    def record(x):
        read.append(int(x))
        return x

    # Unknown cardinality: without num_examples the carve would count by reading it all.
    unknown = dataset.filter(lambda x: True).map(lambda x: tf.py_function(record, [x], tf.int64))
    train, validation, _ = data.carve_validation(unknown, 0.3, 0, num_examples=10)
    assert read == []
    assert int(train.cardinality()) == 7 and int(validation.cardinality()) == 3


def test_limit_examples_at_one_and_its_note_only_when_limiting():
    splits = {"train": tf.data.Dataset.range(5), "test": tf.data.Dataset.range(1)}
    notes = []
    limited, sizes = data.limit_examples(splits, 1, notes)
    assert {name: [int(x) for x in split] for name, split in limited.items()} == {
        "train": [0],
        "test": [0],
    }
    assert sizes == {"train": 1, "test": 1}
    assert notes == ["max_examples: each split limited to its first 1 examples"]
    notes = []
    limited, sizes = data.limit_examples(splits, 0, notes)
    assert sizes == {"train": 5, "test": 1} and notes == []


def test_config_name_slug_and_digest_of_the_sorted_fingerprint():
    fingerprint = {"path": "a.csv", "encoding": "utf-8", "size": [1, 2]}
    sorted_json = b'{"encoding": "utf-8", "path": "a.csv", "size": [1, 2]}'
    digest = hashlib.sha256(sorted_json).hexdigest()[:16]
    assert data.config_name("__My Data.csv!__", fingerprint) == f"my_data_csv_{digest}"
    # The key order of the fingerprint does not matter.
    reordered = dict(reversed(list(fingerprint.items())))
    assert data.config_name("__My Data.csv!__", reordered) == f"my_data_csv_{digest}"
    assert data.config_name("?!", fingerprint) == f"files_{digest}"
    assert data.config_name("a" * 45, fingerprint) == f"{'a' * 40}_{digest}"


def test_prepare_local_files_records_the_description(tmp_path):
    options = dict(builder_name="unit_files", plan=tiny_plan([]), data_dir=tmp_path)
    described, _ = data.prepare_local_files(
        label="a", fingerprint={"n": 1}, description="ten texts", **options
    )
    plain, _ = data.prepare_local_files(label="b", fingerprint={"n": 2}, **options)
    assert described.info.description == "ten texts"
    assert described.builder_config.description == "ten texts"
    assert str(described.builder_config.version) == data.LOCAL_BUILDER_VERSION
    assert plain.info.description == ""


def test_resolve_data_dir_argument_then_environment_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "from_env"))
    monkeypatch.chdir(tmp_path)
    assert data.resolve_data_dir("given") == str(tmp_path / "given")
    assert data.resolve_data_dir(None) == str(tmp_path / "from_env")
    assert data.resolve_data_dir("") == str(tmp_path / "from_env")
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert data.resolve_data_dir(None) == str(tmp_path / "home" / "tensorflow_datasets")
