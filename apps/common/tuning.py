"""Hyperparameter search with keras-tuner over an app's declared search space.

The app's `search_space(hp)` returns dotted config overrides, so a trial is a config:
`ConfigHyperModel.build(hp)` applies them and calls the app's ordinary `build_model`,
and the best trial is written as a complete config JSON that `train --config` accepts,
and its trained model as the run directory `best_run/`. `tune.fixed` holds keys of the
space at the base config's values; with `train.initialize_from` every trial is
warm-started (e.g. searching the fine-tuning of a fixed architecture). The search directory is opened with `overwrite=False`: restarting the same command
continues the search where it stopped (finished trials are kept, not repeated).
"""

import importlib.util
import json
import os
import warnings

import keras
import keras_tuner

from apps.common import config as config_lib
from apps.common import training
from apps.common.errors import ConfigError, RunError

BEST_CONFIG = "best_config.json"
# The best trial's trained model as a run directory: evaluate, export and predict take it.
BEST_RUN = "best_run"


class ConfigHyperModel(keras_tuner.HyperModel):
    """A keras-tuner HyperModel whose hyperparameters are config overrides.

    Args:
        app: the `App` whose `search_space` and `build_model` are used.
        base_config: the config the overrides apply to.
        data_info: what `build_model` needs from the data.
    """

    def __init__(self, app, base_config, data_info):
        super().__init__(name=f"{app.name}_hypermodel", tunable=True)
        self.app = app
        self.base_config = base_config
        self.data_info = data_info

    def config_for(self, hp):
        """The full config of one set of hyperparameter values."""
        return config_lib.apply_overrides(self.base_config, self.app.search_space(hp))

    def build(self, hp):
        config = self.config_for(hp)
        model = self.app.build_model(config, self.data_info)
        if config.train.initialize_from:
            training.initialize_from_run(
                self.app, model, self.data_info, config.train.initialize_from
            )
        training.freeze_layers(model, config.train.frozen_layers)
        return model


def fixed_hyperparameters(app, config):
    """A `HyperParameters` holding `tune.fixed` keys at the base config's values."""
    probe = keras_tuner.HyperParameters()
    searched = app.search_space(probe)
    unknown = [key for key in config.tune.fixed if key not in searched]
    if unknown:
        raise ConfigError(
            f"tune.fixed: {', '.join(map(repr, unknown))} not in the search space "
            f"({', '.join(searched)})"
        )
    flat = config_lib.config_to_dict(config)
    hyperparameters = keras_tuner.HyperParameters()
    for key in config.tune.fixed:
        value = flat
        for part in key.split("."):
            value = value[part]
        hyperparameters.Fixed(key, value)
    return hyperparameters


def make_tuner(hypermodel, app, tune_config, directory, seed, hyperparameters=None):
    """The keras-tuner `Tuner` named by `tune.tuner`, resumable in `directory`."""
    objective = keras_tuner.Objective(app.objective, direction=app.objective_direction)
    common = dict(
        objective=objective,
        hyperparameters=hyperparameters,
        directory=os.path.dirname(os.path.abspath(directory)),
        project_name=os.path.basename(os.path.abspath(directory)),
        overwrite=False,
        seed=seed,
    )
    if tune_config.tuner == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=tune_config.max_trials, **common)
    if tune_config.tuner == "bayesian":
        if importlib.util.find_spec("scipy") is None:
            # keras-tuner's Gaussian process needs scipy, which this project does not depend on.
            raise ConfigError(
                "tune.tuner=bayesian needs scipy: pip install 'keras-tuner[bayesian]' "
                "(or use tune.tuner=random or hyperband)"
            )
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=tune_config.max_trials, **common
        )
    return keras_tuner.Hyperband(
        hypermodel, max_epochs=tune_config.epochs, factor=tune_config.factor, **common
    )


def summary_rows(tuner, app):
    """One row per trial: id, status, objective score, hyperparameter values."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        score = trial.score
        rows.append(
            {
                "trial": trial_id,
                "status": str(trial.status),
                app.objective: None if score is None else float(score),
                **trial.hyperparameters.values,
            }
        )
    return rows


def format_table(rows):
    """Rows of dicts as an aligned text table (None shown as -)."""
    if not rows:
        return "(no trials)"
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def text(value):
        if value is None:
            return "-"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    widths = {c: max(len(c), *(len(text(row.get(c))) for row in rows)) for c in columns}
    lines = ["  ".join(f"{c:<{widths[c]}}" for c in columns)]
    lines += ["  ".join(f"{text(row.get(c)):<{widths[c]}}" for c in columns) for row in rows]
    return "\n".join(lines)


def tune(app, config, directory):
    """Runs (or continues) the search in `directory`; returns the path of the best config."""
    tune_config = config.tune
    app.check_config(config)
    os.makedirs(directory, exist_ok=True)
    config_lib.save_config(config, os.path.join(directory, "base_config.json"))
    loaded = training.load_splits(app, config)
    data_info = app.describe_data(config, loaded)
    hypermodel = ConfigHyperModel(app, config, data_info)
    tuner = make_tuner(
        hypermodel, app, tune_config, directory, config.seed, fixed_hyperparameters(app, config)
    )
    tuner.search_space_summary()
    train_batches, per_epoch = training.make_batches(
        app, config, data_info, loaded.splits["train"], training=True
    )
    validation_batches, _ = training.make_batches(
        app, config, data_info, loaded.splits["validation"], training=False
    )
    # make_batches shuffles; fit cannot shuffle a tf.data pipeline.
    search_arguments = dict(validation_data=validation_batches, verbose=1, shuffle=False)
    if tune_config.tuner != "hyperband":
        search_arguments["epochs"] = tune_config.epochs
    if config.train.steps_per_epoch:
        search_arguments["steps_per_epoch"] = config.train.steps_per_epoch
    callbacks = []
    if config.train.ema_momentum is not None:
        # Trials are scored with the averaged weights, as `train` scores its epochs.
        callbacks.append(keras.callbacks.SwapEMAWeights())
    if tune_config.tuner != "hyperband":
        # Each trial's own rate falls over the trial's planned steps; Hyperband trials
        # continue one another's training, so they keep a constant rate.
        trial_steps = tune_config.epochs * (config.train.steps_per_epoch or per_epoch)
        callbacks += training.schedule_callbacks(config.train, trial_steps)
    # The app's own scores (e.g. entity F1), which may be the objective.
    callbacks += list(app.callbacks(config, data_info, validation_batches))
    search_arguments["callbacks"] = callbacks
    tuner.search(train_batches, **search_arguments)

    rows = summary_rows(tuner, app)
    print(format_table(rows))
    best_trials = tuner.oracle.get_best_trials(num_trials=1)
    if not best_trials:
        raise RunError(f"no trial in {directory} finished with a score for {app.objective}")
    best = best_trials[0]
    best_config = hypermodel.config_for(best.hyperparameters)
    path = config_lib.save_config(best_config, os.path.join(directory, BEST_CONFIG))
    with open(os.path.join(directory, "trials.json"), "w", encoding="utf-8") as handle:
        json.dump(rows, handle, indent=2)
    print(f"best trial {best.trial_id}: {app.objective}={best.score:.4f}")
    run_dir = save_best_run(tuner, best_config, data_info, validation_batches, directory)
    print(f"wrote {path}; train it with: --config {path}")
    print(f"wrote {run_dir}: the best trial's model; export it with: export --model {run_dir}")
    return path


def save_best_run(tuner, best_config, data_info, validation_batches, directory):
    """Writes the best trial's weights (its best epoch) as a finished run directory.

    A retrained best config lands elsewhere (other initial weights and batches); this is
    the very model the search scored.
    """
    run_dir = os.path.join(directory, BEST_RUN)
    with warnings.catch_warnings():
        # The trial checkpoints hold Adam's state too; the fresh model's optimizer is
        # not built yet, and the weights, which are what counts here, load all the same.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.get_best_models(num_models=1)[0]
    evaluation = model.evaluate(validation_batches, return_dict=True, verbose=0)
    metrics = {
        "validation": {key: float(value) for key, value in evaluation.items()},
        "search": os.path.abspath(directory),
        "trial": tuner.oracle.get_best_trials(num_trials=1)[0].trial_id,
    }
    training.write_finished_run(run_dir, model, best_config, data_info, metrics)
    return run_dir
