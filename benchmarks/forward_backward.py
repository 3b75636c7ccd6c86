"""Where the training time of a recurrent layer goes: forward pass vs forward plus backward.

Times `layer(x, training=True)` and the gradient of a loss on its output with respect to
its weights, each in one `tf.function`, for `rnn_keras.Recurrent` and the Keras built-in
layer on the same shapes, interleaved over rounds (medians printed). The backward time is
the difference of the two. Meant as the guide for work on the hand-written kernels in
`rnn_keras/kernels.py`.

    python benchmarks/forward_backward.py                  # LSTM and GRU, batch 64, 100 steps
    python benchmarks/forward_backward.py --cells lstm --rounds 30
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=list(LAYERS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(args.batch, args.steps, args.features)).astype("float32"))
    functions = {}
    for cell in args.cells:
        ours, theirs = LAYERS[cell]
        for side, factory in (("rnn_keras", ours), ("keras", theirs)):
            for part, function in timed_functions(factory(args.units), inputs).items():
                functions[(cell, side, part)] = function
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
        f" medians of {args.rounds} interleaved rounds, ms"
    )
    print("| cell | layer | forward | forward+backward | backward |")
    print("|---|---|---|---|---|")
    for cell in args.cells:
        for side in ("rnn_keras", "keras"):
            forward = np.median(times[(cell, side, "forward")]) * 1000
            both = np.median(times[(cell, side, "forward+backward")]) * 1000
            print(f"| {cell} | {side} | {forward:.0f} | {both:.0f} | {both - forward:.0f} |")


if __name__ == "__main__":
    main()
