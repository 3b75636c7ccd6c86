"""The tagger: raw tokens in, one tag per token out, features computed in the graph.

    tokens (batch, time) tf.string, padded with ""
    -> TokenFeatures: word ids (lower-cased lookup, OOV row), casing ids, character ids, mask
    -> word embedding (word dropout) + casing embedding + CharacterEncoder (BiLSTM or CNN)
    -> dropout -> bidirectional rnn_keras LSTM or GRU (stacked option) -> dropout
    -> the library's CRF (`rnn_keras.CRFModel`, Viterbi tags) or a softmax per token
       (`SoftmaxTagger`)

The mask (tokens that are not "") is computed from the tokens inside the model, so it holds in
a reloaded SavedModel. Both heads expose `potentials_and_mask(tokens)`; `tag_and_confidence`
turns potentials into tags and per-token confidences: for the CRF the Viterbi tags and the
marginal probability of each chosen tag, p(y_t = tag | sentence), by the forward-backward
algorithm (`crf_marginals`; the library computes only the log partition); for the softmax
head the arg-max tag and its softmax probability.
"""

import collections

import keras
import numpy as np
import tensorflow as tf
from keras import ops

import rnn_keras
from apps.common import export, training
from apps.common.errors import DataSourceError
from apps.common.metrics import entity_report
from apps.common.text.layers import PADDING_AND_UNKNOWN, TokenDropout, load_word_vectors
from apps.ner.layers import CASING, CharacterEncoder, TokenFeatures, normalize_words


def build_vocabularies(sentences, max_words, min_count):
    """Normalized words (most frequent first) and characters of `sentences` (token lists)."""
    words, chars = collections.Counter(), collections.Counter()
    for tokens in sentences:
        for token in tokens:
            words[token] += 1
            chars.update(token)
    normalized = collections.Counter()
    unique = list(words)
    if unique:
        lowered = normalize_words(tf.constant(unique)).numpy()
        for word, low in zip(unique, lowered, strict=True):
            normalized[low.decode()] += words[word]
    vocabulary = [w for w, c in normalized.most_common() if c >= min_count and w]
    room = max_words - len(PADDING_AND_UNKNOWN)
    return vocabulary[:room], [c for c, _ in chars.most_common()]


@keras.saving.register_keras_serializable(package="apps.ner")
class SoftmaxTagger(keras.Model):
    """A tagger with an independent softmax per token, trained by masked cross-entropy.

    Same interface as `rnn_keras.CRFModel`: the backbone maps inputs to `(features, mask)`.

    Args:
        backbone: Keras model, inputs -> `(features (batch, time, d), mask (batch, time))`.
        num_tags: number of tags.

    Call arguments:
        inputs: what the backbone takes. With training=True the call returns
            `{"potentials", "mask"}` for the loss; otherwise probabilities
            `(batch, time, num_tags)`.
    """

    def __init__(self, backbone, num_tags, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.num_tags = int(num_tags)
        self.classifier = keras.layers.Dense(self.num_tags, name="classifier")

    def potentials_and_mask(self, inputs, training=None):
        """Logits `(batch, time, num_tags)` and boolean mask `(batch, time)`."""
        features, mask = self.backbone(inputs, training=training)
        return self.classifier(features), ops.cast(mask, "bool")

    def call(self, inputs, training=None):
        logits, mask = self.potentials_and_mask(inputs, training=training)
        if training:
            return {"potentials": logits, "mask": mask}
        return ops.softmax(logits, axis=-1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if isinstance(y_pred, dict):
            logits, mask = y_pred["potentials"], y_pred["mask"]
        else:
            logits, mask = self.potentials_and_mask(x, training=False)
        labels = ops.where(mask, ops.cast(y, "int32"), 0)
        losses = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        weights = ops.cast(mask, losses.dtype)
        loss = ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1.0)
        if self.losses:
            loss = loss + ops.sum(ops.stack(self.losses))
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return self.get_metrics_result()

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_tags": self.num_tags,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def crf_marginals(potentials, mask, transitions, start_transitions, end_transitions):
    """Per-token tag marginals p(y_t = k | x) of a linear-chain CRF (forward-backward).

    Args:
        potentials: `(batch, time, num_tags)`; mask: `(batch, time)` bool, right-padded;
        transitions `(num_tags, num_tags)`, start and end transitions `(num_tags,)`.

    Returns:
        `(batch, time, num_tags)` probabilities summing to 1 over tags at real tokens, zeros
        at padding.
    """
    potentials = tf.convert_to_tensor(potentials)
    mask = tf.cast(mask, tf.bool)
    steps = tf.transpose(potentials, [1, 0, 2])
    step_mask = tf.transpose(mask)
    # Both scans run over every step (a scan over no elements cannot stack its outputs).
    first = tf.range(tf.shape(steps)[0]) == 0

    def forward(alpha, elements):
        emission, keep, is_first = elements
        candidate = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission
        candidate = tf.where(is_first, start_transitions + emission, candidate)
        return tf.where(keep[:, None] | is_first, candidate, alpha)

    initial = tf.zeros_like(steps[0])
    alphas = tf.scan(forward, (steps, step_mask, first), initializer=initial)
    beta_last = tf.broadcast_to(end_transitions, tf.shape(initial))
    # Step t's backward message reads step t + 1; past the last step nothing is real.
    next_steps = tf.concat([steps[1:], tf.zeros_like(steps[:1])], axis=0)
    next_mask = tf.concat([step_mask[1:], tf.zeros_like(step_mask[:1])], axis=0)

    def backward(beta, elements):
        emission, keep = elements  # of the next step
        candidate = tf.reduce_logsumexp(transitions[None] + (emission + beta)[:, None, :], axis=2)
        return tf.where(keep[:, None], candidate, beta_last)

    betas = tf.scan(backward, (next_steps, next_mask), initializer=beta_last, reverse=True)
    log_z = tf.reduce_logsumexp(alphas[-1] + end_transitions, axis=1)
    marginals = tf.exp(alphas + betas - log_z[None, :, None])
    marginals = tf.transpose(marginals, [1, 0, 2])
    return tf.where(mask[..., None], marginals, tf.zeros_like(marginals))


def tag_and_confidence(model, tokens):
    """Tag ids `(batch, time)` int32, confidence `(batch, time)` and mask of a tagger."""
    potentials, mask = model.potentials_and_mask(tokens, training=False)
    if isinstance(model, rnn_keras.CRFModel):
        parameters = model.crf._parameters()
        tags = model.crf.decode(potentials, mask)[0]
        probabilities = crf_marginals(potentials, mask, *parameters)
    else:
        probabilities = tf.nn.softmax(potentials, axis=-1)
        tags = tf.cast(tf.argmax(probabilities, axis=-1), tf.int32)
        tags = tf.where(mask, tags, 0)
    confidence = tf.gather(probabilities, tags, axis=2, batch_dims=2)
    return tags, tf.where(mask, confidence, 0.0), mask


def build_model(config, data_info):
    """The compiled tagger for `config` and the data's vocabulary, characters and tags."""
    m = config.model
    vocabulary = list(data_info["vocabulary"])
    characters = list(data_info["characters"])
    if not vocabulary or not characters:
        raise DataSourceError(
            f"the train split gives {len(vocabulary)} words and {len(characters)} characters; "
            "the model needs at least one of each (lower model.min_word_count?)"
        )
    tokens = keras.Input(shape=(None,), dtype="string", name="tokens")
    features = TokenFeatures(vocabulary, characters, m.max_word_chars, name="token_features")
    word_ids, case_ids, char_ids, mask = features(tokens)
    if m.word_dropout:
        word_ids = TokenDropout(m.word_dropout, name="word_dropout")(word_ids)
    parts = [
        keras.layers.Embedding(
            len(vocabulary) + len(PADDING_AND_UNKNOWN), m.word_embedding_dim, name="embedding"
        )(word_ids)
    ]
    if m.case_embedding_dim:
        parts.append(
            keras.layers.Embedding(len(CASING), m.case_embedding_dim, name="casing")(case_ids)
        )
    if m.char_encoder != "none":
        parts.append(
            CharacterEncoder(
                m.char_encoder,
                len(characters) + len(PADDING_AND_UNKNOWN),
                embedding_dim=m.char_embedding_dim,
                units=m.char_units,
                filters=m.char_filters,
                kernel_size=m.char_kernel_size,
                name="characters",
            )(char_ids)
        )
    x = keras.layers.Concatenate(name="token_vectors")(parts) if len(parts) > 1 else parts[0]
    x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
    for layer in rnn_keras.recurrent_layers(
        kind=m.cell,
        units=m.units,
        num_layers=m.num_layers,
        bidirectional=True,
        return_sequences=True,
        name="recurrent",
    ):
        x = layer(x, mask=mask)
    x = keras.layers.Dropout(m.dropout, name="dropout")(x)
    backbone = keras.Model(tokens, [x, mask], name="backbone")
    num_tags = len(data_info["tag_names"])
    if m.head == "crf":
        model = rnn_keras.CRFModel(backbone, num_tags, name="crf_tagger")
    else:
        model = SoftmaxTagger(backbone, num_tags, name="softmax_tagger")
    model(tf.constant([["a"]]))  # Builds the head's weights.
    if m.word_vectors:
        load_word_vectors(backbone.get_layer("embedding"), m.word_vectors, vocabulary)
    model.compile(optimizer=training.make_optimizer(config.train))
    return model


def serving_endpoints(model, config, data_info):
    """`serving_default`: tokens (batch, time) -> tags, confidence; `text`: (batch,) strings."""
    tag_names = tf.constant(list(data_info["tag_names"]))
    tokens_spec = tf.TensorSpec(shape=(None, None), dtype=tf.string, name="tokens")
    text_spec = tf.TensorSpec(shape=(None,), dtype=tf.string, name="text")

    def answer(tokens):
        # At least one step, so a batch of empty texts is a batch of padding.
        tokens = tf.concat([tokens, tf.fill([tf.shape(tokens)[0], 1], "")], axis=1)
        tokens = tokens[:, : tf.maximum(tf.shape(tokens)[1] - 1, 1)]
        tags, confidence, mask = tag_and_confidence(model, tokens)
        names = tf.where(mask, tf.gather(tag_names, tags), "")
        return {"tags": names, "confidence": confidence}, tokens

    def serve(tokens):
        return answer(export.check_input_shape(tokens, tokens_spec))[0]

    def serve_text(text):
        """Splits on whitespace; also returns the tokens (padded with "") the tags belong to."""
        text = export.check_input_shape(text, text_spec)
        outputs, tokens = answer(tf.strings.split(text).to_tensor(""))
        return {**outputs, "tokens": tokens}

    return {"serving_default": (serve, [tokens_spec]), "text": (serve_text, [text_spec])}


class EntityF1(keras.callbacks.Callback):
    """Writes conlleval entity precision, recall and F1 on validation into the epoch's logs.

    Args:
        batches: validation `(tokens, tag ids)` batches.
        tag_names: the tag of each id.
        prefix: log key prefix (`val_` gives `val_entity_f1`).
    """

    def __init__(self, batches, tag_names, prefix="val_"):
        super().__init__()
        self.batches = batches
        self.tag_names = np.array(list(tag_names), dtype=object)
        self.prefix = prefix
        self._predict = None

    def __deepcopy__(self, memo):
        # keras-tuner copies callbacks for every trial; a tf.data pipeline cannot be copied,
        # and need not be: the copy shares the validation batches.
        return EntityF1(self.batches, list(self.tag_names), self.prefix)

    def on_epoch_end(self, epoch, logs=None):
        if self._predict is None:
            spec = tf.TensorSpec((None, None), tf.string)
            self._predict = tf.function(
                lambda tokens: tag_and_confidence(self.model, tokens)[0], input_signature=[spec]
            )
        report = score_batches(self._predict, self.batches, self.tag_names)
        if logs is not None:
            logs[f"{self.prefix}entity_f1"] = report["f1"]
            logs[f"{self.prefix}entity_precision"] = report["precision"]
            logs[f"{self.prefix}entity_recall"] = report["recall"]


def score_batches(predict_ids, batches, tag_names):
    """Entity report of `predict_ids(tokens) -> tag ids` over `(tokens, tag ids)` batches."""
    truth, guesses = [], []
    tag_names = np.asarray(tag_names, dtype=object)
    for tokens, tags in batches:
        predicted = np.asarray(predict_ids(tokens))
        lengths = np.sum(np.asarray(tokens) != b"", axis=1)
        tags = np.asarray(tags)
        for row, length in enumerate(lengths):
            truth.append(list(tag_names[tags[row, :length]]))
            guesses.append(list(tag_names[predicted[row, :length]]))
    return entity_report(truth, guesses)
