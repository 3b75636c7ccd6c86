"""Ensembles: finished runs of one app averaged into one model, written as a run directory.

Averaging the class probabilities of models trained with different seeds (or
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

import keras

from apps.common import training


def average_models(models, name="ensemble"):
    """A model whose output is the mean of `models`' outputs on the same inputs.

    All models take the same inputs (names, dtypes, shapes) and give one output of one
    shape, e.g. class probabilities `(batch, classes)`.
    """
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


def _check_members(runs, data_infos):
    class_names = data_infos[0].get("class_names")
    for run_dir, data_info in zip(runs[1:], data_infos[1:], strict=True):
        if data_info.get("class_names") != class_names:
            raise SystemExit(
                f"--models {run_dir}: class names {data_info.get('class_names')} differ from "
                f"{runs[0]}'s {class_names}; an ensemble averages the same classes"
            )


def build_ensemble(app, runs, run_dir):
    """Averages the finished runs `runs` into the run directory `run_dir`; returns metrics."""
    if len(runs) < 2:
        raise SystemExit("--models: an ensemble needs at least two run directories")
    if os.path.exists(os.path.join(run_dir, training.METRICS)):
        raise SystemExit(f"{run_dir} holds a finished run; choose another --run-dir")
    members = [training.load_run(app, path) for path in runs]
    models = [model for model, _, _ in members]
    configs = [config for _, config, _ in members]
    data_infos = [data_info for _, _, data_info in members]
    _check_members(runs, data_infos)
    ensemble = average_models(models, name=f"{app.name}_ensemble")

    config = configs[0]
    loaded = training.load_splits(app, config)
    validation, _ = training.make_batches(app, config, loaded.splits["validation"], training=False)
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
