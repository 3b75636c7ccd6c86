"""Final states at inference: loops that carry only the states, with hand-written gradients.

Inference without the output sequence needs no per-step outputs, so these
loops (`keras.ops.fori_loop`) collect nothing, where `keras.ops.scan` would
write every state of every step to a TensorArray and stack them afterwards.
They also compute x_t W + b inside the loop, where it overlaps the recurrent
product of the step before.
"""

from keras import ops

from rnn_keras.kernels import (
    ACTIVATIONS,
    elman_kernel,
    gru_kernel,
    gru_reset_before_kernel,
    lstm_kernel,
)
from rnn_keras.loops import column_sums, keep_masked, zeros_if_none


def final_states(
    step, sequence_kernel, inputs, kernel, bias, initial, weights, mask, bias_in_product=False
):
    """Final states of a cell run over `inputs`, with x_t W + b computed inside the loop.

    The loop carries only the states and collects nothing (inference without the
    output sequence). It reads `inputs` by slicing, whose automatic gradient
    would be a whole-sequence tensor at every step; so the gradient is written
    by hand instead: the fused training kernel `sequence_kernel` (its forward
    pass and gradient, as `lstm_kernel` returns) runs again on the hoisted
    projection, and its gradient for the projection gives those of the inputs,
    `kernel` and `bias`. The steps below take the weights as tensors rather
    than calling the cell's `recurrent_step`, which reads its variables: a
    custom gradient has to receive everything it differentiates as inputs.

    Args:
        step: `(projected_t, states, *weights) -> new states`.
        sequence_kernel: `(projected, *initial, *weights[, mask]) -> (sequences, grad)`.
        inputs: `(time, batch, features)`; kernel `(features, width)`; bias `(width,)`.
        initial: list of `(batch, units)` states; weights: the recurrent weights.
        mask: `(time, batch, 1)` float mask or None.
        bias_in_product: compute x_t [W; b] with the bias as an input feature fixed
            at 1, one operation fewer per step than x_t W + b. Measured faster for the
            LSTM in every run; for the GRU faster or slower from run to run
            (`benchmarks/lstm_inference.py`), so it keeps x_t W + b.
    """
    has_mask = mask is not None
    count, weight_count = len(initial), len(weights)

    def final(inputs, kernel, bias, *rest):
        states = list(rest[:count])
        weights = list(rest[count : count + weight_count])
        mask = rest[-1] if has_mask else None

        if bias_in_product:
            ones = ops.ones((*ops.shape(inputs)[:-1], 1), dtype=inputs.dtype)
            inputs_and_one = ops.concatenate([inputs, ones], axis=-1)
            kernel_and_bias = ops.concatenate([kernel, ops.expand_dims(bias, 0)], axis=0)

        def project(index):
            if bias_in_product:
                return ops.matmul(inputs_and_one[index], kernel_and_bias)
            return ops.matmul(inputs[index], kernel) + bias

        def body(index, carry):
            new = step(project(index), list(carry), *weights)
            if has_mask:
                new = [
                    keep_masked(state, old, mask[index])
                    for state, old in zip(new, carry, strict=True)
                ]
            return tuple(new)

        steps = inputs.shape[0] if inputs.shape[0] is not None else ops.shape(inputs)[0]
        finals = ops.fori_loop(0, steps, body, tuple(states))

        def grad(*upstream):
            projected = ops.matmul(inputs, kernel) + bias
            extra = [mask] if has_mask else []
            sequences, sequence_grad = sequence_kernel(projected, *states, *weights, *extra)
            sequences = sequences if isinstance(sequences, (list, tuple)) else [sequences]
            # Only the last step of each state sequence reaches the final states.
            d_sequences = [
                ops.concatenate(
                    [ops.zeros_like(sequence[:-1]), zeros_if_none(d, sequence[-1])[None]], axis=0
                )
                for sequence, d in zip(sequences, upstream, strict=True)
            ]
            grads = sequence_grad(*d_sequences)
            d_projected = grads[0]
            width = ops.shape(d_projected)[-1]
            flat_inputs = ops.reshape(inputs, (-1, ops.shape(inputs)[-1]))
            flat_d = ops.reshape(d_projected, (-1, width))
            d_inputs = ops.reshape(ops.matmul(flat_d, ops.transpose(kernel)), ops.shape(inputs))
            d_kernel = ops.matmul(ops.transpose(flat_inputs), flat_d)
            return [d_inputs, d_kernel, column_sums(d_projected), *grads[1:]]

        return tuple(finals), grad

    tensors = [inputs, kernel, bias, *initial, *weights] + ([mask] if has_mask else [])
    return list(ops.custom_gradient(final)(*tensors))


def _lstm_step(projected, states, recurrent_kernel):
    # One sigmoid per gate: one over all four blocks was faster on an idle host and
    # slower where the host stole CPU time (`benchmarks/lstm_inference.py`).
    h, c = states
    i, f, g, o = ops.split(projected + ops.matmul(h, recurrent_kernel), 4, axis=-1)
    c_new = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return [ops.sigmoid(o) * ops.tanh(c_new), c_new]


def lstm_final_states(inputs, kernel, bias, h0, c0, recurrent_kernel, mask=None):
    """Final `[h, c]` of an LSTM over `(time, batch, features)` inputs (see `final_states`)."""
    sequence_kernel = lstm_kernel(mask is not None, False)
    return final_states(
        _lstm_step,
        sequence_kernel,
        inputs,
        kernel,
        bias,
        [h0, c0],
        [recurrent_kernel],
        mask,
        bias_in_product=True,
    )


def _gru_step(projected, states, recurrent_kernel, candidate_bias):
    (h,) = states
    x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
    r_z, r_r, r_h = ops.split(ops.matmul(h, recurrent_kernel), 3, axis=-1)
    z = ops.sigmoid(x_z + r_z)
    candidate = ops.tanh(x_h + ops.sigmoid(x_r + r_r) * (r_h + candidate_bias))
    return [candidate + z * (h - candidate)]


def gru_final_states(inputs, kernel, bias, h0, recurrent_kernel, candidate_bias, mask=None):
    """Final `[h]` of a GRU (`reset_after=True`, with biases) over `(time, batch, features)`.

    `bias` holds the z and r parts of the recurrent bias too; `candidate_bias`
    is its h part (see `kernels.gru_sequence`).
    """
    sequence_kernel = gru_kernel(mask is not None, False, True)
    return final_states(
        _gru_step,
        sequence_kernel,
        inputs,
        kernel,
        bias,
        [h0],
        [recurrent_kernel, candidate_bias],
        mask,
    )


def _gru_reset_before_step(projected, states, recurrent_kernel):
    (h,) = states
    units = ops.shape(h)[1]
    x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
    r_z, r_r = ops.split(ops.matmul(h, recurrent_kernel[:, : 2 * units]), 2, axis=-1)
    z = ops.sigmoid(x_z + r_z)
    reset = ops.sigmoid(x_r + r_r) * h
    candidate = ops.tanh(x_h + ops.matmul(reset, recurrent_kernel[:, 2 * units :]))
    return [candidate + z * (h - candidate)]


def gru_reset_before_final_states(inputs, kernel, bias, h0, recurrent_kernel, mask=None):
    """Final `[h]` of a GRU (`reset_after=False`, with a bias) over `(time, batch, features)`."""
    sequence_kernel = gru_reset_before_kernel(mask is not None, False)
    return final_states(
        _gru_reset_before_step,
        sequence_kernel,
        inputs,
        kernel,
        bias,
        [h0],
        [recurrent_kernel],
        mask,
    )


def elman_final_states(inputs, kernel, bias, h0, recurrent_kernel, activation, mask=None):
    """Final `[h]` of an Elman network over `(time, batch, features)` (see `final_states`)."""
    activation_fn = ACTIVATIONS[activation]

    def step(projected, states, recurrent_kernel):
        return [activation_fn(projected + ops.matmul(states[0], recurrent_kernel))]

    sequence_kernel = elman_kernel(activation, mask is not None, False)
    return final_states(step, sequence_kernel, inputs, kernel, bias, [h0], [recurrent_kernel], mask)
