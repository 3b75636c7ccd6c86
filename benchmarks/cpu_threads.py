"""rnn_keras and Keras recurrent layers under two TensorFlow CPU threading setups.

`benchmarks/cells.py` compares both sides in one process, so under one setup.
Threading is fixed per process, so this script alternates processes:

- "default": TensorFlow's threads per operation (one per core), our layers
  with `batch_groups=1`;
- "one thread per op": `tf.config.threading.set_intra_op_parallelism_threads(1)`
  for both sides, our layers with `batch_groups=2`.

Each repeat runs `cells.py` once per setup (interleaved rounds inside); the
printed figures are medians over repeats of each run's medians. Besides the
ratio within each setup it prints the ratio of each side's faster setup, the
comparison a user who picks the better threading for each would see.

    python benchmarks/cpu_threads.py                       # LSTM and GRU, 3 repeats
    python benchmarks/cpu_threads.py --cells gru --repeats 5 --rounds 10
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SETUPS = {
    "default": [],
    "one thread per op": ["--intra-op-threads", "1", "--batch-groups", "2"],
}
KEYS = ("train_ours", "train_keras", "infer_ours", "infer_keras")


def run_cells(cells, rounds, options):
    """One cells.py process; returns {cell: {key: median seconds}}."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "medians.json")
        command = [sys.executable, os.path.join(os.path.dirname(__file__), "cells.py")]
        command += ["--cells", *cells, "--rounds", str(rounds), "--no-memory", "--json", path]
        subprocess.run(command + options, check=True, stdout=subprocess.DEVNULL)
        with open(path, encoding="utf-8") as file:
            return json.load(file)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per run")
    args = parser.parse_args()
    runs = {setup: [] for setup in SETUPS}
    for repeat in range(args.repeats):
        for setup, options in SETUPS.items():
            runs[setup].append(run_cells(args.cells, args.rounds, options))
            print(f"repeat {repeat + 1}/{args.repeats}: {setup} done", file=sys.stderr, flush=True)
    medians = {
        setup: {
            cell: {key: float(np.median([run[cell][key] for run in results])) for key in KEYS}
            for cell in args.cells
        }
        for setup, results in runs.items()
    }
    print(
        f"\n{args.repeats} repeats x {len(SETUPS)} setups, {args.rounds} rounds each; "
        f"{os.cpu_count()} CPU cores; ms are medians; speed-up = Keras ms / our ms"
    )
    print("| cell | step | setup | ours ms | Keras ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for cell in args.cells:
        for step in ("train", "infer"):
            ours = {setup: medians[setup][cell][f"{step}_ours"] * 1e3 for setup in SETUPS}
            theirs = {setup: medians[setup][cell][f"{step}_keras"] * 1e3 for setup in SETUPS}
            for setup in SETUPS:
                row = f"| {cell} | {step} | {setup} | {ours[setup]:.0f} | {theirs[setup]:.0f} "
                print(row + f"| {theirs[setup] / ours[setup]:.2f} |")
            best_ours = min(ours, key=ours.get)
            best_theirs = min(theirs, key=theirs.get)
            print(
                f"| {cell} | {step} | each side's faster (ours: {best_ours}; Keras: {best_theirs}) "
                f"| {ours[best_ours]:.0f} | {theirs[best_theirs]:.0f} "
                f"| {theirs[best_theirs] / ours[best_ours]:.2f} |"
            )


if __name__ == "__main__":
    main()
