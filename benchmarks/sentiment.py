"""Benchmark: the sentiment app's default configuration on IMDB and SST-2, on this machine.

Trains exactly what `python -m apps.sentiment train --data <source>` trains (the same
code path, in this process) and prints validation accuracy and wall time per dataset:

- IMDB: `../shared/data/imdb/train.csv` (the tfds `imdb_reviews` train split, 25,000
  reviews); validation is 10% of it carved with a fixed seed, as the app does.
  Target: validation accuracy >= 0.89 within 30 minutes on the 2-core CPU.
- SST-2: `../shared/data/sst2` (GLUE train.tsv / dev.tsv = tfds `glue/sst2` train and
  validation). Target: dev accuracy >= 0.85.
- SST-2 warm-started from the IMDB run (`train.initialize_from`, transfer learning: the
  embedding rows of shared words, the recurrent encoder and the classifier); needs the
  IMDB run of the same `--output` first.
- SST-2 warm-started with the best hyperparameters of the warm-started search (dropout
  0.1, no embedding dropout, learning rate 5.5e-4); also needs the IMDB run.
- `lm`: language-model pretraining of the default encoder (`pretrain`, Dai & Le 2015) on
  the train text of IMDB and SST-2; prints the held-out perplexity and wall time.
- `imdb_lm`: IMDB warm-started from the `lm` run of the same `--output`.
- `sst2_lm`: SST-2 warm-started from `imdb_lm` (default config): language model, then
  the larger labelled set, then the target (as ULMFiT fine-tunes a language model before
  the classifier; Howard & Ruder 2018).

Usage (from the repository root):

    python benchmarks/sentiment.py                       # every entry below, in order
    python benchmarks/sentiment.py --dataset imdb
    python benchmarks/sentiment.py --max-examples 300 train.epochs=1   # smoke test
    python benchmarks/sentiment.py --dataset sst2 model.units=128      # any override
    python benchmarks/sentiment.py --dataset sst2_tuned seed=1         # another seed
    python benchmarks/sentiment.py --dataset lm     # then --dataset imdb_lm, --dataset sst2_lm

Each run writes a normal run directory under `runs/benchmarks/<dataset>` (deleted
first, so the time is a fresh run's) and the table to `runs/benchmarks/results.json`.
"""

import argparse
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
DATASETS = {
    "imdb": {
        "source": os.path.join(SHARED_DATA, "imdb", "train.csv"),
        "target": 0.89,
        "overrides": [],
    },
    "sst2": {
        "source": os.path.join(SHARED_DATA, "sst2"),
        "target": 0.85,
        # The longest SST-2 sentence has 52 words; shorter padding saves time only when
        # the recurrent layers need a fixed length (see apps/sentiment/model.py).
        "overrides": ["model.sequence_length=64"],
    },
    "sst2_warm": {
        "source": os.path.join(SHARED_DATA, "sst2"),
        "target": 0.85,
        "overrides": ["model.sequence_length=64", "train.initialize_from={output}/imdb"],
    },
    # The best trial of the warm-started SST-2 search (see README, "Measured results").
    "sst2_tuned": {
        "source": os.path.join(SHARED_DATA, "sst2"),
        "target": 0.85,
        "overrides": [
            "model.sequence_length=64",
            "train.initialize_from={output}/imdb",
            "model.dropout=0.1",
            "model.embedding_dropout=0.0",
            "train.learning_rate=0.0005472897309409114",
        ],
    },
    "lm": {
        "sources": [
            os.path.join(SHARED_DATA, "imdb", "train.csv"),
            os.path.join(SHARED_DATA, "sst2"),
        ],
        "target": None,
        "overrides": [],
    },
    "imdb_lm": {
        "source": os.path.join(SHARED_DATA, "imdb", "train.csv"),
        "target": 0.89,
        "overrides": ["train.initialize_from={output}/lm"],
    },
    "sst2_lm": {
        "source": os.path.join(SHARED_DATA, "sst2"),
        "target": 0.85,
        "overrides": ["model.sequence_length=64", "train.initialize_from={output}/imdb_lm"],
    },
}


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=(*DATASETS, "all"), default="all")
    parser.add_argument(
        "--max-examples", type=int, default=0, help="limit every split (smoke tests; 0: all)"
    )
    parser.add_argument("--output", default=os.path.join("runs", "benchmarks"))
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=2")
    return parser.parse_intermixed_args(argv)


def run_one(name, arguments):
    from apps.common import config as config_lib
    from apps.common import training
    from apps.sentiment import APP

    spec = DATASETS[name]
    sources = spec.get("sources", [spec.get("source")])
    for source in sources:
        if not os.path.exists(source):
            print(f"{name}: skipped, {source} is absent (see ../shared/data/README.md)")
            return None
    spec_overrides = [override.format(output=arguments.output) for override in spec["overrides"]]
    overrides = [f"data.source={sources[0]}", *spec_overrides, *arguments.overrides]
    if arguments.max_examples:
        overrides.append(f"data.max_examples={arguments.max_examples}")
    config = config_lib.resolve_config(APP.config_class, None, overrides)
    run_dir = os.path.join(arguments.output, name)
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.time()
    if "sources" in spec:
        from apps.common import pretraining

        metrics = pretraining.pretrain(APP, config, sources, run_dir)["language_model"]
        return {
            "dataset": name,
            "perplexity": round(metrics["validation_perplexity"], 1),
            "validation_loss": round(metrics["validation_loss"], 4),
            "wall_time_minutes": round((time.time() - started) / 60, 1),
            "train_windows": metrics["train_windows"],
            "overrides": overrides[1:],
            "run_dir": run_dir,
        }
    metrics = training.train(APP, config, run_dir)
    wall = time.time() - started
    accuracy = metrics["validation"]["accuracy"]
    return {
        "dataset": name,
        "validation_accuracy": round(accuracy, 4),
        "target": spec["target"],
        "meets_target": accuracy >= spec["target"] and (name != "imdb" or wall <= 1800),
        "wall_time_minutes": round(wall / 60, 1),
        "epochs": metrics["epochs_completed"],
        "best_epoch": metrics["best_epoch"],
        "train_examples": metrics["train_examples"],
        "validation_examples": metrics["validation_examples"],
        "overrides": overrides[1:],
        "run_dir": run_dir,
    }


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    names = list(DATASETS) if arguments.dataset == "all" else [arguments.dataset]
    results = [result for result in (run_one(name, arguments) for name in names) if result]
    print("\n| dataset | validation accuracy | target | wall time (min) | epochs (best) |")
    print("|---|---|---|---|---|")
    for row in results:
        if "perplexity" in row:
            print(
                f"| {row['dataset']} | held-out perplexity {row['perplexity']} | | "
                f"{row['wall_time_minutes']} | |"
            )
            continue
        print(
            f"| {row['dataset']} | {row['validation_accuracy']:.4f} | >= {row['target']} | "
            f"{row['wall_time_minutes']} | {row['epochs']} ({row['best_epoch']}) |"
        )
    os.makedirs(arguments.output, exist_ok=True)
    with open(os.path.join(arguments.output, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
