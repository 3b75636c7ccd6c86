"""Seconds per training step of the text generation model, beside PyTorch at the same shape.

One training step (forward, backward, Adam) of the textgen app's model on a batch of random
character windows, for each variant given, and of a PyTorch `nn.LSTM`/`nn.GRU` character
model of the same size (embedding, two recurrent layers, linear logits; AdamW) when PyTorch
is installed. Side by side in one run, so that the ratios hold on the machine measured;
the CPU model and core count are printed with them. Variants are comma-separated dotted
overrides of the textgen config.

Example:

    python benchmarks/textgen_step_time.py model.cell=gru model.cell=lstm \\
        model.cell=mingru,model.num_layers=3
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.textgen import cpu_model  # noqa: E402

VOCABULARY_SIZE = 65


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=["model.cell=gru", "model.cell=lstm"])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--no-torch", action="store_true")
    return parser.parse_args()


def keras_seconds_per_step(overrides, steps):
    import keras
    import tensorflow as tf

    from apps.common import config as config_lib
    from apps.textgen import APP
    from apps.textgen.config import TextGenConfig

    config = config_lib.apply_overrides(TextGenConfig(), overrides)
    vocabulary = [chr(33 + index) for index in range(VOCABULARY_SIZE)]
    keras.utils.set_random_seed(1)
    model = APP.build_model(config, {"vocabulary": vocabulary})
    batch, window = config.train.batch_size, config.data.window
    rng = np.random.default_rng(0)
    chars = np.array(vocabulary, dtype=object)[rng.integers(0, VOCABULARY_SIZE, (batch, window))]
    targets = rng.integers(1, VOCABULARY_SIZE + 1, (batch, window))
    batches = tf.data.Dataset.from_tensors((tf.constant(chars), tf.constant(targets))).repeat()
    model.fit(batches, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)  # warm-up
    started = time.perf_counter()
    model.fit(batches, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    return (time.perf_counter() - started) / steps, config


def torch_char_model(kind, vocabulary_size, embedding_dim, units, num_layers):
    """PyTorch's character model of the same size: embedding, `nn.LSTM`/`nn.GRU`, logits.

    Ids 1..vocabulary_size are characters, 0 the unknown one (as the app's lookup).
    """
    import torch

    recurrent_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]

    class CharModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocabulary_size + 1, embedding_dim)
            self.recurrent = recurrent_class(embedding_dim, units, num_layers, batch_first=True)
            self.logits = torch.nn.Linear(units, vocabulary_size + 1)

        def forward(self, ids):
            return self.logits(self.recurrent(self.embedding(ids))[0])

    return CharModel()


def torch_seconds_per_step(kind, config, steps):
    import torch

    torch.manual_seed(0)
    m = config.model
    model = torch_char_model(kind, VOCABULARY_SIZE, m.embedding_dim, m.units, m.num_layers)
    optimizer = torch.optim.AdamW(model.parameters(), config.train.learning_rate)
    shape = (config.train.batch_size, config.data.window)
    ids = torch.randint(0, VOCABULARY_SIZE + 1, shape)
    targets = torch.randint(0, VOCABULARY_SIZE + 1, shape)

    def step():
        optimizer.zero_grad()
        logits = model(ids).reshape(-1, VOCABULARY_SIZE + 1)
        torch.nn.functional.cross_entropy(logits, targets.reshape(-1)).backward()
        optimizer.step()

    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def main():
    arguments = parse_arguments()
    print(f"{cpu_model()}; {os.cpu_count()} cores (os.cpu_count)")
    rows = []
    first = None  # the config of the first variant: the shape of the PyTorch rows
    for variant in arguments.variants:
        overrides = [part for part in variant.split(",") if part]
        seconds, config = keras_seconds_per_step(overrides, arguments.steps)
        characters = config.train.batch_size * config.data.window
        rows.append((f"rnn_keras {variant}", seconds, characters))
        if first is None:
            first = config
    if not arguments.no_torch and first is not None:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: its rows are skipped")
        else:
            print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
            for kind in ("lstm", "gru"):
                seconds = torch_seconds_per_step(kind, first, arguments.steps)
                characters = first.train.batch_size * first.data.window
                rows.append(
                    (f"torch nn.{kind.upper()} (the first variant's shape)", seconds, characters)
                )
    print(f"{arguments.steps} timed steps after 2 warm-up steps; chars/s = batch x window / s")
    print(f"{'variant':55s} {'s/step':>7s} {'chars/s':>8s}")
    for name, seconds, characters in rows:
        print(f"{name:55s} {seconds:7.3f} {characters / seconds:8.0f}")


if __name__ == "__main__":
    main()
