"""The contract between an application package and the shared pipeline: the `App` base class.

Like keras-tuner's `HyperModel`, an app is a subclass that overrides what is its own. The
shared code (CLI, training, tuning, export, evaluation) calls only the methods below and
never names an app's concepts. Each app package defines `APP = MyApp()` in its
`__init__.py`; keep TensorFlow imports out of that module (import inside the methods), so
that `--help` answers at once.

Required (raise `NotImplementedError` here):
    `load_data`, `describe_data`, `build_model`, `serving_endpoints`, `search_space`,
    and the class attributes `name`, `config_class`, `objective`, `objective_direction`.

Overridable, with defaults:
    examples from split elements (`examples`, `to_model_inputs`), batching (`batch`,
    `padding_values`, `example_length`, `bucket_boundaries`), `callbacks`, `check_config`,
    `evaluate`, `check_compatible`, `transfer_layer`, `register_layers`, the `predict`
    options (`add_predict_arguments`, `parse_inputs`, `format_outputs`, `predict`) and
    `extra_commands`.

Example (a complete app lives in `tests/contract_apps.py`):

    class EchoApp(App):
        name = "echo"
        config_class = EchoConfig
        objective, objective_direction = "val_loss", "min"

        def load_data(self, config): ...
        def describe_data(self, config, loaded): return {"features": 3}
        def build_model(self, config, data_info): ...
        def serving_endpoints(self, model, config, data_info): ...
        def search_space(self, hp): return {"model.units": hp.Choice("model.units", [8, 16])}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from apps.common.errors import ConfigError, InputError, UserError, check_range


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of the command line, shared or declared by an app (`App.extra_commands`).

    Attributes:
        name: the word after the app's name, e.g. `train`.
        help: one line for the usage message.
        add_arguments: `(parser, app) -> None`, adds the command's options to argparse.
        run: `(app, arguments) -> int | None`, the command's body (None means 0).
    """

    name: str
    help: str
    add_arguments: Callable[[Any, App], None]
    run: Callable[[App, Any], int | None]


class App:
    """One application: what differs from the other apps, behind one interface.

    Class attributes:
        name: the package name under `apps/` (e.g. `sentiment`), also the run and export
            folder name.
        config_class: the config dataclass; sections `data`, `model`, `train`
            (`TrainConfig`), `tune` (`TuneConfig`), `export` (`ExportConfig`) and `seed`.
        objective: the logged metric that picks the best checkpoint, stops early and ranks
            tuning trials, e.g. `val_accuracy`, `val_entity_f1`, `val_loss`. No default:
            each app states what "better" means for it.
        objective_direction: `"max"` or `"min"`.
        compatibility_keys: data info keys that must be equal between a model and the data
            or model it is combined with (warm start, ensemble, evaluation on other data).
    """

    name: str = ""
    config_class: type | None = None
    objective: str = ""
    objective_direction: str = ""
    compatibility_keys: tuple[str, ...] = ()

    # ---- required -------------------------------------------------------------------

    def load_data(self, config):
        """Returns `apps.common.data.LoadedData`: unbatched splits, info and notes.

        `train` and `validation` are required for training; `test` is optional.
        """
        raise NotImplementedError(f"{type(self).__name__}.load_data")

    def describe_data(self, config, loaded) -> dict:
        """What the model needs from the data (vocabulary, tag names, feature count, scaler).

        JSON-serialisable; saved as `data_info.json` in the run directory, so a run
        rebuilds its model and serving functions without reading the data again.
        """
        raise NotImplementedError(f"{type(self).__name__}.describe_data")

    def build_model(self, config, data_info):
        """A compiled Keras model; its metrics' names (with `val_`) include `objective`."""
        raise NotImplementedError(f"{type(self).__name__}.build_model")

    def serving_endpoints(self, model, config, data_info) -> dict:
        """Endpoint name to `(function, input_signature)`; `serving_default` is required.

        Functions take raw inputs (strings, raw units) and return a dict of tensors; they
        must validate their inputs (see `apps.common.export.check_input_shape`).
        """
        raise NotImplementedError(f"{type(self).__name__}.serving_endpoints")

    def search_space(self, hp) -> dict:
        """Dotted config overrides drawn from a keras-tuner `HyperParameters`."""
        raise NotImplementedError(f"{type(self).__name__}.search_space")

    # ---- examples and batches -------------------------------------------------------

    def examples(self, dataset, config, data_info, training):
        """Split elements to `(inputs, targets)` training examples.

        Default: `to_model_inputs` one to one. Override to yield many examples per element
        (windows of a long text or series: `dataset.flat_map(...)`). `training` is False for
        validation and evaluation, where the same examples must come out every time.
        """
        import tensorflow as tf

        return dataset.map(self.to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)

    def to_model_inputs(self, element):
        """One split element to `(inputs, targets)`; used by the default `examples`."""
        raise NotImplementedError(f"{type(self).__name__}.to_model_inputs (or override examples)")

    def example_length(self, inputs):
        """A scalar length in the app's own unit (words, tokens), or None for no bucketing."""
        return None

    def bucket_boundaries(self, config) -> list[int]:
        """Lengths (in `example_length`'s unit) where bucketed batches are cut."""
        return []

    def padding_values(self):
        """Padding of `(inputs, targets)` in `padded_batch`; None pads with 0 and ""."""
        return None

    def shuffle_training_examples(self, config) -> bool:
        """Whether training examples are shuffled; False keeps their order (stateful models)."""
        return config.train.shuffle_buffer > 1

    def batch(self, examples, config, training, seed):
        """Batches `(inputs, targets)` examples; see `apps.common.batching.default_batches`."""
        from apps.common import batching

        return batching.default_batches(self, examples, config, training, seed)

    # ---- training and evaluation ----------------------------------------------------

    def check_config(self, config) -> None:
        """Raises ConfigError naming the key of a value out of range; call super() first."""
        train = config.train
        check_range("train.epochs", train.epochs, minimum=1)
        check_range("train.batch_size", train.batch_size, minimum=1)
        check_range("train.learning_rate", train.learning_rate, minimum=0, exclusive_minimum=True)
        check_range("train.early_stopping_patience", train.early_stopping_patience, minimum=0)
        check_range("train.steps_per_epoch", train.steps_per_epoch, minimum=1)
        check_range("train.clipnorm", train.clipnorm, minimum=0, exclusive_minimum=True)
        check_range("tune.max_trials", config.tune.max_trials, minimum=1)
        check_range("tune.epochs", config.tune.epochs, minimum=1)
        if self.objective_direction not in ("min", "max"):
            raise ConfigError(f"{self.name}: objective_direction must be 'min' or 'max'")

    def callbacks(self, config, data_info, validation_batches) -> list:
        """Extra Keras callbacks, run before checkpointing and early stopping.

        A callback that writes `logs[self.objective]` at the end of an epoch (e.g. an
        entity F1 computed on `validation_batches`) makes that the monitored score.
        keras-tuner deep-copies callbacks for each trial: one holding a `tf.data`
        pipeline defines `__deepcopy__` (see `apps.ner.model.EntityF1`).
        """
        return []

    def evaluate(self, serving_model, batches, output_dir) -> dict:
        """Metrics of a model on `(inputs, targets)` batches; writes plots into `output_dir`.

        `serving_model` is an `apps.common.export.ServingModel` (a run directory or an
        export), so both are measured the same way. Default: the compiled loss and metrics
        of a run directory's Keras model.
        """
        keras_model = getattr(serving_model, "keras_model", None)
        if keras_model is None:
            raise UserError(
                f"the {self.name} app evaluates run directories only; give --model a run directory"
            )
        from apps.common import evaluation

        scores = keras_model.evaluate(batches, return_dict=True, verbose=0)
        metrics = {key: float(value) for key, value in scores.items()}
        print("  ".join(f"{key}: {value:.6g}" for key, value in metrics.items()))
        evaluation.write_report(metrics, output_dir)
        return metrics

    def whole_file_config(self, config):
        """The config to read a file under evaluation whole (e.g. no validation carved)."""
        return config

    def check_compatible(self, data_info, other_data_info, what) -> None:
        """Raises UserError when `other_data_info` (described by `what`) cannot be combined.

        Default: every key of `compatibility_keys` that both hold must be equal.
        """
        for key in self.compatibility_keys:
            if key not in data_info or key not in other_data_info:
                continue
            if data_info.get(key) != other_data_info.get(key):
                raise UserError(
                    f"{what}: {key} {other_data_info.get(key)!r} differs from the model's "
                    f"{data_info.get(key)!r}"
                )

    def transfer_layer(self, layer, source_layer, data_info, source_data_info) -> bool:
        """Warm start of a data-dependent layer; True when it copied the weights."""
        return False

    def register_layers(self) -> None:
        """Imports the modules that register the app's custom layers (before loading).

        Default: the layer library, whose layers every app's models are made of; an app
        with layers of its own imports their modules too.
        """
        import rnn_keras  # noqa: F401

    # ---- predict and extra commands -------------------------------------------------

    def add_predict_arguments(self, parser) -> None:
        """Adds the app's own `predict` options (e.g. `--temperature`)."""

    def parse_inputs(self, lines, options) -> dict:
        """The serving inputs for `predict` from lines of text; InputError on bad ones."""
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise InputError(f"input {number}: empty text")
        import numpy as np

        return {"text": np.array(lines, dtype=object)}

    def format_outputs(self, lines, outputs, options) -> list[str]:
        """Lines to print for `predict`, one or more per input."""
        raise NotImplementedError(f"{type(self).__name__}.format_outputs")

    def predict(self, serving_model, lines, options) -> None:
        """Prints predictions for `lines`; override to stream output."""
        outputs = serving_model.call(self.parse_inputs(lines, options))
        for line in self.format_outputs(lines, outputs, options):
            print(line)

    def extra_commands(self) -> list[Command]:
        """Commands only this app has (shown in its `--help`)."""
        return []


def load_app(name):
    """Imports `apps.<name>` and returns its `APP`; unknown names list the known apps."""
    import importlib
    import pkgutil

    import apps

    known = sorted(
        module.name
        for module in pkgutil.iter_modules(apps.__path__)
        if module.ispkg and module.name != "common"
    )
    if name not in known:
        raise UserError(f"unknown app {name!r}; known apps: {', '.join(known)}")
    module = importlib.import_module(f"apps.{name}")
    if not isinstance(getattr(module, "APP", None), App):
        raise UserError(f"apps.{name} does not define APP = an apps.common.app.App instance")
    return module.APP
