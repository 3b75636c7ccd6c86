"""The text generation model and its one-step use, in process, on tiny models.

`step` called N times equals the whole-sequence model; `score` carried over chunks equals
the mean per-character loss of one pass; stateful training carries and resets its state;
sampling is seeded, and temperature 0 / top-k 1 / a tiny top-p equal greedy; a tiny model
overfits a short text and greedy generation reproduces it.
"""

import numpy as np
import pytest
import tensorflow as tf

from apps.common import config as config_lib
from apps.common.data import known_size
from apps.textgen import data, generation
from apps.textgen import model as textgen_model
from apps.textgen.config import TextGenConfig

VOCABULARY = list(" .abcdehiklmnorstuw")


def tiny_config(**overrides):
    values = {
        "model.units": 12,
        "model.embedding_dim": 6,
        "model.num_layers": 2,
        "model.dropout": 0.0,
        "train.batch_size": 2,
    }
    values.update(overrides)
    return config_lib.apply_overrides(TextGenConfig(), values)


def chars_of(text):
    return np.array([list(text)], dtype=object)


@pytest.mark.parametrize(
    "overrides",
    [
        {"model.cell": "lstm"},
        {"model.cell": "gru", "model.num_layers": 1},
        {"model.cell": "elman", "model.tie_weights": True},
        {"model.cell": "jordan"},
        {"model.cell": "lstm", "model.layer_norm": True, "model.tie_weights": True},
        # The minimal cells run their sequences as a parallel scan, their steps as a loop.
        {"model.cell": "mingru"},
        {"model.cell": "minlstm", "model.num_layers": 1},
    ],
    ids=["lstm", "gru", "elman-tied", "jordan", "lstm-layernorm-tied", "mingru", "minlstm"],
)
def test_step_by_step_equals_whole_sequence(overrides):
    tf.keras.utils.set_random_seed(1)
    model = textgen_model.build_model(tiny_config(**overrides), {"vocabulary": VOCABULARY})
    text = "the cat sat on the mat. "
    whole = model(chars_of(text)).numpy()[0]
    lookup, network = textgen_model.parts(model)
    states = network.initial_states(1)
    stepped = []
    for char in text:
        logits, states = network.step(tf.cast(lookup(tf.constant([char])), tf.int32), states)
        stepped.append(logits.numpy()[0])
    np.testing.assert_allclose(np.stack(stepped), whole, rtol=1e-4, atol=1e-5)
    # The exported step signature: log-probabilities of the same logits.
    step = generation.endpoint_functions(model, None, {"vocabulary": VOCABULARY})["step"]
    start = network.initial_states(1)
    names = [f"state_{index}" for index in range(len(start))]
    outputs = step(chars=tf.constant(["t"]), **dict(zip(names, start, strict=True)))
    expected = tf.nn.log_softmax(whole[:1]).numpy()
    np.testing.assert_allclose(outputs["log_probs"].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_score_of_long_text_equals_mean_loss_of_one_pass():
    tf.keras.utils.set_random_seed(2)
    model = textgen_model.build_model(tiny_config(), {"vocabulary": VOCABULARY})
    rng = np.random.default_rng(0)
    long_text = "".join(rng.choice(VOCABULARY + ["Z"], size=1300))  # Z: out of vocabulary
    short_text = "the cat."
    lookup, network = textgen_model.parts(model)

    @tf.function
    def mean_loss(chars):
        ids = tf.cast(lookup(chars), tf.int32)
        logits, _ = network.run(ids[:, :-1])
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(ids[:, 1:], logits)
        return tf.reduce_mean(losses)

    def one_pass(text):
        return float(mean_loss(tf.constant([list(text)])))

    score = tf.function(lambda text: generation.score_texts(network, lookup, text, chunk=128))
    nats, scored = score(tf.constant([long_text, short_text, "x"]))
    assert scored.numpy().tolist() == [1299, 7, 0]
    np.testing.assert_allclose(nats.numpy()[:2], [one_pass(long_text), one_pass(short_text)], 1e-5)
    assert np.isnan(nats.numpy()[2])


def test_stateful_training_carries_then_resets_state():
    tf.keras.utils.set_random_seed(3)
    config = tiny_config(**{"data.mode": "stateful"})
    model = textgen_model.build_model(config, {"vocabulary": VOCABULARY})
    first, second = "the cat sat on", " the mat. a do"
    batch = np.array([list(first), list(first[::-1])], dtype=object)
    following = np.array([list(second), list(second[::-1])], dtype=object)
    whole = model(np.array([list(first + second)], dtype=object)).numpy()[0]
    model(batch, training=True)
    # Inference calls neither read nor change the carried state.
    model(following, training=False)
    carried = model(following, training=True).numpy()[0]
    np.testing.assert_allclose(carried, whole[len(first) :], rtol=1e-4, atol=1e-5)
    callback = textgen_model.ResetCarriedStates()
    callback.set_model(model)
    callback.on_epoch_begin(1)
    fresh = model(following, training=True).numpy()[0]
    np.testing.assert_allclose(fresh, model(following).numpy()[0], rtol=1e-4, atol=1e-5)
    assert not np.allclose(fresh, carried, atol=1e-3)


def test_sampling_is_seeded_and_its_limits_are_greedy():
    rng = np.random.default_rng(4)
    logits = tf.constant(rng.normal(size=(16, 30)).astype("float32"))
    logits = tf.concat([tf.fill((16, 1), 50.0), logits], axis=-1)  # id 0 is never chosen

    def draw(temperature=1.0, top_k=0, top_p=1.0, seed=7, step=0):
        return generation.choose(logits, temperature, top_k, top_p, seed, step).numpy()

    greedy = np.argmax(logits.numpy()[:, 1:], axis=-1) + 1
    assert np.array_equal(draw(seed=7), draw(seed=7))
    assert not np.array_equal(draw(seed=7), draw(seed=8))
    assert not np.array_equal(draw(step=0), draw(step=1))
    assert np.array_equal(draw(temperature=0.0), greedy)
    assert np.array_equal(draw(temperature=1e-4), greedy)
    assert np.array_equal(draw(top_k=1), greedy)
    assert np.array_equal(draw(top_p=1e-6), greedy)
    assert 0 not in np.concatenate([draw(seed=seed, temperature=3.0) for seed in range(20)])
    # Top-k: every draw is among the k likeliest ids.
    top3 = np.argsort(-logits.numpy()[:, 1:], axis=-1)[:, :3] + 1
    for seed in range(20):
        chosen = draw(top_k=3, temperature=5.0, seed=seed)
        assert all(chosen[row] in top3[row] for row in range(16))


def test_windows_from_split_texts_shift_targets_and_never_cross_a_split():
    texts = ["abcdefghijklmnopq", "ABCDEFGHIJKLMNOPQRSTUVWXY"]
    vocabulary = sorted(set("".join(texts)))
    dataset = tf.data.Dataset.from_tensor_slices({"text": texts})
    lookup = textgen_model.make_lookup(vocabulary)
    windows = list(data.windows(dataset, 5, lookup).as_numpy_iterator())
    assert len(windows) == (17 - 1) // 5 + (25 - 1) // 5
    table = ["?"] + vocabulary
    for inputs, targets in windows:
        window_in = "".join(c.decode() for c in inputs)
        window_target = "".join(table[i] for i in targets)
        assert window_in[1:] == window_target[:-1]
        assert any(window_in + window_target[-1] in text for text in texts)
    starts = ["".join(c.decode() for c in inputs)[0] for inputs, _ in windows]
    assert starts == list("afkAFKP")


def test_stateful_batches_continue_each_row():
    texts = ["".join(chr(ord("a") + i % 26) for i in range(2 * 3 * 4 + 3))]
    vocabulary = sorted(set(texts[0]))
    dataset = tf.data.Dataset.from_tensor_slices({"text": texts})
    examples = data.windows(dataset, 3, textgen_model.make_lookup(vocabulary))
    batches = list(data.stateful_batches(examples, 2).as_numpy_iterator())
    rows = [["".join(c.decode() for c in row) for row in inputs] for inputs, _ in batches]
    assert len(batches) == 4  # 8 windows, 2 rows of 4; none dropped
    for row in range(2):
        joined = "".join(batch[row] for batch in rows)
        assert joined == texts[0][row * 12 : row * 12 + 12]


def test_tiny_model_overfits_and_greedy_generation_reproduces_the_text():
    tf.keras.utils.set_random_seed(5)
    sentence = "the quick brown fox jumps over a lazy dog. "
    text = sentence * 40
    vocabulary = sorted(set(text))
    config = tiny_config(
        **{
            "model.units": 64,
            "model.embedding_dim": 16,
            "model.num_layers": 1,
            "model.cell": "gru",
            "train.learning_rate": 0.02,
        }
    )
    model = textgen_model.build_model(config, {"vocabulary": vocabulary})
    dataset = tf.data.Dataset.from_tensor_slices({"text": [text]})
    examples = data.windows(dataset, 24, textgen_model.make_lookup(vocabulary)).cache()
    # Windows come out of a flat_map, of unknown count: stated, Keras knows where an epoch
    # ends instead of warning that the data ran out.
    count = known_size(examples)
    examples = examples.apply(tf.data.experimental.assert_cardinality(count))
    model.fit(examples.shuffle(200, seed=1).batch(16).repeat(12), shuffle=False, verbose=0)
    lookup, network = textgen_model.parts(model)
    prompt = "the quick"
    generate = tf.function(
        lambda prompt: generation.generate_ids(network, lookup, prompt, 120, 0.0, 0, 1.0, 0)
    )
    ids = generate(tf.constant([prompt]))
    produced = "".join(vocabulary[i - 1] for i in ids.numpy()[0])
    assert (prompt + produced) == (sentence * 4)[: len(prompt) + 120]


def test_beam_search_of_width_one_is_greedy_and_scores_its_beams():
    tf.keras.utils.set_random_seed(6)
    model = textgen_model.build_model(tiny_config(), {"vocabulary": VOCABULARY})
    lookup, network = textgen_model.parts(model)
    prompt = "the cat"
    greedy = generation.generate_ids(network, lookup, tf.constant([prompt]), 12, 0.0, 0, 1.0, 0)
    ids, _ = generation.beam_generate(network, lookup, prompt, 12, 1)
    assert ids.numpy()[0].tolist() == greedy.numpy()[0].tolist()
    ids, log_probs = generation.beam_generate(network, lookup, prompt, 12, 3)
    assert ids.shape == (3, 12) and np.all(np.diff(log_probs.numpy()) <= 1e-6)
    for row in range(3):  # each beam's log-probability is its text's (id 0 excluded)
        prefix = tf.cast(lookup(tf.constant([list(prompt)])), tf.int32)
        sequence = tf.concat([prefix, ids[row : row + 1]], axis=1)
        logits, _ = network.run(sequence[:, :-1])
        logits = logits + tf.one_hot(0, logits.shape[-1], on_value=-1e9)  # never chosen
        picked = -tf.nn.sparse_softmax_cross_entropy_with_logits(sequence[:, 1:], logits)
        np.testing.assert_allclose(
            float(tf.reduce_sum(picked[0, len(prompt) - 1 :])), float(log_probs[row]), rtol=1e-4
        )


def test_embedding_starts_normal_with_the_configured_deviation():
    """`model.embedding_stddev` draws N(0, s^2) (default 1.0, as PyTorch); None keeps Keras's
    uniform ±0.05."""
    vocabulary = [chr(code) for code in range(33, 127)]

    def embeddings(**overrides):
        model = textgen_model.build_model(tiny_config(**overrides), {"vocabulary": vocabulary})
        _, network = textgen_model.parts(model)
        return network.embedding.embeddings.numpy()

    keras_default = embeddings(**{"model.embedding_dim": 32, "model.embedding_stddev": None})
    assert np.abs(keras_default).max() <= 0.05 and keras_default.std() > 0.02
    assert embeddings(**{"model.embedding_dim": 32}).std() == pytest.approx(1.0, rel=0.05)
    normal = embeddings(**{"model.embedding_dim": 32, "model.embedding_stddev": 2.0})
    # 95 x 32 draws: the sample deviation is within 5% of 2.0; uniform ±0.05 is far off.
    assert normal.std() == pytest.approx(2.0, rel=0.05)
    assert abs(normal.mean()) < 0.1 and np.abs(normal).max() > 4.0
