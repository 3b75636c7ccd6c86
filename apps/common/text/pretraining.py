"""Language-model pretraining of an app's encoder on unlabelled text (Dai & Le 2015).

The `pretrain` command trains the app's own embedding and recurrent layers to predict
the next word (forward direction) and the previous word (backward direction, for a
bidirectional encoder, as ELMo does; Peters et al. 2018) on the text of one or more data
sources, then writes a finished run directory holding the app's model with those
weights. A classifier run starts from it with `train.initialize_from=DIR`: the embedding
rows of shared words and the encoder are copied, the classifier head starts fresh.

The output layer has its own word matrix, or with `pretrain.tie_weights=true` reuses the
embedding's (Press & Wolf 2017: one matrix both reads and predicts words; it gave a worse
held-out perplexity and a worse SST-2 transfer here), and is trained with a sampled
softmax (Jean et al. 2015), so a step costs
`pretrain.num_sampled` word scores instead of the whole vocabulary's; the held-out
windows are scored with the full softmax, so `val_loss` is the true cross-entropy in
nats per word (perplexity = exp(val_loss)).

Example:

    python -m apps.sentiment pretrain --data ../shared/data/imdb/train.csv \
        --data ../shared/data/sst2 --run-dir runs/lm pretrain.epochs=2
    python -m apps.sentiment train --data ../shared/data/sst2 train.initialize_from=runs/lm
"""

import collections
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from apps.common import plots, training
from apps.common.errors import ConfigError, RunError

PADDING_AND_UNKNOWN = 2
UNKNOWN_ID = 1


class SampledSoftmaxLoss(keras.layers.Layer):
    """Per-word cross-entropy of `(batch, time, features)` states against target ids.

    The word scores are `states @ words^T + bias`, where `words` is this layer's own
    `(vocabulary, features)` matrix or, tied, the encoder's embedding matrix. In training
    only `num_sampled` candidate words are scored (sampled softmax, log-uniform sampler);
    otherwise all of them.

    Args:
        embedding: the `keras.layers.Embedding` of the words (its size; its matrix when tied).
        num_sampled: candidate words per training batch.
        tie_weights: score with the embedding matrix instead of an own one.

    Call arguments:
        states: `(batch, time, embedding_dim)`.
        targets: `(batch, time)` integer word ids.

    Returns:
        `(batch, time)` cross-entropy in nats.

    Not serializable (it holds another layer); only the app's model is saved.
    """

    def __init__(self, embedding, num_sampled=1024, tie_weights=False, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding
        self.num_sampled = int(num_sampled)
        self.tie_weights = bool(tie_weights)
        # The windows hold no padding, so the embedding's mask is all true: accepted, dropped.
        self.supports_masking = True

    def build(self, states_shape, *args):
        if not self.tie_weights:
            self.words = self.add_weight(
                name="words",
                shape=(self.embedding.input_dim, states_shape[-1]),
                initializer="glorot_uniform",
            )
        self.bias = self.add_weight(
            name="bias", shape=(self.embedding.input_dim,), initializer="zeros"
        )

    def call(self, states, targets, training=False):
        words = self.embedding.embeddings if self.tie_weights else self.words
        flat_states = tf.reshape(states, (-1, ops.shape(states)[-1]))
        flat_targets = tf.reshape(tf.cast(targets, "int64"), (-1, 1))
        vocabulary_size = self.embedding.input_dim
        if training and self.num_sampled < vocabulary_size:
            losses = tf.nn.sampled_softmax_loss(
                words, self.bias, flat_targets, flat_states, self.num_sampled, vocabulary_size
            )
        else:
            logits = tf.matmul(flat_states, words, transpose_b=True) + self.bias
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(flat_targets[:, 0], logits)
        return tf.reshape(losses, tf.shape(targets))

    def compute_output_shape(self, states_shape, targets_shape):
        return targets_shape

    def compute_mask(self, states, targets, mask=None):
        return None


def _mean_of_predictions(unused_targets, losses):
    """The model's outputs already are per-word losses."""
    return ops.mean(losses)


def encoder_layers(app, model):
    """The embedding layer and the recurrent layers of an app's model, as the app declares.

    `app.layer_roles(model)` names them (`{"embedding": layer, "encoder": [layers]}`).
    """
    roles = app.layer_roles(model)
    embedding, recurrent = roles.get("embedding"), list(roles.get("encoder") or [])
    if embedding is None or not recurrent:
        raise ConfigError(f"pretrain: the {app.name} model declares no embedding and encoder")
    bidirectional = [isinstance(layer, keras.layers.Bidirectional) for layer in recurrent]
    if any(bidirectional) and len(recurrent) > 1:
        # The second layer reads both directions of the first, so each direction
        # would see the very word it is asked to predict.
        raise ConfigError(
            "pretrain: a bidirectional encoder can be pretrained with model.num_layers=1 only"
            f" (it has {len(recurrent)} layers)"
        )
    if any(bidirectional) and recurrent[0].merge_mode != "concat":
        raise ConfigError("pretrain: a bidirectional encoder must concatenate")
    return embedding, recurrent, any(bidirectional)


def build_language_model(app, model, pretrain_config):
    """A model of `(batch, window + 2)` word ids -> per-word losses, sharing `model`'s layers.

    Position `t` of the window's middle reads words up to `t` (forward direction)
    and predicts word `t + 1`; the backward direction reads words from `t` on and
    predicts word `t - 1`. Output: `(batch, window, directions)` losses.
    """
    embedding, recurrent, bidirectional = encoder_layers(app, model)
    window = pretrain_config.window
    words = keras.Input((window + 2,), dtype="int32", name="words")
    states = embedding(words[:, 1 : window + 1])
    if pretrain_config.dropout:
        states = keras.layers.SpatialDropout1D(pretrain_config.dropout)(states)
    for layer in recurrent:
        states = layer(states)
    if pretrain_config.dropout:
        states = keras.layers.Dropout(pretrain_config.dropout)(states)
    directions = [(states, words[:, 2:])]
    if bidirectional:
        units = states.shape[-1] // 2
        directions = [(states[..., :units], words[:, 2:]), (states[..., units:], words[:, :-2])]
    # One projection into the word space for both directions, then the word scores.
    projection = keras.layers.Dense(embedding.output_dim, name="lm_projection")
    scores = SampledSoftmaxLoss(
        embedding, pretrain_config.num_sampled, pretrain_config.tie_weights, name="lm_softmax"
    )
    losses = [scores(projection(direction), targets) for direction, targets in directions]
    language_model = keras.Model(words, ops.stack(losses, axis=-1), name="language_model")
    language_model.compile(
        optimizer=keras.optimizers.Adam(
            pretrain_config.learning_rate, clipnorm=pretrain_config.clipnorm
        ),
        loss=_mean_of_predictions,
    )
    return language_model


def corpus_vocabulary(documents, size):
    """The `size` most frequent words of `documents` (lists of words), most frequent first."""
    frequency = collections.Counter(word for words in documents for word in words)
    return [word for word, _ in frequency.most_common(size)]


def word_windows(documents, vocabulary, window):
    """`(count, window + 2)` int32 windows of the documents' word ids, end to end.

    Ids follow the model's vectorizer: 0 padding (never used here), 1 unknown, then the
    vocabulary. Consecutive windows overlap by two words, so that every word is a
    target exactly once per direction.
    """
    index = {word: position + PADDING_AND_UNKNOWN for position, word in enumerate(vocabulary)}
    stream = np.fromiter(
        (index.get(word, UNKNOWN_ID) for words in documents for word in words), dtype=np.int32
    )
    count = (len(stream) - 2) // window
    if count < 2:
        raise ConfigError(
            f"pretrain: the text holds {len(stream):,} words, too few for two windows of"
            f" {window} (set pretrain.window lower)"
        )
    starts = np.arange(count) * window
    return stream[starts[:, None] + np.arange(window + 2)]


def pretrain(app, config, sources, run_dir):
    """Pretrains `app`'s encoder on the train text of `sources`; writes a finished run."""
    from apps.common.text import word_vectors

    started = time.time()
    resuming = training.start_run(run_dir, config)
    settings = config.pretrain
    documents, info = word_vectors.read_corpus(app, config, sources, "train")
    data_info = training.run_data_info(
        run_dir,
        resuming,
        lambda: app.vocabulary_data_info(
            info, corpus_vocabulary(documents, config.model.max_tokens - 2)
        ),
    )
    windows = word_windows(documents, data_info["vocabulary"], settings.window)
    # A fixed held-out set of windows, drawn with the run's seed.
    order = np.random.default_rng(config.seed).permutation(len(windows))
    held_out = min(settings.validation_windows, len(windows) // 2)
    validation, train = windows[order[:held_out]], windows[order[held_out:]]
    unknown = float(np.mean(windows == UNKNOWN_ID))
    print(
        f"pretraining text: {windows.size - 2 * len(windows):,} words in {len(train):,} train"
        f" and {len(validation):,} held-out windows of {settings.window}; vocabulary"
        f" {len(data_info['vocabulary']):,} words ({unknown:.1%} of words unknown)"
    )

    keras.utils.set_random_seed(config.seed)
    model = app.build_model(config, data_info)
    language_model = build_language_model(app, model, settings)
    train_batches = (
        tf.data.Dataset.from_tensor_slices((train, np.zeros(len(train), np.float32)))
        .shuffle(len(train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(settings.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation_batches = tf.data.Dataset.from_tensor_slices(
        (validation, np.zeros(len(validation), np.float32))
    ).batch(settings.batch_size)
    language_model.fit(
        train_batches,
        validation_data=validation_batches,
        epochs=settings.epochs,
        steps_per_epoch=settings.steps_per_epoch,
        shuffle=False,  # the windows are shuffled above; fit cannot shuffle a tf.data pipeline
        callbacks=[
            keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")),
            keras.callbacks.CSVLogger(os.path.join(run_dir, training.HISTORY), append=resuming),
            keras.callbacks.TerminateOnNaN(),
        ],
    )
    history = training.read_history(run_dir)
    plots.plot_training_curves(history, os.path.join(run_dir, "training_curves.png"))
    validation_loss = float(language_model.evaluate(validation_batches, verbose=0))
    if not math.isfinite(validation_loss):
        raise RunError(f"pretraining diverged (held-out loss {validation_loss})")
    metrics = {
        "language_model": {
            "validation_loss": validation_loss,
            "validation_perplexity": math.exp(validation_loss),
            "train_windows": len(train),
            "validation_windows": len(validation),
            "unknown_share": unknown,
        },
        "epochs_completed": len(history),
        "wall_time_seconds": round(time.time() - started, 1),
    }
    training.write_finished_run(run_dir, model, config, data_info, metrics)
    print(
        f"held-out cross-entropy {validation_loss:.3f} nats per word (perplexity"
        f" {math.exp(validation_loss):.0f}); wrote {run_dir}; start a run from it with"
        f" train.initialize_from={run_dir}"
    )
    return metrics
