"""Sentiment classification of movie reviews and sentences (IMDB, SST-2, your own files).

`APP` is this package's side of the contract in `apps.common.app`: the shared pipeline
trains, tunes, evaluates, exports and serves it without knowing it is sentiment.
"""

import numpy as np

from apps.common import ensemble
from apps.common.app import Command
from apps.common.text import PRETRAIN_COMMAND, VECTORS_COMMAND, TextApp
from apps.sentiment.config import SentimentConfig

# TensorFlow-backed modules (`apps.sentiment.model`, `apps.common.training`) are
# imported inside the methods, so that `--help` and config checks stay fast.

# Lengths (in words) at which batches are cut when bucketing by length.
BUCKET_BOUNDARIES = [8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 400, 512, 768]


class SentimentApp(TextApp):
    """Text classification: a text in, class probabilities out."""

    name = "sentiment"
    config_class = SentimentConfig
    objective = "val_accuracy"
    objective_direction = "max"
    compatibility_keys = ("class_names",)

    def load_data(self, config):
        from apps.sentiment import data

        return data.load(config.data)

    def describe_data(self, config, loaded):
        """Class names and the vocabulary adapted on the train split (saved as data_info.json).

        With `train.initialize_from`, the earlier run's words fill what is left of
        `model.max_tokens` after the train split's own: their embeddings were trained, so
        words the train split lacks are still understood at test time.
        """
        from apps.common import training
        from apps.common.text import layers as text_layers
        from apps.sentiment import model

        texts = loaded.splits["train"].map(lambda example: example["text"])
        vocabulary = model.adapt_vocabulary(texts, config.model.max_tokens)
        if config.train.initialize_from:
            source_info = training.read_run_data_info(config.train.initialize_from)
            vocabulary = text_layers.extend_vocabulary(
                vocabulary, source_info["vocabulary"], config.model.max_tokens
            )
        return {"class_names": list(loaded.info["class_names"]), "vocabulary": vocabulary}

    def vocabulary_data_info(self, source_info, vocabulary):
        return {"class_names": list(source_info["class_names"]), "vocabulary": list(vocabulary)}

    def check_config(self, config):
        from apps.common.errors import check_range

        super().check_config(config)
        model = config.model
        check_range("model.max_tokens", model.max_tokens, minimum=3)
        check_range("model.sequence_length", model.sequence_length, minimum=1)
        check_range("model.embedding_dim", model.embedding_dim, minimum=1)
        check_range("model.units", model.units, minimum=1)
        check_range("model.num_layers", model.num_layers, minimum=1)
        check_range("model.attention_units", model.attention_units, minimum=1)
        for key in ("token_dropout", "embedding_dropout", "dropout", "recurrent_dropout"):
            check_range(f"model.{key}", getattr(model, key), minimum=0, maximum=0.95)

    def build_model(self, config, data_info):
        from apps.sentiment import model

        return model.build_model(config, data_info)

    def serving_endpoints(self, keras_model, config, data_info):
        from apps.sentiment import model

        return model.serving_endpoints(keras_model, config, data_info)

    def to_model_inputs(self, example):
        return example["text"], example["label"]

    def example_length(self, text):
        """Words in a text: the bucketing length (close to its number of tokens)."""
        import tensorflow as tf

        return tf.size(tf.strings.split(text))

    def bucket_boundaries(self, config):
        return BUCKET_BOUNDARIES if config.train.bucket_by_length else []

    def search_space(self, hp):
        """The tuned hyperparameters, as dotted config overrides."""
        return {
            "model.cell": hp.Choice("model.cell", ["gru", "lstm", "mingru", "minlstm"]),
            "model.units": hp.Choice("model.units", [32, 64, 128]),
            "model.pooling": hp.Choice("model.pooling", ["max", "attention", "mean", "last"]),
            "model.embedding_dim": hp.Choice("model.embedding_dim", [64, 128]),
            "model.dropout": round(hp.Float("model.dropout", 0.1, 0.5, step=0.1), 2),
            "model.embedding_dropout": round(
                hp.Float("model.embedding_dropout", 0.0, 0.5, step=0.1), 2
            ),
            "model.token_dropout": hp.Choice("model.token_dropout", [0.0, 0.1, 0.2]),
            "train.learning_rate": hp.Float("train.learning_rate", 3e-4, 3e-3, sampling="log"),
        }

    def tokens_of(self, example):
        """The words the model reads in one example (its standardisation, split on spaces)."""
        import tensorflow as tf

        from apps.sentiment import model

        return tf.strings.split(model.standardize_text(example["text"]))

    def layer_roles(self, keras_model):
        recurrent = [layer for layer in keras_model.layers if layer.name.startswith("recurrent_")]
        return {"embedding": keras_model.get_layer("embedding"), "encoder": recurrent}

    def whole_file_config(self, config):
        from apps.common import config as config_lib

        return config_lib.apply_overrides(config, {"data.validation_fraction": 0.0})

    def add_predict_arguments(self, parser):
        parser.add_argument("--explain", action="store_true", help="show attention per token")
        parser.add_argument("--output", default="explanation.png", help="--explain heatmap PNG")

    def predict(self, serving_model, lines, options):
        """Prints `label<TAB>probability<TAB>text`, or with `--explain` attention per token."""
        from apps.common.errors import ExportError

        inputs = self.parse_inputs(lines, options)
        if not getattr(options, "explain", False):
            return super().predict(serving_model, lines, options)
        if "explain" not in serving_model.endpoints:
            raise ExportError(
                f"{serving_model.source} has no 'explain' endpoint: --explain needs a model "
                "trained with attention pooling (model.pooling=attention)"
            )
        self.explain(serving_model.call(inputs, endpoint="explain"), lines, options.output)

    def format_outputs(self, lines, outputs, options):
        """`label<TAB>probability<TAB>text` per input; a text with no known word says so."""
        rows = []
        known = outputs.get("known_words")
        for index, (text, label, probabilities) in enumerate(
            zip(lines, outputs["label"], outputs["probabilities"], strict=True)
        ):
            label = label.decode() if isinstance(label, bytes) else str(label)
            shown = text if len(text) <= 80 else text[:77] + "..."
            note = ""
            if known is not None and int(known[index]) == 0:
                note = "\t(no known word: the answer is the model's prior)"
            rows.append(f"{label}\t{float(np.max(probabilities)):.4f}\t{shown}{note}")
        return rows

    def evaluate(self, serving_model, batches, output_dir):
        from apps.common import evaluation

        def probabilities(text):
            return serving_model.call({"text": np.asarray(text)})["probabilities"]

        return evaluation.evaluate_classifier(
            probabilities,
            batches,
            serving_model.data_info["class_names"],
            output_dir,
            title="sentiment",
        )

    def explain(self, outputs, lines, output_path):
        """Prints each token's attention weight and writes a heatmap PNG."""
        from apps.common import plots

        rows = []
        for index, text in enumerate(lines):
            keep = outputs["token_ids"][index] != 0
            tokens = [token.decode() for token in outputs["tokens"][index][keep]]
            weights = [float(weight) for weight in outputs["weights"][index][keep]]
            label = outputs["label"][index].decode()
            probability = float(np.max(outputs["probabilities"][index]))
            print(f"{label}\t{probability:.4f}\t{text}")
            for token, weight in zip(tokens, weights, strict=True):
                print(f"    {weight:.4f}  {token}")
            rows.append((f"{label} {probability:.2f}", tokens, weights))
        plots.plot_token_weights(rows, output_path)
        print(f"wrote {output_path}")

    def register_layers(self):
        """Registers the model's custom Keras layers (saved `.keras` runs hold them)."""
        super().register_layers()
        from apps.sentiment import model  # noqa: F401

    def transfer_layer(self, layer, source_layer, data_info, source_data_info):
        """The embedding rows of shared words (`apps.common.text.layers.transfer_embedding`)."""
        from apps.common.text import layers

        return layers.transfer_embedding(layer, source_layer, data_info, source_data_info)

    def extra_commands(self):
        return [
            Command(
                "ensemble",
                "average finished runs into one model",
                ensemble.add_arguments,
                ensemble.run_command,
            ),
            VECTORS_COMMAND,
            PRETRAIN_COMMAND,
        ]


APP = SentimentApp()
