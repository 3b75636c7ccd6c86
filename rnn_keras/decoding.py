"""Attention decoder (Bahdanau et al. 2014; Luong et al. 2015) and its search functions.

The decoder runs its own loop with `keras.ops.scan` and receives the encoder memory
as a call argument: Keras 3's `RNN` has no `constants=`, and keeping the memory on
the layer (as TensorFlow Addons' `AttentionWrapper` did) breaks graph tracing and
export. The search functions (`greedy_search`, `sampling_search`, `beam_search`)
are plain functions of `keras.ops` with a fixed number of steps, so they trace in a
`tf.function` and export to a SavedModel.
"""

import keras
from keras import ops

STYLES = ("bahdanau", "luong")
_NEG_INF = -1.0e9


def _scan_collect(step, carry, outputs, xs=None, length=None):
    """Runs `step(carry, previous_outputs, x) -> (carry, outputs)`; stacks outputs on axis 0.

    TensorFlow's `keras.ops.scan` requires the per-step outputs to share the
    structure of the carry, so the outputs ride along in the carry (which also
    lets a step see the previous step's outputs).
    """

    def body(packed, x):
        new_carry, new_outputs = step(packed[0], packed[1], x)
        return (new_carry, new_outputs), (new_carry, new_outputs)

    (final_carry, _), (_, stacked) = ops.scan(body, (carry, outputs), xs, length=length)
    return final_carry, stacked


def _time_loop(step, carry, outputs, time):
    """Runs `step(t, carry, previous_outputs) -> (carry, outputs)` for t < `time`.

    Returns the final carry and the outputs stacked on axis 1, `(batch, time, ...)`.
    `time` may be unknown while tracing: the loop scans over the positions
    0..time-1, a single sequence, which `keras.ops.scan` traces on TensorFlow
    (several sequences of unknown length it cannot).
    """
    final_carry, stacked = _scan_collect(
        lambda carry, previous, t: step(t, carry, previous),
        carry,
        tuple(outputs),
        xs=ops.arange(time),
    )
    return final_carry, tuple(ops.moveaxis(output, 0, 1) for output in stacked)


def _as_list(states):
    return list(states) if isinstance(states, (list, tuple)) else [states]


@keras.saving.register_keras_serializable(package="rnn_keras")
class AttentionDecoder(keras.layers.Layer):
    """Recurrent decoder that attends over encoder outputs at every step
    (Bahdanau et al. 2014; Luong et al. 2015).

    Styles:
        - "bahdanau": the attention query is the previous state h_{t-1} (the cell's
          first state tensor); the context is fed into the cell with the token
          embedding; logits = W_o [o_t; c_t].
        - "luong": the cell runs first; the query is its output h_t; the
          attentional state h~_t = tanh(W_c [c_t; h_t]) gives the logits, and with
          `input_feeding` h~_{t-1} is concatenated to the next input.
    With `attention=None` it is a plain encoder-decoder (no context).

    Args:
        cell: any Keras-contract cell (`rnn_keras.LSTMCell`, `keras.layers.GRUCell`, ...);
            called as `cell(inputs, states, training=...)`. Use cells without dropout.
        vocab_size: size of the target vocabulary (embedding rows and logits).
        embedding_dim: size of the target token embedding.
        attention: a `BaseAttention` layer (e.g. `rnn_keras.BahdanauAttention(64)`) or None.
        style: "bahdanau" or "luong".
        attention_units: size of h~ for the Luong style (default: the cell output size).
        input_feeding: Luong input feeding (ignored for the Bahdanau style).
        sampling_probability: if not None, enables scheduled sampling (Bengio et al.
            2015): a non-trainable variable of that initial value holding the
            probability of feeding the model's own sampled token instead of the
            ground truth while training. Change it from a callback with
            `decoder.sampling_probability.assign(p)`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: target input tokens `(batch, time)` (the targets shifted right,
            starting with the start token); teacher forcing.
        memory: encoder outputs `(batch, Tv, memory_dim)`.
        memory_mask: optional boolean `(batch, Tv)`, False at padding.
        initial_state: optional list of cell state tensors `(batch, size)`.
        training: Python bool.
        return_alignments: also return the attention weights.

    Returns:
        logits `(batch, time, vocab_size)`, and with `return_alignments` also the
        weights `(batch, time, Tv)`.

    Example:
        ```python
        decoder = rnn_keras.AttentionDecoder(
            keras.layers.GRUCell(128), vocab_size=1000, embedding_dim=64,
            attention=rnn_keras.LuongAttention("general"), style="luong")
        logits = decoder(target_in, encoder_outputs, memory_mask=source_mask)
        result = rnn_keras.beam_search(decoder, encoder_outputs, start_token=1,
                                       end_token=2, max_length=40, beam_width=5,
                                       length_penalty=0.6, memory_mask=source_mask)
        ```
    """

    def __init__(
        self,
        cell,
        vocab_size,
        embedding_dim,
        attention=None,
        style="bahdanau",
        attention_units=None,
        input_feeding=True,
        sampling_probability=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if style not in STYLES:
            raise ValueError(f"`style` must be one of {STYLES}, got style={style!r}.")
        if sampling_probability is not None and not 0.0 <= sampling_probability <= 1.0:
            raise ValueError(
                f"`sampling_probability` must be in [0, 1], got {sampling_probability}."
            )
        self.cell = cell
        self.vocab_size = int(vocab_size)
        self.embedding_dim = int(embedding_dim)
        self.attention = attention
        self.style = style
        self.input_feeding = bool(input_feeding) and style == "luong" and attention is not None
        self.initial_sampling_probability = sampling_probability
        self.embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim, name="embedding"
        )
        self.output_size = int(_as_list(cell.output_size)[0])
        self.attention_units = int(attention_units or self.output_size)
        self.attention_projection = None
        if attention is not None and style == "luong":
            self.attention_projection = keras.layers.Dense(
                self.attention_units, activation="tanh", use_bias=False, name="attention_projection"
            )
        self.output_projection = keras.layers.Dense(self.vocab_size, name="output_projection")
        self.sampling_probability = None
        if sampling_probability is not None:
            self.sampling_probability = self.add_weight(
                name="sampling_probability",
                shape=(),
                initializer=keras.initializers.Constant(sampling_probability),
                trainable=False,
            )

    @property
    def state_sizes(self):
        return [int(size) for size in _as_list(self.cell.state_size)]

    def build(self, inputs_shape, memory_shape):
        memory_dim = memory_shape[-1]

        # Sublayers restored from a config may already be built.
        def build_once(layer, *shapes, **named_shapes):
            if not layer.built:
                layer.build(*shapes, **named_shapes)

        build_once(self.embedding, inputs_shape)
        cell_input = self.embedding_dim
        if self.attention is not None and self.style == "bahdanau":
            cell_input += memory_dim
        if self.input_feeding:
            cell_input += self.attention_units
        build_once(self.cell, (None, cell_input))
        features = self.output_size
        if self.attention is not None:
            query_dim = self.state_sizes[0] if self.style == "bahdanau" else self.output_size
            build_once(self.attention, (None, query_dim), key_shape=tuple(memory_shape))
            if self.style == "bahdanau":
                features += memory_dim
            else:
                build_once(self.attention_projection, (None, self.output_size + memory_dim))
                features = self.attention_units
        build_once(self.output_projection, (None, features))
        self._memory_shape = tuple(memory_shape)
        self.built = True

    def get_build_config(self):
        return {"memory_shape": getattr(self, "_memory_shape", None)}

    def build_from_config(self, config):
        if config.get("memory_shape"):
            self.build((None, None), config["memory_shape"])

    def initial_carry(self, batch_size, initial_state=None, dtype="float32"):
        """The loop state: cell states plus the fed-back attentional vector."""
        if initial_state is None:
            states = [ops.zeros((batch_size, size), dtype) for size in self.state_sizes]
        else:
            states = _as_list(initial_state)
            if len(states) != len(self.state_sizes):
                raise ValueError(
                    f"`initial_state` has {len(states)} tensors; the cell expects "
                    f"{len(self.state_sizes)} of sizes {self.state_sizes}."
                )
        feed_size = self.attention_units if self.input_feeding else 1
        return {"states": states, "feed": ops.zeros((batch_size, feed_size), dtype)}

    def prepare_memory(self, memory):
        """Query-independent part of the attention score, computed once per sequence."""
        return None if self.attention is None else self.attention.prepare_keys(memory)

    def step(self, tokens, carry, memory, keys, memory_mask=None, training=None):
        """One decoding step from tokens `(batch,)`; returns (logits, carry, weights)."""
        return self.step_embedded(
            self.embedding(tokens), carry, memory, keys, memory_mask, training
        )

    def step_embedded(self, embedded, carry, memory, keys, memory_mask=None, training=None):
        states = carry["states"]
        feed = carry["feed"]
        if self.attention is None:
            output, new_states = self.cell(embedded, states, training=training)
            weights = ops.zeros((ops.shape(embedded)[0], ops.shape(memory)[1]), embedded.dtype)
            features = output
        elif self.style == "bahdanau":
            context, weights = self.attention(
                states[0], memory, value_mask=memory_mask, prepared_keys=keys
            )
            cell_inputs = ops.concatenate([embedded, context], axis=-1)
            output, new_states = self.cell(cell_inputs, states, training=training)
            features = ops.concatenate([output, context], axis=-1)
        else:
            cell_inputs = embedded
            if self.input_feeding:
                cell_inputs = ops.concatenate([embedded, feed], axis=-1)
            output, new_states = self.cell(cell_inputs, states, training=training)
            context, weights = self.attention(
                output, memory, value_mask=memory_mask, prepared_keys=keys
            )
            features = self.attention_projection(ops.concatenate([context, output], axis=-1))
            if self.input_feeding:
                feed = features
        logits = self.output_projection(features)
        return logits, {"states": _as_list(new_states), "feed": feed}, weights

    def call(
        self,
        inputs,
        memory,
        memory_mask=None,
        initial_state=None,
        training=None,
        return_alignments=False,
    ):
        inputs = ops.cast(inputs, "int32")
        batch_size, time = ops.shape(inputs)[0], ops.shape(inputs)[1]
        carry = self.initial_carry(batch_size, initial_state, memory.dtype)
        keys = self.prepare_memory(memory)
        outputs = (
            ops.zeros((batch_size, self.vocab_size), memory.dtype),
            ops.zeros((batch_size, ops.shape(memory)[1]), memory.dtype),
        )
        if not (training and self.sampling_probability is not None):
            embedded = self.embedding(inputs)

            def step(t, carry, previous_outputs):
                logits, carry, weights = self.step_embedded(
                    ops.take(embedded, t, axis=1), carry, memory, keys, memory_mask, training
                )
                return carry, (logits, weights)

        else:
            # Bengio et al. 2015: with probability p feed a token sampled from the
            # previous step's logits. Noise is drawn outside the loop (Gumbel-max).
            coins = keras.random.uniform((batch_size, time))
            first_step = ops.expand_dims(ops.arange(time) == 0, 0)
            use_sample = ops.logical_and(coins < self.sampling_probability, ~first_step)
            uniform = keras.random.uniform((batch_size, time, self.vocab_size), 1e-7, 1.0)
            gumbel = -ops.log(-ops.log(uniform))

            def step(t, carry, previous_outputs):
                sampled = ops.argmax(previous_outputs[0] + ops.take(gumbel, t, axis=1), axis=-1)
                chosen = ops.where(
                    ops.take(use_sample, t, axis=1),
                    ops.cast(sampled, "int32"),
                    ops.take(inputs, t, axis=1),
                )
                logits, carry, weights = self.step(
                    chosen, carry, memory, keys, memory_mask, training
                )
                return carry, (logits, weights)

        _, (logits, weights) = _time_loop(step, carry, outputs, time)
        return (logits, weights) if return_alignments else logits

    def compute_output_spec(self, inputs, memory, return_alignments=False, **kwargs):
        logits = keras.KerasTensor(
            (inputs.shape[0], inputs.shape[1], self.vocab_size), memory.dtype
        )
        weights = keras.KerasTensor(
            (inputs.shape[0], inputs.shape[1], memory.shape[1]), memory.dtype
        )
        return (logits, weights) if return_alignments else logits

    def get_config(self):
        config = {
            "cell": keras.saving.serialize_keras_object(self.cell),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "attention": keras.saving.serialize_keras_object(self.attention),
            "style": self.style,
            "attention_units": self.attention_units,
            "input_feeding": self.input_feeding,
            "sampling_probability": self.initial_sampling_probability,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        config["attention"] = keras.saving.deserialize_keras_object(config["attention"])
        return cls(**config)


def _start(decoder, memory, memory_mask, initial_state, copies=1):
    """Tiles memory, mask and state `copies` times per example; returns the loop inputs."""
    if not decoder.built:
        decoder.build((None, None), tuple(memory.shape))
    batch_size = ops.shape(memory)[0]
    if copies > 1:
        memory = ops.repeat(memory, copies, axis=0)
        if memory_mask is not None:
            memory_mask = ops.repeat(memory_mask, copies, axis=0)
        if initial_state is not None:
            initial_state = [ops.repeat(s, copies, axis=0) for s in _as_list(initial_state)]
    carry = decoder.initial_carry(batch_size * copies, initial_state, memory.dtype)
    return batch_size, memory, memory_mask, decoder.prepare_memory(memory), carry


def _token_search(
    decoder,
    memory,
    choose,
    start_token,
    end_token,
    max_length,
    noise,
    memory_mask=None,
    initial_state=None,
):
    batch_size, memory, memory_mask, keys, carry = _start(
        decoder, memory, memory_mask, initial_state
    )
    int_zeros = ops.zeros((batch_size,), "int32")
    carry = {
        "decoder": carry,
        "tokens": int_zeros + start_token,
        "finished": int_zeros > 0,
        "log_probs": ops.zeros((batch_size,), memory.dtype),
        "lengths": int_zeros,
    }
    outputs = (int_zeros, ops.zeros((batch_size, ops.shape(memory)[1]), memory.dtype))

    def step(carry, previous_outputs, step_noise):
        logits, decoder_carry, weights = decoder.step(
            carry["tokens"], carry["decoder"], memory, keys, memory_mask
        )
        log_probs = ops.log_softmax(logits, axis=-1)
        finished = carry["finished"]
        tokens = ops.where(finished, end_token, ops.cast(choose(logits, step_noise), "int32"))
        picked = ops.take_along_axis(log_probs, tokens[:, None], axis=1)[:, 0]
        carry = {
            "decoder": decoder_carry,
            "tokens": tokens,
            "finished": ops.logical_or(finished, tokens == end_token),
            "log_probs": carry["log_probs"] + ops.where(finished, 0.0, picked),
            "lengths": carry["lengths"] + ops.cast(~finished, "int32"),
        }
        return carry, (tokens, ops.where(finished[:, None], 0.0, weights))

    carry, (tokens, weights) = _scan_collect(step, carry, outputs, xs=noise, length=max_length)
    return {
        "tokens": ops.transpose(tokens, (1, 0)),
        "lengths": carry["lengths"],
        "log_probs": carry["log_probs"],
        "alignments": ops.transpose(weights, (1, 0, 2)),
    }


def greedy_search(
    decoder, memory, start_token, end_token, max_length, memory_mask=None, initial_state=None
):
    """Greedy decoding: the most likely token at each step.

    Args:
        decoder: an `AttentionDecoder`.
        memory: encoder outputs `(batch, Tv, memory_dim)`.
        start_token, end_token: token ids (Python ints).
        max_length: number of steps (Python int).
        memory_mask: optional boolean `(batch, Tv)`.
        initial_state: optional list of cell states `(batch, size)`.

    Returns:
        dict with `tokens` `(batch, max_length)` int32 (the end token repeats after
        the end), `lengths` `(batch,)` counting the end token, `log_probs` `(batch,)`
        and `alignments` `(batch, max_length, Tv)` (zero after the end).
    """
    return _token_search(
        decoder,
        memory,
        lambda logits, _: ops.argmax(logits, axis=-1),
        start_token,
        end_token,
        max_length,
        None,
        memory_mask,
        initial_state,
    )


def sampling_search(
    decoder,
    memory,
    start_token,
    end_token,
    max_length,
    temperature=1.0,
    top_k=None,
    seed=None,
    memory_mask=None,
    initial_state=None,
):
    """Samples tokens from softmax(logits / temperature), optionally among the top k.

    Args: as `greedy_search`, plus `temperature` (> 0), `top_k` (None or an int
    >= 1) and `seed` (int, `keras.random.SeedGenerator` or None).

    Returns: as `greedy_search`.
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}; use greedy_search.")
    if top_k is not None and not 1 <= top_k <= decoder.vocab_size:
        raise ValueError(f"`top_k` must be in [1, {decoder.vocab_size}], got {top_k}.")
    batch_size = ops.shape(memory)[0]
    uniform = keras.random.uniform(
        (max_length, batch_size, decoder.vocab_size), 1e-7, 1.0, seed=seed
    )
    gumbel = -ops.log(-ops.log(uniform))

    def choose(logits, step_gumbel):
        logits = logits / temperature
        if top_k is not None:
            kth = ops.top_k(logits, top_k)[0][:, -1:]
            logits = ops.where(logits < kth, _NEG_INF, logits)
        # Gumbel-max: argmax(logits + Gumbel noise) samples from softmax(logits).
        return ops.argmax(logits + step_gumbel, axis=-1)

    return _token_search(
        decoder,
        memory,
        choose,
        start_token,
        end_token,
        max_length,
        gumbel,
        memory_mask,
        initial_state,
    )


def length_penalty_factor(lengths, alpha):
    """Wu et al. (2016) length penalty lp(Y) = ((5 + |Y|) / 6) ** alpha."""
    return ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, alpha)


def beam_search(
    decoder,
    memory,
    start_token,
    end_token,
    max_length,
    beam_width,
    length_penalty=0.0,
    memory_mask=None,
    initial_state=None,
):
    """Beam search with the length penalty of Wu et al. (2016), "Google's Neural Machine
    Translation System".

    Hypotheses are ranked by log P(Y | X) / lp(Y), lp(Y) = ((5 + |Y|) / 6) ** alpha,
    where |Y| counts the end token. A hypothesis that emitted the end token keeps
    its log-probability and length; it competes with the live ones until the end.

    Args: as `greedy_search`, plus `beam_width` (Python int) and `length_penalty`
    (alpha >= 0; 0 ranks by log-probability).

    Returns:
        dict with `tokens` `(batch, beam_width, max_length)` (best first; the end
        token repeats after the end), `scores` `(batch, beam_width)` (penalised),
        `log_probs`, `lengths` `(batch, beam_width)` and `alignments`
        `(batch, beam_width, max_length, Tv)`.
    """
    if int(beam_width) < 1:
        raise ValueError(f"`beam_width` must be >= 1, got {beam_width}.")
    if length_penalty < 0:
        raise ValueError(f"`length_penalty` must be >= 0, got {length_penalty}.")
    beam = int(beam_width)
    vocab = decoder.vocab_size
    batch_size, memory, memory_mask, keys, decoder_carry = _start(
        decoder, memory, memory_mask, initial_state, copies=beam
    )
    source_time = ops.shape(memory)[1]
    int_zeros = ops.zeros((batch_size, beam), "int32")
    # Only the first beam is live at the start, so the first step does not pick
    # the same token once per beam.
    first_beam = ops.expand_dims(ops.arange(beam) == 0, 0)
    carry = {
        "decoder": decoder_carry,
        "tokens": int_zeros + start_token,
        "finished": int_zeros > 0,
        "log_probs": ops.where(first_beam, 0.0, _NEG_INF) + ops.zeros((batch_size, beam)),
        "lengths": int_zeros,
    }
    outputs = (
        int_zeros,
        int_zeros,
        ops.zeros((batch_size, beam)),
        ops.zeros((batch_size, beam, source_time), memory.dtype),
    )
    # A finished hypothesis may only be extended by the end token, at no cost.
    end_only = ops.where(ops.arange(vocab) == end_token, 0.0, _NEG_INF)
    batch_offsets = ops.expand_dims(ops.arange(batch_size) * beam, 1)

    def step(carry, previous_outputs, _):
        logits, decoder_carry, weights = decoder.step(
            ops.reshape(carry["tokens"], (-1,)), carry["decoder"], memory, keys, memory_mask
        )
        log_probs = ops.reshape(
            ops.log_softmax(ops.cast(logits, "float32"), axis=-1), (batch_size, beam, vocab)
        )
        finished = carry["finished"]
        log_probs = ops.where(finished[..., None], end_only, log_probs)
        totals = ops.reshape(carry["log_probs"][..., None] + log_probs, (batch_size, -1))
        lengths = carry["lengths"] + ops.cast(~finished, "int32")
        penalties = length_penalty_factor(lengths, length_penalty)
        scores = ops.reshape(totals, (batch_size, beam, vocab)) / penalties[..., None]
        top_scores, indices = ops.top_k(ops.reshape(scores, (batch_size, -1)), beam)
        parents = ops.cast(indices // vocab, "int32")
        tokens = ops.cast(indices % vocab, "int32")
        rows = ops.reshape(batch_offsets + parents, (-1,))
        carry = {
            "decoder": keras.tree.map_structure(lambda t: ops.take(t, rows, axis=0), decoder_carry),
            "tokens": tokens,
            "finished": ops.logical_or(
                ops.take_along_axis(finished, parents, axis=1), tokens == end_token
            ),
            "log_probs": ops.take_along_axis(totals, indices, axis=1),
            "lengths": ops.take_along_axis(lengths, parents, axis=1),
        }
        weights = ops.reshape(weights, (batch_size, beam, -1))
        weights = ops.where(finished[..., None], 0.0, weights)
        weights = ops.take_along_axis(weights, parents[..., None], axis=1)
        return carry, (tokens, parents, top_scores, weights)

    carry, (tokens, parents, scores, weights) = _scan_collect(
        step, carry, outputs, length=max_length
    )

    # Follow the parent pointers back from the final beams (TF Addons' gather_tree).
    def backtrack(slots, previous_outputs, step_parents):
        return ops.take_along_axis(step_parents, slots, axis=1), slots

    final_slots = int_zeros + ops.arange(beam, dtype="int32")
    _, slots = _scan_collect_reverse(backtrack, final_slots, parents)
    tokens = ops.take_along_axis(tokens, slots, axis=2)
    weights = ops.take_along_axis(weights, slots[..., None], axis=2)
    return {
        "tokens": ops.transpose(tokens, (1, 2, 0)),
        "scores": scores[-1],
        "log_probs": carry["log_probs"],
        "lengths": carry["lengths"],
        "alignments": ops.transpose(weights, (1, 2, 0, 3)),
    }


def _scan_collect_reverse(step, carry, xs):
    """Reverse scan of `step(carry, previous, x) -> (carry, output)`, output shaped as carry."""

    def body(packed, x):
        new_carry, output = step(packed, None, x)
        return new_carry, output

    return ops.scan(body, carry, xs, reverse=True)
