"""What a new user gets wrong, answered by one line and exit status 2, never a traceback.

Each case once ended in a traceback or did the wrong thing silently (issue 13, item 5).
"""

import os
import threading

import pytest

from apps.common import export
from apps.common.errors import ConfigError, UserError, check_range
from tests.test_sentiment_app import TINY, run_cli, write_reviews


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("errors"))
    write_reviews(os.path.join(directory, "reviews.csv"), count=40)
    return directory


def fails_with(workspace, arguments, message, stdin=None):
    result = run_cli(arguments, workspace, stdin=stdin, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert message in result.stderr, result.stderr[-3000:]
    return result


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.units=0"], "model.units: must be >= 1, got 0"),
        (["train.batch_size=0"], "train.batch_size: must be >= 1, got 0"),
        (["train.epochs=0"], "train.epochs: must be >= 1, got 0"),
        (["train.epochs=-1"], "train.epochs: must be >= 1, got -1"),
        (["model.dropout=1.5"], "model.dropout: must be >= 0 and <= 0.95, got 1.5"),
    ],
)
def test_numbers_out_of_range_name_the_key(workspace, overrides, message):
    fails_with(workspace, ["train", "--data", "reviews.csv", *overrides], message)


def test_data_sources_that_cannot_be_read(workspace):
    data_dir = f"data.data_dir={os.path.join(workspace, 'tfds')}"
    never = os.path.join(workspace, "never")
    fails_with(
        workspace,
        ["train", "--data", "nowhere.csv", "--run-dir", never, data_dir],
        "does not exist",
    )
    assert not os.path.exists(never)  # no run directory with a config and nothing else
    empty = os.path.join(workspace, "empty_folder")
    os.makedirs(empty, exist_ok=True)
    fails_with(workspace, ["train", "--data", empty, data_dir], "no split files")
    header_only = os.path.join(workspace, "header.csv")
    with open(header_only, "w", encoding="utf-8") as handle:
        handle.write("text,label\n")
    fails_with(workspace, ["train", "--data", header_only, data_dir], "holds no examples")
    fails_with(
        workspace,
        ["train", "--data", "imbd_reviews", data_dir],
        "'imbd_reviews' is neither an existing file or directory nor a tfds catalog dataset",
    )


def test_an_odd_label_among_integers_is_an_error_naming_its_line(workspace):
    path = os.path.join(workspace, "maybe.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("text,label\ngood film,1\nbad film,0\nwho knows,maybe\nfine,1\n")
    fails_with(
        workspace,
        ["train", "--data", path, f"data.data_dir={os.path.join(workspace, 'tfds_maybe')}"],
        f"{path}, line 4: label 'maybe' does not fit the other labels",
    )


def test_a_run_directory_that_cannot_be_created(workspace):
    blocker = os.path.join(workspace, "a_file")
    with open(blocker, "w", encoding="utf-8") as handle:
        handle.write("not a directory")
    fails_with(
        workspace,
        ["train", "--data", "reviews.csv", "--run-dir", os.path.join(blocker, "run")],
        "cannot create the run directory",
    )


@pytest.fixture(scope="module")
def finished_run(workspace):
    run_dir = os.path.join(workspace, "run")
    arguments = ["train", "--data", "reviews.csv", "--run-dir", run_dir, *TINY, "train.epochs=1"]
    result = run_cli([*arguments, f"data.data_dir={os.path.join(workspace, 'tfds')}"], workspace)
    # Redirected to a file (here a pipe), training logs one line per epoch, not a bar per batch.
    assert "\r" not in result.stdout and "\x08" not in result.stdout
    return run_dir


def test_predict_reports_bad_bytes_and_texts_without_known_words(workspace, finished_run):
    result = run_cli(["predict", "--model", finished_run], workspace, stdin="zyzzyva quux\n")
    assert result.stdout.strip().endswith("(no known word: the answer is the model's prior)")
    command = ["predict", "--model", finished_run]
    result = run_cli(command, workspace, stdin="", check=False)
    assert result.returncode == 2 and "no input" in result.stderr
    latin = os.path.join(workspace, "latin1.txt")
    with open(latin, "wb") as handle:
        handle.write("un film très réussi\n".encode("latin-1"))
    fails_with(workspace, [*command, "--file", latin], f"--file {latin}: not valid UTF-8")


def test_evaluate_prints_the_metrics_before_failing_to_write_them(workspace, finished_run):
    blocker = os.path.join(workspace, "blocker")
    with open(blocker, "w", encoding="utf-8") as handle:
        handle.write("x")
    result = fails_with(
        workspace,
        ["evaluate", "--model", finished_run, "--output-dir", os.path.join(blocker, "out")],
        "the metrics are printed above; choose a writable --output-dir",
    )
    assert "accuracy:" in result.stdout


def test_concurrent_exports_never_share_a_version(tmp_path):
    os.makedirs(tmp_path / "app" / "1")
    os.makedirs(tmp_path / "app" / "3")  # A gap: the next version is 4, not 3.
    claimed, start = [], threading.Barrier(8)

    def claim():
        start.wait()
        claimed.append(export.claim_version_dir(str(tmp_path), "app"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(int(os.path.basename(path)) for path in claimed) == list(range(4, 12))


def test_check_range_names_key_and_bounds():
    check_range("a", 0.5, minimum=0, maximum=1)
    with pytest.raises(ConfigError, match=r"^lr: must be > 0, got 0$"):
        check_range("lr", 0, minimum=0, exclusive_minimum=True)
    with pytest.raises(UserError, match=r"^p: must be >= 0 and <= 1, got 2$"):
        check_range("p", 2, minimum=0, maximum=1)
