"""MinGRUCell and MinLSTMCell: the parallel scan against the step loop, numerics, serialization.

The reference is `keras.layers.RNN` running the same cell object step by step (its `call`),
so the scan in `rnn_keras.Recurrent` is checked against the cell's own step equation.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import rnn_keras  # noqa: E402
from rnn_keras import scans  # noqa: E402
from rnn_keras.cells.minimal import NormalizedInputGate  # noqa: E402
from tests.reference_cells import randomize_weights, right_padded_mask  # noqa: E402
from tests.saved_model_helpers import call_saved_model_in_fresh_process  # noqa: E402

CELLS = {"mingru": rnn_keras.MinGRUCell, "minlstm": rnn_keras.MinLSTMCell}
FEATURES, UNITS = 3, 4


def close(actual, expected, name, tolerance=1e-5):
    """Equal to `tolerance`, relative to the largest magnitude of the expected values."""
    expected = np.asarray(expected)
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(
        np.asarray(actual), expected, rtol=tolerance, atol=tolerance * scale, err_msg=name
    )


def results(layer, cell, sequences, mask, initial_state, training=False):
    """Outputs, final state and the gradients of a weighted loss wrt inputs, h0 and weights."""
    sequences = tf.convert_to_tensor(sequences)
    h0 = tf.convert_to_tensor(initial_state) if initial_state is not None else None
    with tf.GradientTape() as tape:
        tape.watch(sequences)
        if h0 is not None:
            tape.watch(h0)
        outputs, state = layer(
            sequences,
            initial_state=None if h0 is None else [h0],
            mask=mask,
            training=training,
        )
        weights = tf.range(1.0, outputs.shape[-1] + 1.0)
        loss = tf.reduce_sum(outputs * weights) + tf.reduce_sum(tf.sin(state))
    sources = [sequences] + ([h0] if h0 is not None else []) + list(cell.trainable_weights)
    return [outputs, state] + tape.gradient(loss, sources)


def compare_with_step_loop(
    kind, batch, time, lengths, with_h0, go_backwards, seed, return_sequences=True
):
    rng = np.random.default_rng(seed)
    cell = CELLS[kind](UNITS)
    options = {
        "return_sequences": return_sequences,
        "return_state": True,
        "go_backwards": go_backwards,
    }
    scanned = rnn_keras.Recurrent(cell, zero_output_for_mask=False, **options)
    stepped = keras.layers.RNN(cell, **options)
    sequences = rng.standard_normal((batch, time, FEATURES)).astype("float32")
    scanned(sequences)
    # Away from the initialisers (zero bias): every weight block shows.
    randomize_weights(cell, rng)
    mask = None if lengths is None else right_padded_mask(lengths, time)
    h0 = rng.standard_normal((batch, UNITS)).astype("float32") if with_h0 else None
    # Traced: an eager step loop over 2,000 steps would take minutes.
    # Training: with return_sequences=False the scan then returns its last state alone.
    actual = tf.function(results)(scanned, cell, sequences, mask, h0, training=True)
    expected = tf.function(results)(stepped, cell, sequences, mask, h0, training=True)
    names = (
        ["outputs", "state", "d_inputs"] + (["d_h0"] if with_h0 else []) + ["d_kernel", "d_bias"]
    )
    assert len(actual) == len(names)
    for name, value, reference in zip(names, actual, expected, strict=True):
        close(value, reference, f"{kind} {name}")
    return actual


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize(
    "lengths, with_h0, go_backwards",
    [(None, False, False), ([9, 4, 1], True, False), ([9, 6, 1], True, True), (None, True, True)],
    ids=["plain", "mask-h0", "mask-h0-backwards", "h0-backwards"],
)
def test_scan_equals_step_loop(kind, lengths, with_h0, go_backwards):
    compare_with_step_loop(kind, 3, 9, lengths, with_h0, go_backwards, seed=len(kind))


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("lengths", [None, [37, 20, 1]], ids=["plain", "mask"])
def test_last_state_alone_equals_step_loop(kind, lengths):
    """return_sequences=False (the scan's final-state path, padded: 37 steps) in training."""
    compare_with_step_loop(kind, 3, 37, lengths, True, False, seed=5, return_sequences=False)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_scan_equals_step_loop_over_2000_steps(kind):
    """Long sequences (not a power of two), masked, from an initial state of either sign."""
    compare_with_step_loop(kind, 2, 2000, [2000, 1237], True, False, seed=7)


def test_masked_steps_hold_the_state():
    """A row whose padding holds garbage ends with the state of its last real step."""
    rng = np.random.default_rng(3)
    cell = rnn_keras.MinGRUCell(UNITS)
    layer = rnn_keras.Recurrent(cell, return_state=True)
    sequences = rng.standard_normal((2, 8, FEATURES)).astype("float32")
    layer(sequences)
    randomize_weights(cell, rng)
    mask = right_padded_mask([8, 5], 8)
    _, state = layer(sequences, mask=mask)
    _, short_state = layer(sequences[1:, :5])
    close(state[1], short_state[0], "held state")


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_unknown_time_length_in_a_graph(kind):
    """`model.fit` traces (batch, None, features): the while-loop rounds give the eager values."""
    rng = np.random.default_rng(11)
    cell = CELLS[kind](UNITS)
    layer = rnn_keras.Recurrent(cell, return_sequences=True, return_state=True)
    sequences = rng.standard_normal((3, 13, FEATURES)).astype("float32")
    layer(sequences)
    randomize_weights(cell, rng)
    mask = right_padded_mask([13, 7, 2], 13)
    h0 = rng.standard_normal((3, UNITS)).astype("float32")

    def run(sequences, mask, h0):
        return results(layer, cell, sequences, mask, h0, training=True)

    traced = tf.function(
        run,
        input_signature=[
            tf.TensorSpec((None, None, FEATURES), tf.float32),
            tf.TensorSpec((None, None), tf.bool),
            tf.TensorSpec((None, UNITS), tf.float32),
        ],
    )
    for length in (13, 5, 1):
        expected = run(sequences[:, :length], mask[:, :length], h0)
        actual = traced(sequences[:, :length], mask[:, :length], h0)
        for index, (value, reference) in enumerate(zip(actual, expected, strict=True)):
            close(value, reference, f"{kind} length {length} result {index}")


def test_scan_pairs_runs_both_directions():
    """The scan on its own: prefixes forwards, suffixes backwards, against a loop."""
    rng = np.random.default_rng(5)
    a = rng.uniform(0.0, 1.0, (11, 2)).astype("float32")
    b = rng.standard_normal((11, 2)).astype("float32")
    forward, backward = np.zeros_like(b), np.zeros_like(b)
    h = np.zeros(2, "float32")
    for t in range(11):
        h = a[t] * h + b[t]
        forward[t] = h
    h = np.zeros(2, "float32")
    for t in reversed(range(11)):
        h = a[t] * h + b[t]
        backward[t] = h
    close(scans.scan_pairs(a, b), forward, "forward")
    close(scans.scan_pairs(a, b, reverse=True), backward, "backward")


# Each update gate with the plain formula its hand-written backward must match.
GATES = {
    "identity": (None, 1, lambda z: z[0]),
    "sigmoid": (scans.SigmoidGate(), 1, lambda k: tf.sigmoid(k[0])),
    "normalized": (
        NormalizedInputGate(),
        2,
        lambda k: tf.sigmoid(k[1]) / (tf.sigmoid(k[0]) + tf.sigmoid(k[1])),
    ),
}


@pytest.mark.parametrize("gate_name", list(GATES))
@pytest.mark.parametrize("last_only", [False, True], ids=["sequence", "last"])
@pytest.mark.parametrize("steps", [1, 15, 16, 17, 100, 53])
def test_gated_recurrence_equals_a_loop_with_its_gradients(steps, last_only, gate_name):
    """The fused chunked scan against a TensorFlow loop over time (autodiff) at lengths
    below, at and across the chunk length (53: padded), the whole sequence or its last
    state: states and the gradients of the gate's inputs, candidate and h0, with a random
    mask and candidates of both signs, for each update gate."""
    gate, width, formula = GATES[gate_name]
    rng = np.random.default_rng(steps)
    low = 0.0 if gate is None else -3.0
    inputs = [
        tf.constant(rng.uniform(low, 1.0, (steps, 2, 3)).astype("float32")) for _ in range(width)
    ]
    candidate = tf.constant(rng.normal(0.0, 2.0, (steps, 2, 3)).astype("float32"))
    h0 = tf.constant(rng.standard_normal((2, 3)).astype("float32"))
    mask = tf.constant(rng.integers(0, 2, (steps, 2, 1)).astype("float32"))
    weights = tf.constant(rng.standard_normal((steps, 2, 3)).astype("float32"))

    def looped(inputs, candidate, h0):
        g = tf.where(candidate >= 0, candidate + 0.5, tf.sigmoid(candidate))
        update = formula(inputs)
        h, states = h0, []
        for t in range(steps):
            z = update[t] * mask[t]
            h = (1.0 - z) * h + z * g[t]
            states.append(h)
        return states[-1] if last_only else tf.stack(states)

    def scanned(inputs, candidate, h0):
        chunk = scans.chunk_length(steps)
        blocks = [tf.unstack(scans.to_chunks(value, chunk)) for value in inputs]
        candidates, masks = (tf.unstack(scans.to_chunks(v, chunk)) for v in (candidate, mask))
        gate_inputs = list(zip(*blocks, strict=True))
        return scans.gated_recurrence(gate_inputs, candidates, h0, steps, masks, last_only, gate)

    def with_gradients(function):
        with tf.GradientTape() as tape:
            tape.watch([*inputs, candidate, h0])
            states = function(inputs, candidate, h0)
            loss = tf.reduce_sum(states * (weights[-1] if last_only else weights))
        return [states, *tape.gradient(loss, [*inputs, candidate, h0])]

    names = ["states", *[f"d_input{i}" for i in range(width)], "d_candidate", "d_h0"]
    expected = with_gradients(looped)
    for name, value, reference in zip(names, with_gradients(scanned), expected, strict=True):
        close(value, reference, f"{name} at {steps} steps")


def test_min_lstm_gates_stay_finite_where_f_plus_i_underflows():
    """The log-space normalisation: with f and i both ~exp(-200), f / (f + i) is still 1/2."""
    cell = rnn_keras.MinLSTMCell(1)
    # k_f, k_i = -200, -200 and -300, -310, then the candidate.
    projected = np.array([[-200.0, -200.0, 1.0], [-300.0, -310.0, -1.0]], "float32")
    forget, update = cell.coefficients(projected)
    np.testing.assert_allclose(forget, [[0.5], [1.0 / (1.0 + np.exp(-10.0))]], rtol=1e-6)
    # b = i' * g(h~): g(1) = 1.5, g(-1) = sigmoid(-1).
    expected_update = [[0.5 * 1.5], [1.0 / (1.0 + np.exp(10.0)) / (1.0 + np.e)]]
    np.testing.assert_allclose(update, expected_update, rtol=1e-5)


def test_min_gru_follows_the_paper_equations():
    """h = (1 - z) h + z g(h~), z = sigmoid(k), g(x) = x + 0.5 (x >= 0) or sigmoid(x)."""
    cell = rnn_keras.MinGRUCell(2)
    projected = np.array([[0.3, -2.0, 1.2, -0.7]], "float32")
    h = np.array([[0.5, -1.5]], "float32")
    output, _ = cell.recurrent_step(projected, [h])
    z = 1.0 / (1.0 + np.exp(-projected[0, :2]))
    candidate = np.array([1.2 + 0.5, 1.0 / (1.0 + np.exp(0.7))])
    np.testing.assert_allclose(output[0], (1.0 - z) * h[0] + z * candidate, rtol=1e-6)


def paper_equations(kind, sequences, kernel, bias, h0):
    """NumPy: the paper's minGRU / minLSTM over `(batch, time, features)` from the weights."""
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    g = lambda x: np.where(x >= 0, x + 0.5, sigmoid(x))  # noqa: E731
    blocks = np.split(sequences @ kernel + bias, 3 if kind == "minlstm" else 2, axis=-1)
    h, outputs = h0, []
    for t in range(sequences.shape[1]):
        if kind == "minlstm":
            f, i = sigmoid(blocks[0][:, t]), sigmoid(blocks[1][:, t])
            h = f / (f + i) * h + i / (f + i) * g(blocks[2][:, t])
        else:
            z = sigmoid(blocks[0][:, t])
            h = (1.0 - z) * h + z * g(blocks[1][:, t])
        outputs.append(h)
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_layer_follows_the_paper_equations_with_its_weights(kind):
    """The layer (scan) and the cell's step from the stored kernel and bias, against NumPy:
    the gate order (f, i, h) / (z, h) and the signs inside are the paper's."""
    rng = np.random.default_rng(21)
    cell = CELLS[kind](UNITS)
    layer = rnn_keras.Recurrent(cell, return_sequences=True)
    sequences = rng.standard_normal((2, 23, FEATURES)).astype("float32")
    h0 = rng.standard_normal((2, UNITS)).astype("float32")
    layer(sequences)
    randomize_weights(cell, rng, scale=1.0)
    expected = paper_equations(
        kind, sequences, cell.kernel.numpy(), cell.bias.numpy(), h0.astype("float64")
    )
    close(layer(sequences, initial_state=[h0]), expected, f"{kind} scan")
    state = h0
    for t in range(sequences.shape[1]):
        state, _ = cell(sequences[:, t], [state])
    close(state, expected[:, -1], f"{kind} step")


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_bidirectional_stack_equals_step_loops(kind):
    """`recurrent_layers(kind, bidirectional=True, num_layers=2)` against keras.layers.RNN loops
    over the same cells, the backward direction reversed back, as Bidirectional does."""
    rng = np.random.default_rng(21)
    sequences = rng.standard_normal((3, 10, FEATURES)).astype("float32")
    mask = right_padded_mask([10, 6, 3], 10)
    layers = rnn_keras.recurrent_layers(kind, UNITS, num_layers=2, bidirectional=True)

    def stacked():
        x = sequences
        for layer in layers:
            x = layer(x, mask=mask)
        return x

    stacked()
    for layer in layers:
        randomize_weights(layer.forward_layer.cell, rng)
        randomize_weights(layer.backward_layer.cell, rng)
    x = stacked()
    reference = sequences
    for index, layer in enumerate(layers):
        last = index == len(layers) - 1
        parts = []
        for direction, backwards in ((layer.forward_layer, False), (layer.backward_layer, True)):
            loop = keras.layers.RNN(
                direction.cell,
                return_sequences=not last,
                go_backwards=backwards,
                # Zeros at padded steps of sequences (as Bidirectional's inner layers give),
                # but the last real output, not a zero, as the final output.
                zero_output_for_mask=not last,
            )
            part = np.asarray(loop(reference, mask=mask))
            parts.append(np.flip(part, axis=1) if backwards and not last else part)
        reference = np.concatenate(parts, axis=-1)
    assert x.shape == (3, 2 * UNITS)
    close(x, reference, f"{kind} bidirectional stack")


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_config_round_trip_and_make_cell(kind):
    rng = np.random.default_rng(31)
    cell = rnn_keras.make_cell(kind, UNITS, dropout=0.2, use_bias=False, seed=4)
    assert isinstance(cell, CELLS[kind]) and rnn_keras.CELL_TYPES[kind] is CELLS[kind]
    layer = rnn_keras.Recurrent(cell, return_sequences=True, go_backwards=True)
    sequences = rng.standard_normal((2, 5, FEATURES)).astype("float32")
    layer(sequences)
    randomize_weights(cell, rng)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored.cell, CELLS[kind])
    config = restored.cell.get_config()
    assert (config["units"], config["dropout"], config["use_bias"]) == (UNITS, 0.2, False)
    restored(sequences)
    restored.set_weights(layer.get_weights())
    assert [w.path.split("/")[-1] for w in restored.cell.weights] == ["kernel"]
    close(restored(sequences), layer(sequences), f"{kind} restored")


def test_recurrent_dropout_is_refused_with_the_value():
    with pytest.raises(ValueError, match="recurrent_dropout=0.1"):
        rnn_keras.MinGRUCell(UNITS, recurrent_dropout=0.1)


def test_input_dropout_applies_in_training_only():
    rng = np.random.default_rng(41)
    layer = rnn_keras.Recurrent(rnn_keras.MinLSTMCell(UNITS, dropout=0.5, seed=1))
    sequences = rng.standard_normal((4, 6, FEATURES)).astype("float32")
    inference = layer(sequences)
    close(layer(sequences), inference, "inference is deterministic")
    assert np.max(np.abs(layer(sequences, training=True) - inference)) > 1e-3


def test_saved_model_of_each_min_cell_runs_in_a_fresh_tensorflow_process(tmp_path):
    """Masked, variable-length inputs through both cells; served by plain TensorFlow."""
    rng = np.random.default_rng(51)
    inputs = keras.Input((None, FEATURES), name="sequences")
    masked = keras.layers.Masking(0.0)(inputs)
    layers = {
        "mingru": rnn_keras.Recurrent(rnn_keras.MinGRUCell(UNITS), return_sequences=True),
        "minlstm": keras.layers.Bidirectional(rnn_keras.Recurrent(rnn_keras.MinLSTMCell(UNITS))),
    }
    model = keras.Model(inputs, {name: layer(masked) for name, layer in layers.items()})
    for layer in model.layers:
        for inner in (
            (layer.forward_layer, layer.backward_layer)
            if hasattr(layer, "forward_layer")
            else (layer,)
        ):
            if hasattr(inner, "cell"):
                randomize_weights(inner.cell, rng)
    sequences = rng.standard_normal((3, 37, FEATURES)).astype("float32")
    sequences[right_padded_mask([37, 20, 5], 37) == 0] = 0.0
    expected = {name: np.asarray(value) for name, value in model(sequences).items()}
    assert np.all(expected["mingru"][1, 20:] == 0.0)
    export_dir = tmp_path / "export"
    model.export(str(export_dir), format="tf_saved_model", verbose=False)
    served = call_saved_model_in_fresh_process(export_dir, {"sequences": sequences})
    assert sorted(served) == sorted(expected)
    for name, value in expected.items():
        close(served[name], value, name)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_no_time_loop_in_the_traced_graph(kind):
    """A static length runs as Python-unrolled scan rounds: no While op, forward or backward."""
    cell = CELLS[kind](UNITS)
    layer = rnn_keras.Recurrent(cell, return_sequences=True)
    sequences = np.zeros((2, 64, FEATURES), "float32")
    layer(sequences)

    def loss(sequences):
        with tf.GradientTape() as tape:
            tape.watch(sequences)
            value = tf.reduce_sum(layer(sequences, training=True))
        return tape.gradient(value, [sequences, *cell.trainable_weights])

    graph = tf.function(loss).get_concrete_function(tf.constant(sequences)).graph
    operations = {operation.type for operation in graph.get_operations()}
    assert not operations & {"While", "StatelessWhile"}
    # The same check sees the loop of a standard cell.
    gru = rnn_keras.Recurrent(rnn_keras.GRUCell(UNITS), return_sequences=True)
    graph = tf.function(gru).get_concrete_function(tf.constant(sequences)).graph
    assert {operation.type for operation in graph.get_operations()} & {"While", "StatelessWhile"}


def test_min_lstm_gate_and_its_gradient_equal_the_log_space_form_everywhere():
    """i' from scaled exponentials equals float64 sigmoid(softplus(-k_f) - softplus(-k_i)),
    and so do its hand-written gradients (the scan's) and Keras's autodiff of its forward
    pass (the step's), over and beyond float32's exponent range."""
    grid = np.array([-300.0, -90.0, -20.0, -1.0, 0.0, 0.5, 3.0, 20.0, 90.0, 300.0])
    k_forget, k_input = (g.ravel() for g in np.meshgrid(grid, grid))
    u = tf.constant(k_forget, "float32")
    v = tf.constant(k_input, "float32")
    weights = tf.constant(np.linspace(0.5, 2.0, u.shape[0]), "float32")
    gate = NormalizedInputGate()
    with tf.GradientTape() as tape:
        tape.watch([u, v])
        update, saved = gate.forward(u, v)
        loss = tf.reduce_sum(update * weights)
    autodiff = tape.gradient(loss, [u, v])
    by_hand = gate.backward(weights, update, 1.0 - update, saved)
    expected = 1.0 / (1.0 + np.exp(np.logaddexp(0, -k_input) - np.logaddexp(0, -k_forget)))
    slope = expected * (1.0 - expected) * weights.numpy()
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(update, expected, rtol=1e-5, atol=1e-30)
    for name, (d_u, d_v) in {"by hand": by_hand, "autodiff": autodiff}.items():
        assert np.all(np.isfinite(d_u)) and np.all(np.isfinite(d_v)), name
        # Gradients below 1e-7 round to 0 where i' rounds to 1 in float32 (as autodiff of
        # the softplus form does too): an absolute tolerance there.
        np.testing.assert_allclose(
            d_u, -slope * sigmoid(-k_forget), rtol=1e-4, atol=1e-7, err_msg=name
        )
        np.testing.assert_allclose(
            d_v, slope * sigmoid(-k_input), rtol=1e-4, atol=1e-7, err_msg=name
        )
