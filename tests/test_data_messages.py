"""apps.common.data's exact messages and boundaries: decoding errors by line, carve_tail, the
offline catalog error and the network probe (the cases mutation testing found unguarded)."""

import contextlib
import os
import threading
import time
import urllib.error

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from apps.common import data  # noqa: E402
from tests.test_common_data import write  # noqa: E402

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
