"""Sentiment classification of movie reviews and sentences (IMDB, SST-2, your own files).

`APP` is this package's side of the contract in `apps.common.app`: the shared pipeline
trains, tunes, evaluates, exports and serves it without knowing it is sentiment.
"""

import numpy as np

from apps.common.app import App
from apps.sentiment.config import SentimentConfig

# TensorFlow-backed modules (`apps.sentiment.model`, `apps.common.training`) are
# imported inside the functions, so that `--help` and config checks stay fast.


def load_data(config):
    from apps.sentiment import data

    return data.load(config.data)


def describe_data(config, loaded):
    """Class names and the vocabulary adapted on the train split (saved as data_info.json).

    With `train.initialize_from`, the earlier run's words fill what is left of
    `model.max_tokens` after the train split's own: their embeddings were trained, so
    words the train split lacks are still understood at test time.
    """
    from apps.common import training
    from apps.sentiment import model

    texts = loaded.splits["train"].map(lambda example: example["text"])
    vocabulary = model.adapt_vocabulary(texts, config.model.max_tokens)
    if config.train.initialize_from:
        source_info = training.read_run_data_info(config.train.initialize_from)
        vocabulary = model.extend_vocabulary(
            vocabulary, source_info["vocabulary"], config.model.max_tokens
        )
    return {"class_names": list(loaded.info["class_names"]), "vocabulary": vocabulary}


def build_model(config, data_info):
    from apps.sentiment import model

    return model.build_model(config, data_info)


def serving_endpoints(keras_model, config, data_info):
    from apps.sentiment import model

    return model.serving_endpoints(keras_model, config, data_info)


def to_model_inputs(example):
    return example["text"], example["label"]


def example_length(text):
    """Words in a text: the bucketing length (close to its number of tokens)."""
    import tensorflow as tf

    return tf.size(tf.strings.split(text))


def search_space(hp):
    """The tuned hyperparameters, as dotted config overrides."""
    return {
        "model.cell": hp.Choice("model.cell", ["gru", "lstm"]),
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


def tokens_of(example):
    """The words the model reads in one example (its standardisation, split on spaces)."""
    import tensorflow as tf

    from apps.sentiment import model

    return tf.strings.split(model.standardize_text(example["text"]))


def parse_inputs(lines):
    """The serving inputs for `predict`; an empty text is an error naming its position."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise SystemExit(f"input {number}: empty text")
    return {"text": np.array(lines, dtype=object)}


def format_outputs(lines, outputs):
    """`label<TAB>probability<TAB>text` per input."""
    rows = []
    for text, label, probabilities in zip(
        lines, outputs["label"], outputs["probabilities"], strict=True
    ):
        label = label.decode() if isinstance(label, bytes) else str(label)
        shown = text if len(text) <= 80 else text[:77] + "..."
        rows.append(f"{label}\t{float(np.max(probabilities)):.4f}\t{shown}")
    return rows


def evaluate(call, batches, data_info, output_dir):
    from apps.common import evaluation

    def probabilities(text):
        return call({"text": np.asarray(text)})["probabilities"]

    return evaluation.evaluate_classifier(
        probabilities, batches, data_info["class_names"], output_dir, title="sentiment"
    )


def explain(outputs, lines, output_path):
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


def register_layers():
    """Registers the model's custom Keras layers (saved `.keras` runs hold them)."""
    from apps.sentiment import model  # noqa: F401


def transfer_embedding(layer, source_layer, data_info, source_data_info):
    """See `apps.sentiment.model.transfer_embedding`."""
    from apps.sentiment import model

    return model.transfer_embedding(layer, source_layer, data_info, source_data_info)


APP = App(
    name="sentiment",
    config_class=SentimentConfig,
    load_data=load_data,
    describe_data=describe_data,
    build_model=build_model,
    to_model_inputs=to_model_inputs,
    search_space=search_space,
    serving_endpoints=serving_endpoints,
    parse_inputs=parse_inputs,
    format_outputs=format_outputs,
    evaluate=evaluate,
    example_length=example_length,
    explain=explain,
    tokens_of=tokens_of,
    transfer_layer=transfer_embedding,
    register_layers=register_layers,
)
