"""Text generation quality against wall time, and generation speed with and without state.

Trains the textgen app's model on Tiny Shakespeare through the app's own hooks (data,
windows, batches, model) for a wall-time budget, printing the validation loss (nats per
character, every validation window from the zero state: the app's `val_loss`) against the
elapsed time; then exports the model and measures generation speed in characters per
second through the exported `step` signature (one call per character, the state carried
by the client), the `generate` signature (the whole loop in the graph), and a baseline
that re-runs the model over the whole prefix for every new character.

Example:

    python benchmarks/textgen.py --data ../shared/data/tiny_shakespeare --minutes 30 \\
        --json benchmarks/results/textgen.json model.cell=lstm model.units=512
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/tiny_shakespeare")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget")
    parser.add_argument("--eval-every", type=int, default=100, help="training steps per row")
    parser.add_argument("--speed-chars", type=int, default=200, help="chars per speed run")
    parser.add_argument("--no-speed", action="store_true", help="skip the generation speeds")
    parser.add_argument("--json", help="write the table and speeds here")
    parser.add_argument("--save-model", help="write the final Keras model here (.keras)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    return parser.parse_args()


def train_for(app, config, minutes, eval_every):
    """Trains until `minutes` have passed; returns the model, data info, table rows."""
    import keras

    from apps.common import training

    started = time.time()
    loaded = training.load_splits(app, config)
    data_info = app.describe_data(config, loaded)
    keras.utils.set_random_seed(config.seed)
    model = app.build_model(config, data_info)
    epochs = config.train.epochs + 1
    train_batches, per_epoch = training.make_batches(
        app, config, data_info, loaded.splits["train"], training=True, epochs=epochs
    )
    validation_batches, _ = training.make_batches(
        app, config, data_info, loaded.splits["validation"], training=False
    )
    rows = []
    print(f"{per_epoch} batches per epoch; a row every {eval_every} steps", flush=True)
    print(f"{'minutes':>8} {'steps':>6} {'epochs':>6} {'train':>7} {'val nats/char':>14}")

    class Table(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            elapsed = (time.time() - started) / 60
            steps = (epoch + 1) * eval_every
            row = {
                "minutes": round(elapsed, 2),
                "steps": steps,
                "epochs": round(steps / per_epoch, 2),
                "train_loss": float(logs["loss"]),
                "val_loss": float(logs["val_loss"]),
            }
            rows.append(row)
            print(
                f"{row['minutes']:8.1f} {steps:6d} {row['epochs']:6.2f} "
                f"{row['train_loss']:7.4f} {row['val_loss']:14.4f}",
                flush=True,
            )
            if elapsed >= minutes:
                self.model.stop_training = True

    # `train.epochs` plans the learning-rate schedule (and ends the run if the budget
    # has not); the budget in minutes ends it otherwise.
    planned_steps = config.train.epochs * per_epoch
    schedule = training.schedule_callbacks(config.train, planned_steps, config.train.learning_rate)
    averaging = training.averaging_callbacks(config.train)
    callbacks = [Table(), *averaging, *schedule] + [
        callback
        for callback in app.callbacks(config, data_info, validation_batches)
        if type(callback).__name__ != "PrintSample"
    ]
    model.fit(
        train_batches,
        validation_data=validation_batches,
        epochs=-(-planned_steps // eval_every),
        steps_per_epoch=eval_every,
        callbacks=callbacks,
        shuffle=False,  # the app's batches are shuffled already
        verbose=0,
    )
    return model, data_info, rows


def speeds(app, model, config, data_info, chars):
    """Characters per second: exported `step` and `generate`, and re-running the prefix."""
    import tensorflow as tf

    from apps.common import export

    prompt = "ROMEO:\nWhat light through yonder window breaks?\n"
    with tempfile.TemporaryDirectory() as directory:
        path = export.export_model(app, model, config, data_info, directory)
        loaded = tf.saved_model.load(path)
        step = loaded.signatures["step"]
        generate = loaded.signatures["generate"]
        start = loaded.signatures["initial_state"](batch_size=tf.constant(1))
        start.pop("vocabulary")
        states = dict(start)
        outputs = step(chars=tf.constant(["R"]), **states)  # warm-up
        began = time.perf_counter()
        char = "R"
        for _ in range(chars):
            outputs = step(chars=tf.constant([char]), **states)
            states = {name: value for name, value in outputs.items() if name != "log_probs"}
            char = "e"  # the id chosen is irrelevant to the cost
        step_speed = chars / (time.perf_counter() - began)
        arguments = {
            "prompt": tf.constant([prompt]),
            "temperature": tf.constant(0.8),
            "top_k": tf.constant(0),
            "top_p": tf.constant(1.0),
            "seed": tf.constant(1),
        }
        generate(length=tf.constant(8), **arguments)  # warm-up
        began = time.perf_counter()
        text = generate(length=tf.constant(chars), **arguments)["text"].numpy()[0].decode()
        generate_speed = chars / (time.perf_counter() - began)
    serve = tf.function(
        lambda text: model(text, training=False)[:, -1],
        input_signature=[tf.TensorSpec((1, None), tf.string)],
    )
    serve(tf.constant([list(prompt)]))  # warm-up
    prefix = list(prompt)
    began = time.perf_counter()
    for _ in range(chars):
        logits = serve(tf.constant([prefix]))
        prefix.append(data_info["vocabulary"][int(np.argmax(logits[0, 1:]))])
    rerun_speed = chars / (time.perf_counter() - began)
    return {
        "step_signature_chars_per_second": round(step_speed, 1),
        "generate_signature_chars_per_second": round(generate_speed, 1),
        "rerun_prefix_chars_per_second": round(rerun_speed, 1),
        "prompt_chars": len(prompt),
        "generated_chars": chars,
        "sample": prompt + text,
    }


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    arguments = parse_arguments()
    from apps.common import config as config_lib
    from apps.textgen import APP

    overrides = [f"data.source={arguments.data}", *arguments.overrides]
    config = config_lib.resolve_config(APP.config_class, None, overrides)
    APP.check_config(config)
    print(json.dumps(config_lib.config_to_dict(config)["model"]), flush=True)
    model, data_info, rows = train_for(APP, config, arguments.minutes, arguments.eval_every)
    if arguments.save_model:
        model.save(arguments.save_model)
    measured = {}
    if not arguments.no_speed:
        measured = speeds(APP, model, config, data_info, arguments.speed_chars)
    for key, value in measured.items():
        print(f"{key}: {value}")
    if arguments.json:
        os.makedirs(os.path.dirname(os.path.abspath(arguments.json)), exist_ok=True)
        with open(arguments.json, "w", encoding="utf-8") as handle:
            result = {"config": config_lib.config_to_dict(config), "table": rows, **measured}
            # A shared machine: the load says how much of the CPU this run had.
            result["machine"] = {
                "cpu": cpu_model(),
                "cpus": os.cpu_count(),
                "load_average_1_5_15": os.getloadavg(),
            }
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
