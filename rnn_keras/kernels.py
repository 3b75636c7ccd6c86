"""Whole-sequence recurrences with hand-written backward passes (BPTT).

Automatic differentiation of a time loop records every intermediate of every
step and replays them one by one; on a CPU that bookkeeping, not the
arithmetic, dominates (see benchmarks/README.md and benchmarks/forward_backward.py). These kernels do what
cuDNN does instead: the forward loop keeps only the activated gates, the
backward loop does one matrix product and the gate derivatives per step, and
the weight gradients are single large matrix products over all time steps
afterwards.

All tensors are time-major: projected inputs `(time, batch, width)`, masks
`(time, batch, 1)` as floats, recurrent dropout masks `(batch, units)`.
Each `*_sequence` kernel returns the per-step state sequences,
`(time, batch, units)`; its `*_kernel` factory returns the function given to
`keras.ops.custom_gradient` (forward pass and gradient), which
`rnn_keras.final_states` also reruns.
"""

from keras import ops

from rnn_keras.loops import column_sums, keep_masked, sliced_scan, zeros_if_none

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


def lstm_sequence(projected, h0, c0, recurrent_kernel, mask=None, recurrent_mask=None):
    """LSTM over a sequence (gate order i, f, c, o; sigmoid gates, tanh cell).

    Returns `[hs, cs]`, each `(time, batch, units)`.
    """
    has_mask = mask is not None
    has_dropout = recurrent_mask is not None
    tensors = [projected, h0, c0, recurrent_kernel]
    tensors += [mask] if has_mask else []
    tensors += [recurrent_mask] if has_dropout else []
    hs, cs = ops.custom_gradient(lstm_kernel(has_mask, has_dropout))(*tensors)
    return [hs, cs]


def lstm_kernel(has_mask, has_dropout):
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
                h_new = keep_masked(h_new, h, inputs[1])
                c_new = keep_masked(c_new, c, inputs[1])
            gates = ops.concatenate([i, f, g, o], axis=-1)
            return (h_new, c_new, gates), (h_new, c_new, gates)

        xs = (projected, mask) if has_mask else projected
        _, (hs, cs, gates) = sliced_scan(step, (h0, c0, ops.zeros_like(projected[0])), xs)

        def grad(*upstream):
            d_hs = zeros_if_none(upstream[0], hs)
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
                # Masked steps pass the state through, and its gradient back.
                dh = dh_from_next + (d_h_t + carry[2] if has_mask else d_h_t)
                dc = dc_next + inputs[4] if has_d_cs else dc_next
                if has_mask:
                    m_t = inputs[-1]
                    dh_new, dc_in = dh * m_t, dc * m_t
                else:
                    dh_new, dc_in = dh, dc
                # Products grouped so that the factors known before this step's
                # matrix product are formed off the critical path.
                i, f, g, o = ops.split(gates_t, 4, axis=-1)
                tanh_c = ops.tanh(c_t)
                dc_new = dc_in + dh_new * (o * (1.0 - tanh_c * tanh_c))
                dz = ops.concatenate(
                    [
                        dc_new * (g * i * (1.0 - i)),
                        dc_new * (c_prev_t * f * (1.0 - f)),
                        dc_new * (i * (1.0 - g * g)),
                        dh_new * (o * tanh_c * (1.0 - o)),
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


def gru_sequence(projected, h0, recurrent_kernel, candidate_bias, mask=None, recurrent_mask=None):
    """GRU over a sequence, Keras's `reset_after=True` form (gate order z, r, h).

    z = sigmoid(x_z + h U_z), r = sigmoid(x_r + h U_r),
    h~ = tanh(x_h + r * (h U_h + b_h)); h_new = z * h + (1 - z) * h~.
    The z and r parts of Keras's recurrent bias belong in `projected` (they
    are added outside the reset gate, like the input bias); `candidate_bias`
    is its h part b_h, `(units,)`, or None. Returns `[hs]`.
    """
    has_mask = mask is not None
    has_dropout = recurrent_mask is not None
    has_bias = candidate_bias is not None
    tensors = [projected, h0, recurrent_kernel]
    tensors += [candidate_bias] if has_bias else []
    tensors += [mask] if has_mask else []
    tensors += [recurrent_mask] if has_dropout else []
    return [ops.custom_gradient(gru_kernel(has_mask, has_dropout, has_bias))(*tensors)]


def gru_kernel(has_mask, has_dropout, has_bias):
    """gru_sequence's forward pass and hand-written gradient, for `ops.custom_gradient`."""

    def kernel(*args):
        projected, h0, recurrent_kernel = args[:3]
        position = 3
        candidate_bias = args[position] if has_bias else None
        position += int(has_bias)
        mask = args[position] if has_mask else None
        recurrent_mask = args[-1] if has_dropout else None

        def step(carry, inputs):
            h, _ = carry
            x_t = inputs[0] if has_mask else inputs
            h_in = h * recurrent_mask if has_dropout else h
            x_z, x_r, x_h = ops.split(x_t, 3, axis=-1)
            r_z, r_r, r_h = ops.split(ops.matmul(h_in, recurrent_kernel), 3, axis=-1)
            if has_bias:
                r_h = r_h + candidate_bias
            z = ops.sigmoid(x_z + r_z)
            r = ops.sigmoid(x_r + r_r)
            candidate = ops.tanh(x_h + r * r_h)
            h_new = candidate + z * (h - candidate)
            if has_mask:
                h_new = keep_masked(h_new, h, inputs[1])
            saved = ops.concatenate([z, r, candidate, r_h], axis=-1)
            return (h_new, saved), (h_new, saved)

        xs = (projected, mask) if has_mask else projected
        initial_saved = ops.zeros((ops.shape(h0)[0], 4 * ops.shape(h0)[1]), dtype=h0.dtype)
        _, (hs, saved) = sliced_scan(step, (h0, initial_saved), xs)

        def grad(*upstream):
            d_hs = zeros_if_none(upstream[0], hs)
            h_prev = _previous(hs, h0)
            transposed_kernel = ops.transpose(recurrent_kernel)

            # As in lstm_sequence: gate derivatives step by step, the
            # recurrent gradient of step t + 1 multiplied by the kernel at the
            # start of step t, and the products grouped so that the factors
            # known before that product are formed off the critical path.
            # `dh_direct` is the path through z * h_{t-1}.
            def back_step(carry, inputs):
                d_recurrent_next, dh_direct, _ = carry
                d_h_t, saved_t, h_prev_t = inputs[:3]
                dh_from_next = ops.matmul(d_recurrent_next, transposed_kernel)
                if has_dropout:
                    dh_from_next = dh_from_next * recurrent_mask
                dh = dh_from_next + (d_h_t + dh_direct)
                dh_new = dh * inputs[3] if has_mask else dh
                z, r, candidate, r_h = ops.split(saved_t, 4, axis=-1)
                d_candidate = dh_new * ((1.0 - z) * (1.0 - candidate * candidate))
                d_z = dh_new * ((h_prev_t - candidate) * z * (1.0 - z))
                d_r = d_candidate * (r_h * r * (1.0 - r))
                d_projected = ops.concatenate([d_z, d_r, d_candidate], axis=-1)
                d_recurrent = ops.concatenate([d_z, d_r, d_candidate * r], axis=-1)
                dh_direct = dh_new * z
                if has_mask:
                    dh_direct = dh_direct + (dh - dh_new)
                # keras.ops.scan collects exactly what it carries, so the input
                # gradient rides in the carry unused.
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
                # Summing all columns and keeping the candidate's is cheaper
                # than first copying those columns out.
                grads.append(column_sums(d_recurrents)[2 * ops.shape(h0)[1] :])
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
    kernel = gru_reset_before_kernel(has_mask, has_dropout)
    return [ops.custom_gradient(kernel)(*tensors)]


def gru_reset_before_kernel(has_mask, has_dropout):
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
                h_new = keep_masked(h_new, h, inputs[1])
            saved = ops.concatenate([z, r, candidate], axis=-1)
            return (h_new, saved), (h_new, saved)

        xs = (projected, mask) if has_mask else projected
        _, (hs, saved) = sliced_scan(step, (h0, ops.zeros_like(projected[0])), xs)

        def grad(*upstream):
            d_hs = zeros_if_none(upstream[0], hs)
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
    kernel = elman_kernel(activation, has_mask, has_dropout)
    return [ops.custom_gradient(kernel)(*tensors)]


def elman_kernel(activation, has_mask, has_dropout):
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
            carry = (keep_masked(fresh, h, inputs[1]), fresh)
            return carry, carry

        xs = (projected, mask) if has_mask else projected
        initial = (h0, h0) if has_mask else (h0,)
        _, outputs = sliced_scan(step, initial, xs)
        hs, fresh = outputs[0], outputs[-1]

        def grad(*upstream):
            d_hs = zeros_if_none(upstream[0], hs)
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
