"""Speed of the rnn_keras cells in `rnn_keras.Recurrent` against Keras's built-in layers.

Each pair (ours, Keras) gets identical shapes; the variants are timed in
interleaved rounds so that drifts in machine load hit both sides alike.
A training step is one `model.train_on_batch` (forward, backward and an Adam
update); inference is one `model.predict_on_batch`. The printed ratio is
Keras time / our time, so above 1 means rnn_keras is faster. Peak memory is
the peak resident set size of a fresh subprocess per variant that builds the
model and runs three training steps (TensorFlow's own footprint included).

    python benchmarks/cells.py                      # batch 64, 100 steps, 64 features, 256 units
    python benchmarks/cells.py --rounds 40 --cells lstm gru
    python benchmarks/cells.py --intra-op-threads 1 --batch-groups 2

`--intra-op-threads` sets TensorFlow's threads per operation for both sides
(TensorFlow's default is one per core); `--batch-groups` is our layers'
`batch_groups` (independent recurrences over slices of the batch).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import rnn_keras  # noqa: E402

# name: (our layer factory, Keras layer factory or None)
VARIANTS = {
    "lstm": (
        lambda u, **options: rnn_keras.Recurrent(rnn_keras.LSTMCell(u), **options),
        lambda u: keras.layers.LSTM(u),
    ),
    "gru": (
        lambda u, **options: rnn_keras.Recurrent(rnn_keras.GRUCell(u), **options),
        lambda u: keras.layers.GRU(u),
    ),
    "gru_reset_before": (
        lambda u, **options: rnn_keras.Recurrent(
            rnn_keras.GRUCell(u, reset_after=False), **options
        ),
        lambda u: keras.layers.GRU(u, reset_after=False),
    ),
    "elman": (
        lambda u, **options: rnn_keras.Recurrent(rnn_keras.ElmanCell(u), **options),
        lambda u: keras.layers.SimpleRNN(u),
    ),
    "jordan": (
        lambda u, **options: rnn_keras.Recurrent(
            rnn_keras.JordanCell(u, output_units=u), **options
        ),
        lambda u: keras.layers.SimpleRNN(u),
    ),
    "lstm_peephole": (
        lambda u, **options: rnn_keras.Recurrent(rnn_keras.LSTMCell(u, peephole=True), **options),
        lambda u: keras.layers.LSTM(u),
    ),
    "lstm_layer_norm": (
        lambda u, **options: rnn_keras.Recurrent(rnn_keras.LSTMCell(u, layer_norm=True), **options),
        lambda u: keras.layers.LSTM(u),
    ),
}


def build(layer, args):
    model = keras.Sequential([keras.Input((args.steps, args.features)), layer])
    model.compile(optimizer="adam", loss="mse", jit_compile=args.jit_compile)
    return model


def data(args):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.steps, args.features)).astype("float32")
    y = rng.normal(size=(args.batch, args.units)).astype("float32")
    return x, y


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure_memory(args):
    """Runs in a subprocess: peak resident set size (MiB) after warm-up plus 3 training steps.

    The whole process's peak, TensorFlow included, so the difference between the two
    sides is what the layers cost.
    """
    ours, theirs = VARIANTS[args.memory_variant]
    if args.memory_side == "ours":
        layer = ours(args.units, **our_options(args))
    else:
        layer = theirs(args.units)
    x, y = data(args)
    model = build(layer, args)
    for _ in range(3):
        model.train_on_batch(x, y)
    print(json.dumps({"peak_mib": peak_rss_mib()}))


def peak_rss_mib():
    """This process's peak resident set size. On Linux VmHWM, because ru_maxrss carries
    over the parent's peak through fork and exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_of(variant, side, args):
    command = [sys.executable, __file__, "--memory-variant", variant, "--memory-side", side]
    command += ["--batch", str(args.batch), "--steps", str(args.steps)]
    command += ["--features", str(args.features), "--units", str(args.units)]
    command += ["--intra-op-threads", str(args.intra_op_threads)]
    command += ["--batch-groups", str(args.batch_groups)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"]


def our_options(args):
    return {"batch_groups": args.batch_groups}


def configure_threads(args):
    """Before TensorFlow runs its first operation: threads per operation, for both sides."""
    if args.intra_op_threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)


def summary(values):
    return f"{min(values):.2f}/{np.median(values):.2f}/{max(values):.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cells", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument(
        "--jit-compile", action="store_true", help="compile both sides' steps with XLA"
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=0,
        help="TensorFlow threads per operation, both sides (0: TensorFlow's default)",
    )
    parser.add_argument(
        "--batch-groups", type=int, default=1, help="our layers' batch_groups (default 1)"
    )
    parser.add_argument("--json", help="also write the medians (seconds) to this JSON file")
    parser.add_argument("--memory-variant", help=argparse.SUPPRESS)
    parser.add_argument("--memory-side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_threads(args)
    if args.memory_variant:
        return measure_memory(args)

    x, y = data(args)
    models = {}
    for name in args.cells:
        ours, theirs = VARIANTS[name]
        models[name] = (
            build(ours(args.units, **our_options(args)), args),
            build(theirs(args.units), args),
        )
        for model in models[name]:  # trace and warm up
            model.train_on_batch(x, y)
            model.predict_on_batch(x)
    times = {
        name: {key: [] for key in ("train_ours", "train_keras", "infer_ours", "infer_keras")}
        for name in models
    }
    for round_index in range(args.rounds):
        for name, (ours, theirs) in models.items():
            record = times[name]
            record["train_ours"].append(timed(lambda m=ours: m.train_on_batch(x, y)))
            record["train_keras"].append(timed(lambda m=theirs: m.train_on_batch(x, y)))
            record["infer_ours"].append(timed(lambda m=ours: m.predict_on_batch(x)))
            record["infer_keras"].append(timed(lambda m=theirs: m.predict_on_batch(x)))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    if args.json:  # for benchmarks/cpu_threads.py
        medians = {
            name: {key: float(np.median(values)) for key, values in record.items()}
            for name, record in times.items()
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(medians, file, indent=2)

    print(
        f"\nbatch {args.batch}, {args.steps} steps, {args.features} features, {args.units} units; "
        f"{args.rounds} interleaved rounds; {os.cpu_count()} CPU cores; keras {keras.__version__}; "
        f"intra-op threads {args.intra_op_threads or 'TensorFlow default'}; "
        f"our batch_groups {args.batch_groups}"
    )
    header = "| cell | Keras layer | train ms ours / Keras (median) | train speed-up min/median/max | infer ms ours / Keras | infer speed-up min/median/max | peak MiB ours / Keras |"
    print(header)
    print("|---|---|---|---|---|---|---|")
    for name, record in times.items():
        train_ratio = [
            k / o for k, o in zip(record["train_keras"], record["train_ours"], strict=True)
        ]
        infer_ratio = [
            k / o for k, o in zip(record["infer_keras"], record["infer_ours"], strict=True)
        ]
        keras_name = type(VARIANTS[name][1](4)).__name__
        memory = "-"
        if not args.no_memory:
            memory = f"{memory_of(name, 'ours', args):.0f} / {memory_of(name, 'keras', args):.0f}"
        print(
            f"| {name} | {keras_name} "
            f"| {np.median(record['train_ours']) * 1e3:.0f} / {np.median(record['train_keras']) * 1e3:.0f} "
            f"| {summary(train_ratio)} "
            f"| {np.median(record['infer_ours']) * 1e3:.0f} / {np.median(record['infer_keras']) * 1e3:.0f} "
            f"| {summary(infer_ratio)} | {memory} |"
        )


if __name__ == "__main__":
    main()
