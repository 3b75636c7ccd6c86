"""Export to the TF Serving layout: `saved_models/<app>/<integer version>/`.

Each version is a SavedModel written with `keras.export.ExportArchive` and explicit input
signatures (raw inputs, preprocessing inside the graph), plus the resolved config and the
data info in `assets.extra/`: TF Serving's loader reads only `saved_model.pb`,
`variables/` and `assets/`, and `assets.extra/` is its convention for files that travel
with a model (it looks there only for `tf_serving_warmup_requests`).

A version number is claimed atomically (an exclusive `mkdir`), the SavedModel written into a
hidden staging folder and moved in when complete, so concurrent exports never share a
version and a model server polling the base directory never sees half a model.
"""

import json
import os
import shutil

import keras

from apps.common import config as config_lib
from apps.common.errors import ExportError

EXTRA_DIR = "assets.extra"


def check_input_shape(tensor, spec):
    """`tensor` unchanged, or an InvalidArgumentError naming the input `spec.name`.

    A signature checks dtypes itself, but a reloaded SavedModel passes a wrongly shaped
    input on to the first op that minds, whose error names that op, not the input. The
    error reads "Shape of tensor <argument> [...] is not compatible with expected shape"
    and carries the spec's name (`{{node <name>}}` in a graph, `name: <name>` eagerly).
    """
    import tensorflow as tf

    return tf.ensure_shape(tensor, spec.shape, name=spec.name)


def _versions(app_dir):
    if not os.path.isdir(app_dir):
        return []
    return [
        int(name)
        for name in os.listdir(app_dir)
        if name.isdigit() and os.path.isdir(os.path.join(app_dir, name))
    ]


def claim_version_dir(base_dir, app_name, attempts=100):
    """Creates `<base_dir>/<app_name>/<n>` with n one more than the largest version; returns it.

    The directory is created with `os.mkdir`, which fails when it exists, so two exports
    running at once never take the same version: the loser retries with the next one.
    """
    app_dir = os.path.join(base_dir, app_name)
    try:
        os.makedirs(app_dir, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create {app_dir}: {error.strerror}") from None
    for _ in range(attempts):
        target = os.path.join(app_dir, str(max(_versions(app_dir), default=0) + 1))
        try:
            os.mkdir(target)
        except FileExistsError:
            continue
        except OSError as error:
            raise ExportError(f"cannot create {target}: {error.strerror}") from None
        return target
    raise ExportError(f"{app_dir}: no free version number after {attempts} attempts")


def export_model(app, model, config, data_info, base_dir=None):
    """Writes the app's serving endpoints as a new SavedModel version; returns its path.

    The version directory is claimed first (empty, so TF Serving skips it until it holds
    `saved_model.pb`), the SavedModel is written into a hidden staging folder beside it, and
    its files are moved in when complete; a failure removes both.
    """
    base_dir = base_dir or config.export.base_dir
    endpoints = app.serving_endpoints(model, config, data_info)
    if "serving_default" not in endpoints:
        raise ValueError(f"apps.{app.name}.serving_endpoints must return 'serving_default'")
    target = claim_version_dir(base_dir, app.name)
    staging = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.partial")
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        # serving_default first: ExportArchive also aliases its first endpoint as the default.
        for name in ["serving_default"] + sorted(set(endpoints) - {"serving_default"}):
            function, input_signature = endpoints[name]
            archive.add_endpoint(name=name, fn=function, input_signature=input_signature)
        archive.write_out(staging, verbose=False)
        extra = os.path.join(staging, EXTRA_DIR)
        os.makedirs(extra, exist_ok=True)
        config_lib.save_config(config, os.path.join(extra, config_lib.CONFIG_FILENAME))
        with open(os.path.join(extra, "data_info.json"), "w", encoding="utf-8") as handle:
            json.dump(data_info, handle)
        # saved_model.pb last: a server polling the directory sees a complete model or none.
        names = sorted(os.listdir(staging), key=lambda name: name == "saved_model.pb")
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(target, name))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"exported {app.name} to {target} (signatures: {', '.join(sorted(endpoints))})")
    return target


def is_export_dir(path):
    return os.path.exists(os.path.join(path, "saved_model.pb"))


def latest_export(base_dir, app_name):
    """The highest version under `<base_dir>/<app_name>/`, or None."""
    app_dir = os.path.join(base_dir, app_name)
    versions = [v for v in _versions(app_dir) if is_export_dir(os.path.join(app_dir, str(v)))]
    return os.path.join(app_dir, str(max(versions))) if versions else None


class ServingModel:
    """The serving endpoints of a model, reloaded from an export or built from a run dir.

    `predict` and `evaluate` go through these same functions, so a run directory and its
    export answer identically.

    Args:
        app: the `App`.
        endpoints: dict of endpoint name to a callable taking the signature's inputs as
            keyword tensors and returning a dict of tensors.
        config: the resolved config the model was trained with.
        data_info: the data info the model was built with.
        source: the directory it came from (for messages).
    """

    def __init__(self, app, endpoints, config, data_info, source):
        self.app = app
        self.endpoints = endpoints
        self.config = config
        self.data_info = data_info
        self.source = source
        # The Keras model when opened from a run directory (None for an export).
        self.keras_model = None

    def call(self, inputs, endpoint="serving_default"):
        """Calls an endpoint with a dict of arrays; returns a dict of NumPy arrays."""
        import tensorflow as tf

        if endpoint not in self.endpoints:
            raise ExportError(f"{self.source} has no {endpoint!r} endpoint")
        tensors = {name: tf.constant(value) for name, value in inputs.items()}
        outputs = self.endpoints[endpoint](**tensors)
        return {name: value.numpy() for name, value in outputs.items()}


def open_model(app, path):
    """A `ServingModel` from an export directory or a finished run directory."""
    if is_export_dir(path):
        import tensorflow as tf

        extra = os.path.join(path, EXTRA_DIR)
        config = config_lib.load_config_file(
            app.config_class, os.path.join(extra, config_lib.CONFIG_FILENAME)
        )
        with open(os.path.join(extra, "data_info.json"), encoding="utf-8") as handle:
            data_info = json.load(handle)
        loaded = tf.saved_model.load(path)
        return ServingModel(app, dict(loaded.signatures), config, data_info, path)
    from apps.common import training

    model, config, data_info = training.load_run(app, path)
    endpoints = {
        name: function
        for name, (function, _) in app.serving_endpoints(model, config, data_info).items()
    }
    serving = ServingModel(app, endpoints, config, data_info, path)
    serving.keras_model = model
    return serving
