"""Character-level text generation (Tiny Shakespeare or your own text), streamed as it is made.

`APP` is this package's side of the contract in `apps.common.app`. What differs from the
other apps: a split is one long text cut into windows (`App.examples`), a stateful
training mode with its own batches (`App.batch`), nats per character as the objective,
generation one step at a time, and export signatures that carry the recurrent state.

Example:

    python -m apps.textgen train --data ../shared/data/tiny_shakespeare
    python -m apps.textgen predict "ROMEO:" --length 300 --temperature 0.8
    python -m apps.textgen evaluate
    python -m apps.textgen export
"""

import sys

from apps.common.app import App
from apps.textgen.config import TextGenConfig

# TensorFlow-backed modules are imported inside the methods, so that `--help` is fast.


class TextGenApp(App):
    """Character language modelling: text in, the next character's distribution out."""

    name = "textgen"
    config_class = TextGenConfig
    objective = "val_loss"
    objective_direction = "min"
    compatibility_keys = ("vocabulary",)

    def load_data(self, config):
        from apps.textgen import data

        return data.load(config.data)

    def describe_data(self, config, loaded):
        """The sorted characters of the train split (saved as data_info.json)."""
        from apps.textgen import data

        text = data.split_text(loaded.splits["train"])
        return {"vocabulary": sorted(set(text)), "train_chars": len(text)}

    def check_config(self, config):
        from apps.common.errors import ConfigError, check_range

        super().check_config(config)
        model = config.model
        check_range("data.window", config.data.window, minimum=1)
        check_range("data.max_chars", config.data.max_chars, minimum=0)
        check_range("model.embedding_dim", model.embedding_dim, minimum=1)
        check_range(
            "model.embedding_stddev", model.embedding_stddev, minimum=0, exclusive_minimum=True
        )
        check_range("model.units", model.units, minimum=1)
        check_range("model.num_layers", model.num_layers, minimum=1)
        check_range("model.dropout", model.dropout, minimum=0, maximum=0.95)
        check_range("sample.length", config.sample.length, minimum=0)
        if model.layer_norm and model.cell != "lstm":
            raise ConfigError(f"model.layer_norm: only the lstm cell has it, not {model.cell!r}")

    def build_model(self, config, data_info):
        from apps.textgen import model

        return model.build_model(config, data_info)

    def register_layers(self):
        from apps.textgen import model  # noqa: F401

    def serving_endpoints(self, keras_model, config, data_info):
        from apps.textgen import generation

        return generation.serving_endpoints(keras_model, config, data_info)

    def search_space(self, hp):
        """Cell type, depth, width, dropout, window length and learning rate."""
        return {
            "model.cell": hp.Choice("model.cell", ["lstm", "gru", "mingru", "minlstm"]),
            "model.num_layers": hp.Int("model.num_layers", 1, 3),
            "model.units": hp.Choice("model.units", [128, 256, 512]),
            "model.dropout": round(hp.Float("model.dropout", 0.0, 0.4, step=0.1), 2),
            "data.window": hp.Choice("data.window", [64, 128, 256]),
            "train.learning_rate": hp.Float("train.learning_rate", 5e-4, 5e-3, sampling="log"),
        }

    # ---- examples and batches -------------------------------------------------------

    def examples(self, dataset, config, data_info, training):
        """Windows `(chars (window,), next-char ids (window,))`; see `apps.textgen.data`."""
        from apps.textgen import data, model

        lookup = model.make_lookup(data_info["vocabulary"])
        return data.windows(dataset, config.data.window, lookup)

    def shuffle_training_examples(self, config):
        return config.data.mode == "shuffled" and config.train.shuffle_buffer > 1

    def batch(self, examples, config, training, seed):
        """Shuffled batches, stateful row-ordered batches, or in-order batches (evaluation)."""
        from apps.textgen import data

        batch_size = config.train.batch_size
        if training and config.data.mode == "stateful":
            return data.stateful_batches(examples, batch_size)
        if training and self.shuffle_training_examples(config):
            examples = examples.shuffle(config.train.shuffle_buffer, seed=seed)
        return examples.batch(batch_size)

    def callbacks(self, config, data_info, validation_batches):
        from apps.textgen import generation, model

        callbacks = []
        if config.data.mode == "stateful":
            callbacks.append(model.ResetCarriedStates())
        sample = config.sample
        if sample.every_epochs > 0 and sample.length > 0:
            callbacks.append(
                generation.PrintSample(
                    data_info["vocabulary"],
                    sample.prompt,
                    sample.length,
                    sample.temperature,
                    config.seed,
                    sample.every_epochs,
                )
            )
        return callbacks

    # ---- evaluation -------------------------------------------------------------------

    def evaluate(self, serving_model, batches, output_dir):
        """Nats and bits per character: windows from the zero state, and the whole text
        with the state carried (the `score` endpoint, in both cases)."""
        from apps.textgen import evaluation

        return evaluation.evaluate(serving_model, batches, output_dir)

    def whole_file_config(self, config):
        return config

    # ---- predict: streamed generation ----------------------------------------------

    def add_predict_arguments(self, parser):
        parser.add_argument("--length", type=int, default=300, help="characters to generate")
        parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
        parser.add_argument("--top-k", type=int, default=0, help="keep the k likeliest (0: all)")
        parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (1: all)")
        parser.add_argument("--seed", type=int, default=0, help="sampling seed")
        parser.add_argument(
            "--beam", type=int, default=0, help="beam search of this width (run dirs; no stream)"
        )

    def predict(self, serving_model, lines, options):
        """Streams a continuation of each prompt to the terminal, a character at a time."""
        from apps.common.errors import InputError
        from apps.textgen import generation

        if options.length < 0:
            raise InputError(f"--length must be >= 0, got {options.length}")
        if options.beam > 0:
            return self.beam_predict(serving_model, lines, options)
        endpoints = generation.endpoints_of(serving_model)
        for number, line in enumerate(lines, start=1):
            if not line:
                raise InputError(f"input {number}: an empty prompt; give at least one character")
            sys.stdout.write(line)
            sys.stdout.flush()

            def write(char):
                sys.stdout.write(char)
                sys.stdout.flush()

            generation.stream(
                endpoints["step"],
                endpoints["initial_state"],
                line,
                options.length,
                options.temperature,
                options.top_k,
                options.top_p,
                options.seed,
                write,
            )
            sys.stdout.write("\n")

    def beam_predict(self, serving_model, lines, options):
        """Prints the best beam-search continuation of each prompt (run directories)."""
        from apps.common.errors import InputError
        from apps.textgen import generation, model

        if serving_model.keras_model is None:
            raise InputError("--beam needs a run directory (an export has no beam signature)")
        lookup, network = model.parts(serving_model.keras_model)
        table = [model.OOV_TEXT] + list(serving_model.data_info["vocabulary"])
        for number, line in enumerate(lines, start=1):
            if not line:
                raise InputError(f"input {number}: an empty prompt; give at least one character")
            ids, _ = generation.beam_generate(network, lookup, line, options.length, options.beam)
            print(line + "".join(table[int(index)] for index in ids.numpy()[0]))


APP = TextGenApp()
