"""Randomised brute force for the linear-chain CRF: every length 0..T in one padded batch.

Each batch holds every sequence length 0..TIME once, in shuffled order, right-padded with
large random potentials and random (or -1) labels at the padded steps, so that a padded step
that leaks into a result changes it. Everything is compared with the enumeration of every tag
path; the layer test sets all of the layer's weights (kernel, bias, transitions, start and end
transitions) to random values away from their initialisers first.
"""

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from rnn_keras.crf import (
    CRF,
    crf_decode,
    crf_log_likelihood,
    crf_log_norm,
    crf_sequence_score,
)

TIME = 5
TOLERANCE = {"rtol": 1e-5, "atol": 1e-4}


def _random_problem(num_tags, seed):
    """Potentials, labels, mask, lengths and CRF parameters of one random padded batch."""
    rng = np.random.default_rng(seed)
    lengths = rng.permutation(TIME + 1)
    mask = np.arange(TIME)[None] < lengths[:, None]
    potentials = rng.normal(size=(TIME + 1, TIME, num_tags))
    # Padded steps hold large values: one that counts moves every score.
    potentials = np.where(mask[..., None], potentials, 10.0 * rng.normal(size=potentials.shape))
    tags = rng.integers(0, num_tags, size=(TIME + 1, TIME))
    tags = np.where(mask, tags, rng.integers(-1, num_tags, size=tags.shape))
    parameters = tuple(
        rng.normal(size=shape).astype("float32")
        for shape in ((num_tags, num_tags), (num_tags,), (num_tags,))
    )
    return potentials.astype("float32"), tags.astype("int32"), mask, lengths, parameters


def _enumerate(potentials, length, transitions, start, end):
    """Every tag path of `length` steps and its score (float64), by brute force."""
    num_tags = transitions.shape[0]
    paths = np.array(list(itertools.product(range(num_tags), repeat=length)), "int64")
    potentials, transitions = potentials.astype("float64"), transitions.astype("float64")
    scores = potentials[np.arange(length), paths].sum(axis=1)
    scores += transitions[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    scores += start.astype("float64")[paths[:, 0]] + end.astype("float64")[paths[:, -1]]
    return paths, scores


def _path_score(potentials, path, transitions, start, end):
    path = np.asarray(path)
    return _enumerate(potentials[: len(path)], len(path), transitions, start, end)[1][
        np.ravel_multi_index(path, (transitions.shape[0],) * len(path))
    ]


def _results(potentials, tags, mask, parameters):
    tags_out, best = crf_decode(potentials, mask, *parameters)
    return {
        "log_norm": crf_log_norm(potentials, mask, *parameters),
        "sequence_score": crf_sequence_score(potentials, tags, mask, *parameters),
        "log_likelihood": crf_log_likelihood(potentials, tags, mask, *parameters),
        "tags": tags_out,
        "best": best,
        # The score of the decoded path, by the library's own scoring function.
        "decoded_score": crf_sequence_score(potentials, tags_out, mask, *parameters),
    }


def _check_against_brute_force(results, potentials, tags, lengths, parameters):
    results = {key: np.asarray(value) for key, value in results.items()}
    for b, length in enumerate(lengths):
        if length == 0:
            # An empty row: zero log-likelihood, zero tags and scores, nothing NaN.
            for key in ("log_norm", "sequence_score", "log_likelihood", "best", "decoded_score"):
                assert results[key][b] == 0.0, (key, results[key][b])
            np.testing.assert_array_equal(results["tags"][b], 0)
            continue
        paths, scores = _enumerate(potentials[b], length, *parameters)
        log_z = np.logaddexp.reduce(scores)
        label_score = _path_score(potentials[b], tags[b, :length], *parameters)
        best = int(np.argmax(scores))
        message = f"row {b} of length {length}"
        np.testing.assert_allclose(results["log_norm"][b], log_z, **TOLERANCE, err_msg=message)
        np.testing.assert_allclose(
            results["sequence_score"][b], label_score, **TOLERANCE, err_msg=message
        )
        np.testing.assert_allclose(
            results["log_likelihood"][b], label_score - log_z, **TOLERANCE, err_msg=message
        )
        np.testing.assert_array_equal(results["tags"][b, :length], paths[best], err_msg=message)
        np.testing.assert_array_equal(results["tags"][b, length:], 0, err_msg=message)
        np.testing.assert_allclose(results["best"][b], scores[best], **TOLERANCE, err_msg=message)
        np.testing.assert_allclose(
            results["decoded_score"][b], results["best"][b], **TOLERANCE, err_msg=message
        )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("num_tags", [2, 3, 5])
def test_every_length_equals_brute_force_and_padding_changes_nothing(num_tags, seed):
    potentials, tags, mask, lengths, parameters = _random_problem(num_tags, seed)
    results = _results(potentials, tags, mask, parameters)
    _check_against_brute_force(results, potentials, tags, lengths, parameters)
    # Other values at the padded steps (potentials and labels) give exactly the same results.
    rng = np.random.default_rng(100 + seed)
    other_potentials = np.where(
        mask[..., None], potentials, 10.0 * rng.normal(size=potentials.shape)
    ).astype("float32")
    other_tags = np.where(mask, tags, rng.integers(-1, num_tags, size=tags.shape)).astype("int32")
    other = _results(other_potentials, other_tags, mask, parameters)
    for key, value in results.items():
        np.testing.assert_array_equal(np.asarray(other[key]), np.asarray(value), err_msg=key)


def test_every_length_equals_brute_force_in_graph_mode_of_unknown_length():
    num_tags = 3
    potentials, tags, mask, lengths, parameters = _random_problem(num_tags, seed=2)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, None, num_tags)),
            tf.TensorSpec((None, None), tf.int32),
            tf.TensorSpec((None, None), tf.bool),
        ]
    )
    def graph_results(potentials, tags, mask):
        return _results(potentials, tags, mask, parameters)

    results = graph_results(potentials, tags, mask)
    _check_against_brute_force(results, potentials, tags, lengths, parameters)


def _randomize_crf(layer, rng):
    """Every weight of a built CRF layer random, away from its (zero or Glorot) initialiser."""
    names = set()
    for variable in layer.weights:
        variable.assign(rng.normal(size=tuple(variable.shape)).astype(variable.dtype))
        names.add(variable.path.split("/")[-1])
    return names


def test_layer_with_random_weights_equals_brute_force():
    num_tags, features = 3, 4
    rng = np.random.default_rng(3)
    _, tags, mask, lengths, _ = _random_problem(num_tags, seed=3)
    inputs = rng.normal(size=(TIME + 1, TIME, features)).astype("float32")
    layer = CRF(num_tags)
    layer.build(inputs.shape)
    names = _randomize_crf(layer, rng)
    assert names == {"kernel", "bias", "transitions", "start_transitions", "end_transitions"}
    potentials = np.asarray(inputs, "float64") @ np.asarray(layer.kernel) + np.asarray(layer.bias)
    parameters = tuple(
        np.asarray(w) for w in (layer.transitions, layer.start_transitions, layer.end_transitions)
    )
    np.testing.assert_allclose(
        np.asarray(layer.potentials(inputs)), potentials, rtol=1e-5, atol=1e-5
    )
    layer_potentials = layer.potentials(inputs)
    tags_out, best = layer.decode(layer_potentials, mask)
    results = {
        "log_norm": crf_log_norm(layer_potentials, mask, *parameters),
        "sequence_score": crf_sequence_score(layer_potentials, tags, mask, *parameters),
        "log_likelihood": layer.log_likelihood(layer_potentials, tags, mask),
        "tags": layer(inputs, mask=mask),
        "best": best,
        "decoded_score": crf_sequence_score(layer_potentials, tags_out, mask, *parameters),
    }
    np.testing.assert_array_equal(np.asarray(tags_out), np.asarray(results["tags"]))
    _check_against_brute_force(results, potentials, tags, lengths, parameters)


def test_no_mask_means_every_step_is_real():
    """mask=None equals an all-ones mask for the score, the partition, the likelihood and
    Viterbi (tags and best score), on a full-length random batch."""
    rng = np.random.default_rng(17)
    potentials = rng.normal(size=(3, TIME, 4)).astype("float32")
    tags = rng.integers(0, 4, size=(3, TIME))
    transitions, start, end = (rng.normal(size=shape).astype("float32") for shape in [(4, 4), 4, 4])
    ones = np.ones((3, TIME), bool)
    for function, arguments in [
        (crf_sequence_score, (potentials, tags)),
        (crf_log_norm, (potentials,)),
        (crf_log_likelihood, (potentials, tags)),
        (crf_decode, (potentials,)),
    ]:
        expected = function(*arguments, ones, transitions, start, end)
        actual = function(*arguments, None, transitions, start, end)
        for value, reference in zip(
            tf.nest.flatten(actual), tf.nest.flatten(expected), strict=True
        ):
            np.testing.assert_allclose(value, reference, **TOLERANCE, err_msg=function.__name__)
            assert value.shape == reference.shape and value.dtype == reference.dtype
