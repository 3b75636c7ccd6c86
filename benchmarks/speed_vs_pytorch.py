"""Speed of our LSTM/GRU, Keras's, the minimal cells and PyTorch's nn.LSTM/nn.GRU, side by side.

One process, one shape per sequence length, all variants timed in interleaved
rounds (so a change in machine load hits every variant alike). A training step
is forward, backward and an Adam update of a one-layer model whose loss is the
mean squared error of the last output (Keras: `train_on_batch`; PyTorch: the
same by hand); inference is one forward pass (`predict_on_batch`;
`torch.no_grad()`). Times are medians in milliseconds; `x ours lstm` is our
LSTM's time over the variant's (above 1: faster than our LSTM).

PyTorch is optional: without it the torch rows are skipped with a note. It is
not a dependency of rnn_keras (install it only to measure:
`pip install torch`).

    python benchmarks/speed_vs_pytorch.py
    python benchmarks/speed_vs_pytorch.py --lengths 100 1000 --batch 32 --units 256 --rounds 5
    python benchmarks/speed_vs_pytorch.py --lengths 1000 --torch-threads 1
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import rnn_keras  # noqa: E402

KERAS_VARIANTS = {
    "ours lstm": lambda units: rnn_keras.Recurrent(rnn_keras.LSTMCell(units)),
    "keras lstm": lambda units: keras.layers.LSTM(units),
    "ours gru": lambda units: rnn_keras.Recurrent(rnn_keras.GRUCell(units)),
    "keras gru": lambda units: keras.layers.GRU(units),
    "ours mingru": lambda units: rnn_keras.Recurrent(rnn_keras.MinGRUCell(units)),
    "ours minlstm": lambda units: rnn_keras.Recurrent(rnn_keras.MinLSTMCell(units)),
}
TORCH_VARIANTS = ("torch lstm", "torch gru")


def machine():
    """CPU model, core count and load, from /proc where it exists."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/loadavg", encoding="utf-8") as loadavg:
            load = " ".join(loadavg.read().split()[:3])
    except OSError:
        load = "unknown"
    return f"{model}; {os.cpu_count()} cores (os.cpu_count); load average {load}"


def cpu_ticks():
    """(busy, stolen) CPU ticks since boot from /proc/stat, or None where it is absent.

    Stolen time is what a virtual machine's host gave to others while this one
    wanted to run; a loop of many small operations slows down under it more than
    large ones do, so the scripts print its share beside their figures.
    """
    try:
        with open("/proc/stat", encoding="utf-8") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, steal = fields[0], fields[1], fields[2], fields[7]
    return user + nice + system + steal, steal


def stolen_share(start):
    """A line with the share of CPU time the host stole since `cpu_ticks()` gave `start`."""
    end = cpu_ticks()
    if start is None or end is None or end[0] == start[0]:
        return "CPU time stolen by the host: unknown"
    share = (end[1] - start[1]) / (end[0] - start[0])
    return f"CPU time stolen by the host during the run: {share:.0%} of the busy time"


def keras_model(name, args, steps):
    model = keras.Sequential(
        [keras.Input((steps, args.features)), KERAS_VARIANTS[name](args.units)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def torch_model(name, args):
    """(train_step, infer) closures of a PyTorch nn.LSTM / nn.GRU of the same shape."""
    import torch

    torch.manual_seed(0)
    module_type = torch.nn.LSTM if name == "torch lstm" else torch.nn.GRU
    module = module_type(args.features, args.units, batch_first=True)
    optimizer = torch.optim.Adam(module.parameters())

    def last_output(x):
        return module(x)[0][:, -1]

    def train_step(x, y):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(last_output(x), y)
        loss.backward()
        optimizer.step()

    def infer(x):
        with torch.no_grad():
            last_output(x)

    return train_step, infer


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def runners(args, steps, have_torch):
    """name -> (train, infer) zero-argument callables, warmed up once."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, steps, args.features)).astype("float32")
    y = rng.normal(size=(args.batch, args.units)).astype("float32")
    result = {}
    for name in args.variants:
        if name in KERAS_VARIANTS:
            model = keras_model(name, args, steps)
            train = (lambda m: lambda: m.train_on_batch(x, y))(model)
            infer = (lambda m: lambda: m.predict_on_batch(x))(model)
        elif have_torch:
            import torch

            train_step, infer_step = torch_model(name, args)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            train = (lambda f, a, b: lambda: f(a, b))(train_step, tx, ty)
            infer = (lambda f, a: lambda: f(a))(infer_step, tx)
        else:
            continue
        train()
        infer()
        result[name] = (train, infer)
    return result


def measure(args, steps, have_torch):
    """{name: (median train ms, median inference ms)} over interleaved rounds."""
    variants = runners(args, steps, have_torch)
    times = {name: ([], []) for name in variants}
    for _ in range(args.rounds):
        for name, (train, infer) in variants.items():
            times[name][0].append(timed(train) * 1000)
            times[name][1].append(timed(infer) * 1000)
    return {name: tuple(statistics.median(t) for t in pair) for name, pair in times.items()}


def print_table(steps, results):
    reference = results.get("ours lstm")
    print(f"\n{steps} steps: median ms (train / infer), and our LSTM's time over each")
    print(f"{'variant':<14}{'train ms':>10}{'infer ms':>10}{'x ours lstm':>14}{'(infer)':>9}")
    for name, (train, infer) in results.items():
        ratio = ratio_infer = ""
        if reference:
            ratio, ratio_infer = f"{reference[0] / train:.2f}", f"{reference[1] / infer:.2f}"
        print(f"{name:<14}{train:>10.1f}{infer:>10.1f}{ratio:>14}{ratio_infer:>9}")
    sys.stdout.flush()


def compare(description, variants, lengths, rounds):
    """A side-by-side timing script of Keras-side `variants` (name -> units -> layer).

    The command line of the scripts that time variants of one layer against ours
    (`min_lstm_gate.py`, `lstm_inference.py`): this module's timing, tables and
    machine lines, over `--lengths`, with `--variants` choosing among `variants`.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lengths", type=int, nargs="+", default=lengths)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--variants", nargs="+", default=list(variants), choices=list(variants))
    args = parser.parse_args()
    KERAS_VARIANTS.clear()
    KERAS_VARIANTS.update(variants)
    print(machine())
    print(
        f"batch {args.batch}, features {args.features}, units {args.units}, "
        f"{args.rounds} rounds after one warm-up; training = forward + backward + Adam"
    )
    start = cpu_ticks()
    for steps in args.lengths:
        print_table(steps, measure(args, steps, False))
    print(stolen_share(start))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(KERAS_VARIANTS) + list(TORCH_VARIANTS),
        choices=list(KERAS_VARIANTS) + list(TORCH_VARIANTS),
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch.set_num_threads (0: PyTorch's default); on a loaded machine its "
        "OpenMP threads spin and 1 can be much faster",
    )
    args = parser.parse_args()
    try:
        import torch

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        have_torch = True
        torch_note = f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        have_torch = False
        torch_note = "PyTorch not installed: its rows are skipped (pip install torch to add them)"
    import tensorflow as tf

    print(machine())
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; {torch_note}")
    print(
        f"batch {args.batch}, features {args.features}, units {args.units}, "
        f"{args.rounds} rounds after one warm-up; training = forward + backward + Adam"
    )
    start = cpu_ticks()
    for steps in args.lengths:
        print_table(steps, measure(args, steps, have_torch))
    print(f"\nload average at the end: {machine().rsplit('load average ', 1)[-1]}")
    print(stolen_share(start))


if __name__ == "__main__":
    main()
