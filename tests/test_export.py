"""`apps.common.export` in process: version claims, the export layout, reloading.

One small untrained model of a contract app (`tests/contract_apps.py`) is exported twice
for each test of `export_model` and once per module for the reloading tests; the rest are
directory listings and monkeypatched failures.
"""

import contextlib
import errno
import io
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.common import config as config_lib
from apps.common import export, training
from apps.common.errors import ExportError
from tests.contract_apps import NumericApp

DATA_INFO = {"mean": 0.5, "std": 2.0}
HISTORY = np.linspace(-1.0, 1.0, 2 * 4, dtype=np.float32).reshape(2, 4, 1)


class TwinApp(NumericApp):
    """NumericApp under its own name with a second endpoint, sorted before the default."""

    name = "twin"

    def serving_endpoints(self, model, config, data_info):
        endpoints = super().serving_endpoints(model, config, data_info)
        serve, signature = endpoints["serving_default"]

        def rescaled(history):
            return {"rescaled": serve(history)["forecast"] * data_info["std"]}

        return {**endpoints, "rescaled": (rescaled, signature)}


APP = TwinApp()


def make_config(base_dir):
    overrides = {"seed": 11, "model.units": 3, "model.lookback": 4, "export.base_dir": base_dir}
    return config_lib.apply_overrides(APP.config_class(), overrides)


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return APP.build_model(make_config("unused"), DATA_INFO)


def export_twice(model, base, unused_base):
    """Two exports: the first to the config's base_dir, the second to an explicit one."""
    base = str(base)
    config = make_config(base)
    other_config = make_config(str(unused_base))
    moves, printed, real_replace = [], io.StringIO(), os.replace

    def replace(source, destination):
        moves.append((source, destination))
        real_replace(source, destination)

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(os, "replace", replace)
        first = export.export_model(APP, model, config, DATA_INFO)
    second = export.export_model(APP, model, other_config, DATA_INFO, base_dir=base)
    return {
        "base": base,
        "app_dir": os.path.join(base, "twin"),
        "config": config,
        "other_config": other_config,
        "first": first,
        "second": second,
        "moves": moves,
        "printed": printed.getvalue(),
    }


@pytest.fixture
def exported(model, tmp_path):
    """Fresh exports for each test of `export_model`.

    Per test, not per module: mutmut maps a function to the tests that call it, and a
    module fixture's calls count only for the first test that uses it, so the checks of
    the layout, the staging moves and the message never ran against a mutated
    `export_model` (benchmarks/mutation_score.py, docs/testing.md).
    """
    return export_twice(model, tmp_path / "exports", tmp_path / "never_written")


@pytest.fixture(scope="module")
def exported_once(model, tmp_path_factory):
    """The same exports shared by the tests that only read them back."""
    root = tmp_path_factory.mktemp("shared")
    return export_twice(model, root / "exports", root / "never_written")


# ---- version numbers ----------------------------------------------------------------


def test_versions_of_a_missing_dir_is_empty(tmp_path):
    assert export._versions(str(tmp_path / "missing")) == []


def test_versions_lists_digit_names_only(tmp_path):
    for name in ["1", "10", "tmp", "2a", ".3.partial"]:
        os.mkdir(tmp_path / name)
    (tmp_path / "7").write_text("a file, not a version")
    assert sorted(export._versions(str(tmp_path))) == [1, 10]


def test_claim_in_an_empty_base_is_version_1(tmp_path):
    base = str(tmp_path / "new" / "base")
    target = export.claim_version_dir(base, "app")
    assert target == os.path.join(base, "app", "1")
    assert os.path.isdir(target) and os.listdir(target) == []


def test_claim_follows_the_highest_version_and_ignores_other_names(tmp_path):
    for name in ["1", "3", "tmp", ".staging-x", "2a"]:
        os.makedirs(tmp_path / "app" / name)
    app_dir = os.path.join(str(tmp_path), "app")
    # A gap: max + 1, not count + 1.
    assert export.claim_version_dir(str(tmp_path), "app") == os.path.join(app_dir, "4")
    assert export.claim_version_dir(str(tmp_path), "app") == os.path.join(app_dir, "5")
    assert sorted(export._versions(app_dir)) == [1, 3, 4, 5]


def patch_version_mkdir(monkeypatch, app_dir, fake):
    """Routes `os.mkdir` of version dirs (not of the app dir) to `fake(real_mkdir, path)`."""
    real_mkdir, calls = os.mkdir, []

    def mkdir(path, *args, **kwargs):
        if os.path.dirname(path) != app_dir:
            return real_mkdir(path, *args, **kwargs)
        calls.append(path)
        return fake(real_mkdir, path)

    monkeypatch.setattr(os, "mkdir", mkdir)
    return calls


def test_claim_retries_past_a_version_another_export_took(tmp_path, monkeypatch):
    app_dir = os.path.join(str(tmp_path), "app")

    def mkdir_after_a_rival(real_mkdir, path):
        if len(calls) == 1:
            real_mkdir(path)  # Another export claims this version first.
        real_mkdir(path)

    calls = patch_version_mkdir(monkeypatch, app_dir, mkdir_after_a_rival)
    assert export.claim_version_dir(str(tmp_path), "app") == os.path.join(app_dir, "2")
    assert calls == [os.path.join(app_dir, "1"), os.path.join(app_dir, "2")]


@pytest.mark.parametrize("attempts", [None, 3, 0])
def test_claim_gives_up_after_its_attempts(tmp_path, monkeypatch, attempts):
    app_dir = os.path.join(str(tmp_path), "app")

    def mkdir_always_taken(real_mkdir, path):
        raise FileExistsError(errno.EEXIST, "File exists", path)

    calls = patch_version_mkdir(monkeypatch, app_dir, mkdir_always_taken)
    expected = 100 if attempts is None else attempts
    keywords = {} if attempts is None else {"attempts": attempts}
    message = f"^{re.escape(app_dir)}: no free version number after {expected} attempts$"
    with pytest.raises(ExportError, match=message):
        export.claim_version_dir(str(tmp_path), "app", **keywords)
    assert calls == [os.path.join(app_dir, "1")] * expected


def test_claim_reports_a_version_dir_it_cannot_create(tmp_path, monkeypatch):
    def mkdir_denied(real_mkdir, path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    patch_version_mkdir(monkeypatch, os.path.join(str(tmp_path), "app"), mkdir_denied)
    target = os.path.join(str(tmp_path), "app", "1")
    with pytest.raises(
        ExportError, match=f"^cannot create {re.escape(target)}: Permission denied$"
    ):
        export.claim_version_dir(str(tmp_path), "app")


def test_claim_reports_a_base_it_cannot_create(tmp_path):
    base = tmp_path / "a_file"
    base.write_text("not a directory")
    app_dir = os.path.join(str(base), "app")
    with pytest.raises(ExportError, match=f"^cannot create {re.escape(app_dir)}: Not a directory$"):
        export.claim_version_dir(str(base), "app")


# ---- finding exports ----------------------------------------------------------------


def test_is_export_dir_needs_saved_model_pb(tmp_path):
    assert not export.is_export_dir(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "v" / "variables")
    touch(str(tmp_path / "v" / "fingerprint.pb"))
    assert not export.is_export_dir(str(tmp_path / "v"))
    touch(str(tmp_path / "v" / "saved_model.pb"))
    assert export.is_export_dir(str(tmp_path / "v"))


def test_latest_export_is_the_highest_complete_version(tmp_path):
    app_dir = tmp_path / "app"
    for name in ["2", "10", "tmp", "12a"]:
        touch(str(app_dir / name / "saved_model.pb"))
    os.makedirs(app_dir / "11")  # Claimed, not yet written.
    assert export.latest_export(str(tmp_path), "app") == os.path.join(str(app_dir), "10")


def test_latest_export_is_none_without_a_complete_version(tmp_path):
    assert export.latest_export(str(tmp_path), "app") is None
    os.makedirs(tmp_path / "app" / "1")
    touch(str(tmp_path / "app" / "tmp" / "saved_model.pb"))
    assert export.latest_export(str(tmp_path), "app") is None


# ---- export_model -------------------------------------------------------------------


def test_export_writes_versions_in_the_tf_serving_layout(exported):
    app_dir = exported["app_dir"]
    assert exported["first"] == os.path.join(app_dir, "1")
    assert exported["second"] == os.path.join(app_dir, "2")
    # Nothing else: no staging folder left, and the second config's base_dir unused.
    assert sorted(os.listdir(app_dir)) == ["1", "2"]
    assert os.listdir(exported["base"]) == ["twin"]
    assert not os.path.exists(exported["other_config"].export.base_dir)
    for path in (exported["first"], exported["second"]):
        assert {"saved_model.pb", "variables", "assets.extra"} <= set(os.listdir(path))
        assert os.path.isdir(os.path.join(path, "variables"))
        assert export.latest_export(exported["base"], "twin") == exported["second"]


def test_export_writes_config_and_data_info_in_assets_extra(exported):
    for path, config in [
        (exported["first"], exported["config"]),
        (exported["second"], exported["other_config"]),
    ]:
        extra = os.path.join(path, "assets.extra")
        assert sorted(os.listdir(extra)) == sorted([config_lib.CONFIG_FILENAME, "data_info.json"])
        with open(os.path.join(extra, config_lib.CONFIG_FILENAME), encoding="utf-8") as handle:
            assert json.load(handle) == config_lib.config_to_dict(config)
        with open(os.path.join(extra, "data_info.json"), encoding="utf-8") as handle:
            assert json.load(handle) == DATA_INFO


def test_export_moves_files_from_a_hidden_staging_folder_saved_model_pb_last(exported):
    staging = os.path.join(exported["app_dir"], ".1.partial")
    moves = exported["moves"]
    assert moves, "export_model moved nothing with os.replace"
    names = [os.path.basename(source) for source, _ in moves]
    assert moves == [
        (os.path.join(staging, name), os.path.join(exported["first"], name)) for name in names
    ]
    assert names[-1] == "saved_model.pb" and names.count("saved_model.pb") == 1
    assert set(names) == set(os.listdir(exported["first"]))


def test_export_prints_the_version_and_signatures(exported):
    assert exported["printed"] == (
        f"exported twin to {exported['first']} (signatures: rescaled, serving_default)\n"
    )


def test_saved_model_holds_the_app_signatures(exported):
    loaded = tf.saved_model.load(exported["first"])
    assert set(loaded.signatures) == {"serving_default", "rescaled"}
    outputs = loaded.signatures["serving_default"](history=tf.constant(HISTORY))
    assert set(outputs) == {"forecast"}


def test_export_without_serving_default_is_refused(tmp_path, model):
    class NoDefault(TwinApp):
        def serving_endpoints(self, model, config, data_info):
            return {"rescaled": super().serving_endpoints(model, config, data_info)["rescaled"]}

    message = r"^apps\.twin\.serving_endpoints must return 'serving_default'$"
    with pytest.raises(ValueError, match=message):
        export.export_model(NoDefault(), model, make_config(str(tmp_path)), DATA_INFO)
    assert os.listdir(tmp_path) == []


def test_failing_endpoints_claim_no_version(tmp_path, model, monkeypatch):
    def broken(self, model, config, data_info):
        raise RuntimeError("endpoints broke")

    monkeypatch.setattr(TwinApp, "serving_endpoints", broken)
    with pytest.raises(RuntimeError, match="^endpoints broke$"):
        export.export_model(APP, model, make_config(str(tmp_path)), DATA_INFO)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("version_removed_meanwhile", [False, True])
def test_failure_before_writing_removes_the_claimed_version_and_keeps_its_error(
    tmp_path, model, monkeypatch, version_removed_meanwhile
):
    real_archive = keras.export.ExportArchive

    def write_out(path, **kwargs):
        if version_removed_meanwhile:  # e.g. an operator clearing old models
            os.rmdir(os.path.join(os.path.dirname(path), "1"))
        raise RuntimeError("disk full")

    def failing_archive():
        archive = real_archive()
        archive.write_out = write_out
        return archive

    monkeypatch.setattr(keras.export, "ExportArchive", failing_archive)
    # The original error comes out, not one from cleaning up a staging folder never made
    # or a version folder already gone.
    with pytest.raises(RuntimeError, match="^disk full$"):
        export.export_model(APP, model, make_config(str(tmp_path)), DATA_INFO)
    assert os.listdir(tmp_path / "twin") == []


def test_failure_after_writing_removes_version_and_staging(tmp_path, model, monkeypatch):
    def save_config(config, path):
        assert os.path.exists(os.path.join(os.path.dirname(path), "..", "saved_model.pb"))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(config_lib, "save_config", save_config)
    with pytest.raises(OSError, match="No space left on device"):
        export.export_model(APP, model, make_config(str(tmp_path)), DATA_INFO)
    assert os.listdir(tmp_path / "twin") == []
    monkeypatch.undo()
    assert export.claim_version_dir(str(tmp_path), "twin") == str(tmp_path / "twin" / "1")


# ---- reloading ----------------------------------------------------------------------


def test_open_model_of_an_export_answers_like_the_keras_model(exported_once, model):
    serving = export.open_model(APP, exported_once["first"])
    assert serving.app is APP
    assert serving.source == exported_once["first"]
    assert serving.keras_model is None
    assert serving.config == exported_once["config"]
    assert serving.data_info == DATA_INFO
    assert set(serving.endpoints) == {"serving_default", "rescaled"}
    expected = keras.ops.convert_to_numpy(model(HISTORY, training=False))
    outputs = serving.call({"history": HISTORY})
    assert set(outputs) == {"forecast"} and isinstance(outputs["forecast"], np.ndarray)
    np.testing.assert_allclose(outputs["forecast"], expected, atol=1e-5)
    rescaled = serving.call({"history": HISTORY}, endpoint="rescaled")
    np.testing.assert_allclose(rescaled["rescaled"], 2 * expected, atol=1e-5)


def test_open_model_reads_each_versions_own_config(exported_once):
    assert export.open_model(APP, exported_once["second"]).config == exported_once["other_config"]


def test_call_of_an_unknown_endpoint_names_source_and_endpoint(exported_once):
    serving = export.open_model(APP, exported_once["first"])
    message = f"^{re.escape(exported_once['first'])} has no 'forecast' endpoint$"
    with pytest.raises(ExportError, match=message):
        serving.call({"history": HISTORY}, endpoint="forecast")


def test_open_model_of_a_run_dir_builds_the_endpoints(tmp_path, model, monkeypatch):
    config, asked = make_config(str(tmp_path)), []

    def load_run(app, run_dir):
        asked.append((app, run_dir))
        return model, config, DATA_INFO

    monkeypatch.setattr(training, "load_run", load_run)
    run_dir = str(tmp_path / "run")
    serving = export.open_model(APP, run_dir)
    assert asked == [(APP, run_dir)]
    assert serving.app is APP and serving.keras_model is model and serving.source == run_dir
    assert serving.config is config and serving.data_info is DATA_INFO
    assert set(serving.endpoints) == {"serving_default", "rescaled"}
    expected = keras.ops.convert_to_numpy(model(HISTORY, training=False))
    np.testing.assert_allclose(serving.call({"history": HISTORY})["forecast"], expected, atol=1e-5)
    rescaled = serving.call({"history": HISTORY}, endpoint="rescaled")["rescaled"]
    np.testing.assert_allclose(rescaled, 2 * expected, atol=1e-5)  # data_info["std"] is 2.
    message = f"^{re.escape(run_dir)} has no 'nope' endpoint$"
    with pytest.raises(ExportError, match=message):
        serving.call({"history": HISTORY}, endpoint="nope")


# ---- input checks -------------------------------------------------------------------


def test_check_input_shape_names_the_input_and_passes_good_ones():
    spec = tf.TensorSpec((None, 4, 1), tf.float32, name="history")
    checked = export.check_input_shape(tf.constant(HISTORY), spec)
    np.testing.assert_array_equal(checked.numpy(), HISTORY)
    # As in a reloaded SavedModel: the shape is known only when the function runs.
    function = tf.function(
        lambda tensor: export.check_input_shape(tensor, spec),
        input_signature=[tf.TensorSpec(None, tf.float32)],
    )
    np.testing.assert_array_equal(function(tf.constant(HISTORY)).numpy(), HISTORY)
    # The message names the function's argument; the failing node is named after the spec.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\{\{node history\}\}"):
        function(tf.zeros((2, 5, 1)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="name: history"):
        export.check_input_shape(tf.zeros((2, 4)), spec)
