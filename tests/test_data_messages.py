"""apps.common.data's exact messages and boundaries: decoding errors by line, carve_tail, the
offline catalog error and the network probe (the cases mutation testing found unguarded)."""

import contextlib
import hashlib
import os
import threading
import time
import urllib.error

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from apps.common import data  # noqa: E402
from tests.test_common_data import tiny_plan, write  # noqa: E402

ENCODING_HINT = "set the encoding option to the file's encoding (e.g. latin-1)"


def raised_message(function, *args, **kwargs):
    """Returns the message of the exception `function(*args, **kwargs)` raises."""
    with pytest.raises(Exception) as caught:
        function(*args, **kwargs)
    return caught.type, str(caught.value)


def test_read_table_utf8_bad_bytes_exact_message_with_crlf_endings(tmp_path):
    path = write(tmp_path / "crlf.csv", b"id,text\r\n1,fine\r\n2,\xffbad\r\n")
    _, rows = data.read_table(path)
    assert next(rows) == (2, {"id": "1", "text": "fine"})
    kind, message = raised_message(next, rows)
    assert kind is data.DataError
    assert message == (
        f"{path}, line 3: bytes b'\\xff' at column 3 are not valid utf-8; {ENCODING_HINT}"
    )
    path = write(tmp_path / "first.csv", b"\xfeid,text\n1,x\n")
    kind, message = raised_message(data.read_table, path, encoding="utf-8")
    assert kind is data.DataError
    assert (
        message
        == f"{path}, line 1: bytes b'\\xfe' at column 1 are not valid utf-8; {ENCODING_HINT}"
    )


def test_read_table_utf16_keeps_crlf_in_quoted_fields_and_counts_lines_from_one(tmp_path):
    # Lines end in "\r\n" and one lone "\r"; a quoted field holds a "\r\n" that must survive.
    text = 'id,text\r\n1,"two\r\nlines"\r\n2,plain\r3,last\n'
    path = write(tmp_path / "wide.csv", text, encoding="utf-16")
    header, rows = data.read_table(path, encoding="utf-16")
    assert header == ["id", "text"]
    assert list(rows) == [
        (2, {"id": "1", "text": "two\r\nlines"}),
        (4, {"id": "2", "text": "plain"}),
        (5, {"id": "3", "text": "last"}),
    ]
    # The same file read with the wrong (default) encoding is refused, naming line 1.
    kind, message = raised_message(data.read_table, path)
    assert kind is data.DataError and message.startswith(f"{path}, line 1: bytes b'\\xff'")


def test_read_table_utf16_invalid_data_names_file_line_and_codec_error(tmp_path):
    # A lone high surrogate on the first line.
    path = write(
        tmp_path / "surrogate.csv",
        "id,te".encode("utf-16") + b"\x00\xd8" + "t\n".encode("utf-16-le"),
    )
    kind, message = raised_message(data.read_table, path, encoding="utf-16")
    assert kind is data.DataError
    assert message == (
        f"{path}, line 1: not valid utf-16: 'utf-16-le' codec can't decode bytes in "
        "position 12-13: illegal UTF-16 surrogate"
    )
    # A truncated last character after complete lines ending in "\r\n" or a lone "\r"
    # (a final lone "\r" is left out: telling it from "\r\n" needs the next character).
    for text, line in (("id,text\r\n1,x\r\n", 3), ("id,text\r1,x\r2,y\n", 4)):
        path = write(tmp_path / "truncated.csv", text.encode("utf-16") + b"\x00")
        _, rows = data.read_table(path, encoding="utf-16")
        kind, message = raised_message(list, rows)
        assert kind is data.DataError
        assert message == (
            f"{path}, line {line}: not valid utf-16: 'utf-16-le' codec can't decode byte 0x00 in "
            "position 0: truncated data"
        )


def test_read_text_file_exact_line_of_bad_bytes_encoding_and_bom(tmp_path):
    cases = [
        (b"\xff first", 1),
        (b"\nsecond \xff line\n", 2),  # A file that starts with a newline.
        (b"one\r\ntwo\r\n\xffthree\r\n", 3),  # The bad byte right after a "\r\n".
    ]
    for content, line in cases:
        path = write(tmp_path / f"case{line}.txt", content)
        kind, message = raised_message(data.read_text_file, path, "utf-8")
        assert kind is data.DataError
        assert (
            message == f"{path}, line {line}: bytes b'\\xff' are not valid utf-8; {ENCODING_HINT}"
        )
    latin = write(tmp_path / "latin.txt", "café\nolé\n", encoding="latin-1")
    assert data.read_text_file(latin, "latin-1") == "café\nolé\n"
    assert data.read_text_file(write(tmp_path / "bom.txt", "\ufeffhello\n"), "utf-8") == "hello\n"
    assert data.read_text_file(write(tmp_path / "end.txt", "hello\ufeff"), "utf-8") == "hello\ufeff"


def carve_tail_message(fraction, total):
    return (
        f"cannot carve the last {fraction} of {total} elements as validation; choose a "
        "fraction in (0, 1), provide more data or a validation split"
    )


def test_carve_tail_splits_in_order_with_exact_note():
    numbers = tf.data.Dataset.range(10)
    train, validation, note = data.carve_tail(numbers, 0.1)
    assert note == "validation: the last 10% of train (1 of 10 elements), in order"
    assert list(train.as_numpy_iterator()) == list(range(9))
    assert list(validation.as_numpy_iterator()) == [9]
    unknown_size = numbers.filter(lambda number: True)  # Counted, since tf.data cannot tell.
    train, validation, note = data.carve_tail(unknown_size, 0.5)
    assert note == "validation: the last 50% of train (5 of 10 elements), in order"
    assert int(train.cardinality()) == 5 and int(validation.cardinality()) == 5
    # A given num_examples is trusted: the dataset is not counted.
    _, validation, note = data.carve_tail(numbers, 0.5, num_examples=4)
    assert note == "validation: the last 50% of train (2 of 4 elements), in order"
    assert int(validation.cardinality()) == 2


def test_carve_tail_rejects_fractions_outside_zero_one_and_tiny_data():
    numbers = tf.data.Dataset.range(10)
    for fraction in (0, 1, 1.5, -0.5):
        with pytest.raises(data.DataSourceError) as caught:
            data.carve_tail(numbers, fraction)
        assert str(caught.value) == carve_tail_message(fraction, 10)
    with pytest.raises(data.DataSourceError) as caught:
        data.carve_tail(tf.data.Dataset.range(1), 0.5)
    assert str(caught.value) == carve_tail_message(0.5, 1)
    with pytest.raises(data.DataSourceError) as caught:
        data.carve_tail(numbers, 0.5, num_examples=1)
    assert str(caught.value) == carve_tail_message(0.5, 1)


def test_catalog_unknown_name_quotes_first_line_of_tfds_error(monkeypatch):
    def missing(name, data_dir):
        raise tfds.core.DatasetNotFoundError(f"Dataset {name} not found.\nAvailable datasets:\n")

    monkeypatch.setattr(data.tfds, "builder", missing)
    kind, message = raised_message(data.load_catalog_builder, "no_such_set", "/tmp/unused")
    assert kind is data.DataSourceError
    assert message == (
        "data source 'no_such_set' is neither an existing file or directory nor a tfds "
        "catalog dataset (Dataset no_such_set not found.)"
    )


def test_catalog_offline_exact_message_with_and_without_local_alternative(tmp_path):
    probed = []
    urls = ("https://a.invalid/", "https://b.invalid/")
    builder_dir = tfds.builder("rnn_keras_unit_catalog", data_dir=tmp_path).data_dir
    start = (
        f"tfds catalog dataset 'rnn_keras_unit_catalog' is not prepared in "
        f"{os.path.abspath(tmp_path)} and cannot be downloaded: none of https://a.invalid/, "
        "https://b.invalid/ answered (probe limit 5 s; offline?)."
    )
    end = f" Or prepare it on a machine with internet and copy {builder_dir} here."
    # None: the argument left out (its default names no alternative).
    for alternative, middle in (
        (None, ""),
        ("", ""),
        ("--data x.csv", " Read the same data from local files instead, e.g. --data x.csv."),
    ):
        options = {} if alternative is None else {"local_alternative": alternative}
        with pytest.raises(data.CatalogUnavailableError) as caught:
            data.load_catalog_builder(
                "rnn_keras_unit_catalog",
                tmp_path,
                download_urls=urls,
                probe=lambda given: probed.append(given) or False,
                **options,
            )
        assert str(caught.value) == start + middle + end
    assert probed == [urls, urls, urls]


def test_network_probe_sends_head_with_timeout_from_named_daemon_thread_trying_each_url(
    monkeypatch,
):
    calls = []

    def fake_urlopen(request, **kwargs):
        thread = threading.current_thread()
        calls.append((request.full_url, request.get_method(), kwargs, thread.name, thread.daemon))
        if "down" in request.full_url:
            raise urllib.error.URLError("no route to host")
        return contextlib.nullcontext()

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    urls = ("http://down.invalid/", "http://up.invalid/", "http://never.invalid/")
    assert data.network_available(urls, timeout=0.75)
    assert calls == [(url, "HEAD", {"timeout": 0.75}, "network-probe", True) for url in urls[:2]]
    calls.clear()
    assert not data.network_available(("not a url", "http://down.invalid/"), timeout=0.75)
    assert [call[0] for call in calls] == ["http://down.invalid/"]  # The bad URL is skipped.


def test_network_probe_returns_within_timeout_while_a_request_hangs(monkeypatch):
    release = threading.Event()

    def hanging_urlopen(request, timeout):
        release.wait(3)
        return contextlib.nullcontext()

    monkeypatch.setattr(data.urllib.request, "urlopen", hanging_urlopen)
    started = time.monotonic()
    try:
        assert not data.network_available(("http://slow.invalid/",), timeout=0.2)
        assert time.monotonic() - started < 1.0
    finally:
        release.set()


def test_read_table_broken_quoting_names_file_line_and_csv_error(tmp_path):
    # Text after a closing quote is an error in strict mode; lenient csv would glue it on.
    path = write(tmp_path / "header.csv", 'id,"text"x\n1,a\n')
    kind, message = raised_message(data.read_table, path)
    assert (kind, message) == (
        data.DataError,
        f"{path}, line 1: malformed header: ',' expected after '\"'",
    )
    path = write(tmp_path / "row.csv", 'id,text\n1,"fine"\n2,"a\nb"c\n3,x\n')
    _, rows = data.read_table(path)
    assert next(rows) == (2, {"id": "1", "text": "fine"})
    kind, message = raised_message(next, rows)
    assert (kind, message) == (
        data.DataError,
        f"{path}, line 3: malformed row: ',' expected after '\"'",
    )
    # A quoted field still open at the end of the file (lenient csv returns it cut short).
    path = write(tmp_path / "open.csv", 'id,text\n1,"never closed\n')
    _, rows = data.read_table(path)
    kind, message = raised_message(next, rows)
    assert (kind, message) == (
        data.DataError,
        f"{path}, line 2: malformed row: unexpected end of data",
    )


def test_read_table_strips_the_byte_order_mark_of_the_first_line_only(tmp_path):
    # U+FEFF inside the text is a zero-width no-break space: data, kept as it is.
    path = write(tmp_path / "bom.tsv", "\ufeffid\ttext\n\ufeff1\t\ufeffa\n")
    header, rows = data.read_table(path, delimiter="\t")
    assert header == ["id", "text"]
    assert list(rows) == [(2, {"id": "\ufeff1", "text": "\ufeffa"})]


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
    digest = hashlib.sha256(b'{"encoding": "utf-8", "path": "a.csv", "size": [1, 2]}').hexdigest()[
        :16
    ]
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
