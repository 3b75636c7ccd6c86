"""Attention decoder and search functions: manual unrolling, brute force, round trips, export."""

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import rnn_keras.cells as cells
from rnn_keras.attention import BahdanauAttention, LuongAttention
from rnn_keras.decoding import AttentionDecoder, beam_search, greedy_search, sampling_search
from rnn_keras.seq2seq import Seq2Seq
from tests.saved_model_helpers import call_saved_model_in_fresh_process

RNG = np.random.default_rng(3)
MEMORY = RNG.normal(size=(2, 5, 6)).astype("float32")
MEMORY_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
TARGETS = RNG.integers(0, 7, size=(2, 4)).astype("int32")
START, END = 1, 2


ATTENTIONS = {
    "bahdanau": lambda: BahdanauAttention(5, normalize=True),
    "luong": lambda: LuongAttention("general", scale=True),
    "luong_concat": lambda: LuongAttention("concat", units=5, scale=True),
}
# Scalars that multiply a score: random around 1.7, away from their initial value.
SCALARS = ("scale", "attention_g")


def _randomize_decoder(decoder, rng):
    """Assigns random values to every trainable weight of a built decoder.

    Biases, the normalisation bias and Luong's scale start at 0 or 1, where a formula that
    drops or inverts them gives the same numbers; the output projection gets a larger
    spread so that the output distributions are sharp and a wrong search picks other tokens.
    """
    for variable in decoder.trainable_weights:
        name = variable.path.split("/")[-1]
        shape = tuple(variable.shape)
        if name in SCALARS:
            value = 1.7 + 0.2 * rng.standard_normal(shape)
        elif "output_projection" in variable.path:
            value = 1.5 * rng.standard_normal(shape)
        else:
            value = 0.5 * rng.standard_normal(shape)
        variable.assign(value.astype(variable.dtype))


def _decoder(style, attention, cell="lstm", vocab_size=7, seed=0, cell_options=None, **kwargs):
    cell = cells.make_cell(cell, 8, **(cell_options or {}))
    attention = ATTENTIONS[attention]() if attention else None
    decoder = AttentionDecoder(cell, vocab_size, 4, attention=attention, style=style, **kwargs)
    decoder.build(TARGETS.shape, MEMORY.shape)
    _randomize_decoder(decoder, np.random.default_rng(seed))
    return decoder


CONFIGURATIONS = [
    ("bahdanau", "bahdanau", "lstm"),
    ("bahdanau", "bahdanau", "gru"),
    ("luong", "luong", "lstm"),
    ("luong", "luong_concat", "elman"),
    ("luong", None, "gru"),
]


def _manual_unroll(decoder, targets, memory, memory_mask):
    """The decoder written out step by step from its sublayers (Bahdanau / Luong papers)."""
    batch = targets.shape[0]
    states = [np.zeros((batch, size), "float32") for size in decoder.state_sizes]
    feed = np.zeros((batch, decoder.attention_units), "float32")
    all_logits = []
    for t in range(targets.shape[1]):
        embedded = decoder.embedding(targets[:, t])
        if decoder.attention is None:
            output, states = decoder.cell(embedded, states)
            features = output
        elif decoder.style == "bahdanau":
            context, _ = decoder.attention(states[0], memory, value_mask=memory_mask)
            output, states = decoder.cell(ops.concatenate([embedded, context], -1), states)
            features = ops.concatenate([output, context], -1)
        else:
            inputs = ops.concatenate([embedded, feed], -1) if decoder.input_feeding else embedded
            output, states = decoder.cell(inputs, states)
            context, _ = decoder.attention(output, memory, value_mask=memory_mask)
            features = feed = decoder.attention_projection(ops.concatenate([context, output], -1))
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        all_logits.append(decoder.output_projection(features))
    return ops.stack(all_logits, axis=1)


@pytest.mark.parametrize("style,attention,cell", CONFIGURATIONS)
def test_teacher_forcing_equals_manual_unroll(style, attention, cell):
    decoder = _decoder(style, attention, cell)
    logits, weights = decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK, return_alignments=True)
    expected = _manual_unroll(decoder, TARGETS, MEMORY, MEMORY_MASK)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), atol=1e-5)
    assert tuple(weights.shape) == (2, 4, 5)
    if attention is not None:
        np.testing.assert_array_equal(np.asarray(weights)[0, :, 3:], 0.0)
        np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, rtol=1e-5)


def test_luong_without_input_feeding_feeds_only_the_embedding():
    decoder = _decoder("luong", "luong", "gru", input_feeding=False)
    # The cell reads the 4-wide embedding alone, not h~_{t-1} beside it.
    assert tuple(decoder.cell.kernel.shape) == (4, 24)
    logits = decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK)
    expected = _manual_unroll(decoder, TARGETS, MEMORY, MEMORY_MASK)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), atol=1e-5)
    greedy = greedy_search(decoder, MEMORY, START, END, 4, memory_mask=MEMORY_MASK)
    for b in range(2):
        tokens = tuple(np.asarray(greedy["tokens"])[b, : int(greedy["lengths"][b])])
        expected = _log_probability(decoder, tokens, MEMORY[b : b + 1], MEMORY_MASK[b : b + 1])
        np.testing.assert_allclose(float(greedy["log_probs"][b]), expected, rtol=1e-4)


def test_default_style_is_bahdanau():
    decoder = AttentionDecoder(cells.make_cell("gru", 8), 7, 4, attention=BahdanauAttention(5))
    decoder.build(TARGETS.shape, MEMORY.shape)
    assert decoder.style == "bahdanau"
    # Bahdanau feeds the context (6 wide) into the cell beside the embedding (4).
    assert tuple(decoder.cell.kernel.shape) == (10, 24)


@pytest.mark.parametrize(
    "style,attention,sampling_probability",
    [
        ("bahdanau", "bahdanau", None),
        ("luong", "luong", None),
        ("luong", None, None),
        ("luong", "luong", 0.0),  # the scheduled-sampling loop
    ],
)
def test_training_reaches_a_dropout_cell(style, attention, sampling_probability):
    """At inference the dropout cell is the plain cell; in training it drops inputs."""
    decoder = _decoder(
        style,
        attention,
        "gru",
        seed=2,
        cell_options={"dropout": 0.5, "seed": 4},
        sampling_probability=sampling_probability,
    )
    inference = np.asarray(decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK))
    expected = _manual_unroll(decoder, TARGETS, MEMORY, MEMORY_MASK)
    np.testing.assert_allclose(inference, np.asarray(expected), atol=1e-5)
    training = np.asarray(decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK, training=True))
    assert np.abs(training - inference).max() > 1e-2


def test_gradients_equal_manual_unroll_in_graph_mode():
    decoder = _decoder("luong", "luong", "lstm")
    memory = tf.constant(MEMORY)

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)])
    def gradients(targets):
        with tf.GradientTape() as tape:
            tape.watch(memory)
            loss = ops.sum(ops.square(decoder(targets, memory, memory_mask=MEMORY_MASK)))
        return tape.gradient(loss, [memory, *decoder.trainable_weights])

    with tf.GradientTape() as tape:
        tape.watch(memory)
        loss = ops.sum(ops.square(_manual_unroll(decoder, TARGETS, memory, MEMORY_MASK)))
    expected = tape.gradient(loss, [memory, *decoder.trainable_weights])
    for actual, reference in zip(gradients(TARGETS), expected, strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(actual), tf.convert_to_tensor(reference), rtol=1e-4, atol=1e-5
        )


def test_scheduled_sampling():
    decoder = _decoder("luong", "luong", "gru", sampling_probability=0.0)
    teacher = decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK)
    never = decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK, training=True)
    np.testing.assert_allclose(np.asarray(never), np.asarray(teacher), atol=1e-6)
    # Always sampling: after the first step the ground truth no longer matters.
    decoder.sampling_probability.assign(1.0)
    other_targets = np.concatenate([TARGETS[:, :1], (TARGETS[:, 1:] + 1) % 7], axis=1)
    keras.utils.set_random_seed(5)
    first = decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK, training=True)
    keras.utils.set_random_seed(5)
    second = decoder(other_targets, MEMORY, memory_mask=MEMORY_MASK, training=True)
    np.testing.assert_allclose(np.asarray(first), np.asarray(second), atol=1e-6)
    assert not np.allclose(np.asarray(first)[:, 1:], np.asarray(teacher)[:, 1:], atol=1e-3)


def test_scheduled_sampling_feeds_the_start_token_at_the_first_step():
    # With p = 1 every later step is sampled; the first must still read the start token.
    decoder = _decoder("bahdanau", "bahdanau", "gru", sampling_probability=1.0)
    teacher = np.asarray(decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK))
    for seed in (5, 6, 7):
        keras.utils.set_random_seed(seed)
        sampled = decoder(TARGETS, MEMORY, memory_mask=MEMORY_MASK, training=True)
        np.testing.assert_allclose(np.asarray(sampled)[:, 0], teacher[:, 0], atol=1e-6)


def test_scheduled_sampling_feeds_the_previous_steps_prediction():
    """With p = 1 and outputs so sharp that Gumbel noise (< 19.4 apart) cannot move the argmax,
    the tokens fed are the model's own greedy tokens, whatever the ground truth says."""
    decoder = _decoder("luong", "luong", "lstm", sampling_probability=1.0, seed=1)
    for variable in decoder.output_projection.weights:
        variable.assign(np.asarray(variable) * 100.0)
    inputs = np.full((2, 1), START, "int32")
    for _ in range(TARGETS.shape[1] - 1):
        last = np.asarray(decoder(inputs, MEMORY, memory_mask=MEMORY_MASK))[:, -1]
        top_two = np.sort(last, axis=-1)[:, -2:]
        assert np.all(top_two[:, 1] - top_two[:, 0] > 20.0), top_two
        inputs = np.concatenate([inputs, last.argmax(-1)[:, None]], axis=1).astype("int32")
    truth = np.concatenate([inputs[:, :1], (inputs[:, 1:] + 1) % 7], axis=1)
    expected = np.asarray(decoder(inputs, MEMORY, memory_mask=MEMORY_MASK))
    keras.utils.set_random_seed(1)
    sampled = decoder(truth, MEMORY, memory_mask=MEMORY_MASK, training=True)
    np.testing.assert_allclose(np.asarray(sampled), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("probability", [1.0, 0.5])
def test_scheduled_sampling_flips_a_coin_per_row_and_samples_the_softmax(probability):
    """Over 2,000 copies of one example, the token fed at step 1 (read back from step 1's
    logits) is the ground truth with probability 1 - p and otherwise drawn from the softmax
    of step 0's logits; each row flips its own coin."""
    decoder = _decoder("luong", "luong", "gru", sampling_probability=probability, seed=3)
    rows, truth_token = 2000, 4
    memory = np.repeat(MEMORY[:1], rows, axis=0)
    memory_mask = np.repeat(MEMORY_MASK[:1], rows, axis=0)
    # Teacher-forced logits for every token that could be fed at step 1.
    candidates = np.stack([np.full(7, START), np.arange(7)], axis=1).astype("int32")
    teacher = np.asarray(decoder(candidates, memory[:7], memory_mask=memory_mask[:7]))
    first = np.exp(teacher[0, 0] - teacher[0, 0].max())
    first /= first.sum()
    truth = np.tile(np.array([[START, truth_token]], "int32"), (rows, 1))
    keras.utils.set_random_seed(11)
    sampled = np.asarray(decoder(truth, memory, memory_mask=memory_mask, training=True))
    distances = np.square(sampled[:, 1, None, :] - teacher[None, :, 1, :]).sum(-1)
    assert distances.min(-1).max() < 1e-6, "step 1 matches no token's teacher-forced logits"
    frequencies = np.bincount(distances.argmin(-1), minlength=7) / rows
    expected = probability * first + (1 - probability) * (np.arange(7) == truth_token)
    tolerance = 4.5 * np.sqrt(expected * (1 - expected) / rows) + 2e-3
    assert np.all(np.abs(frequencies - expected) < tolerance), (frequencies, expected)


def test_sublayer_and_weight_names_build_config_and_initial_carry():
    # Checkpoints and weight paths name these; they are part of the layer's interface. The
    # second decoder would get automatic names such as "embedding_1" without them.
    for _ in range(2):
        decoder = _decoder("luong", "luong", "gru", sampling_probability=0.25)
        assert decoder.embedding.name == "embedding"
        assert decoder.attention_projection.name == "attention_projection"
        assert decoder.output_projection.name == "output_projection"
        variable = decoder.sampling_probability
        assert variable.name == "sampling_probability" and tuple(variable.shape) == ()
    assert variable.trainable is False
    assert variable.path not in [v.path for v in decoder.trainable_weights]
    assert AttentionDecoder(cells.make_cell("gru", 8), 7, 4).attention_projection is None
    clone = AttentionDecoder.from_config(decoder.get_config())
    clone.build_from_config(decoder.get_build_config())
    assert clone.built
    assert [tuple(v.shape) for v in clone.weights] == [tuple(v.shape) for v in decoder.weights]
    carry = decoder.initial_carry(3)
    tensors = [*carry["states"], carry["feed"]]
    assert [tuple(t.shape) for t in tensors] == [(3, 8), (3, 8)]
    assert all(keras.backend.standardize_dtype(t.dtype) == "float32" for t in tensors)
    with pytest.raises(
        ValueError, match=r"^`sampling_probability` must be in \[0, 1\], got 1.5\.$"
    ):
        AttentionDecoder(cells.make_cell("gru", 8), 7, 4, sampling_probability=1.5)


def _log_probability(decoder, sequence, memory, memory_mask):
    """log P(sequence) under teacher forcing, for one example."""
    inputs = np.array([[START, *sequence[:-1]]], "int32")
    logits = decoder(inputs, memory, memory_mask=memory_mask)
    log_probs = np.asarray(ops.log_softmax(logits, axis=-1))[0]
    return float(sum(log_probs[t, token] for t, token in enumerate(sequence)))


@pytest.mark.parametrize("style,attention,cell", CONFIGURATIONS[::2])
def test_greedy_and_beam_width_one_agree(style, attention, cell):
    decoder = _decoder(style, attention, cell)
    greedy = greedy_search(decoder, MEMORY, START, END, 6, memory_mask=MEMORY_MASK)
    beam = beam_search(decoder, MEMORY, START, END, 6, 1, 0.8, memory_mask=MEMORY_MASK)
    np.testing.assert_array_equal(np.asarray(beam["tokens"])[:, 0], np.asarray(greedy["tokens"]))
    np.testing.assert_allclose(
        np.asarray(beam["log_probs"])[:, 0], np.asarray(greedy["log_probs"]), rtol=1e-5
    )
    np.testing.assert_array_equal(np.asarray(beam["lengths"])[:, 0], np.asarray(greedy["lengths"]))
    for b in range(2):
        tokens = list(np.asarray(greedy["tokens"])[b, : int(greedy["lengths"][b])])
        expected = _log_probability(decoder, tokens, MEMORY[b : b + 1], MEMORY_MASK[b : b + 1])
        np.testing.assert_allclose(float(greedy["log_probs"][b]), expected, rtol=1e-4)


def _hypotheses(vocab_size, max_length):
    """Every output: stops at the first end token or after max_length tokens."""
    for length in range(1, max_length + 1):
        for body in itertools.product(
            [v for v in range(vocab_size) if v != END], repeat=length - 1
        ):
            yield (*body, END)
            if length == max_length:
                for last in range(vocab_size):
                    if last != END:
                        yield (*body, last)


@pytest.mark.parametrize("length_penalty", [0.0, 1.5])
def test_beam_search_equals_brute_force(length_penalty):
    vocab_size, max_length = 4, 3
    decoder = _decoder("bahdanau", "bahdanau", "gru", vocab_size=vocab_size)
    memory, mask = MEMORY[1:], MEMORY_MASK[1:]
    scored = []
    for sequence in _hypotheses(vocab_size, max_length):
        penalty = ((5.0 + len(sequence)) / 6.0) ** length_penalty
        scored.append((_log_probability(decoder, sequence, memory, mask) / penalty, sequence))
    scored.sort(reverse=True)
    assert len(scored) == 40
    result = beam_search(decoder, memory, START, END, max_length, 64, length_penalty, mask)
    scores = np.asarray(result["scores"])[0]
    np.testing.assert_allclose(scores[:40], [s for s, _ in scored], rtol=1e-4)
    best, length = np.asarray(result["tokens"])[0, 0], int(result["lengths"][0, 0])
    assert tuple(best[:length]) == scored[0][1]
    if length_penalty == 0.0:
        # No penalty is the default: ranked by log-probability alone.
        default = beam_search(decoder, memory, START, END, max_length, 64, memory_mask=mask)
        np.testing.assert_allclose(np.asarray(default["scores"])[0], scores, rtol=1e-6)
    # A small beam keeps the best hypotheses it can still reach, best first.
    small = beam_search(decoder, memory, START, END, max_length, 3, length_penalty, mask)
    assert np.all(np.diff(np.asarray(small["scores"])[0]) <= 0)


def test_sampling_respects_top_k_and_top_1_is_greedy():
    decoder = _decoder("luong", "luong", "lstm")
    greedy = greedy_search(decoder, MEMORY, START, END, 5, memory_mask=MEMORY_MASK)
    top_one = sampling_search(decoder, MEMORY, START, END, 5, 3.0, 1, 11, MEMORY_MASK)
    np.testing.assert_array_equal(np.asarray(top_one["tokens"]), np.asarray(greedy["tokens"]))
    sampled = sampling_search(decoder, MEMORY, START, END, 5, 5.0, 2, 12, MEMORY_MASK)
    tokens = np.asarray(sampled["tokens"])
    inputs = np.concatenate([np.full((2, 1), START), tokens[:, :-1]], axis=1)
    logits = np.asarray(decoder(inputs, MEMORY, memory_mask=MEMORY_MASK))
    top_two = np.argsort(logits, axis=-1)[..., -2:]
    lengths = np.asarray(sampled["lengths"])
    for b, t in itertools.product(range(2), range(5)):
        if t < lengths[b]:
            assert tokens[b, t] in top_two[b, t]
    # A very high temperature samples nearly uniformly: every token shows up.
    memory, mask = np.repeat(MEMORY, 50, axis=0), np.repeat(MEMORY_MASK, 50, axis=0)
    uniform = sampling_search(decoder, memory, START, END, 1, 1000.0, None, 13, mask)
    assert set(np.asarray(uniform["tokens"])[:, 0]) == set(range(7))


def _first_step_probabilities(decoder, temperature):
    logits = np.asarray(decoder(np.full((1, 1), START), MEMORY[:1], memory_mask=MEMORY_MASK[:1]))
    scaled = logits[0, 0] / temperature
    return np.exp(scaled - scaled.max()) / np.exp(scaled - scaled.max()).sum()


@pytest.mark.parametrize("temperature", [None, 0.5, 3.0])
def test_sampling_draws_from_softmax_of_logits_over_temperature(temperature):
    """4,000 first tokens of one input follow softmax(logits / T) (T = 1 by default)."""
    decoder = _decoder("luong", "luong", "lstm")
    rows = 4000
    memory, mask = np.repeat(MEMORY[:1], rows, axis=0), np.repeat(MEMORY_MASK[:1], rows, axis=0)
    options = {} if temperature is None else {"temperature": temperature}
    sampled = sampling_search(decoder, memory, START, END, 1, seed=21, memory_mask=mask, **options)
    counts = np.bincount(np.asarray(sampled["tokens"])[:, 0], minlength=7)
    expected = _first_step_probabilities(decoder, temperature or 1.0)
    # Four binomial standard deviations (plus a floor for tokens of tiny probability).
    tolerance = 4 * np.sqrt(expected * (1 - expected) / rows) + 2 / rows
    np.testing.assert_array_less(np.abs(counts / rows - expected), tolerance)


def test_sampling_is_seeded_accepts_top_k_up_to_the_vocabulary_and_starts_from_the_state():
    decoder = _decoder("luong", "luong", "lstm")
    memory, mask = np.repeat(MEMORY, 100, axis=0), np.repeat(MEMORY_MASK, 100, axis=0)

    def tokens(**options):
        defaults = {"temperature": 2.0, "seed": 5, "memory_mask": mask}
        result = sampling_search(decoder, memory, START, END, 4, **{**defaults, **options})
        return np.asarray(result["tokens"])

    np.testing.assert_array_equal(tokens(), tokens())
    assert np.mean(tokens() != tokens(seed=6)) > 0.3
    # top_k equal to the vocabulary keeps every token: the same draws as no top_k.
    np.testing.assert_array_equal(tokens(top_k=7), tokens())
    with pytest.raises(ValueError, match=r"^`top_k` must be in \[1, 7\], got 8\.$"):
        tokens(top_k=8)
    with pytest.raises(ValueError, match=r"^`top_k` must be in \[1, 7\], got 0\.$"):
        tokens(top_k=0)
    # With top_k=1 sampling is greedy, from the given initial state too.
    state = [np.random.default_rng(4).normal(size=(200, 8)).astype("float32") for _ in range(2)]
    greedy = greedy_search(decoder, memory, START, END, 4, mask, state)
    np.testing.assert_array_equal(
        tokens(top_k=1, initial_state=state), np.asarray(greedy["tokens"])
    )
    from_zero = greedy_search(decoder, memory, START, END, 4, mask)
    assert np.any(np.asarray(greedy["tokens"]) != np.asarray(from_zero["tokens"]))


def test_searches_build_an_unbuilt_decoder_and_a_beam_of_two_scores_its_hypotheses():
    keras.utils.set_random_seed(0)
    decoder = AttentionDecoder(cells.make_cell("gru", 8), 7, 4, attention=LuongAttention())
    assert not decoder.built
    first = greedy_search(decoder, MEMORY, START, END, 4, memory_mask=MEMORY_MASK)
    assert decoder.built and len(decoder.trainable_weights) > 0
    again = greedy_search(decoder, MEMORY, START, END, 4, memory_mask=MEMORY_MASK)
    np.testing.assert_array_equal(np.asarray(first["tokens"]), np.asarray(again["tokens"]))
    _randomize_decoder(decoder, np.random.default_rng(8))
    result = beam_search(decoder, MEMORY, START, END, 3, 2, memory_mask=MEMORY_MASK)
    tokens, lengths = np.asarray(result["tokens"]), np.asarray(result["lengths"])
    assert tokens.shape == (2, 2, 3)
    for b, k in itertools.product(range(2), range(2)):
        sequence = tuple(tokens[b, k, : lengths[b, k]])
        expected = _log_probability(decoder, sequence, MEMORY[b : b + 1], MEMORY_MASK[b : b + 1])
        np.testing.assert_allclose(float(result["scores"][b, k]), expected, rtol=1e-4)
    with pytest.raises(ValueError, match=r"^`length_penalty` must be >= 0, got -1.0\.$"):
        beam_search(decoder, MEMORY, START, END, 3, 2, length_penalty=-1.0)


def test_errors_name_the_bad_value():
    decoder = _decoder("luong", "luong", "lstm")
    with pytest.raises(ValueError, match="style=.*'transformer'"):
        AttentionDecoder(keras.layers.GRUCell(4), 7, 4, style="transformer")
    with pytest.raises(ValueError, match="beam_width.*0"):
        beam_search(decoder, MEMORY, START, END, 4, 0)
    with pytest.raises(ValueError, match="temperature.*0"):
        sampling_search(decoder, MEMORY, START, END, 4, temperature=0.0)
    with pytest.raises(ValueError, match="initial_state.*1 tensors"):
        decoder(TARGETS, MEMORY, initial_state=[np.zeros((2, 8), "float32")])


def test_decoder_config_round_trip():
    decoder = _decoder("luong", "luong", "gru", sampling_probability=0.25)
    clone = AttentionDecoder.from_config(decoder.get_config())
    assert clone.get_config() == decoder.get_config()
    clone.build(TARGETS.shape, MEMORY.shape)
    clone.set_weights(decoder.get_weights())
    np.testing.assert_allclose(
        np.asarray(clone(TARGETS, MEMORY)), np.asarray(decoder(TARGETS, MEMORY)), atol=1e-6
    )


def test_seq2seq_keras_file_and_saved_model_round_trip(tmp_path):
    source = RNG.integers(3, 9, size=(3, 6)).astype("int32")
    source[0, 4:] = 0
    target_in = RNG.integers(3, 9, size=(3, 4)).astype("int32")
    model = Seq2Seq(9, 9, embedding_dim=6, units=8, cell="gru", encoder_layers=2,
                    bidirectional=True, attention="luong")  # fmt: skip
    model((source, target_in))
    # Random weights everywhere, so that a weight the round trip loses changes the numbers.
    rng = np.random.default_rng(12)
    for variable in model.trainable_weights:
        variable.assign((0.3 * rng.standard_normal(tuple(variable.shape))).astype(variable.dtype))
    expected_logits = model((source, target_in))
    model.save(tmp_path / "seq2seq.keras")
    reloaded = keras.models.load_model(tmp_path / "seq2seq.keras")
    np.testing.assert_allclose(
        np.asarray(reloaded((source, target_in))), np.asarray(expected_logits), atol=1e-5
    )
    model.export_decoding(tmp_path / "export", max_length=5, beam_width=3, length_penalty=0.6)
    # A shorter source than anything traced: the signature has a dynamic length.
    exported = call_saved_model_in_fresh_process(tmp_path / "export", {"source": source[:, :5]})
    expected = model.beam_search(source[:, :5], 5, 3, 0.6)
    for key in ("tokens", "scores", "lengths", "alignments"):
        np.testing.assert_allclose(exported[key], np.asarray(expected[key]), atol=1e-5)


# Memory rows with 5, 2 and 3 real positions, large random values at the padded ones.
PADDED_LENGTHS = np.array([5, 2, 3])
PADDED_MASK = np.arange(5)[None] < PADDED_LENGTHS[:, None]


def _padded_memory(seed):
    rng = np.random.default_rng(seed)
    memory = rng.normal(size=(3, 5, 6))
    garbage = 10.0 * rng.normal(size=memory.shape)
    return np.where(PADDED_MASK[..., None], memory, garbage).astype("float32")


def _brute_force_log_probs(decoder, hypotheses, memory, state, max_length):
    """log P of every hypothesis, teacher-forced, against one example's memory and state."""
    count = len(hypotheses)
    inputs = np.full((count, max_length), START, "int32")
    for i, sequence in enumerate(hypotheses):
        inputs[i, 1 : len(sequence)] = sequence[:-1]
    repeat = lambda x: np.repeat(x, count, axis=0)  # noqa: E731
    logits = decoder(inputs, repeat(memory), initial_state=[repeat(s) for s in state])
    log_probs = np.asarray(ops.log_softmax(logits, axis=-1))
    return np.array(
        [
            sum(log_probs[i, t, token] for t, token in enumerate(sequence))
            for i, sequence in enumerate(hypotheses)
        ]
    )


def _brute_force_greedy(decoder, memory, state, max_length):
    sequence, log_prob = [], 0.0
    while len(sequence) < max_length and END not in sequence:
        inputs = np.array([[START, *sequence]], "int32")
        logits = decoder(inputs, memory, initial_state=state)
        log_probs = np.asarray(ops.log_softmax(logits, axis=-1))[0, -1]
        sequence.append(int(np.argmax(log_probs)))
        log_prob += log_probs[sequence[-1]]
    return sequence, log_prob


@pytest.mark.parametrize(
    "style,attention,cell,length_penalty",
    [("bahdanau", "bahdanau", "lstm", 1.5), ("luong", "luong", "gru", 0.0)],
)
def test_searches_over_padded_memory_equal_brute_force(style, attention, cell, length_penalty):
    """Each example of a padded batch, searched together with random initial states, equals
    the brute force over that example's unpadded memory alone; a beam at least as wide as
    the number of outputs ranks every output exactly; values at padding change nothing."""
    vocab_size, max_length = 4, 3
    decoder = _decoder(style, attention, cell, vocab_size=vocab_size, seed=2)
    rng = np.random.default_rng(4)
    state = [rng.normal(size=(3, size)).astype("float32") for size in decoder.state_sizes]
    memory = _padded_memory(8)
    hypotheses = list(_hypotheses(vocab_size, max_length))
    penalties = np.array([((5.0 + len(h)) / 6.0) ** length_penalty for h in hypotheses])

    def searches(memory):
        beam = beam_search(decoder, memory, START, END, max_length, 48, length_penalty,
                           PADDED_MASK, state)  # fmt: skip
        greedy = greedy_search(decoder, memory, START, END, max_length, PADDED_MASK, state)
        return {key: np.asarray(value) for key, value in beam.items()}, {
            key: np.asarray(value) for key, value in greedy.items()
        }

    beam, greedy = searches(memory)
    for b, valid in enumerate(PADDED_LENGTHS):
        row_memory, row_state = memory[b : b + 1, :valid], [s[b : b + 1] for s in state]
        log_probs = _brute_force_log_probs(decoder, hypotheses, row_memory, row_state, max_length)
        order = np.argsort(-log_probs / penalties, kind="stable")
        count = len(hypotheses)
        np.testing.assert_allclose(
            beam["scores"][b, :count], (log_probs / penalties)[order], rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(beam["log_probs"][b, :count], log_probs[order], rtol=1e-4)
        assert np.all(beam["scores"][b, count:] < -1e6)  # nothing else exists
        for rank in range(3):
            best = hypotheses[order[rank]]
            assert beam["lengths"][b, rank] == len(best)
            assert tuple(beam["tokens"][b, rank, : len(best)]) == best
            np.testing.assert_array_equal(beam["tokens"][b, rank, len(best) :], END)
        sequence, log_prob = _brute_force_greedy(decoder, row_memory, row_state, max_length)
        assert greedy["lengths"][b] == len(sequence)
        assert list(greedy["tokens"][b, : len(sequence)]) == sequence
        np.testing.assert_array_equal(greedy["tokens"][b, len(sequence) :], END)
        np.testing.assert_allclose(greedy["log_probs"][b], log_prob, rtol=1e-4)
        # The padded memory positions get no attention.
        np.testing.assert_array_equal(beam["alignments"][b, ..., valid:], 0.0)
        np.testing.assert_array_equal(greedy["alignments"][b, :, valid:], 0.0)
    other_memory = np.where(PADDED_MASK[..., None], memory, _padded_memory(9)).astype("float32")
    other_beam, other_greedy = searches(other_memory)
    for ours, other in ((beam, other_beam), (greedy, other_greedy)):
        for key, value in ours.items():
            np.testing.assert_allclose(other[key], value, rtol=1e-6, atol=1e-6, err_msg=key)
