"""The cuDNN path (rnn_keras.cudnn): eligibility rules, and on a CPU the delegated call forced
on and compared with the general path (outputs, states, gradients; masks, go_backwards).

On a CPU Keras's LSTM / GRU run their own loop where a GPU would run cuDNN, so these tests
check everything but the cuDNN kernel itself: the variables handed over, their layout, the
initial states, masks, directions and output conventions.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import rnn_keras  # noqa: E402
from rnn_keras import cudnn  # noqa: E402
from tests.reference_cells import randomize_weights, right_padded_mask  # noqa: E402

FEATURES, UNITS = 3, 4


@pytest.mark.parametrize(
    "cell, training, eligible",
    [
        (rnn_keras.LSTMCell(4), True, True),
        (rnn_keras.GRUCell(4), True, True),
        (rnn_keras.LSTMCell(4, unit_forget_bias=False, dropout=0.3), True, True),
        (rnn_keras.LSTMCell(4, peephole=True), False, False),
        (rnn_keras.LSTMCell(4, layer_norm=True), False, False),
        (rnn_keras.LSTMCell(4, recurrent_dropout=0.2), True, False),
        (rnn_keras.LSTMCell(4, recurrent_dropout=0.2), False, True),
        (rnn_keras.GRUCell(4, recurrent_dropout=0.2), True, False),
        (rnn_keras.GRUCell(4, reset_after=False), False, False),
        (rnn_keras.GRUCell(4, use_bias=False), False, False),
        (rnn_keras.LSTMCell(4, activation="relu"), False, False),
        (rnn_keras.GRUCell(4, recurrent_activation="hard_sigmoid"), False, False),
        (rnn_keras.ElmanCell(4), False, False),
        (rnn_keras.MinGRUCell(4), False, False),
    ],
)
def test_eligibility_rules(cell, training, eligible):
    assert cudnn.keras_layer_eligible(cell, training) is eligible


def test_subclasses_and_keras_cells_are_never_eligible():
    class Custom(rnn_keras.LSTMCell):
        pass

    assert not cudnn.keras_layer_eligible(Custom(4), False)
    assert not cudnn.keras_layer_eligible(tf.keras.layers.LSTMCell(4), False)


def test_the_default_path_on_this_cpu_is_the_general_one():
    layer = rnn_keras.Recurrent(rnn_keras.LSTMCell(UNITS))
    assert cudnn.gpu_available() is False
    assert not layer._takes_keras_layer(training=True)
    layer._keras_layer_path = True
    assert layer._takes_keras_layer(training=True)
    peephole = rnn_keras.Recurrent(rnn_keras.LSTMCell(UNITS, peephole=True))
    peephole._keras_layer_path = True
    assert not peephole._takes_keras_layer(training=False)


@pytest.mark.parametrize(
    "mask, expected",
    [
        ([[1, 1, 0], [1, 0, 0]], True),
        ([[1, 1, 1], [1, 1, 1]], True),
        ([[1, 0, 1], [1, 1, 1]], False),
        ([[1, 1, 0], [0, 0, 0]], False),
        ([[0, 1, 1], [1, 1, 1]], False),
    ],
)
def test_mask_suits_cudnn(mask, expected):
    assert bool(cudnn.mask_suits_cudnn(np.array(mask, bool))) is expected


def run(layer, cell, sequences, mask, h0, training=True):
    sequences = tf.convert_to_tensor(sequences)
    h0 = [tf.convert_to_tensor(state) for state in h0]
    with tf.GradientTape() as tape:
        tape.watch([sequences, *h0])
        output, *states = layer(sequences, initial_state=h0, mask=mask, training=training)
        weights = tf.range(1.0, output.shape[-1] + 1.0)
        loss = tf.reduce_sum(output * weights) + sum(tf.reduce_sum(tf.sin(s)) for s in states)
    gradients = tape.gradient(loss, [sequences, *h0, *cell.trainable_weights])
    return [output, *states, *gradients]


CASES = [
    ("lstm", None, False, True, True),
    ("lstm", [7, 4, 2], False, True, True),
    ("lstm", [7, 4, 2], True, True, False),
    ("gru", [7, 5, 1], False, False, True),
    ("gru", [7, 2, 5], False, True, False),
    ("gru", [7, 3, 7], True, True, True),
    ("gru", None, True, False, False),
]


@pytest.mark.parametrize(
    "kind, lengths, go_backwards, return_sequences, zero_output_for_mask",
    CASES,
    ids=[
        f"{c[0]}-{'mask' if c[1] else 'nomask'}-{'back' if c[2] else 'fwd'}-{i}"
        for i, c in enumerate(CASES)
    ],
)
def test_keras_layer_path_equals_general_path(
    kind, lengths, go_backwards, return_sequences, zero_output_for_mask
):
    rng = np.random.default_rng(len(CASES) + (lengths or [0])[-1])
    cell = rnn_keras.make_cell(kind, UNITS, dropout=0.0)
    layer = rnn_keras.Recurrent(
        cell,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
    )
    sequences = rng.standard_normal((3, 7, FEATURES)).astype("float32")
    layer(sequences)
    randomize_weights(cell, rng)
    mask = None if lengths is None else right_padded_mask(lengths, 7)
    h0 = [rng.standard_normal((3, UNITS)).astype("float32") for _ in cell.get_initial_state(3)]
    layer._keras_layer_path = False
    expected = run(layer, cell, sequences, mask, h0)
    layer._keras_layer_path = True
    actual = run(layer, cell, sequences, mask, h0)
    assert len(actual) == len(expected)
    for index, (value, reference) in enumerate(zip(actual, expected, strict=True)):
        np.testing.assert_allclose(value, reference, rtol=1e-5, atol=1e-5, err_msg=str(index))


def test_keras_layer_path_hands_over_the_cells_variables_without_copies():
    """The delegated call must read (and differentiate) the cell's own variables."""
    rng = np.random.default_rng(2)
    cell = rnn_keras.GRUCell(UNITS)
    layer = rnn_keras.Recurrent(cell)
    sequences = rng.standard_normal((2, 5, FEATURES)).astype("float32")
    layer(sequences)
    layer._keras_layer_path = True
    before = np.asarray(layer(sequences))
    cell.bias.assign(cell.bias + 1.0)
    assert np.max(np.abs(np.asarray(layer(sequences)) - before)) > 1e-3
    assert len(layer.weights) == 3


def test_a_mask_cudnn_refuses_takes_the_general_path():
    """A row without real steps (cuDNN asserts on it) still gives Recurrent's answer."""
    rng = np.random.default_rng(4)
    cell = rnn_keras.LSTMCell(UNITS)
    layer = rnn_keras.Recurrent(cell, return_sequences=True)
    sequences = rng.standard_normal((2, 5, FEATURES)).astype("float32")
    mask = right_padded_mask([5, 0], 5)
    layer(sequences)
    randomize_weights(cell, rng)
    expected = np.asarray(layer(sequences, mask=mask))
    layer._keras_layer_path = True
    np.testing.assert_allclose(layer(sequences, mask=mask), expected, rtol=1e-5, atol=1e-5)
    assert np.all(expected[1] == 0.0)
