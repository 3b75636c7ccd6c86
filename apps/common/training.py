"""Training runs: `model.fit` with the callbacks people expect, written into one run directory.

A run directory holds:

    config.json        the resolved config (a valid --config file)
    data_info.json     what the model needs from the data (vocabulary, class names)
    checkpoints/best.keras   the best model by the app's objective (val_accuracy); load it
                       with `load_run(app, run_dir)`, or call `app.register_layers()`
                       before `keras.saving.load_model`
    backup/            BackupAndRestore state; present only while a run is unfinished
    history.csv        one row per epoch (CSVLogger)
    logs/              TensorBoard logs
    training_curves.png
    metrics.json       validation metrics of the best checkpoint, epochs, wall time

Restarting a killed run with the same command resumes from its last finished epoch:
BackupAndRestore restores weights, optimizer state and the epoch counter, the history CSV
is appended to and the best checkpoint keeps the best score seen before the kill.
"""

import csv
import json
import math
import os
import shutil
import signal
import sys
import time

import keras
import numpy as np

from apps.common import batching, plots
from apps.common import config as config_lib
from apps.common.errors import ConfigError, DataSourceError, RunError, check_range

BEST_MODEL = os.path.join("checkpoints", "best.keras")
DATA_INFO = "data_info.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
# Fault injection for tests and drills: kill the process (SIGKILL, no cleanup) at the end
# of this 1-based epoch, exactly like an out-of-memory kill or a pre-empted machine.
CRASH_AFTER_EPOCH_VARIABLE = "RNN_KERAS_CRASH_AFTER_EPOCH"


def make_optimizer(train_config):
    """Adam with the configured learning rate, optional clipping by global norm, decoupled
    weight decay (AdamW) and EMA."""
    momentum = train_config.ema_momentum
    if momentum is not None and not 0.0 < momentum < 1.0:
        raise ConfigError(f"train.ema_momentum: must be in (0, 1), got {momentum!r}")
    decay = train_config.weight_decay
    check_range("train.weight_decay", decay, minimum=0, maximum=1)
    # Keras applies an optimizer's weight_decay decoupled from the gradient, so Adam with
    # it is AdamW.
    return keras.optimizers.Adam(
        learning_rate=train_config.learning_rate,
        clipnorm=train_config.clipnorm,
        weight_decay=decay or None,
        use_ema=momentum is not None,
        ema_momentum=0.99 if momentum is None else momentum,
    )


def averaging_callbacks(train_config, swap_on_epoch=False):
    """With `train.ema_momentum`, validation (and, with `swap_on_epoch`, the checkpoints
    written at the epoch's end) sees the averaged weights; otherwise no callback."""
    if train_config.ema_momentum is None:
        return []
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=swap_on_epoch)]


def make_batches(app, config, data_info, dataset, training, epochs=None, initial_epoch=0):
    """`(batches, batches_per_epoch)` of one split; see `apps.common.batching.epoch_batches`."""
    return batching.epoch_batches(app, config, data_info, dataset, training, epochs, initial_epoch)


def _initial_epoch(backup_dir):
    """The epoch BackupAndRestore will resume at (0 without a backup)."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    return int(read_json(path).get("epoch", 0))


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_json(value, path):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_history(run_dir):
    """The history CSV as a list of dicts of floats (empty when there is none)."""
    path = os.path.join(run_dir, HISTORY)
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            {key: float(value) for key, value in row.items() if value not in ("", None)}
            for row in csv.DictReader(handle)
        ]


class CrashAfterEpoch(keras.callbacks.Callback):
    """Kills the process with SIGKILL at the end of a 1-based epoch (tests of resuming)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            print(f"{CRASH_AFTER_EPOCH_VARIABLE}={self.epoch}: killing the run", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


def start_run(run_dir, config):
    """Opens `run_dir` for a new or resumed run and saves the config; returns `resuming`.

    A finished run is never overwritten, and an unfinished one resumes only with the
    config it started with.
    """
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as error:
        raise RunError(f"cannot create the run directory {run_dir}: {error.strerror}") from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise RunError(f"the run directory {run_dir} is not writable")
    resuming = os.path.isdir(os.path.join(run_dir, "backup"))
    if not resuming and os.path.exists(os.path.join(run_dir, METRICS)):
        raise RunError(
            f"{run_dir} holds a finished run ({METRICS}); choose another --run-dir to train "
            "again, or delete it"
        )
    path = os.path.join(run_dir, config_lib.CONFIG_FILENAME)
    if resuming and os.path.exists(path):
        saved = read_json(path)
        if saved != config_lib.config_to_dict(config):
            raise RunError(
                f"{run_dir} holds an unfinished run with a different config ({path}); "
                "restart it with the same command or choose another --run-dir"
            )
    config_lib.save_config(config, path)
    print(f"run directory: {run_dir}" + (" (resuming an unfinished run)" if resuming else ""))
    return resuming


def run_data_info(run_dir, resuming, describe):
    """The run's data info: the saved one when resuming, else `describe()`, saved."""
    path = os.path.join(run_dir, DATA_INFO)
    if resuming and os.path.exists(path):
        # The vocabulary must be exactly the one the backed-up weights were trained with.
        return read_json(path)
    data_info = describe()
    write_json(data_info, path)
    return data_info


class ReseedEachEpoch(keras.callbacks.Callback):
    """Sets every random seed state of the model (dropout, noise) from the seed and epoch.

    A run killed after epoch k and resumed draws, from epoch k + 1 on, exactly the dropout
    masks the uninterrupted run draws: BackupAndRestore restores weights and optimizer, and
    this restores the randomness, which it does not save.
    """

    def __init__(self, seed):
        super().__init__()
        self.seed = int(seed)

    def on_epoch_begin(self, epoch, logs=None):
        states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        for index, state in enumerate(states):
            value = np.zeros(state.shape, dtype=state.dtype)
            value.flat[0] = (self.seed * 1_000_003 + epoch * 7919 + index) % (2**31 - 1)
            state.assign(value)


class CosineLearningRate(keras.callbacks.Callback):
    """Sets the rate before each batch: half a cosine from `base_rate` to a tenth of it.

    The position is the optimizer's step count, which BackupAndRestore restores, so a
    resumed run continues on the same curve. `base_rate` None takes the optimizer's rate at
    the start of training (a tuning trial's own rate).

    Args:
        total_steps: steps over which the rate falls; later steps keep the final rate.
        base_rate: the starting rate, or None.
        final_fraction: the final rate over the starting one.
    """

    def __init__(self, total_steps, base_rate=None, final_fraction=0.1):
        super().__init__()
        self.total_steps = max(1, int(total_steps))
        self.fixed_base_rate = base_rate
        self.base_rate = base_rate
        self.final_fraction = final_fraction

    def on_train_begin(self, logs=None):
        if self.fixed_base_rate is None:  # read again for every model trained
            self.base_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def rate(self, step):
        progress = min(1.0, step / self.total_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.base_rate * (self.final_fraction + (1.0 - self.final_fraction) * cosine)

    def on_train_batch_begin(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.model.optimizer.learning_rate = self.rate(step)


def schedule_callbacks(train_config, total_steps, base_rate=None):
    """The learning-rate callbacks `train_config.learning_rate_schedule` asks for."""
    if train_config.learning_rate_schedule == "cosine":
        return [CosineLearningRate(total_steps, base_rate)]
    return []


def _callbacks(app, config, run_dir, resuming, data_info, validation_batches, steps_per_epoch):
    mode = app.objective_direction
    checkpoint = keras.callbacks.ModelCheckpoint(
        os.path.join(run_dir, BEST_MODEL), monitor=app.objective, mode=mode, save_best_only=True
    )
    history = read_history(run_dir) if resuming else []
    scores = [row[app.objective] for row in history if app.objective in row]
    if scores:
        # A resumed run must not replace the best checkpoint with a worse epoch.
        checkpoint.best = max(scores) if mode == "max" else min(scores)
    callbacks = [
        # First, so that its backup is on disk before anything else can fail this epoch.
        keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup"), double_checkpoint=True),
    ]
    # Between the backup (training weights, EMA in the optimizer state) and the
    # checkpoint: validation and the best checkpoint see the averaged weights.
    callbacks += averaging_callbacks(config.train, swap_on_epoch=True)
    total_steps = config.train.epochs * steps_per_epoch
    callbacks += schedule_callbacks(config.train, total_steps, config.train.learning_rate)
    # Before the checkpoint and early stopping, so that a score they write is monitored.
    callbacks += list(app.callbacks(config, data_info, validation_batches))
    callbacks += [
        ReseedEachEpoch(config.seed),
        checkpoint,
        keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY), append=resuming),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")),
        keras.callbacks.EarlyStopping(
            monitor=app.objective, mode=mode, patience=config.train.early_stopping_patience
        ),
        keras.callbacks.TerminateOnNaN(),
    ]
    crash_epoch = os.environ.get(CRASH_AFTER_EPOCH_VARIABLE)
    if crash_epoch:
        callbacks.append(CrashAfterEpoch(int(crash_epoch)))
    return callbacks


def load_splits(app, config):
    """Loads the data, prints its notes and checks the train and validation splits exist."""
    loaded = app.load_data(config)
    if hasattr(loaded, "describe"):
        print(loaded.describe())
    else:
        for note in getattr(loaded, "notes", []) or []:
            print(f"data: {note}")
    for split in ("train", "validation"):
        if split not in loaded.splits:
            raise DataSourceError(
                f"the data has no {split!r} split (splits: {sorted(loaded.splits)})"
            )
    return loaded


def train(app, config, run_dir):
    """Trains `app` with `config` into `run_dir`; returns the metrics dict."""
    started = time.time()
    app.check_config(config)
    created = not os.path.exists(run_dir)
    resuming = start_run(run_dir, config)
    try:
        loaded = load_splits(app, config)
    except Exception:
        # Data that cannot be read leaves no run behind: only the config was written.
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    data_info = run_data_info(run_dir, resuming, lambda: app.describe_data(config, loaded))
    # Seeded here, after loading: data loading draws a varying amount of randomness.
    keras.utils.set_random_seed(config.seed)
    model = app.build_model(config, data_info)
    if config.train.initialize_from and not resuming:
        initialize_from_run(app, model, data_info, config.train.initialize_from)
    freeze_layers(model, config.train.frozen_layers)
    model.summary()
    train_batches, per_epoch = make_batches(
        app,
        config,
        data_info,
        loaded.splits["train"],
        training=True,
        epochs=config.train.epochs,
        initial_epoch=_initial_epoch(os.path.join(run_dir, "backup")),
    )
    validation_batches, _ = make_batches(
        app, config, data_info, loaded.splits["validation"], training=False
    )
    steps_per_epoch = min(config.train.steps_per_epoch or per_epoch, per_epoch)
    callbacks = _callbacks(
        app, config, run_dir, resuming, data_info, validation_batches, steps_per_epoch
    )
    fit_history = model.fit(
        train_batches,
        validation_data=validation_batches,
        epochs=config.train.epochs,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # make_batches shuffles; fit cannot shuffle a tf.data pipeline.
        callbacks=callbacks,
        # A progress bar per batch on a terminal; one line per epoch in a log file.
        verbose="auto" if sys.stdout.isatty() else 2,
    )
    history = read_history(run_dir)
    losses = fit_history.history.get("loss", [])
    terminated_on_nan = any(not math.isfinite(loss) for loss in losses)
    plots.plot_training_curves(history, os.path.join(run_dir, "training_curves.png"))

    best_path = os.path.join(run_dir, BEST_MODEL)
    if not os.path.exists(best_path):
        raise RunError(f"training produced no checkpoint in {best_path} (loss was not finite?)")
    best_model = keras.saving.load_model(best_path)
    evaluation = best_model.evaluate(validation_batches, return_dict=True, verbose=0)
    best_epoch = _best_epoch(app, history)
    scores = {key: float(value) for key, value in evaluation.items()}
    if best_epoch is not None:
        # Scores computed by app callbacks (e.g. entity F1) exist only in the history.
        rows = [row for row in history if int(row.get("epoch", -1)) == best_epoch - 1]
        best_row = rows[-1] if rows else {}
        for key, value in best_row.items():
            if key.startswith("val_") and key.removeprefix("val_") not in scores:
                scores[key.removeprefix("val_")] = value
    metrics = {
        "validation": scores,
        "objective": {"name": app.objective, "direction": app.objective_direction},
        "epochs_completed": len(history),
        "best_epoch": best_epoch,
        "terminated_on_nan": terminated_on_nan,
        "train_examples": _count(loaded.splits["train"]),
        "validation_examples": _count(loaded.splits["validation"]),
        # Time of this process only; a resumed run adds to the killed run's time.
        "wall_time_seconds": round(time.time() - started, 1),
    }
    write_json(metrics, os.path.join(run_dir, METRICS))
    print(f"validation metrics of the best checkpoint: {metrics['validation']}")
    print(f"wrote {run_dir}/{{config.json,history.csv,training_curves.png,metrics.json}}")
    return metrics


def _best_epoch(app, history):
    scored = [
        (row[app.objective], int(row.get("epoch", i)))
        for i, row in enumerate(history)
        if app.objective in row
    ]
    if not scored:
        return None
    sign = 1 if app.objective_direction == "max" else -1
    # The first epoch reaching the best score: ModelCheckpoint keeps it on later ties.
    return min(scored, key=lambda item: (-sign * item[0], item[1]))[1] + 1


def _count(dataset):
    count = int(dataset.cardinality())
    if count < 0:
        count = int(dataset.reduce(np.int64(0), lambda total, _: total + 1))
    return count


def write_finished_run(run_dir, model, config, data_info, metrics):
    """Writes a model made outside `train` (best trial, ensemble) as a finished run directory.

    `load_run`, `evaluate`, `export` and `predict` then take it like a trained run.
    """
    os.makedirs(os.path.join(run_dir, os.path.dirname(BEST_MODEL)), exist_ok=True)
    # Built, so that the saved file loads without a mismatch of optimizer variables.
    model.optimizer.build(model.trainable_variables)
    model.save(os.path.join(run_dir, BEST_MODEL))
    config_lib.save_config(config, os.path.join(run_dir, config_lib.CONFIG_FILENAME))
    write_json(data_info, os.path.join(run_dir, DATA_INFO))
    write_json(metrics, os.path.join(run_dir, METRICS))


def read_run_data_info(run_dir):
    """The data_info.json of a finished run directory; a clear error when it is not one."""
    path = os.path.join(run_dir, DATA_INFO)
    if not os.path.exists(path):
        raise RunError(f"{run_dir} is not a finished run directory: {path} is missing")
    return read_json(path)


def load_run(app, run_dir):
    """The best model, config and data info of a finished run directory."""
    best_path = os.path.join(run_dir, BEST_MODEL)
    config_path = os.path.join(run_dir, config_lib.CONFIG_FILENAME)
    for path in (config_path, best_path, os.path.join(run_dir, DATA_INFO)):
        if not os.path.exists(path):
            raise RunError(f"{run_dir} is not a finished run directory: {path} is missing")
    config = config_lib.load_config_file(app.config_class, config_path)
    app.register_layers()
    model = keras.saving.load_model(best_path)
    return model, config, read_json(os.path.join(run_dir, DATA_INFO))


def initialize_from_run(app, model, data_info, run_dir):
    """Copies the weights of `run_dir`'s best model into `model`, layer by layer.

    A layer takes its namesake's weights when their shapes agree, or when the app's
    `transfer_layer` maps them (a vocabulary that differs); other layers keep their
    fresh initialisation. Prints which layers were copied.
    """
    source, _, source_info = load_run(app, run_dir)
    copied, fresh = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            source_layer = source.get_layer(layer.name)
        except ValueError:
            fresh.append(layer.name)
            continue
        if app.transfer_layer(layer, source_layer, data_info, source_info):
            copied.append(layer.name)
        elif [w.shape for w in layer.weights] == [w.shape for w in source_layer.weights]:
            layer.set_weights(source_layer.get_weights())
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    print(
        f"initialized from {run_dir}: copied {', '.join(copied) or 'nothing'}"
        + (f"; fresh: {', '.join(fresh)}" if fresh else "")
    )
    return copied


def freeze_layers(model, names):
    """Marks the named layers not trainable and recompiles `model` (same optimizer config)."""
    if not names:
        return
    known = [layer.name for layer in model.layers if layer.weights]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"train.frozen_layers: no layer with weights named {', '.join(map(repr, unknown))}"
            f" (layers: {', '.join(known)})"
        )
    compile_config = model.get_compile_config()
    for name in names:
        model.get_layer(name).trainable = False
    # Trainability is read when the train step is built, that is by compile.
    model.compile_from_config(compile_config)
    print(f"frozen: {', '.join(names)}")


def latest_run(app, root="runs"):
    """The most recently trained run directory under `runs/<app>/`, or None."""
    base = os.path.join(root, app.name)
    if not os.path.isdir(base):
        return None
    candidates = [
        os.path.join(base, name)
        for name in os.listdir(base)
        if os.path.exists(os.path.join(base, name, BEST_MODEL))
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda path: os.path.getmtime(os.path.join(path, BEST_MODEL)))
