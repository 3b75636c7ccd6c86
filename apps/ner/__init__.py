"""Named-entity recognition: CoNLL-2003 or your own CoNLL files, BiLSTM-CRF with characters.

`APP` is this package's side of the contract in `apps.common.app`: the shared pipeline
trains, tunes, evaluates, exports and serves it without knowing it tags entities. The
objective is validation entity F1 (conlleval), computed by a callback at each epoch end.
"""

import numpy as np

from apps.common.app import App
from apps.common.errors import InputError
from apps.ner.config import NerConfig

# TensorFlow-backed modules (`apps.ner.model`, `apps.ner.data`) are imported inside the
# methods, so that `--help` and config checks stay fast.

# Sentence lengths (in tokens) at which batches are cut when bucketing by length.
BUCKET_BOUNDARIES = [6, 10, 14, 18, 22, 27, 32, 40, 50, 64, 80]


class NerApp(App):
    """Token tagging: tokens in, one IOB2 tag (and its confidence) per token out."""

    name = "ner"
    config_class = NerConfig
    objective = "val_entity_f1"
    objective_direction = "max"
    compatibility_keys = ("tag_names",)

    def load_data(self, config):
        from apps.ner import data

        return data.load(config.data)

    def describe_data(self, config, loaded):
        """Tag names (from the data), the train vocabulary and characters."""
        from apps.ner import model

        sentences = (
            [token.decode() for token in example["tokens"]]
            for example in loaded.splits["train"].as_numpy_iterator()
        )
        vocabulary, characters = model.build_vocabularies(
            sentences, config.model.max_words, config.model.min_word_count
        )
        return {
            "tag_names": list(loaded.info["tag_names"]),
            "vocabulary": vocabulary,
            "characters": characters,
        }

    def check_config(self, config):
        from apps.common.errors import check_range
        from apps.ner.data import check_config

        super().check_config(config)
        check_config(config.data)
        m = config.model
        check_range("model.max_words", m.max_words, minimum=3)
        check_range("model.min_word_count", m.min_word_count, minimum=1)
        for key in ("word_embedding_dim", "units", "num_layers", "max_word_chars"):
            check_range(f"model.{key}", getattr(m, key), minimum=1)
        for key in ("char_embedding_dim", "char_units", "char_filters", "char_kernel_size"):
            check_range(f"model.{key}", getattr(m, key), minimum=1)
        check_range("model.case_embedding_dim", m.case_embedding_dim, minimum=0)
        check_range(
            "schedule.factor", config.schedule.factor, minimum=0, maximum=1, exclusive_minimum=True
        )
        check_range("schedule.patience", config.schedule.patience, minimum=0)
        for key in ("word_dropout", "embedding_dropout", "dropout"):
            check_range(f"model.{key}", getattr(m, key), minimum=0, maximum=0.95)

    def build_model(self, config, data_info):
        from apps.ner import model

        return model.build_model(config, data_info)

    def serving_endpoints(self, keras_model, config, data_info):
        from apps.ner import model

        return model.serving_endpoints(keras_model, config, data_info)

    def register_layers(self):
        from apps.ner import model  # noqa: F401

    def to_model_inputs(self, example):
        return example["tokens"], example["tags"]

    def padding_values(self):
        import tensorflow as tf

        return (tf.constant("", tf.string), tf.constant(0, tf.int64))

    def example_length(self, tokens):
        import tensorflow as tf

        return tf.size(tokens)

    def bucket_boundaries(self, config):
        return BUCKET_BOUNDARIES if config.train.bucket_by_length else []

    def callbacks(self, config, data_info, validation_batches):
        from apps.ner import model

        callbacks = [model.EntityF1(validation_batches, data_info["tag_names"])]
        if config.schedule.factor < 1:
            import keras

            # After EntityF1, so it sees this epoch's score.
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor=self.objective,
                    mode="max",
                    factor=config.schedule.factor,
                    patience=config.schedule.patience,
                    min_lr=config.schedule.min_learning_rate,
                    verbose=1,
                )
            )
        return callbacks

    def search_space(self, hp):
        """The tuned hyperparameters, as dotted config overrides."""
        return {
            "model.cell": hp.Choice("model.cell", ["lstm", "gru", "mingru", "minlstm"]),
            "model.units": hp.Choice("model.units", [50, 100, 200]),
            "model.num_layers": hp.Choice("model.num_layers", [1, 2]),
            "model.char_encoder": hp.Choice("model.char_encoder", ["cnn", "lstm", "none"]),
            "model.head": hp.Choice("model.head", ["crf", "softmax"]),
            "model.dropout": round(hp.Float("model.dropout", 0.2, 0.6, step=0.1), 2),
            "model.embedding_dropout": round(
                hp.Float("model.embedding_dropout", 0.2, 0.6, step=0.1), 2
            ),
            "train.learning_rate": hp.Float("train.learning_rate", 5e-4, 5e-3, sampling="log"),
        }

    def whole_file_config(self, config):
        from apps.common import config as config_lib

        return config_lib.apply_overrides(config, {"data.validation_fraction": 0.0})

    def parse_inputs(self, lines, options):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise InputError(f"input {number}: empty sentence")
        return {"text": np.array(lines, dtype=object)}

    def predict(self, serving_model, lines, options):
        """Prints each sentence, then its entities: type, token positions, text, confidence."""
        outputs = serving_model.call(self.parse_inputs(lines, options), endpoint="text")
        for line in self.format_outputs(lines, outputs, options):
            print(line)

    def format_outputs(self, lines, outputs, options):
        from apps.common.metrics import entity_spans

        rows = []
        for index, text in enumerate(lines):
            tokens = [token.decode() for token in outputs["tokens"][index]]
            tags = [tag.decode() for tag in outputs["tags"][index]]
            length = sum(1 for token in tokens if token)
            spans = entity_spans(tags[:length])
            rows.append(f"{text}\t({len(spans)} entities)")
            for kind, start, end in spans:
                confidence = float(np.min(outputs["confidence"][index][start:end]))
                words = " ".join(tokens[start:end])
                rows.append(f"  {kind}\ttokens {start}-{end - 1}\t{words}\t{confidence:.3f}")
        return rows

    def evaluate(self, serving_model, batches, output_dir):
        """conlleval table per type, `evaluation.json` and `entity_confusion.png`."""
        from apps.ner import evaluation

        return evaluation.evaluate(serving_model, batches, output_dir)


APP = NerApp()
