"""ETTh1 multivariate forecasting: the default model against the baselines, test MSE/MAE.

The papers' protocol: train rows [0, 8640), validation [8640, 11520), test [11520, 14400),
z-score scaler fitted on train, all 7 columns in and out, MSE and MAE on the standardized
scale, every test window (stride 1). Each model's weights are the epoch with the lowest
validation loss; the test split is read only to report. Published at horizon 96: DLinear
0.375 (look-back 336), PatchTST 0.370, SegRNN 0.351 (look-back 720).

Usage (a few minutes per trained model and horizon on 2 cores):

    python benchmarks/forecast.py --horizons 96 --json benchmarks/results/forecast.json
    python benchmarks/forecast.py --horizons 96 192 --models segrnn linear last \
        --set model.units=256
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common import config as config_lib  # noqa: E402
from apps.common import export, training  # noqa: E402
from apps.forecast import APP, windows  # noqa: E402
from apps.forecast.config import ForecastConfig  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Per model kind: settings that differ from the defaults (the default model has none).
MODELS = {
    "segrnn": {},
    # DLinear's settings: look-back 336, batch 32, rate 0.005 halved after every epoch.
    "linear": {
        "model.kind": "linear",
        "model.lookback": 336,
        "train.learning_rate": 0.005,
        "train.batch_size": 32,
        "model.lr_decay": 0.5,
        "train.epochs": 10,
    },
    "seasonal": {"model.kind": "seasonal", "model.season": 24},
    "last": {"model.kind": "last"},
    "direct": {"model.kind": "direct"},
    "seq2seq": {"model.kind": "seq2seq"},
}
UNTRAINED = ("seasonal", "last")


def measure(config, run_dir, output_dir):
    """Trains (unless a naive baseline) and returns validation and test reports, seconds."""
    APP.check_config(config)
    loaded = training.load_splits(APP, config)
    started = time.time()
    if config.model.kind in UNTRAINED:
        data_info = APP.describe_data(config, loaded)
        model = APP.build_model(config, data_info)
        endpoints = APP.serving_endpoints(model, config, data_info)
        serving = export.ServingModel(
            APP, {name: fn for name, (fn, _) in endpoints.items()}, config, data_info, "baseline"
        )
        epochs = 0
    else:
        metrics = training.train(APP, config, run_dir)
        serving = export.open_model(APP, run_dir)
        data_info, epochs = serving.data_info, metrics["best_epoch"]
    seconds = time.time() - started
    reports = {}
    for split in ("validation", "test"):
        batches, _ = training.make_batches(APP, config, data_info, loaded.splits[split], False)
        reports[split] = windows.evaluate(serving, batches, os.path.join(output_dir, split))
    return reports, seconds, epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=[96])
    parser.add_argument("--models", nargs="+", default=["last", "seasonal", "linear", "segrnn"])
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data", "ett"))
    parser.add_argument("--work-dir", default="/tmp/forecast_benchmark")
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every model")
    parser.add_argument("--json", help="append result rows to this JSON file")
    options = parser.parse_args()
    rows = []
    for horizon in options.horizons:
        for name in options.models:
            overrides = {
                "data.source": "ett/ETTh1",
                "data.ett_dir": options.data_dir,
                "data.data_dir": os.path.join(options.work_dir, "tfds"),
                "model.horizon": horizon,
                **MODELS[name],
            }
            config = config_lib.apply_overrides(ForecastConfig(), overrides)
            config = config_lib.apply_overrides(config, options.set)
            tag = f"{name}_h{horizon}_{int(time.time())}"
            reports, seconds, epochs = measure(
                config,
                os.path.join(options.work_dir, "runs", tag),
                os.path.join(options.work_dir, "evaluation", tag),
            )
            row = {
                "model": name,
                "horizon": horizon,
                "lookback": config.model.lookback,
                "val_mse": reports["validation"]["mse"],
                "test_mse": reports["test"]["mse"],
                "test_mae": reports["test"]["mae"],
                "test_windows": reports["test"]["windows"],
                "best_epoch": epochs,
                "seconds": round(seconds, 1),
                "overrides": options.set + [f"{k}={v}" for k, v in MODELS[name].items()],
            }
            rows.append(row)
            print("RESULT " + json.dumps(row), flush=True)
            if options.json:
                previous = []
                if os.path.exists(options.json):
                    with open(options.json, encoding="utf-8") as handle:
                        previous = json.load(handle)
                with open(options.json, "w", encoding="utf-8") as handle:
                    json.dump(previous + [row], handle, indent=1)
    print("| model | horizon | look-back | val MSE | test MSE | test MAE | best epoch | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {row['horizon']} | {row['lookback']} | {row['val_mse']:.4f} | "
            f"{row['test_mse']:.4f} | {row['test_mae']:.4f} | {row['best_epoch']} | "
            f"{row['seconds']} |"
        )


if __name__ == "__main__":
    main()
