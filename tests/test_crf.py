"""Linear-chain CRF against brute-force enumeration; CRFModel training, round trips, export."""

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnn_keras.crf import (
    CRF,
    CRFModel,
    crf_decode,
    crf_log_likelihood,
    crf_log_norm,
    crf_sequence_score,
)
from tests.saved_model_helpers import call_saved_model_in_fresh_process

NUM_TAGS, TIME = 3, 5
RNG = np.random.default_rng(11)
POTENTIALS = RNG.normal(size=(6, TIME, NUM_TAGS)).astype("float32")
TRANSITIONS = RNG.normal(size=(NUM_TAGS, NUM_TAGS)).astype("float32")
START = RNG.normal(size=NUM_TAGS).astype("float32")
END = RNG.normal(size=NUM_TAGS).astype("float32")
LENGTHS = np.array([5, 4, 3, 2, 1, 0])
MASK = np.arange(TIME)[None] < LENGTHS[:, None]
TAGS = RNG.integers(0, NUM_TAGS, size=(6, TIME)).astype("int32")
PARAMETERS = (TRANSITIONS, START, END)


def _score(potentials, tags):
    score = START[tags[0]] + END[tags[-1]] + sum(potentials[t, y] for t, y in enumerate(tags))
    return score + sum(TRANSITIONS[a, b] for a, b in itertools.pairwise(tags))


def _brute_force(b):
    """log Z, best path, best score and per-position marginals of example b."""
    length = LENGTHS[b]
    paths = list(itertools.product(range(NUM_TAGS), repeat=length))
    scores = np.array([_score(POTENTIALS[b].astype("float64"), path) for path in paths])
    log_z = np.logaddexp.reduce(scores)
    marginals = np.zeros((TIME, NUM_TAGS))
    for path, score in zip(paths, scores, strict=True):
        for t, tag in enumerate(path):
            marginals[t, tag] += np.exp(score - log_z)
    best = int(np.argmax(scores))
    return log_z, paths[best], scores[best], marginals


def test_partition_likelihood_and_viterbi_equal_brute_force():
    log_norm = np.asarray(crf_log_norm(POTENTIALS, MASK, *PARAMETERS))
    sequence_score = np.asarray(crf_sequence_score(POTENTIALS, TAGS, MASK, *PARAMETERS))
    log_likelihood = np.asarray(crf_log_likelihood(POTENTIALS, TAGS, MASK, *PARAMETERS))
    tags, best_scores = (np.asarray(x) for x in crf_decode(POTENTIALS, MASK, *PARAMETERS))
    for b in range(5):
        log_z, path, best_score, _ = _brute_force(b)
        length = LENGTHS[b]
        expected_score = _score(POTENTIALS[b], TAGS[b, :length])
        np.testing.assert_allclose(log_norm[b], log_z, rtol=1e-5)
        np.testing.assert_allclose(sequence_score[b], expected_score, rtol=1e-5)
        np.testing.assert_allclose(log_likelihood[b], expected_score - log_z, rtol=1e-4, atol=1e-5)
        assert tuple(tags[b, :length]) == path
        np.testing.assert_array_equal(tags[b, length:], 0)
        np.testing.assert_allclose(best_scores[b], best_score, rtol=1e-5)
    # A row of length 0: zero log-likelihood, zero tags, nothing NaN.
    assert log_likelihood[5] == 0.0 and np.all(tags[5] == 0) and best_scores[5] == 0.0


def test_gradient_of_log_norm_is_the_marginals_in_graph_mode():
    # d log Z / d potentials[t, k] = p(y_t = k): checks the forward loop's gradient.
    @tf.function(input_signature=[tf.TensorSpec((None, None, NUM_TAGS))])
    def gradient(potentials):
        with tf.GradientTape() as tape:
            tape.watch(potentials)
            total = tf.reduce_sum(crf_log_norm(potentials, MASK, *PARAMETERS))
        return tape.gradient(total, potentials)

    marginals = np.asarray(gradient(POTENTIALS))
    for b in range(5):
        np.testing.assert_allclose(marginals[b], _brute_force(b)[3], atol=1e-5)
    np.testing.assert_array_equal(marginals[5], 0.0)


def test_layer_without_boundary_and_without_kernel():
    layer = CRF(NUM_TAGS, use_kernel=False, use_boundary=False)
    tags = np.asarray(layer(POTENTIALS, mask=MASK))
    expected = crf_decode(POTENTIALS, MASK, layer.transitions, np.zeros(3), np.zeros(3))[0]
    np.testing.assert_array_equal(tags, np.asarray(expected))
    assert [w.path.split("/")[-1] for w in layer.weights] == ["transitions"]
    with pytest.raises(ValueError, match="3 features.*\\(6, 5, 4\\)"):
        CRF(NUM_TAGS, use_kernel=False)(np.zeros((6, 5, 4), "float32"))
    with pytest.raises(ValueError, match="num_tags=0"):
        CRF(0)


def _tagger(vocab_size=12, num_tags=4):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    mask = keras.ops.not_equal(tokens, 0)
    features = keras.layers.Embedding(vocab_size, 8)(tokens)
    features = keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True))(
        features, mask=mask
    )
    return CRFModel(keras.Model(tokens, [features, mask]), num_tags=num_tags)


def _tagging_data(count=48, time=6, vocab_size=12):
    tokens = RNG.integers(1, vocab_size, size=(count, time)).astype("int32")
    lengths = RNG.integers(2, time + 1, size=count)
    tokens[np.arange(time)[None] >= lengths[:, None]] = 0
    # The tag of a token depends on the previous token: transitions matter.
    previous = np.concatenate([np.zeros((count, 1), "int32"), tokens[:, :-1]], axis=1)
    tags = ((tokens + previous) % 4).astype("int32")
    tags[tokens == 0] = -1  # labels at padding are ignored, whatever they are
    return tokens, tags


def test_crf_model_fits_evaluates_and_predicts_viterbi_tags():
    tokens, tags = _tagging_data()
    model = _tagger()
    model.compile(optimizer=keras.optimizers.Adam(0.03), metrics=["accuracy"])
    history = model.fit(tokens, tags, batch_size=16, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) == {"loss", "accuracy"}
    predicted = model.predict(tokens, verbose=0)
    potentials, mask = model.potentials_and_mask(tokens)
    np.testing.assert_array_equal(predicted, np.asarray(model.crf.decode(potentials, mask)[0]))
    loss, accuracy = model.evaluate(tokens, tags, verbose=0)
    expected_loss = -np.mean(np.asarray(model.crf.log_likelihood(potentials, tags, mask)))
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-4)
    # The metric ignores padding (where labels are -1 and predictions 0).
    np.testing.assert_allclose(accuracy, np.mean((predicted == tags)[tokens > 0]), rtol=1e-5)


def test_crf_model_keras_file_and_saved_model_round_trip(tmp_path):
    tokens, _ = _tagging_data(count=5)
    model = _tagger()
    predicted = model.predict(tokens, verbose=0)
    model.save(tmp_path / "tagger.keras")
    reloaded = keras.models.load_model(tmp_path / "tagger.keras")
    np.testing.assert_array_equal(reloaded.predict(tokens, verbose=0), predicted)
    assert reloaded.get_config()["num_tags"] == 4
    signature = [keras.InputSpec(shape=(None, None), dtype="int32", name="tokens")]
    model.export(tmp_path / "export", input_signature=signature, verbose=False)
    outputs = call_saved_model_in_fresh_process(tmp_path / "export", {"tokens": tokens[:, :5]})
    (exported,) = outputs.values()
    np.testing.assert_array_equal(exported, model.predict(tokens[:, :5], verbose=0))


def test_crf_layer_config_round_trip():
    layer = CRF(5, use_boundary=False, kernel_regularizer="l2")
    clone = CRF.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_crf_layer_options_reach_its_weights_losses_and_config():
    # One tag is a valid (if trivial) CRF: every path is all zeros.
    single = CRF(1, use_kernel=False)
    np.testing.assert_array_equal(np.asarray(single(np.ones((2, 3, 1), "float32"))), 0)
    options = {
        "kernel_initializer": "ones",
        "transition_initializer": keras.initializers.Constant(0.5),
        "kernel_regularizer": keras.regularizers.L2(0.1),
        "transition_regularizer": keras.regularizers.L1(0.2),
    }
    layer = CRF(3, **options)
    clone = CRF.from_config(layer.get_config())
    for crf in (layer, clone):
        assert crf.supports_masking
        crf.build((None, None, 4))
        weights = {w.path.split("/")[-1]: np.asarray(w) for w in crf.weights}
        assert {name: value.shape for name, value in weights.items()} == {
            "kernel": (4, 3),
            "bias": (3,),
            "transitions": (3, 3),
            "start_transitions": (3,),
            "end_transitions": (3,),
        }
        np.testing.assert_array_equal(weights["kernel"], 1.0)
        np.testing.assert_array_equal(weights["transitions"], 0.5)
        for name in ("bias", "start_transitions", "end_transitions"):
            np.testing.assert_array_equal(weights[name], 0.0)
        # L2(0.1) * 12 ones and L1(0.2) * 9 halves.
        np.testing.assert_allclose(
            sorted(float(loss) for loss in crf.losses), [0.9, 1.2], rtol=1e-6
        )
