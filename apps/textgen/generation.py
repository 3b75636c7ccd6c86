"""Generation and scoring with the recurrent state carried one step at a time.

Everything here reads a prompt once (one pass of the sequence model over it) and then
calls `CharNetwork.step` per new character: the state in, the state out, so a character
costs the same at position 10 or 10,000, and the prefix is never run again.

Sampling (`choose`): greedy (temperature 0 or top_k 1), temperature, top-k, top-p
(nucleus, Holtzman et al. 2020), seeded with stateless random ops (`seed`, step number),
so a seed gives the same text in every process. The out-of-vocabulary id is never drawn.

Serving endpoints (`serving_endpoints`):

* `generate(prompt (batch,), length, temperature, top_k, top_p, seed) -> text (batch,)`;
  also `serving_default`.
* `initial_state(batch_size) -> state_0.., vocabulary` (id to character, id 0 is "").
* `step(chars (batch,), state_0..) -> log_probs (batch, vocabulary), state_0..`.
* `score(text (batch,)) -> nats_per_char, chars_scored`: each text from the zero state,
  in chunks of `SCORE_CHUNK` characters with the state carried across them, so any length
  fits in memory; `nats_per_char` is the mean of -log p(c_t | c_<t) over t = 2..n (NaN for
  texts under 2 characters).
"""

import keras
import tensorflow as tf

from apps.common import export
from apps.textgen.model import id_to_char_table, parts

SCORE_CHUNK = 512


def choose(logits, temperature, top_k, top_p, seed, step):
    """Next ids `(batch,)` from logits `(batch, V)`; id 0 (out of vocabulary) is never chosen.

    Args:
        temperature: float scalar; 0 or less is greedy (argmax).
        top_k: int scalar; above 0 keeps the k most likely ids (1 is greedy).
        top_p: float scalar; in (0, 1) keeps the fewest most likely ids whose probability
            adds up to at least `top_p` (nucleus sampling); 1 or more keeps all.
        seed, step: int scalars; the draw depends only on them and the logits.
    """
    logits = tf.cast(logits, tf.float32)
    vocabulary = tf.shape(logits)[-1]
    never = tf.one_hot(0, vocabulary, on_value=float("-inf"), off_value=0.0)
    logits = logits + never
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    temperature = tf.cast(temperature, tf.float32)
    scaled = logits / tf.maximum(temperature, 1e-6)
    # Top-k: everything below the k-th largest logit is dropped.
    k = tf.clip_by_value(tf.cast(top_k, tf.int32), 1, vocabulary)
    kth = tf.reduce_min(tf.math.top_k(scaled, k=k).values, axis=-1, keepdims=True)
    keep_k = tf.logical_or(top_k <= 0, scaled >= kth)
    scaled = tf.where(keep_k, scaled, float("-inf"))
    # Top-p: keep an id while the probability of the ids above it is below top_p.
    order = tf.argsort(scaled, axis=-1, direction="DESCENDING")
    sorted_probabilities = tf.gather(tf.nn.softmax(scaled), order, batch_dims=1)
    before = tf.cumsum(sorted_probabilities, axis=-1, exclusive=True)
    keep_sorted = before < tf.cast(top_p, tf.float32)
    ranks = tf.argsort(order, axis=-1)
    keep_p = tf.gather(keep_sorted, ranks, batch_dims=1)
    keep_p = tf.logical_or(keep_p, tf.cast(top_p, tf.float32) >= 1.0)
    scaled = tf.where(keep_p, scaled, float("-inf"))
    seeds = tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])
    sampled = tf.random.stateless_categorical(scaled, 1, seed=seeds, dtype=tf.int32)[:, 0]
    use_greedy = tf.logical_or(temperature <= 0.0, top_k == 1)
    return tf.where(use_greedy, greedy, sampled)


def prompt_ids(lookup, prompt):
    """Ids `(batch, time)` of right-padded prompts `(batch,)`, and their mask."""
    chars = tf.strings.unicode_split(prompt, "UTF-8")
    ids = tf.cast(lookup(chars), tf.int32).to_tensor(default_value=0)
    mask = tf.sequence_mask(chars.row_lengths(), maxlen=tf.shape(ids)[1])
    return ids, mask


def read_prompt(network, ids, mask):
    """States after the prompts (zeros for an empty one) and the next character's logits."""
    batch = tf.shape(ids)[0]
    states = network.initial_states(batch)
    if ids.shape[1] != 0:
        _, states = network.run(ids, states, mask=mask, training=False)
    return list(states), network.last_logits(states)


def generate_ids(network, lookup, prompt, length, temperature, top_k, top_p, seed):
    """Ids `(batch, length)` generated after `prompt` (batch,), one step at a time."""
    ids, mask = prompt_ids(lookup, prompt)
    states, logits = read_prompt(network, ids, mask)
    batch = tf.shape(ids)[0]
    produced = tf.TensorArray(tf.int32, size=length, element_shape=tf.TensorShape([None]))

    def body(index, logits, states, produced):
        chosen = choose(logits, temperature, top_k, top_p, seed, index)
        produced = produced.write(index, chosen)
        logits, states = network.step(chosen, states)
        return index + 1, logits, states, produced

    _, _, _, produced = tf.while_loop(
        lambda index, *_: index < length,
        body,
        (tf.constant(0), logits, states, produced),
        maximum_iterations=length,
    )
    generated = tf.transpose(produced.stack(), (1, 0))
    return tf.reshape(generated, (batch, length))


def score_texts(network, lookup, text, chunk=SCORE_CHUNK):
    """`(nats_per_char, chars_scored)` of texts `(batch,)`, the state carried over chunks."""
    chars = tf.strings.unicode_split(text, "UTF-8")
    lengths = tf.cast(chars.row_lengths(), tf.int32)
    ids = tf.cast(lookup(chars), tf.int32).to_tensor(default_value=0)
    batch, width = tf.shape(ids)[0], tf.shape(ids)[1]
    # Inputs are positions 0..n-2, targets 1..n-1; padded to whole chunks.
    steps = tf.maximum(width - 1, 0)
    chunks = (steps + chunk - 1) // chunk
    padded = tf.pad(ids, [[0, 0], [0, chunks * chunk + 1 - width]])
    valid = tf.sequence_mask(lengths - 1, maxlen=chunks * chunk)

    def body(index, states, total):
        start = index * chunk
        inputs = padded[:, start : start + chunk]
        targets = padded[:, start + 1 : start + chunk + 1]
        mask = valid[:, start : start + chunk]
        logits, states = network.run(inputs, states, mask=mask, training=False)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        total += tf.reduce_sum(tf.where(mask, losses, 0.0), axis=-1)
        return index + 1, list(states), total

    _, _, total = tf.while_loop(
        lambda index, *_: index < chunks,
        body,
        (tf.constant(0), network.initial_states(batch), tf.zeros((batch,), tf.float32)),
    )
    scored = tf.maximum(lengths - 1, 0)
    nats = tf.where(scored > 0, total / tf.cast(tf.maximum(scored, 1), tf.float32), float("nan"))
    return nats, scored


def with_named_arguments(body, first, names):
    """`function(first, name_0, name_1, ...)` calling `body(first, [name_0, ...])`.

    Signatures and run-directory endpoints are called with keyword tensors, one per
    state; the number of states depends on the cell and the depth, so the parameter list
    is written out here (tf.function takes neither `*args` names nor `**kwargs`).
    """
    parameters = ", ".join([first, *names])
    source = f"def step({parameters}):\n    return body({first}, [{', '.join(names)}])\n"
    namespace = {"body": body}
    exec(source, namespace)  # noqa: S102 (names are generated here: state_0, state_1, ...)
    return namespace["step"]


def serving_endpoints(model, config, data_info):
    """`generate` (also `serving_default`), `initial_state`, `step` and `score`."""
    lookup, network = parts(model)
    vocabulary = id_to_char_table(data_info["vocabulary"])
    state_names = [f"state_{index}" for index in range(len(network.state_sizes))]
    state_specs = [
        tf.TensorSpec((None, size), tf.float32, name=name)
        for name, size in zip(state_names, network.state_sizes, strict=True)
    ]
    generate_signature = [
        tf.TensorSpec((None,), tf.string, name="prompt"),
        tf.TensorSpec((), tf.int32, name="length"),
        tf.TensorSpec((), tf.float32, name="temperature"),
        tf.TensorSpec((), tf.int32, name="top_k"),
        tf.TensorSpec((), tf.float32, name="top_p"),
        tf.TensorSpec((), tf.int32, name="seed"),
    ]

    def generate(prompt, length, temperature, top_k, top_p, seed):
        values = [prompt, length, temperature, top_k, top_p, seed]
        checked = [
            export.check_input_shape(v, s) for v, s in zip(values, generate_signature, strict=True)
        ]
        prompt, length, temperature, top_k, top_p, seed = checked
        length = tf.maximum(length, 0)
        ids = generate_ids(network, lookup, prompt, length, temperature, top_k, top_p, seed)
        return {"text": tf.strings.reduce_join(tf.gather(vocabulary, ids), axis=-1)}

    initial_signature = [tf.TensorSpec((), tf.int32, name="batch_size")]

    def initial_state(batch_size):
        batch_size = export.check_input_shape(batch_size, initial_signature[0])
        states = network.initial_states(batch_size)
        outputs = dict(zip(state_names, states, strict=True))
        outputs["vocabulary"] = vocabulary
        return outputs

    step_signature = [tf.TensorSpec((None,), tf.string, name="chars"), *state_specs]

    def step_body(chars, states):
        chars = export.check_input_shape(chars, step_signature[0])
        states = [
            export.check_input_shape(s, spec) for s, spec in zip(states, state_specs, strict=True)
        ]
        logits, new_states = network.step(tf.cast(lookup(chars), tf.int32), list(states))
        outputs = dict(zip(state_names, new_states, strict=True))
        outputs["log_probs"] = tf.nn.log_softmax(logits)
        return outputs

    step = with_named_arguments(step_body, "chars", state_names)

    score_signature = [tf.TensorSpec((None,), tf.string, name="text")]

    def score(text):
        text = export.check_input_shape(text, score_signature[0])
        nats, scored = score_texts(network, lookup, text)
        return {"nats_per_char": nats, "chars_scored": scored}

    return {
        "serving_default": (generate, generate_signature),
        "generate": (generate, generate_signature),
        "initial_state": (initial_state, initial_signature),
        "step": (step, step_signature),
        "score": (score, score_signature),
    }


def endpoint_functions(model, config, data_info):
    """The endpoints as `tf.function`s taking keyword tensors (a run directory's answers)."""
    functions = {}
    for name, (function, signature) in serving_endpoints(model, config, data_info).items():
        functions[name] = tf.function(function, input_signature=signature)
    return functions


def stream(step, initial_state, prompt, length, temperature, top_k, top_p, seed, write):
    """Streams generated text through `step`/`initial_state` endpoints, one char per call.

    `step` and `initial_state` are endpoints taking keyword tensors (a loaded SavedModel's
    signatures or `endpoint_functions`); `write(text)` receives each new character as soon
    as it is chosen. Returns the generated text.
    """
    start = initial_state(batch_size=tf.constant(1, tf.int32))
    vocabulary = [value.decode("utf-8") for value in start.pop("vocabulary").numpy()]
    states = dict(start)
    outputs = None
    for char in prompt:  # The prompt is read once, one step per character.
        outputs = step(chars=tf.constant([char]), **states)
        states = {name: value for name, value in outputs.items() if name.startswith("state_")}
    if outputs is None:
        raise ValueError("an empty prompt: give at least one character")
    pieces = []
    for index in range(length):
        chosen = choose(outputs["log_probs"], temperature, top_k, top_p, seed, index)
        char = vocabulary[int(chosen[0])]
        pieces.append(char)
        write(char)
        outputs = step(chars=tf.constant([char]), **states)
        states = {name: value for name, value in outputs.items() if name.startswith("state_")}
    return "".join(pieces)


def sample_text(model, vocabulary, prompt, length, temperature, seed):
    """A sample from a Keras model (the end-of-epoch callback), one step at a time."""
    lookup, network = parts(model)
    ids = generate_ids(
        network,
        lookup,
        tf.constant([prompt]),
        tf.constant(length),
        tf.constant(temperature, tf.float32),
        tf.constant(0),
        tf.constant(1.0),
        tf.constant(seed),
    )
    table = id_to_char_table(vocabulary)
    return tf.strings.reduce_join(tf.gather(table, ids[0])).numpy().decode("utf-8")


class PrintSample(keras.callbacks.Callback):
    """Prints a generated sample at the end of every `every` epochs."""

    def __init__(self, vocabulary, prompt, length, temperature, seed, every=1):
        super().__init__()
        self.vocabulary = list(vocabulary)
        self.prompt, self.length, self.temperature = prompt, length, temperature
        self.seed, self.every = seed, every

    def on_epoch_end(self, epoch, logs=None):
        if self.every <= 0 or (epoch + 1) % self.every:
            return
        text = sample_text(
            self.model, self.vocabulary, self.prompt, self.length, self.temperature, self.seed
        )
        print(f"\nsample after epoch {epoch + 1}:\n{self.prompt}{text}\n", flush=True)


def endpoints_of(serving_model):
    """The endpoints of a `ServingModel`, compiled as `tf.function`s for a run directory."""
    if serving_model.keras_model is None:
        return serving_model.endpoints
    return endpoint_functions(
        serving_model.keras_model, serving_model.config, serving_model.data_info
    )


class ContinuationDecoder:
    """`CharNetwork` behind the decoder interface of `rnn_keras.beam_search`.

    A language model has no encoder: the "memory" is a dummy `(batch, 1, 1)` tensor and
    the attention weights are zeros. The out-of-vocabulary id 0 serves as the end token
    and is never chosen, so every hypothesis runs `max_length` characters.
    """

    built = True

    def __init__(self, network):
        self.network = network
        self.vocab_size = network.vocabulary_size

    def initial_carry(self, batch_size, initial_state=None, dtype="float32"):
        return list(initial_state)

    def prepare_memory(self, memory):
        return memory

    def step(self, tokens, carry, memory, keys, memory_mask=None):
        logits, states = self.network.step(tokens, list(carry))
        never = tf.one_hot(0, self.vocab_size, on_value=-1e9, off_value=0.0)
        return logits + never, states, tf.zeros((tf.shape(tokens)[0], 1))


def beam_generate(network, lookup, prompt, length, beam_width):
    """The `beam_width` likeliest continuations of `prompt` (a non-empty Python string).

    Uses `rnn_keras.beam_search`: the prompt but its last character is read in one pass,
    the last character starts every hypothesis, and each step is one `CharNetwork.step`.

    Returns:
        `(ids (beam_width, length), log_probs (beam_width,))`, best first; log-probabilities
        of the model's distribution without the out-of-vocabulary id.
    """
    import rnn_keras

    ids = tf.cast(lookup(tf.constant([list(prompt)])), tf.int32)
    states = network.initial_states(1)
    if len(prompt) > 1:
        _, states = network.run(ids[:, :-1], states)
    result = rnn_keras.beam_search(
        ContinuationDecoder(network),
        tf.zeros((1, 1, 1)),
        start_token=ids[0, -1],
        end_token=0,
        max_length=length,
        beam_width=beam_width,
        initial_state=list(states),
    )
    return result["tokens"][0], result["log_probs"][0]
