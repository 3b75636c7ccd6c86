"""Benchmark: the NER app's default configuration on CoNLL-2003, dev entity F1 against time.

Trains exactly what `python -m apps.ner train --data ../shared/data/conll2003` trains (the
same code path, in this process) for each variant, with a wall-clock budget: after each
epoch the elapsed time is logged, and training stops once the budget is spent. Prints dev
entity F1 (micro, conlleval) per epoch with the elapsed time, then the conlleval table per
entity type of the best checkpoint.

- `crf`: the default (BiLSTM + character CNN + casing + CRF).
  Target (issue 14): dev F1 >= 0.90 within 60 minutes on the 2-core CPU.
- `softmax`: the same with `model.head=softmax`.

Usage (from the repository root):

    python benchmarks/ner.py                                 # crf, then softmax, 60 min each
    python benchmarks/ner.py --variants crf --minutes 25
    python benchmarks/ner.py --max-examples 300 --minutes 2  # smoke test
    python benchmarks/ner.py --variants softmax model.units=200   # any override

Each run writes a run directory under `runs/benchmarks/ner_<variant>` (deleted first, so
the time is a fresh run's) and the results to `runs/benchmarks/ner_results.json`.
"""

import argparse
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "conll2003")
VARIANTS = {"crf": ["model.head=crf"], "softmax": ["model.head=softmax"]}
TARGET = 0.90


def timed_app(budget_seconds, started):
    """The NER app with a callback that logs elapsed seconds and stops past the budget."""
    import keras

    from apps.ner import NerApp

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.time() - started
            if logs is not None:
                logs["elapsed_seconds"] = elapsed
            if elapsed > budget_seconds:
                print(f"time budget of {budget_seconds / 60:g} minutes spent: stopping")
                self.model.stop_training = True

    class TimedNerApp(NerApp):
        def callbacks(self, config, data_info, validation_batches):
            return [*super().callbacks(config, data_info, validation_batches), Clock()]

    return TimedNerApp()


def run_variant(name, arguments):
    from apps.common import config as config_lib
    from apps.common import export, training
    from apps.ner import evaluation

    overrides = [f"data.source={arguments.data}", *VARIANTS[name], *arguments.overrides]
    if arguments.max_examples:
        overrides.append(f"data.max_examples={arguments.max_examples}")
    started = time.time()
    app = timed_app(arguments.minutes * 60, started)
    config = config_lib.resolve_config(app.config_class, None, overrides)
    app.check_config(config)
    run_dir = os.path.join(ROOT, "runs", "benchmarks", f"ner_{name}")
    shutil.rmtree(run_dir, ignore_errors=True)
    metrics = training.train(app, config, run_dir)
    history = training.read_history(run_dir)
    curve = [
        {
            "epoch": int(row["epoch"]) + 1,
            "minutes": round(float(row["elapsed_seconds"]) / 60, 1),
            "dev_f1": round(float(row["val_entity_f1"]), 4),
        }
        for row in history
    ]
    serving = export.open_model(app, run_dir)
    batches, _ = training.make_batches(
        app, config, serving.data_info, app.load_data(config).splits["validation"], False
    )
    report = evaluation.evaluate(serving, batches, os.path.join(run_dir, "evaluation_dev"))
    return {
        "variant": name,
        "overrides": overrides,
        "dev_f1": round(report["f1"], 4),
        "per_type_f1": {kind: round(row["f1"], 4) for kind, row in report["per_type"].items()},
        "curve": curve,
        "best_epoch": metrics["best_epoch"],
        "train_minutes": round(metrics["wall_time_seconds"] / 60, 1),
        "reached_target": report["f1"] >= TARGET,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SHARED_DATA, help="CoNLL directory (train, valid)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--minutes", type=float, default=60.0, help="budget per variant")
    parser.add_argument("--max-examples", type=int, default=0, help="sentences per split")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    arguments = parser.parse_args(argv)
    if not os.path.isdir(arguments.data):
        print(f"no data at {arguments.data}; see ../shared/data/README.md", file=sys.stderr)
        return 2
    sys.path.insert(0, ROOT)
    path = os.path.join(ROOT, "runs", "benchmarks", "ner_results.json")
    results = []
    for name in arguments.variants:
        results.append(run_variant(name, arguments))
        # Earlier invocations' other variants are kept, so variants can run separately.
        kept = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                kept = [
                    row for row in json.load(handle) if row["variant"] not in arguments.variants
                ]
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(kept + results, handle, indent=2)
    print("\nvariant   dev F1   best epoch  minutes  per type F1")
    for row in results:
        types = "  ".join(f"{kind} {f1:.4f}" for kind, f1 in row["per_type_f1"].items())
        print(
            f"{row['variant']:<8}  {row['dev_f1']:.4f}  {row['best_epoch']!s:>10}  "
            f"{row['train_minutes']:7.1f}  {types}"
        )
        print(
            "    curve (epoch: minutes, dev F1): "
            + ", ".join(
                f"{point['epoch']}: {point['minutes']}, {point['dev_f1']}" for point in row["curve"]
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
