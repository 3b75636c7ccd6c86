"""Validation loss per training step of the text generation model beside PyTorch, same batches.

Separates how much a model learns per step from how long a step takes. Both models train on
the same random windows of Tiny Shakespeare (one NumPy generator draws the window starts;
batch 64, window 128 unless overridden) and are scored every `--eval-every` steps on the
same validation windows, read from the zero state, in nats per character. The Keras model
is the textgen app's (`apps.textgen`, any dotted config overrides); the PyTorch one is the
issue's reference recipe: embedding, a two-layer 512-unit `nn.LSTM`, linear logits, AdamW
at 2e-3. Seconds per step (after the first) are printed too, but the point is the loss at equal steps.

    python benchmarks/textgen_per_step.py --data ../shared/data/tiny_shakespeare --steps 150 \\
        model.cell=gru model.units=512 model.dropout=0.1 train.learning_rate=3e-3
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.textgen import cpu_model  # noqa: E402
from benchmarks.textgen_step_time import torch_char_model  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with train.txt, validation.txt")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--eval-windows", type=int, default=256)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the textgen config")
    return parser.parse_args()


def windows(text, starts, length):
    return np.stack([text[start : start + length] for start in starts])


class KerasRun:
    def __init__(self, config, vocabulary):
        import keras

        from apps.textgen import APP

        keras.utils.set_random_seed(config.seed)
        self.model = APP.build_model(config, {"vocabulary": vocabulary})
        self.characters = np.array(vocabulary)

    def train(self, ids, targets):
        return float(self.model.train_on_batch(self.characters[ids - 1], targets))

    def nats(self, ids, targets):
        import tensorflow as tf

        chars, targets = tf.constant(self.characters[ids - 1]), tf.constant(targets)
        return float(self.model.evaluate(chars, targets, batch_size=64, verbose=0))


class TorchRun:
    def __init__(self, vocabulary_size, learning_rate=2e-3, units=512, embedding_dim=64):
        import torch

        torch.manual_seed(0)
        self.torch = torch
        self.model = torch_char_model("lstm", vocabulary_size, embedding_dim, units, 2)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), learning_rate)

    def loss(self, ids, targets):
        logits = self.model(self.torch.from_numpy(ids))
        flat = logits.reshape(-1, logits.shape[-1])
        targets = self.torch.from_numpy(targets).reshape(-1)
        return self.torch.nn.functional.cross_entropy(flat, targets)

    def train(self, ids, targets):
        self.optimizer.zero_grad()
        loss = self.loss(ids, targets)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def nats(self, ids, targets):
        with self.torch.no_grad():
            return float(self.loss(ids, targets))


def main():
    arguments = parse_arguments()
    from apps.common import config as config_lib
    from apps.textgen.config import TextGenConfig

    config = config_lib.apply_overrides(TextGenConfig(), arguments.overrides)
    texts = {}
    for split in ("train", "validation"):
        with open(os.path.join(arguments.data, f"{split}.txt"), encoding="utf-8") as handle:
            texts[split] = handle.read()
    vocabulary = sorted(set(texts["train"]))
    index = {character: number + 1 for number, character in enumerate(vocabulary)}
    encoded = {split: np.array([index.get(c, 0) for c in text]) for split, text in texts.items()}
    batch, window = config.train.batch_size, config.data.window
    starts = np.arange(0, len(encoded["validation"]) - window - 1, window)[: arguments.eval_windows]
    validation = windows(encoded["validation"], starts, window + 1)
    runs = {
        f"rnn_keras {' '.join(arguments.overrides) or 'defaults'}": KerasRun(config, vocabulary)
    }
    if not arguments.no_torch:
        runs["pytorch nn.LSTM 2x512, AdamW 2e-3"] = TorchRun(len(vocabulary))
    print(f"{cpu_model()}; {os.cpu_count()} cores (os.cpu_count)")
    print(f"batch {batch}, window {window}; validation: {len(starts)} windows from the zero state")
    print(f"{'step':>6}" + "".join(f"  {name[:38]:>38}" for name in runs))
    rng = np.random.default_rng(0)
    seconds = dict.fromkeys(runs, 0.0)
    for step in range(1, arguments.steps + 1):
        train = windows(
            encoded["train"], rng.integers(0, len(encoded["train"]) - window - 1, batch), window + 1
        )
        for name, run in runs.items():
            started = time.perf_counter()
            run.train(train[:, :-1], train[:, 1:])
            if step > 1:  # the first step traces the Keras model
                seconds[name] += time.perf_counter() - started
        if step % arguments.eval_every == 0 or step == arguments.steps:
            losses = [run.nats(validation[:, :-1], validation[:, 1:]) for run in runs.values()]
            print(f"{step:>6}" + "".join(f"  {loss:>38.3f}" for loss in losses), flush=True)
    print(
        "seconds per step: "
        + ", ".join(f"{name} {s / max(1, arguments.steps - 1):.2f}" for name, s in seconds.items())
    )


if __name__ == "__main__":
    main()
