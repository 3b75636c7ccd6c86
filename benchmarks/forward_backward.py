"""Where the training time of a recurrent layer goes: forward pass vs forward plus backward.

Times `layer(x, training=True)` and the gradient of a loss on its output with respect to
its weights, each in one `tf.function`, for `rnn_keras.Recurrent` and the Keras built-in
layer on the same shapes, interleaved over rounds (medians printed). The backward time is
the difference of the two. Meant as the guide for work on the hand-written kernels in
`rnn_keras/kernels.py`.

    python benchmarks/forward_backward.py                  # LSTM and GRU, batch 64, 100 steps
    python benchmarks/forward_backward.py --cells lstm --rounds 30
    python benchmarks/forward_backward.py --intra-op-threads 1   # one thread per operation

It also times the matrix products no LSTM/GRU training step can avoid ("floor"): the
forward loop's h_{t-1} U, the backward loop's dz_t U^T (each a scan over the steps with
nothing else in it) and the recurrent kernel's gradient sum_t h_{t-1}^T dz_t as one
product. No implementation of the layer on this machine can train faster than their sum.
It also times the forward loop over the batch in two halves, two independent loops (what
`Recurrent(batch_groups=2)` runs), which only helps when operations run on one thread.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import rnn_keras  # noqa: E402

LAYERS = {
    "lstm": (lambda u: rnn_keras.Recurrent(rnn_keras.LSTMCell(u)), keras.layers.LSTM),
    "gru": (lambda u: rnn_keras.Recurrent(rnn_keras.GRUCell(u)), keras.layers.GRU),
    "elman": (lambda u: rnn_keras.Recurrent(rnn_keras.ElmanCell(u)), keras.layers.SimpleRNN),
}


GATES = {"lstm": 4, "gru": 3}
HALVES = "same, batch halves in 2 loops"


def timed_functions(layer, inputs):
    layer(inputs)
    forward = tf.function(lambda x: layer(x, training=True))

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            outputs = layer(x, training=True)
            loss = tf.reduce_sum(outputs * outputs)
        return tape.gradient(loss, layer.trainable_variables)

    return {"forward": forward, "forward+backward": forward_backward}


def matmul_floor_functions(batch, steps, units, gates):
    """The unavoidable products of a training step, each in one tf.function (see above)."""
    from keras import ops

    rng = np.random.default_rng(1)
    kernel = tf.constant(rng.normal(size=(units, gates * units)).astype("float32") * 0.05)
    hidden = tf.constant(rng.normal(size=(steps, batch, units)).astype("float32"))
    deltas = tf.constant(rng.normal(size=(steps, batch, gates * units)).astype("float32"))

    def forward_step(h, _):
        h = ops.matmul(h, kernel)[:, :units]
        return h, h

    @tf.function
    def forward_loop(hidden):
        return rnn_keras.loops.scan(forward_step, hidden[0], hidden)[1]

    @tf.function
    def forward_loops_in_halves(hidden):
        halves = (hidden[:, : batch // 2], hidden[:, batch // 2 :])
        return [rnn_keras.loops.scan(forward_step, half[0], half)[1] for half in halves]

    @tf.function
    def backward_loop(deltas):
        transposed = ops.transpose(kernel)

        def step(dz, _):
            dh = ops.matmul(dz, transposed)
            dz = ops.tile(dh, (1, gates))
            return dz, dz

        return rnn_keras.loops.scan(step, deltas[0], deltas, reverse=True)[1]

    @tf.function
    def kernel_gradient(hidden, deltas):
        flat_hidden = ops.reshape(hidden, (-1, units))
        return ops.matmul(ops.transpose(flat_hidden), ops.reshape(deltas, (-1, gates * units)))

    return {
        "forward loop h U": lambda: forward_loop(hidden),
        HALVES: lambda: forward_loops_in_halves(hidden),
        "backward loop dz U^T": lambda: backward_loop(deltas),
        "kernel gradient": lambda: kernel_gradient(hidden, deltas),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=list(LAYERS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=0,
        help="TensorFlow threads per operation (0: TensorFlow's default, one per core)",
    )
    args = parser.parse_args()
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(args.batch, args.steps, args.features)).astype("float32"))
    functions = {}
    for cell in args.cells:
        ours, theirs = LAYERS[cell]
        for side, factory in (("rnn_keras", ours), ("keras", theirs)):
            for part, function in timed_functions(factory(args.units), inputs).items():
                functions[(cell, side, part)] = function
    floors = {
        cell: matmul_floor_functions(args.batch, args.steps, args.units, GATES[cell])
        for cell in args.cells
        if cell in GATES
    }
    for cell, parts in floors.items():
        for part, function in parts.items():
            functions[(cell, "floor", part)] = lambda x, function=function: function()
    for function in functions.values():  # trace and warm up
        function(inputs)
        function(inputs)
    times = {key: [] for key in functions}
    for _ in range(args.rounds):
        for key, function in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda tensor: tensor.numpy(), function(inputs))
            times[key].append(time.perf_counter() - start)
    print(
        f"batch {args.batch}, {args.steps} steps, {args.features} features, {args.units} units;"
        f" medians of {args.rounds} interleaved rounds, ms;"
        f" intra-op threads {args.intra_op_threads or 'TensorFlow default'}"
    )
    print("| cell | layer | forward | forward+backward | backward |")
    print("|---|---|---|---|---|")
    for cell in args.cells:
        for side in ("rnn_keras", "keras"):
            forward = np.median(times[(cell, side, "forward")]) * 1000
            both = np.median(times[(cell, side, "forward+backward")]) * 1000
            print(f"| {cell} | {side} | {forward:.0f} | {both:.0f} | {both - forward:.0f} |")
    for cell, parts in floors.items():
        medians = {part: np.median(times[(cell, "floor", part)]) * 1000 for part in parts}
        listed = ", ".join(f"{part} {value:.0f}" for part, value in medians.items())
        floor = sum(value for part, value in medians.items() if part != HALVES)
        print(f"{cell} matmul floor: {listed}; sum {floor:.0f} ms (halves not counted)")


if __name__ == "__main__":
    main()
