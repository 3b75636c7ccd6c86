"""Ensembles: finished runs of one app averaged into one model, written as a run directory.

An app that averages its outputs offers it as an extra command (`App.extra_commands`,
`Command("ensemble", ..., add_arguments, run_command)`); members must pass the app's
`check_compatible`. Averaging the class probabilities of models trained with different seeds (or
configs) removes much of the run-to-run variance of a single model; on small
validation sets that variance is often larger than the differences between
configurations. `ensemble` writes a finished run directory:

    config.json, data_info.json   the first member's (class names, data source)
    checkpoints/best.keras        one Keras model holding every member
    metrics.json                  validation metrics of the ensemble and of each member

so `evaluate`, `export` and `predict` take it like any run, and the export is one
SavedModel answering with the averaged probabilities.

Example:

    python -m apps.sentiment ensemble --models runs/a runs/b runs/c --run-dir runs/abc
    python -m apps.sentiment export --model runs/abc
"""

import os

from apps.common.errors import RunError

# Keras and the training module are imported inside the functions: the app's `--help`
# imports this module to list the command.


def add_arguments(parser, app):
    parser.add_argument(
        "--models", nargs="+", required=True, metavar="DIR", help="finished run directories"
    )
    parser.add_argument("--run-dir", required=True, help="where the ensemble run is written")


def run_command(app, arguments):
    """`ensemble`: averages finished runs into one run directory."""
    for path in arguments.models:
        if not os.path.isdir(path):
            raise RunError(f"--models {path}: no such directory")
    build_ensemble(app, arguments.models, arguments.run_dir)


def average_models(models, name="ensemble"):
    """A model whose output is the mean of `models`' outputs on the same inputs.

    All models take the same inputs (names, dtypes, shapes) and give one output of one
    shape, e.g. class probabilities `(batch, classes)`.
    """
    import keras

    first = models[0]
    inputs = [
        keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
        for tensor in first.inputs
    ]
    outputs = []
    for index, model in enumerate(models):
        # Members usually share the app's model name; a functional model needs unique ones.
        model.name = f"member_{index}"
        outputs.append(model(inputs[0] if len(inputs) == 1 else inputs))
    averaged = keras.layers.Average(name="average")(outputs) if len(outputs) > 1 else outputs[0]
    ensemble = keras.Model(inputs[0] if len(inputs) == 1 else inputs, averaged, name=name)
    ensemble.compile_from_config(first.get_compile_config())
    return ensemble


def _check_members(app, runs, data_infos):
    for run_dir, data_info in zip(runs[1:], data_infos[1:], strict=True):
        app.check_compatible(data_infos[0], data_info, f"--models {run_dir}")


def build_ensemble(app, runs, run_dir):
    """Averages the finished runs `runs` into the run directory `run_dir`; returns metrics."""
    from apps.common import training

    if len(runs) < 2:
        raise RunError("--models: an ensemble needs at least two run directories")
    if os.path.exists(os.path.join(run_dir, training.METRICS)):
        raise RunError(f"{run_dir} holds a finished run; choose another --run-dir")
    members = [training.load_run(app, path) for path in runs]
    models = [model for model, _, _ in members]
    configs = [config for _, config, _ in members]
    data_infos = [data_info for _, _, data_info in members]
    _check_members(app, runs, data_infos)
    ensemble = average_models(models, name=f"{app.name}_ensemble")

    config = configs[0]
    loaded = training.load_splits(app, config)
    validation, _ = training.make_batches(
        app, config, data_infos[0], loaded.splits["validation"], training=False
    )
    member_metrics = []
    for path, model in zip(runs, models, strict=True):
        scores = model.evaluate(validation, return_dict=True, verbose=0)
        member_metrics.append({"run": path, "validation": _floats(scores)})
    scores = ensemble.evaluate(validation, return_dict=True, verbose=0)
    metrics = {"validation": _floats(scores), "members": member_metrics}

    training.write_finished_run(run_dir, ensemble, config, data_infos[0], metrics)
    objective = app.objective.removeprefix("val_")
    for member in member_metrics:
        print(f"{member['run']}: validation {objective} {member['validation'][objective]:.4f}")
    print(f"ensemble of {len(runs)}: validation {objective} {metrics['validation'][objective]:.4f}")
    print(f"wrote {run_dir}; export it with: export --model {run_dir}")
    return metrics


def _floats(scores):
    return {key: float(value) for key, value in scores.items()}
