"""The contract every application package fulfils, so the shared pipeline never knows which app runs.

An app package (`apps/sentiment`, `apps/ner`, ...) exposes one `App` object named `APP`
in its `__init__.py`. The shared code (CLI, training, tuning, export, evaluation) only
calls the functions below:

- `config_class`: a dataclass with sections `data`, `model`, `train` (`TrainConfig`),
  `tune` (`TuneConfig`), `export` (`ExportConfig`) and a top-level `seed`.
- `load_data(config)`: an object with `.splits` (dict of split name to an unbatched
  `tf.data.Dataset` of feature dicts), `.info` (dict) and `.notes` (list of strings
  to tell the user, e.g. "validation carved from train with seed 1337").
- `describe_data(config, loaded)`: a JSON-serialisable dict the model needs
  (vocabulary, class names, feature count); saved as `data_info.json` in the run dir,
  so a run dir rebuilds serving functions without touching the data again.
- `build_model(config, data_info)`: a compiled Keras model.
- `to_model_inputs(example)`: maps one dataset element to `(inputs, targets)` for `fit`.
- `example_length(inputs)`: optional; a scalar length used to bucket batches.
- `search_space(hp)`: dotted config overrides drawn from a keras-tuner `HyperParameters`.
  Tuning builds configs, not models, so model code never imports keras_tuner.
- `serving_endpoints(model, config, data_info)`: dict of endpoint name to
  `(function, input_signature)`; `serving_default` is required and takes raw inputs.
- `parse_inputs(lines)`: the serving inputs for `predict` from lines of text.
- `format_outputs(lines, outputs)`: lines to print for `predict`.
- `evaluate(serving_function, dataset, data_info, output_dir)`: metrics dict; writes plots.
- `tokens_of(example)`: optional; the words the model reads in one dataset element, as a
  1-D tf.string tensor, split exactly as the model splits them (enables `vectors`).
- `explain(outputs, lines, output_dir)`: optional; prints and plots an `explain` endpoint's
  outputs (e.g. attention weights per token).
- `transfer_layer(layer, source_layer, data_info, source_data_info)`: optional; copies
  the weights of a data-dependent layer from an earlier run (`train.initialize_from`).
- `register_layers()`: optional; imports the modules that register the app's custom Keras
  layers, which `load_run` calls before reading a `.keras` checkpoint. Keep TensorFlow
  imports out of the package's `__init__`, so that `--help` answers at once.
"""

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class App:
    """One application: its name, config class and the functions the shared pipeline calls."""

    name: str
    config_class: type
    load_data: Callable[[Any], Any]
    describe_data: Callable[[Any, Any], dict]
    build_model: Callable[[Any, dict], Any]
    to_model_inputs: Callable[[dict], tuple]
    search_space: Callable[[Any], dict]
    serving_endpoints: Callable[[Any, Any, dict], dict]
    parse_inputs: Callable[[list], dict]
    format_outputs: Callable[[list, dict], list]
    evaluate: Callable[[Callable, Any, dict, str], dict]
    example_length: Callable[[Any], Any] | None = None
    explain: Callable[[dict, list, str], None] | None = None
    tokens_of: Callable[[dict], Any] | None = None
    # (layer, source_layer, data_info, source_data_info) -> True when it copied the
    # weights of a layer that depends on the data (e.g. an embedding over a vocabulary).
    transfer_layer: Callable[[Any, Any, dict, dict], bool] | None = None
    # Imports the modules whose Keras layers the app's `.keras` checkpoints hold, so
    # that they load; kept out of `apps.<name>` itself, which `--help` imports.
    register_layers: Callable[[], None] | None = None
    # The logged metric that picks the best checkpoint and the best trial.
    objective: str = "val_accuracy"
    objective_direction: str = "max"


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
        raise SystemExit(f"unknown app {name!r}; known apps: {', '.join(known)}")
    module = importlib.import_module(f"apps.{name}")
    if not isinstance(getattr(module, "APP", None), App):
        raise SystemExit(f"apps.{name} does not define APP = apps.common.app.App(...)")
    return module.APP
