"""Whole-sequence recurrences with hand-written backward passes (BPTT).

Automatic differentiation of a time loop records every intermediate of every
step and replays them one by one; on a CPU that bookkeeping, not the
arithmetic, dominates (see DESIGN.md, "Speed facts"). These kernels do what
cuDNN does instead: the forward loop keeps only the activated gates, the
backward loop does one matrix product per step, and the weight gradients are
single large matrix products over all time steps afterwards.

All tensors are time-major: projected inputs `(time, batch, width)`, masks
`(time, batch, 1)` as floats, recurrent dropout masks `(batch, units)`.
Each kernel returns the per-step state sequences, `(time, batch, units)`.
"""

from keras import ops

# Iterations the TensorFlow loop may run ahead (`tf.while_loop`'s
# parallel_iterations): lets the writes of step t overlap the product of step
# t + 1, as Keras's own RNN loop does.
LOOP_PARALLELISM = 32


def scan(step, initial, inputs, reverse=False):
    """`keras.ops.scan` with the loop parallelism above, for one or several sequences.

    For loops that automatic differentiation goes through: keras.ops.scan
    reads the sequences from TensorFlow TensorArrays, whose gradient is one
    write per step. On TensorFlow, `keras.ops.scan` over several sequences
    fails while tracing when their length is unknown (it compares static
    lengths that are None). Those sequences, all `(time, batch, width)`, then
    travel as one tensor concatenated along the last axis and are split again
    inside the step.
    """
    sequences = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(sequences) == 1 or sequences[0].shape[0] is not None:
        return ops.scan(step, initial, inputs, reverse=reverse, unroll=LOOP_PARALLELISM)
    widths = [sequence.shape[-1] for sequence in sequences]
    if any(width is None for width in widths):
        raise ValueError(f"Scanned sequences need static widths. Received widths {widths}.")
    dtype = sequences[0].dtype
    packed = ops.concatenate([ops.cast(sequence, dtype) for sequence in sequences], axis=-1)
    bounds = [sum(widths[:index]) for index in range(len(widths) + 1)]

    def packed_step(carry, packed_t):
        parts = [
            packed_t[..., start:stop] for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return step(carry, type(inputs)(parts))

    return ops.scan(packed_step, initial, packed, reverse=reverse, unroll=LOOP_PARALLELISM)


def sliced_scan(step, initial, inputs, reverse=False):
    """`scan` for loops that automatic differentiation never goes through.

    The loop runs over the step index and slices the sequences itself: a
    slice along the first axis is a view, while `keras.ops.scan` would first
    copy every sequence into a TensorArray. Only for the loops inside the
    kernels' custom gradients: differentiated, each slice's gradient would be
    a zero tensor the size of the whole sequence, at every step.
    """
    sequences = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    steps = sequences[0].shape[0]
    steps = ops.shape(sequences[0])[0] if steps is None else steps

    def indexed_step(carry, index):
        sliced = [sequence[index] for sequence in sequences]
        return step(carry, type(inputs)(sliced) if isinstance(inputs, (list, tuple)) else sliced[0])

    return ops.scan(
        indexed_step, initial, ops.arange(steps), reverse=reverse, unroll=LOOP_PARALLELISM
    )


# The activations of the Elman kernel, and each one's derivative written in
# terms of its output y = act(a).
ACTIVATIONS = {
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "relu": ops.relu,
    "linear": lambda a: a,
}
ACTIVATION_DERIVATIVES = {
    "tanh": lambda y: 1.0 - y * y,
    "sigmoid": lambda y: y * (1.0 - y),
    "relu": lambda y: ops.cast(y > 0, y.dtype),
    "linear": lambda y: ops.ones_like(y),
}


def column_sums(values):
    """Sum of `(..., width)` over all leading axes, as a `(1, rows) x (rows, width)` product.

    On a CPU, TensorFlow's reduction over the rows of a tall matrix is
    slower than this matrix product.
    """
    flat = ops.reshape(values, (-1, ops.shape(values)[-1]))
    ones = ops.ones((1, ops.shape(flat)[0]), dtype=flat.dtype)
    return ops.reshape(ops.matmul(ones, flat), (-1,))


def add_bias(values, bias):
    """`values + bias` over the last axis; the bias gradient is `column_sums`."""

    @ops.custom_gradient
    def add(values, bias):
        def grad(upstream):
            return upstream, column_sums(upstream)

        return values + bias, grad

    return add(values, ops.copy(bias))


def _previous(sequence, initial):
    """The sequence shifted one step later: [initial, s_0, ..., s_{T-2}]."""
    return ops.concatenate([ops.expand_dims(initial, 0), sequence[:-1]], axis=0)


def _flat_matmul_transposed(left, right):
    """sum_t left_t^T right_t for time-major (T, B, m) and (T, B, n): one GEMM."""
    left = ops.reshape(left, (-1, ops.shape(left)[-1]))
    right = ops.reshape(right, (-1, ops.shape(right)[-1]))
    return ops.matmul(ops.transpose(left), right)


def _recurrent_kernel_gradient(hs, h0, deltas, recurrent_mask=None):
    """sum_t h_{t-1}^T deltas_t (h_{-1} = h0), from views of `hs` rather than a shifted copy."""
    earlier = hs[:-1]
    if recurrent_mask is not None:
        earlier, h0 = earlier * recurrent_mask, h0 * recurrent_mask
    return _flat_matmul_transposed(earlier, deltas[1:]) + ops.matmul(ops.transpose(h0), deltas[0])


def _keep_masked(new, old, mask_t):
    """Where the mask is 0 the state carries over unchanged."""
    return old + mask_t * (new - old)


def _zeros_if_none(gradient, like):
    return ops.zeros_like(like) if gradient is None else gradient


def lstm_sequence(projected, h0, c0, recurrent_kernel, mask=None, recurrent_mask=None):
    """LSTM over a sequence (gate order i, f, c, o; sigmoid gates, tanh cell).

    Returns `[hs, cs]`, each `(time, batch, units)`.
    """
    has_mask = mask is not None
    has_dropout = recurrent_mask is not None
    tensors = [projected, h0, c0, recurrent_kernel]
    tensors += [mask] if has_mask else []
    tensors += [recurrent_mask] if has_dropout else []
    hs, cs = ops.custom_gradient(_lstm_kernel(has_mask, has_dropout))(*tensors)
    return [hs, cs]


def _lstm_kernel(has_mask, has_dropout):
    """lstm_sequence's forward pass and hand-written gradient, for `ops.custom_gradient`."""

    def kernel(*args):
        projected, h0, c0, recurrent_kernel = args[:4]
        mask = args[4] if has_mask else None
        recurrent_mask = args[-1] if has_dropout else None

        def step(carry, inputs):
            h, c, _ = carry
            z_t = inputs[0] if has_mask else inputs
            h_in = h * recurrent_mask if has_dropout else h
            i, f, g, o = ops.split(z_t + ops.matmul(h_in, recurrent_kernel), 4, axis=-1)
            i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
            c_new = f * c + i * g
            h_new = o * ops.tanh(c_new)
            if has_mask:
                h_new = _keep_masked(h_new, h, inputs[1])
                c_new = _keep_masked(c_new, c, inputs[1])
            gates = ops.concatenate([i, f, g, o], axis=-1)
            return (h_new, c_new, gates), (h_new, c_new, gates)

        xs = (projected, mask) if has_mask else projected
        _, (hs, cs, gates) = sliced_scan(step, (h0, c0, ops.zeros_like(projected[0])), xs)

        def grad(*upstream):
            d_hs = _zeros_if_none(upstream[0], hs)
            d_cs = upstream[1] if len(upstream) > 1 else None
            has_d_cs = d_cs is not None
            transposed_kernel = ops.transpose(recurrent_kernel)

            # The gate derivatives are computed inside the loop, step by step:
            # the same arithmetic over whole (time, batch, 4 * units) tensors
            # would allocate and stream a dozen of them through memory, which
            # costs more on a CPU than the arithmetic itself.
            def back_step(carry, inputs):
                # dz of step t + 1 travels in the carry; its product with the
                # kernel opens step t, so that the loop outputs only dz.
                dz_next, dc_next = carry[:2]
                d_h_t, gates_t, c_t, c_prev_t = inputs[:4]
                dh_from_next = ops.matmul(dz_next, transposed_kernel)
                if has_dropout:
                    dh_from_next = dh_from_next * recurrent_mask
                dh = d_h_t + dh_from_next
                dc = dc_next + inputs[4] if has_d_cs else dc_next
                if has_mask:
                    # Masked steps pass the state through, and its gradient back.
                    dh = dh + carry[2]
                    m_t = inputs[-1]
                    dh_new, dc_in = dh * m_t, dc * m_t
                else:
                    dh_new, dc_in = dh, dc
                i, f, g, o = ops.split(gates_t, 4, axis=-1)
                tanh_c = ops.tanh(c_t)
                dh_o = dh_new * o
                dc_new = dc_in + dh_o * (1.0 - tanh_c * tanh_c)
                dc_i = dc_new * i
                dz = ops.concatenate(
                    [
                        dc_i * g * (1.0 - i),
                        dc_new * c_prev_t * f * (1.0 - f),
                        dc_i * (1.0 - g * g),
                        dh_o * tanh_c * (1.0 - o),
                    ],
                    axis=-1,
                )
                dc_prev = dc_new * f
                if not has_mask:
                    return (dz, dc_prev), (dz, dc_prev)
                carry = (dz, dc_prev + (dc - dc_in), dh - dh_new)
                return carry, carry

            xs = [d_hs, gates, cs, _previous(cs, c0)]
            xs += [d_cs] if has_d_cs else []
            xs += [mask] if has_mask else []
            initial = (ops.zeros_like(projected[0]), ops.zeros_like(c0))
            initial += (ops.zeros_like(h0),) if has_mask else ()
            final, outputs = sliced_scan(back_step, initial, tuple(xs), reverse=True)
            d_projected, dc0 = outputs[0], final[1]
            dh0 = ops.matmul(final[0], transposed_kernel)
            if has_dropout:
                dh0 = dh0 * recurrent_mask
            if has_mask:
                dh0 = dh0 + final[2]
            d_kernel = _recurrent_kernel_gradient(hs, h0, d_projected, recurrent_mask)
            grads = [d_projected, dh0, dc0, d_kernel]
            grads += [ops.zeros_like(mask)] if has_mask else []
            grads += [ops.zeros_like(recurrent_mask)] if has_dropout else []
            return grads

        return (hs, cs), grad

    return kernel


def gru_sequence(projected, h0, recurrent_kernel, recurrent_bias, mask=None, recurrent_mask=None):
    """GRU over a sequence, Keras's `reset_after=True` form (gate order z, r, h).

    h~ = tanh(x_h + r * (h U_h + b_h)); h_new = z * h + (1 - z) * h~.
    `recurrent_bias` may be None. Returns `[hs]`.
    """
    has_mask = mask is not None
    has_dropout = recurrent_mask is not None
    has_bias = recurrent_bias is not None
    tensors = [projected, h0, recurrent_kernel]
    tensors += [recurrent_bias] if has_bias else []
    tensors += [mask] if has_mask else []
    tensors += [recurrent_mask] if has_dropout else []
    return [ops.custom_gradient(_gru_kernel(has_mask, has_dropout, has_bias))(*tensors)]


def _gru_kernel(has_mask, has_dropout, has_bias):
    """gru_sequence's forward pass and hand-written gradient, for `ops.custom_gradient`."""

    def kernel(*args):
        projected, h0, recurrent_kernel = args[:3]
        position = 3
        recurrent_bias = args[position] if has_bias else None
        position += int(has_bias)
        mask = args[position] if has_mask else None
        recurrent_mask = args[-1] if has_dropout else None

        def step(carry, inputs):
            h, _ = carry
            x_t = inputs[0] if has_mask else inputs
            h_in = h * recurrent_mask if has_dropout else h
            recurrent = ops.matmul(h_in, recurrent_kernel)
            if has_bias:
                recurrent = recurrent + recurrent_bias
            x_z, x_r, x_h = ops.split(x_t, 3, axis=-1)
            r_z, r_r, r_h = ops.split(recurrent, 3, axis=-1)
            z = ops.sigmoid(x_z + r_z)
            r = ops.sigmoid(x_r + r_r)
            candidate = ops.tanh(x_h + r * r_h)
            h_new = candidate + z * (h - candidate)
            if has_mask:
                h_new = _keep_masked(h_new, h, inputs[1])
            saved = ops.concatenate([z, r, candidate, r_h], axis=-1)
            return (h_new, saved), (h_new, saved)

        xs = (projected, mask) if has_mask else projected
        initial_saved = ops.zeros((ops.shape(h0)[0], 4 * ops.shape(h0)[1]), dtype=h0.dtype)
        _, (hs, saved) = sliced_scan(step, (h0, initial_saved), xs)

        def grad(*upstream):
            d_hs = _zeros_if_none(upstream[0], hs)
            h_prev = _previous(hs, h0)
            transposed_kernel = ops.transpose(recurrent_kernel)

            # As in lstm_sequence: gate derivatives step by step, and the
            # recurrent gradient of step t + 1 multiplied by the kernel at the
            # start of step t. `dh_direct` is the path through z * h_{t-1}.
            def back_step(carry, inputs):
                d_recurrent_next, dh_direct, _ = carry
                d_h_t, saved_t, h_prev_t = inputs[:3]
                dh_from_next = ops.matmul(d_recurrent_next, transposed_kernel)
                if has_dropout:
                    dh_from_next = dh_from_next * recurrent_mask
                dh = d_h_t + dh_from_next + dh_direct
                dh_new = dh * inputs[3] if has_mask else dh
                z, r, candidate, r_h = ops.split(saved_t, 4, axis=-1)
                d_candidate = dh_new * (1.0 - z) * (1.0 - candidate * candidate)
                d_z = dh_new * (h_prev_t - candidate) * z * (1.0 - z)
                d_r = d_candidate * r_h * r * (1.0 - r)
                d_projected = ops.concatenate([d_z, d_r, d_candidate], axis=-1)
                d_recurrent = ops.concatenate([d_z, d_r, d_candidate * r], axis=-1)
                dh_direct = dh_new * z
                if has_mask:
                    dh_direct = dh_direct + (dh - dh_new)
                carry = (d_recurrent, dh_direct, d_projected)
                return carry, carry

            xs = [d_hs, saved, h_prev] + ([mask] if has_mask else [])
            zeros_wide = ops.zeros_like(projected[0])
            initial = (zeros_wide, ops.zeros_like(h0), zeros_wide)
            final, (d_recurrents, _, d_projected) = sliced_scan(
                back_step, initial, tuple(xs), reverse=True
            )
            dh0 = ops.matmul(final[0], transposed_kernel)
            if has_dropout:
                dh0 = dh0 * recurrent_mask
            dh0 = dh0 + final[1]
            h_in = h_prev * recurrent_mask if has_dropout else h_prev
            grads = [d_projected, dh0, _flat_matmul_transposed(h_in, d_recurrents)]
            if has_bias:
                grads.append(column_sums(d_recurrents))
            grads += [ops.zeros_like(mask)] if has_mask else []
            grads += [ops.zeros_like(recurrent_mask)] if has_dropout else []
            return grads

        return hs, grad

    return kernel


def gru_reset_before_sequence(projected, h0, recurrent_kernel, mask=None, recurrent_mask=None):
    """GRU over a sequence, Cho et al. 2014 (`reset_after=False`; gate order z, r, h).

    h~ = tanh(x_h + (r * h) U_h); h_new = z * h + (1 - z) * h~. Returns `[hs]`.
    """
    has_mask = mask is not None
    has_dropout = recurrent_mask is not None
    tensors = [projected, h0, recurrent_kernel]
    tensors += [mask] if has_mask else []
    tensors += [recurrent_mask] if has_dropout else []
    kernel = _gru_reset_before_kernel(has_mask, has_dropout)
    return [ops.custom_gradient(kernel)(*tensors)]


def _gru_reset_before_kernel(has_mask, has_dropout):
    """gru_reset_before_sequence's forward pass and gradient, for `ops.custom_gradient`."""

    def kernel(*args):
        projected, h0, recurrent_kernel = args[:3]
        mask = args[3] if has_mask else None
        recurrent_mask = args[-1] if has_dropout else None
        units = ops.shape(h0)[1]
        kernel_zr = recurrent_kernel[:, : 2 * units]
        kernel_h = recurrent_kernel[:, 2 * units :]

        def step(carry, inputs):
            h, _ = carry
            x_t = inputs[0] if has_mask else inputs
            h_in = h * recurrent_mask if has_dropout else h
            x_z, x_r, x_h = ops.split(x_t, 3, axis=-1)
            r_z, r_r = ops.split(ops.matmul(h_in, kernel_zr), 2, axis=-1)
            z = ops.sigmoid(x_z + r_z)
            r = ops.sigmoid(x_r + r_r)
            candidate = ops.tanh(x_h + ops.matmul(r * h_in, kernel_h))
            h_new = candidate + z * (h - candidate)
            if has_mask:
                h_new = _keep_masked(h_new, h, inputs[1])
            saved = ops.concatenate([z, r, candidate], axis=-1)
            return (h_new, saved), (h_new, saved)

        xs = (projected, mask) if has_mask else projected
        _, (hs, saved) = sliced_scan(step, (h0, ops.zeros_like(projected[0])), xs)

        def grad(*upstream):
            d_hs = _zeros_if_none(upstream[0], hs)
            z, r, candidate = ops.split(saved, 3, axis=-1)
            h_prev = _previous(hs, h0)
            h_in = h_prev * recurrent_mask if has_dropout else h_prev
            d_candidate_pre = (1.0 - z) * (1.0 - candidate * candidate)
            d_z_pre = (h_prev - candidate) * z * (1.0 - z)
            transposed_zr = ops.transpose(kernel_zr)
            transposed_h = ops.transpose(kernel_h)

            def back_step(carry, inputs):
                dh_next, _ = carry
                dh = inputs[0] + dh_next
                dh_new = dh * inputs[6] if has_mask else dh
                d_candidate = dh_new * inputs[1]
                d_reset_h = ops.matmul(d_candidate, transposed_h)  # gradient of r * h_in
                d_r = d_reset_h * inputs[5] * inputs[3] * (1.0 - inputs[3])
                d_zr = ops.concatenate([dh_new * inputs[2], d_r], axis=-1)
                dh_in = ops.matmul(d_zr, transposed_zr) + d_reset_h * inputs[3]
                if has_dropout:
                    dh_in = dh_in * recurrent_mask
                dh_prev = dh_in + dh_new * inputs[4]
                if has_mask:
                    dh_prev = dh_prev + (dh - dh_new)
                return (dh_prev, dh_new), (d_r, dh_new)

            xs = [d_hs, d_candidate_pre, d_z_pre, r, z, h_in] + ([mask] if has_mask else [])
            (dh0, _), (d_rs, dh_news) = sliced_scan(
                back_step, (ops.zeros_like(h0), ops.zeros_like(h0)), tuple(xs), reverse=True
            )
            d_zs = dh_news * d_z_pre
            d_candidates = dh_news * d_candidate_pre
            d_projected = ops.concatenate([d_zs, d_rs, d_candidates], axis=-1)
            d_kernel = ops.concatenate(
                [
                    _flat_matmul_transposed(h_in, ops.concatenate([d_zs, d_rs], axis=-1)),
                    _flat_matmul_transposed(r * h_in, d_candidates),
                ],
                axis=-1,
            )
            grads = [d_projected, dh0, d_kernel]
            grads += [ops.zeros_like(mask)] if has_mask else []
            grads += [ops.zeros_like(recurrent_mask)] if has_dropout else []
            return grads

        return hs, grad

    return kernel


def elman_sequence(projected, h0, recurrent_kernel, activation, mask=None, recurrent_mask=None):
    """Elman network over a sequence: h_new = act(x W + b + h U).

    `activation` is a name in ACTIVATION_DERIVATIVES. Returns `[hs]`.
    """
    has_mask = mask is not None
    has_dropout = recurrent_mask is not None
    tensors = [projected, h0, recurrent_kernel]
    tensors += [mask] if has_mask else []
    tensors += [recurrent_mask] if has_dropout else []
    kernel = _elman_kernel(activation, has_mask, has_dropout)
    return [ops.custom_gradient(kernel)(*tensors)]


def _elman_kernel(activation, has_mask, has_dropout):
    """elman_sequence's forward pass and gradient, for `ops.custom_gradient`."""
    derivative = ACTIVATION_DERIVATIVES[activation]
    activation_fn = ACTIVATIONS[activation]

    def kernel(*args):
        projected, h0, recurrent_kernel = args[:3]
        mask = args[3] if has_mask else None
        recurrent_mask = args[-1] if has_dropout else None

        def step(carry, inputs):
            h = carry[0]
            x_t = inputs[0] if has_mask else inputs
            h_in = h * recurrent_mask if has_dropout else h
            fresh = activation_fn(x_t + ops.matmul(h_in, recurrent_kernel))
            if not has_mask:
                return (fresh,), (fresh,)
            # A masked step keeps the old state; the backward pass needs the
            # activation it computed all the same.
            carry = (_keep_masked(fresh, h, inputs[1]), fresh)
            return carry, carry

        xs = (projected, mask) if has_mask else projected
        initial = (h0, h0) if has_mask else (h0,)
        _, outputs = sliced_scan(step, initial, xs)
        hs, fresh = outputs[0], outputs[-1]

        def grad(*upstream):
            d_hs = _zeros_if_none(upstream[0], hs)
            transposed_kernel = ops.transpose(recurrent_kernel)

            # As in lstm_sequence: the slope step by step, and the gradient of
            # step t + 1 multiplied by the kernel at the start of step t.
            def back_step(carry, inputs):
                dh = inputs[0] + ops.matmul(carry[0], transposed_kernel) * (
                    recurrent_mask if has_dropout else 1.0
                )
                if not has_mask:
                    d_pre = dh * derivative(inputs[1])
                    return (d_pre,), (d_pre,)
                dh = dh + carry[1]
                dh_new = dh * inputs[2]
                carry = (dh_new * derivative(inputs[1]), dh - dh_new)
                return carry, carry

            xs = [d_hs, fresh] + ([mask] if has_mask else [])
            initial = (
                (ops.zeros_like(h0), ops.zeros_like(h0)) if has_mask else (ops.zeros_like(h0),)
            )
            final, outputs = sliced_scan(back_step, initial, tuple(xs), reverse=True)
            d_projected = outputs[0]
            dh0 = ops.matmul(final[0], transposed_kernel)
            if has_dropout:
                dh0 = dh0 * recurrent_mask
            if has_mask:
                dh0 = dh0 + final[1]
            d_kernel = _recurrent_kernel_gradient(hs, h0, d_projected, recurrent_mask)
            grads = [d_projected, dh0, d_kernel]
            grads += [ops.zeros_like(mask)] if has_mask else []
            grads += [ops.zeros_like(recurrent_mask)] if has_dropout else []
            return grads

        return hs, grad

    return kernel


def _final_states(step, sequence_kernel, inputs, kernel, bias, initial, weights, mask):
    """Final states of a cell run over `inputs`, with x_t W + b computed inside the loop.

    The loop carries only the states and collects nothing (inference without the
    output sequence). It reads `inputs` by slicing, whose automatic gradient
    would be a whole-sequence tensor at every step; so the gradient is written
    by hand instead: the fused training kernel `sequence_kernel` (its forward
    pass and gradient, as `_lstm_kernel` returns) runs again on the hoisted
    projection, and its gradient for the projection gives those of the inputs,
    `kernel` and `bias`.

    Args:
        step: `(projected_t, states, *weights) -> new states`.
        sequence_kernel: `(projected, *initial, *weights[, mask]) -> (sequences, grad)`.
        inputs: `(time, batch, features)`; kernel `(features, width)`; bias `(width,)`.
        initial: list of `(batch, units)` states; weights: the recurrent weights.
        mask: `(time, batch, 1)` float mask or None.
    """
    has_mask = mask is not None
    count, weight_count = len(initial), len(weights)

    def final(inputs, kernel, bias, *rest):
        states = list(rest[:count])
        weights = list(rest[count : count + weight_count])
        mask = rest[-1] if has_mask else None

        def body(index, carry):
            new = step(ops.matmul(inputs[index], kernel) + bias, list(carry), *weights)
            if has_mask:
                new = [_keep_masked(n, old, mask[index]) for n, old in zip(new, carry, strict=True)]
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
                    [ops.zeros_like(sequence[:-1]), _zeros_if_none(d, sequence[-1])[None]], axis=0
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
    h, c = states
    i, f, g, o = ops.split(projected + ops.matmul(h, recurrent_kernel), 4, axis=-1)
    c_new = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return [ops.sigmoid(o) * ops.tanh(c_new), c_new]


def lstm_final_states(inputs, kernel, bias, h0, c0, recurrent_kernel, mask=None):
    """Final `[h, c]` of an LSTM over `(time, batch, features)` inputs (see `_final_states`)."""
    sequence_kernel = _lstm_kernel(mask is not None, False)
    return _final_states(
        _lstm_step, sequence_kernel, inputs, kernel, bias, [h0, c0], [recurrent_kernel], mask
    )


def _gru_step(projected, states, recurrent_kernel, recurrent_bias):
    (h,) = states
    x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
    r_z, r_r, r_h = ops.split(ops.matmul(h, recurrent_kernel) + recurrent_bias, 3, axis=-1)
    z = ops.sigmoid(x_z + r_z)
    candidate = ops.tanh(x_h + ops.sigmoid(x_r + r_r) * r_h)
    return [candidate + z * (h - candidate)]


def gru_final_states(inputs, kernel, bias, h0, recurrent_kernel, recurrent_bias, mask=None):
    """Final `[h]` of a GRU (`reset_after=True`, with biases) over `(time, batch, features)`."""
    sequence_kernel = _gru_kernel(mask is not None, False, True)
    return _final_states(
        _gru_step,
        sequence_kernel,
        inputs,
        kernel,
        bias,
        [h0],
        [recurrent_kernel, recurrent_bias],
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
    sequence_kernel = _gru_reset_before_kernel(mask is not None, False)
    return _final_states(
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
    """Final `[h]` of an Elman network over `(time, batch, features)` (see `_final_states`)."""
    activation_fn = ACTIVATIONS[activation]

    def step(projected, states, recurrent_kernel):
        return [activation_fn(projected + ops.matmul(states[0], recurrent_kernel))]

    sequence_kernel = _elman_kernel(activation, mask is not None, False)
    return _final_states(
        step, sequence_kernel, inputs, kernel, bias, [h0], [recurrent_kernel], mask
    )
