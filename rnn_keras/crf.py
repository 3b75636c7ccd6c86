"""Linear-chain conditional random field (Lafferty et al. 2001) in `keras.ops`.

A tag sequence y_0..y_{n-1} over potentials P (batch, time, num_tags) scores
start[y_0] + sum_t P[t, y_t] + sum_{t>0} A[y_{t-1}, y_t] + end[y_{n-1}].
Masks are right-padded booleans (batch, time); a row of length 0 has
log-likelihood 0 and decodes to zeros.
"""

import keras
from keras import ops


def _prepare(potentials, mask):
    potentials = ops.convert_to_tensor(potentials)
    if mask is None:
        mask = ops.ones(ops.shape(potentials)[:2], "bool")
    return potentials, ops.cast(mask, "bool")


def crf_sequence_score(potentials, tags, mask, transitions, start_transitions, end_transitions):
    """Unnormalised score of `tags` `(batch, time)`; returns `(batch,)`."""
    potentials, mask = _prepare(potentials, mask)
    # Labels at padded positions may be anything (e.g. -1); they must not index.
    tags = ops.where(mask, ops.cast(tags, "int32"), 0)
    weights = ops.cast(mask, potentials.dtype)
    emitted = ops.take_along_axis(potentials, tags[..., None], axis=2)[..., 0]
    score = ops.sum(emitted * weights, axis=1)
    pairs = ops.take(
        ops.reshape(transitions, (-1,)), tags[:, :-1] * ops.shape(transitions)[0] + tags[:, 1:]
    )
    score = score + ops.sum(pairs * weights[:, 1:], axis=1)
    lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
    last_tags = ops.take_along_axis(tags, ops.maximum(lengths - 1, 0)[:, None], axis=1)[:, 0]
    boundary = ops.take(start_transitions, tags[:, 0]) + ops.take(end_transitions, last_tags)
    return ops.where(lengths > 0, score + boundary, 0.0)


def crf_log_norm(potentials, mask, transitions, start_transitions, end_transitions):
    """Log partition function by the forward algorithm in log space; returns `(batch,)`."""
    potentials, mask = _prepare(potentials, mask)

    # keras.ops.fori_loop rather than scan: scan cannot trace an unknown length on TensorFlow.
    def step(t, alpha):
        emission = ops.take(potentials, t, axis=1)
        candidate = ops.logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission
        return ops.where(ops.take(mask, t, axis=1)[:, None], candidate, alpha)

    alpha = start_transitions + potentials[:, 0]
    alpha = ops.fori_loop(1, ops.shape(potentials)[1], step, alpha)
    lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
    return ops.where(lengths > 0, ops.logsumexp(alpha + end_transitions, axis=1), 0.0)


def crf_log_likelihood(potentials, tags, mask, transitions, start_transitions, end_transitions):
    """log p(tags | potentials) `(batch,)`: sequence score minus log partition."""
    arguments = (transitions, start_transitions, end_transitions)
    score = crf_sequence_score(potentials, tags, mask, *arguments)
    return score - crf_log_norm(potentials, mask, *arguments)


def crf_decode(potentials, mask, transitions, start_transitions, end_transitions):
    """Viterbi decoding; returns (tags `(batch, time)` int32, zero at padding; best scores `(batch,)`)."""
    potentials, mask = _prepare(potentials, mask)
    num_tags, time = ops.shape(transitions)[0], ops.shape(potentials)[1]
    identity = ops.arange(num_tags, dtype="int32")[None]
    positions = ops.arange(time)[None]

    def forward(t, carry):
        alpha, pointers = carry
        keep = ops.take(mask, t, axis=1)[:, None]
        scores = alpha[:, :, None] + transitions[None]
        alpha = ops.where(keep, ops.max(scores, axis=1) + ops.take(potentials, t, axis=1), alpha)
        # Padded steps point every tag to itself, so backtracking passes them unchanged.
        best = ops.where(keep, ops.cast(ops.argmax(scores, axis=1), "int32"), identity)
        pointers = ops.where((positions == t)[..., None], best[:, None], pointers)
        return alpha, pointers

    alpha = start_transitions + potentials[:, 0]
    pointers = ops.zeros(ops.shape(potentials), "int32")
    alpha, pointers = ops.fori_loop(1, time, forward, (alpha, pointers))
    final = alpha + end_transitions
    last = ops.cast(ops.argmax(final, axis=1), "int32")

    def backward(step, carry):
        tag, tags = carry
        t = time - 1 - step
        tag = ops.take_along_axis(ops.take(pointers, t, axis=1), tag[:, None], axis=1)[:, 0]
        return tag, ops.where(positions == t - 1, tag[:, None], tags)

    tags = ops.where(positions == time - 1, last[:, None], ops.zeros_like(positions))
    _, tags = ops.fori_loop(0, time - 1, backward, (last, tags))
    lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
    tags = ops.where(mask, tags, 0)
    return tags, ops.where(lengths > 0, ops.max(final, axis=1), 0.0)


@keras.saving.register_keras_serializable(package="rnn_keras")
class CRF(keras.layers.Layer):
    """Linear-chain CRF layer (Lafferty et al. 2001) with start and end transitions.

    Projects features to per-tag potentials (unless `use_kernel=False`, when the
    inputs already are potentials) and returns the Viterbi tags. Training needs
    the log-likelihood, which `CRFModel` computes; the layer's methods
    `potentials`, `log_likelihood` and `decode` serve custom models.

    Args:
        num_tags: number of tags.
        use_kernel: project the inputs with a dense kernel and bias.
        use_boundary: learn start and end transition scores.
        kernel_initializer, transition_initializer: initializers.
        kernel_regularizer, transition_regularizer: optional regularizers.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: features `(batch, time, features)` (potentials `(batch, time, num_tags)`
            with `use_kernel=False`).
        mask: optional boolean `(batch, time)`, right-padded; taken from the Keras mask.

    Returns: tags `(batch, time)` int32, zero at padded positions.

    Example:
        ```python
        tags = rnn_keras.CRF(num_tags=9)(encoder_outputs, mask=token_mask)
        ```
    """

    def __init__(
        self,
        num_tags,
        use_kernel=True,
        use_boundary=True,
        kernel_initializer="glorot_uniform",
        transition_initializer="glorot_uniform",
        kernel_regularizer=None,
        transition_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_tags) < 1:
            raise ValueError(f"`num_tags` must be a positive integer, got num_tags={num_tags!r}.")
        self.num_tags = int(num_tags)
        self.use_kernel = bool(use_kernel)
        self.use_boundary = bool(use_boundary)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.transition_initializer = keras.initializers.get(transition_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.transition_regularizer = keras.regularizers.get(transition_regularizer)
        self.supports_masking = True

    def build(self, input_shape):
        if self.use_kernel:
            self.kernel = self.add_weight(
                name="kernel",
                shape=(input_shape[-1], self.num_tags),
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
            )
            self.bias = self.add_weight(name="bias", shape=(self.num_tags,), initializer="zeros")
        elif input_shape[-1] != self.num_tags:
            raise ValueError(
                f"CRF(use_kernel=False) expects potentials with {self.num_tags} features "
                f"(num_tags), got input shape {tuple(input_shape)}."
            )
        self.transitions = self.add_weight(
            name="transitions",
            shape=(self.num_tags, self.num_tags),
            initializer=self.transition_initializer,
            regularizer=self.transition_regularizer,
        )
        if self.use_boundary:
            self.start_transitions = self.add_weight(
                name="start_transitions", shape=(self.num_tags,), initializer="zeros"
            )
            self.end_transitions = self.add_weight(
                name="end_transitions", shape=(self.num_tags,), initializer="zeros"
            )
        self.built = True

    def _parameters(self):
        if self.use_boundary:
            return self.transitions, self.start_transitions, self.end_transitions
        zeros = ops.zeros((self.num_tags,), self.transitions.dtype)
        return self.transitions, zeros, zeros

    def potentials(self, inputs):
        """Per-tag potentials `(batch, time, num_tags)` of features `(batch, time, features)`."""
        if not self.use_kernel:
            return ops.convert_to_tensor(inputs)
        return ops.matmul(inputs, self.kernel) + self.bias

    def log_likelihood(self, potentials, tags, mask=None):
        """log p(tags | potentials) `(batch,)`."""
        return crf_log_likelihood(potentials, tags, mask, *self._parameters())

    def decode(self, potentials, mask=None):
        """Viterbi tags `(batch, time)` and their scores `(batch,)`."""
        return crf_decode(potentials, mask, *self._parameters())

    def call(self, inputs, mask=None, training=None):
        return self.decode(self.potentials(inputs), mask)[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])

    def compute_output_spec(self, inputs, mask=None, training=None):
        return keras.KerasTensor(tuple(inputs.shape[:2]), dtype="int32")

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = {
            "num_tags": self.num_tags,
            "use_kernel": self.use_kernel,
            "use_boundary": self.use_boundary,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "transition_initializer": keras.initializers.serialize(self.transition_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "transition_regularizer": keras.regularizers.serialize(self.transition_regularizer),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="rnn_keras")
class CRFModel(keras.Model):
    """A tagger trained by CRF negative log-likelihood with plain `model.fit`
    (Lafferty et al. 2001; Lample et al. 2016 for BiLSTM-CRF).

    Wraps a backbone that maps the inputs to per-token features `(batch, time, features)`
    and adds a `CRF` layer. `predict`, `evaluate` and exports return the Viterbi tags
    `(batch, time)`; `fit` minimises the mean negative log-likelihood per sequence.
    Compiled metrics compare the Viterbi tags with the labels, weighted by the mask
    ("accuracy" means token accuracy, `keras.metrics.Accuracy`).

    The token mask comes from the backbone: either it returns `(features, mask)` with
    a boolean mask `(batch, time)` (preferred: exports keep it), or its output carries
    a Keras mask (e.g. from `Embedding(mask_zero=True)`), or every position counts.

    Args:
        backbone: a Keras model or layer; see above.
        num_tags: number of tags.
        **kwargs: `CRF` arguments (`use_boundary`, initializers, regularizers) and base
            `keras.Model` arguments (`name`).

    Call arguments:
        inputs: whatever the backbone takes.
        training: Python bool. With training=True the call returns
            `{"potentials": (batch, time, num_tags), "mask": (batch, time)}` for the loss.

    Example:
        ```python
        tokens = keras.Input((None,), dtype="int32")
        mask = keras.ops.not_equal(tokens, 0)
        x = keras.layers.Embedding(vocab_size, 64)(tokens)
        x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x, mask=mask)
        model = rnn_keras.CRFModel(keras.Model(tokens, [x, mask]), num_tags=9)
        model.compile(optimizer="adam", metrics=["accuracy"])
        model.fit(token_ids, tag_ids, epochs=5)     # tag_ids (batch, time), any value at pads
        tags = model.predict(token_ids)             # (batch, time), 0 at padding
        model.export("saved_models/ner/1")          # serving_default returns the tags
        ```
    """

    _CRF_ARGUMENTS = (
        "use_boundary",
        "kernel_initializer",
        "transition_initializer",
        "kernel_regularizer",
        "transition_regularizer",
    )

    def __init__(self, backbone, num_tags, **kwargs):
        crf_kwargs = {key: kwargs.pop(key) for key in self._CRF_ARGUMENTS if key in kwargs}
        super().__init__(**kwargs)
        self.backbone = backbone
        self.num_tags = int(num_tags)
        self.crf = CRF(self.num_tags, name="crf", **crf_kwargs)
        self.crf_kwargs = crf_kwargs

    def potentials_and_mask(self, inputs, training=None):
        """Potentials `(batch, time, num_tags)` and boolean mask `(batch, time)`."""
        outputs = self.backbone(inputs, training=training)
        if isinstance(outputs, (list, tuple)):
            if len(outputs) != 2:
                raise ValueError(
                    f"The CRFModel backbone must return features or (features, mask); "
                    f"it returned {len(outputs)} tensors."
                )
            features, mask = outputs
        else:
            features, mask = outputs, getattr(outputs, "_keras_mask", None)
        if len(features.shape) != 3:
            raise ValueError(
                f"The CRFModel backbone must return features (batch, time, features); "
                f"got shape {tuple(features.shape)}."
            )
        if mask is None:
            mask = ops.ones(ops.shape(features)[:2], "bool")
        if not self.crf.built:
            self.crf.build(features.shape)
        return self.crf.potentials(features), ops.cast(mask, "bool")

    def call(self, inputs, training=None):
        potentials, mask = self.potentials_and_mask(inputs, training=training)
        if training:
            return {"potentials": potentials, "mask": mask}
        return self.crf.decode(potentials, mask)[0]

    def compile(self, *args, metrics=None, weighted_metrics=None, **kwargs):
        # Keras resolves "accuracy" from the prediction's shape and would pick
        # CategoricalAccuracy (an argmax over time) for tags (batch, time).
        def resolve(metric):
            if metric in ("accuracy", "acc"):
                return keras.metrics.Accuracy(name="accuracy")
            return metric

        # Only weighted metrics see the sample weights that carry the token mask.
        weighted = [resolve(metric) for metric in [*(metrics or []), *(weighted_metrics or [])]]
        super().compile(*args, weighted_metrics=weighted or None, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if isinstance(y_pred, dict):
            potentials, mask = y_pred["potentials"], y_pred["mask"]
        else:
            # evaluate() calls with training=False and gets tags: recompute potentials.
            potentials, mask = self.potentials_and_mask(x, training=False)
        negative_log_likelihood = -self.crf.log_likelihood(potentials, y, mask)
        if sample_weight is not None:
            weights = ops.cast(ops.reshape(sample_weight, (-1,)), potentials.dtype)
            loss = ops.sum(negative_log_likelihood * weights) / ops.maximum(ops.sum(weights), 1e-7)
        else:
            loss = ops.mean(negative_log_likelihood)
        if self.losses:
            loss = loss + ops.sum(ops.stack(self.losses))
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):
            mask = y_pred["mask"]
            tags = self.crf.decode(ops.stop_gradient(y_pred["potentials"]), mask)[0]
        else:
            tags = y_pred
            mask = self.potentials_and_mask(x, training=False)[1]
        weights = ops.cast(mask, "float32")
        if sample_weight is not None:
            weights = weights * ops.cast(ops.reshape(sample_weight, (-1, 1)), "float32")
        return super().compute_metrics(x, y, tags, sample_weight=weights)

    def compile_from_config(self, config):
        # Keras skips models whose compile() is overridden when it loads a saved model,
        # which would leave a loaded CRFModel uncompiled (no loss tracker for evaluate).
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        crf_config = self.crf.get_config()
        config = {key: crf_config[key] for key in self._CRF_ARGUMENTS}
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        config["num_tags"] = self.num_tags
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
