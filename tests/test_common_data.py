"""Tests of apps.common.data: table reading, local-file tfds builders, carving, catalog loading."""

import http.server
import os
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from apps.common import data  # noqa: E402


def write(path, content, encoding="utf-8"):
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def test_read_table_csv_quoted_multiline_fields_and_line_numbers(tmp_path):
    path = write(
        tmp_path / "reviews.csv",
        'id,label,text\n1,1,"Good, ""really"" good"\n\n2,0,"two\nlines"\n3,1,plain\n',
    )
    header, rows = data.read_table(path)
    assert header == ["id", "label", "text"]
    assert list(rows) == [
        (2, {"id": "1", "label": "1", "text": 'Good, "really" good'}),
        (4, {"id": "2", "label": "0", "text": "two\nlines"}),
        (6, {"id": "3", "label": "1", "text": "plain"}),
    ]


def test_read_table_tsv_keeps_quotes_literally_and_strips_bom(tmp_path):
    path = write(tmp_path / "s.tsv", '\ufeffsentence\tlabel\n" quoted start\t1\nsecond\t0\n')
    header, rows = data.read_table(path, delimiter="\t")
    assert header == ["sentence", "label"]
    assert [row["sentence"] for _, row in rows] == ['" quoted start', "second"]


def test_read_table_wrong_number_of_fields_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.csv", "id,label,text\n1,1,fine\n2,0\n")
    _, rows = data.read_table(path)
    with pytest.raises(data.DataError) as caught:
        list(rows)
    assert caught.value.line == 3
    assert str(caught.value) == (f"{path}, line 3: expected 3 fields (id, label, text), found 2")


def test_read_table_undecodable_bytes_name_line_and_bytes(tmp_path):
    path = write(tmp_path / "latin.csv", "label,text\n1,ok\n0,caf\xe9\n".encode("latin-1"))
    _, rows = data.read_table(path, encoding="utf-8")
    with pytest.raises(data.DataError, match=r"latin.csv, line 3: bytes b'\\xe9' at column 6"):
        list(rows)
    _, rows = data.read_table(path, encoding="latin-1")
    assert [row["text"] for _, row in rows] == ["ok", "café"]


def test_read_table_rejects_empty_file_and_unknown_encoding(tmp_path):
    with pytest.raises(data.DataError, match=r"empty.csv, line 1: empty file"):
        data.read_table(write(tmp_path / "empty.csv", ""))
    with pytest.raises(ValueError, match="unknown encoding 'utf-9'"):
        data.read_table(write(tmp_path / "a.csv", "a\n"), encoding="utf-9")


def test_read_text_file_names_line_of_bad_bytes(tmp_path):
    path = write(tmp_path / "review.txt", b"first line\nsecond \xff line\n")
    with pytest.raises(data.DataError, match=r"review.txt, line 2: bytes b'\\xff'"):
        data.read_text_file(path, "utf-8")


def test_find_split_files_maps_aliases_and_rejects_duplicates(tmp_path):
    for name in ("train.tsv", "dev.tsv", "test.tsv", "notes.tsv", "train.md"):
        write(tmp_path / name, "x\n")
    found = data.find_split_files(tmp_path, (".tsv",))
    assert {split: path.name for split, path in found.items()} == {
        "train": "train.tsv",
        "validation": "dev.tsv",
        "test": "test.tsv",
    }
    write(tmp_path / "valid.tsv", "x\n")
    with pytest.raises(ValueError, match="both dev.tsv and valid.tsv hold validation"):
        data.find_split_files(tmp_path, (".tsv",))


def tiny_plan(calls, train_size=10):
    def plan():
        calls.append(1)
        features = tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["a", "b"])}
        )

        def train():
            for index in range(train_size):
                yield str(index), {"text": f"text {index}", "label": index % 2}

        def test():
            yield "only", {"text": "held out", "label": 1}

        return features, {"train": train, "test": test}

    return plan


def test_prepare_local_files_once_with_split_sizes_and_round_trip(tmp_path):
    calls = []
    arguments = dict(builder_name="unit_files", label="My Data.csv", fingerprint={"path": "a"})
    builder, prepared = data.prepare_local_files(
        **arguments, plan=tiny_plan(calls), data_dir=tmp_path
    )
    assert prepared and calls == [1]
    assert builder.name == "unit_files"
    assert str(builder.data_dir).startswith(str(tmp_path / "unit_files" / "my_data_csv_"))
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == {
        "train": 10,
        "test": 1,
    }
    examples = {
        (example["text"].decode(), int(example["label"]))
        for example in tfds.as_numpy(builder.as_dataset(split="train"))
    }
    assert examples == {(f"text {index}", index % 2) for index in range(10)}

    again, prepared = data.prepare_local_files(
        **arguments, plan=tiny_plan(calls), data_dir=tmp_path
    )
    assert not prepared and calls == [1]  # The plan, which reads the files, was not called.
    assert again.data_dir == builder.data_dir

    other, prepared = data.prepare_local_files(
        **{**arguments, "fingerprint": {"path": "b"}}, plan=tiny_plan(calls, 4), data_dir=tmp_path
    )
    assert prepared and other.data_dir != builder.data_dir
    assert other.info.splits["train"].num_examples == 4


def test_carve_validation_is_seeded_disjoint_and_complete(tmp_path):
    builder, _ = data.prepare_local_files(
        builder_name="unit_files",
        label="carve",
        fingerprint={},
        plan=tiny_plan([], train_size=40),
        data_dir=tmp_path,
    )

    def texts(dataset):
        return [example["text"].decode() for example in tfds.as_numpy(dataset)]

    dataset = builder.as_dataset(split="train", shuffle_files=False)
    train, validation, note = data.carve_validation(dataset, 0.25, seed=7)
    assert note == "validation: 25% of train (10 of 40 examples) carved with seed 7"
    assert int(train.cardinality()) == 30 and int(validation.cardinality()) == 10
    assert sorted(texts(train) + texts(validation)) == sorted(texts(dataset))
    _, same, _ = data.carve_validation(dataset, 0.25, seed=7)
    _, different, _ = data.carve_validation(dataset, 0.25, seed=8)
    assert texts(same) == texts(validation)
    assert texts(different) != texts(validation)
    _, one, note = data.carve_validation(dataset, 0.001, seed=7)
    assert int(one.cardinality()) == 1 and len(texts(one)) == 1
    assert note == "validation: 0.1% of train (1 of 40 examples) carved with seed 7"
    with pytest.raises(ValueError, match="cannot carve validation_fraction 0 of 40 examples"):
        data.carve_validation(dataset, 0, seed=7)

    limited, sizes = data.limit_examples({"train": train, "validation": validation}, 4, notes := [])
    assert sizes == {"train": 4, "validation": 4}
    assert texts(limited["train"]) == texts(train)[:4]
    assert notes == ["max_examples: each split limited to its first 4 examples"]


def test_carve_validation_of_variable_length_examples_matches_fixed_shape_carve():
    numbers = tf.data.Dataset.range(30)
    fixed = numbers.map(lambda index: {"id": index})
    ragged = numbers.map(lambda index: {"id": index, "tokens": tf.range(index)})
    assert ragged.element_spec["tokens"].shape.as_list() == [None]

    def ids(dataset):
        return [int(example["id"]) for example in tfds.as_numpy(dataset)]

    fixed_train, fixed_validation, _ = data.carve_validation(fixed, 0.2, seed=3)
    ragged_train, ragged_validation, _ = data.carve_validation(ragged, 0.2, seed=3)
    assert ids(ragged_train) == ids(fixed_train) and len(ids(fixed_train)) == 24
    assert ids(ragged_validation) == ids(fixed_validation) and len(ids(fixed_validation)) == 6
    assert all(
        len(example["tokens"]) == example["id"] for example in tfds.as_numpy(ragged_validation)
    )


class RnnKerasUnitCatalog(tfds.core.GeneratorBasedBuilder):
    """A registered catalog dataset, to load through `tfds.builder(name)` like the real ones."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({"value": tfds.features.Text()})
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for index in range(3):
            yield index, {"value": f"v{index}"}


def test_catalog_offline_fails_fast_naming_local_alternative(tmp_path, monkeypatch):
    probed = []
    monkeypatch.setattr(data, "network_available", lambda urls: probed.append(urls) or False)
    started = time.monotonic()
    with pytest.raises(data.CatalogUnavailableError) as caught:
        data.load_catalog_builder(
            "rnn_keras_unit_catalog",
            tmp_path,
            download_urls=("https://example.invalid/",),
            local_alternative="--data ../shared/data/unit/train.csv",
        )
    assert time.monotonic() - started < 15
    assert probed == [("https://example.invalid/",)]
    message = str(caught.value)
    assert "'rnn_keras_unit_catalog' is not prepared in" in message
    assert "e.g. --data ../shared/data/unit/train.csv" in message


def test_catalog_prepared_copy_is_used_without_probing(tmp_path, monkeypatch):
    tfds.builder("rnn_keras_unit_catalog", data_dir=tmp_path).download_and_prepare()

    def no_probe(urls):
        raise AssertionError("a prepared catalog dataset must not probe the network")

    monkeypatch.setattr(data, "network_available", no_probe)
    builder = data.load_catalog_builder("rnn_keras_unit_catalog", tmp_path)
    values = sorted(e["value"].decode() for e in tfds.as_numpy(builder.as_dataset(split="train")))
    assert values == ["v0", "v1", "v2"]


def test_network_probe_answers_true_for_a_server_and_false_within_timeout_otherwise():
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # The handler answers every request with 501: any HTTP answer means reachable.
        assert data.network_available((f"http://127.0.0.1:{server.server_port}/",), timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    started = time.monotonic()
    # A non-routed address: the connection hangs (or fails at once when there is no route).
    assert not data.network_available(("https://10.255.255.1/",), timeout=1.0)
    assert time.monotonic() - started < 2.0


# --- Exact messages and values that pin the behaviour mutation testing found unchecked. ---
