"""Linear recurrences h_t = a_t * h_{t-1} + b_t evaluated with a parallel (log-depth) scan.

The minimal cells (`rnn_keras.MinGRUCell`, `rnn_keras.MinLSTMCell`; Feng et
al. 2024, "Were RNNs All We Needed?") have gates that do not read h_{t-1},
so their whole sequence is one such recurrence, elementwise in the units.
Pairs (a, b) compose associatively, (a1, b1) then (a2, b2) = (a1 a2,
a2 b1 + b2), so all prefixes come from ceil(log2 T) rounds of whole-sequence
elementwise products (Hillis & Steele 1986, `scan_pairs`): no time loop.
`gated_recurrence` does O(T) work instead of O(T log T): the sequence is cut
into chunks of about CHUNK steps (`to_chunks`), position p of every chunk
advances together (one operation per position over all chunks at once),
and `scan_pairs` combines the chunk ends.

Why the pairs are kept in linear space: the paper's log-space scan (Heinsen
2023) takes h_t = exp(a*_t + logcumsumexp(log b - a*)) with a*_t =
sum_{k<=t} log a_k, two numbers that both grow with t and cancel; measured
here it loses 1.7e-4 (relative) at 1,000 steps in float32. The pair scan
never divides by a cumulative product and never cancels: products of numbers
in [0, 1] only underflow to 0, which is their correct limit; `scan_pairs`
matched the step-by-step loop to about 5e-7 (relative) at 1,000 steps, and
tests/test_min_cells.py holds both cells' scans to 1e-5 of the step loop at
2,000 steps. The gate coefficients follow the paper's log-space form (see
`rnn_keras.cells.minimal`).

`keras.ops.associative_scan` fails to trace on TensorFlow when the time
length is unknown (it compares lengths in Python), which is what
`model.fit` on `(batch, None, features)` inputs needs; `scan_pairs` runs
its rounds in a Python loop for a static length and in a
`keras.ops.while_loop` over the rounds (not over time) otherwise. The
gradient is written by hand: it is the same scan run backwards,
dL/dh_t = u_t + a_{t+1} dL/dh_{t+1}, so backpropagation costs one more scan,
not the autodiff tape of every round.

Where the time goes (a CPU is memory-bound here): each elementwise
operation over a whole `(time, batch, units)` sequence is one pass through
memory. Working one chunk position at a time on `(chunks, batch, units)`
blocks that stay in the cache, with the gate coefficients and their
gradient inside the same hand-written operation, took minGRU's training
step at 1,000 steps from 4.3x to 6-7x faster than our LSTM's
(`benchmarks/speed_vs_pytorch.py`; the table is in benchmarks/README.md).
"""

from keras import ops

# Steps per chunk of `gated_recurrence` (`chunk_length` picks a divisor of T near it).
CHUNK = 16


def _round(a, b, shift, reverse, last=False):
    """One round: combines each element with the one `shift` steps earlier (later if reverse).

    The last round's products of `a` are never read: `last` skips them.
    """
    if reverse:
        new_b = ops.concatenate([a[:-shift] * b[shift:] + b[:-shift], b[-shift:]], axis=0)
        new_a = None if last else ops.concatenate([a[:-shift] * a[shift:], a[-shift:]], axis=0)
    else:
        new_b = ops.concatenate([b[:shift], a[shift:] * b[:-shift] + b[shift:]], axis=0)
        new_a = None if last else ops.concatenate([a[:shift], a[shift:] * a[:-shift]], axis=0)
    return new_a, new_b


def scan_pairs(a, b, reverse=False):
    """All prefixes of h_t = a_t h_{t-1} + b_t with h_{-1} = 0 (suffixes if `reverse`:
    h_t = a_t h_{t+1} + b_t with h_T = 0), over the first axis.

    Args:
        a, b: `(time, ...)` tensors of one shape.
        reverse: run from the last step to the first.

    Returns:
        h, the shape of `b`.
    """
    steps = a.shape[0]
    if steps is not None:
        shift = 1
        while shift < steps:
            a, b = _round(a, b, shift, reverse, last=2 * shift >= steps)
            shift *= 2
        return b
    steps = ops.shape(a)[0]

    def cond(shift, a, b):
        return shift < steps

    def body(shift, a, b):
        return (shift * 2, *_round(a, b, shift, reverse))

    return ops.while_loop(cond, body, (ops.convert_to_tensor(1, "int32"), a, b))[2]


def positive_candidate(x):
    """The minimal cells' g: x + 0.5 for x >= 0, sigmoid(x) below; continuous and positive.

    Written as max(x + 0.5, sigmoid(x)), the same numbers (x + 0.5 is the larger
    exactly where x >= 0) in one pass fewer than a select on the sign of x.
    """
    return ops.maximum(x + 0.5, ops.sigmoid(x))


class UpdateGate:
    """The update gate z of `gated_recurrence`: z from its inputs, and the gradient back.

    The gate is part of the recurrence's hand-written operation so that its
    backward pass runs in the same loop over chunk positions as the scan's,
    on blocks still in the cache, and reuses z and 1 - z from it. This base
    class takes z itself as its one input; subclasses override `forward`
    and `backward` (`SigmoidGate`, and minLSTM's
    `rnn_keras.cells.minimal.NormalizedInputGate`).

    Example:

    >>> z, saved = SigmoidGate().forward(ops.zeros((2, 3)))  # z = 0.5
    """

    def forward(self, *inputs):
        """z in [0, 1] from the gate's inputs (one block each), and what `backward` needs.

        Returns:
            `(update, saved)`: update the shape of the inputs, saved a tuple.
        """
        return inputs[0], ()

    def backward(self, d_update, update, decay, saved):
        """The gradients of the gate's inputs from dL/dz.

        Args:
            d_update: dL/dz, zero at masked steps.
            update: z, times the mask; decay: 1 - update. Both equal the unmasked
                values wherever `d_update` is not zero.
            saved: what `forward` returned beside z.

        Returns:
            a tuple, one gradient per input of `forward`.
        """
        return (d_update,)


class SigmoidGate(UpdateGate):
    """z = sigmoid(k), minGRU's update gate; dz/dk = z (1 - z)."""

    def forward(self, logits):
        return ops.sigmoid(logits), ()

    def backward(self, d_update, update, decay, saved):
        return (d_update * update * decay,)


def chunk_length(steps):
    """Steps per chunk for a sequence of `steps` (None: unknown).

    CHUNK, or a length near it that divides `steps` (no padding to add and
    cut off again), or `steps` itself when shorter.
    """
    if steps is None:
        return CHUNK
    if steps <= CHUNK:
        return max(1, steps)
    divisors = [
        length for length in range(CHUNK * 3 // 4, CHUNK * 3 // 2 + 1) if steps % length == 0
    ]
    return min(divisors, key=lambda length: abs(length - CHUNK), default=CHUNK)


def to_chunks(sequence, chunk):
    """`(time, batch, features)` -> `(chunk, time / chunk, batch, features)`, zero-padded.

    Step n * chunk + p lands at `[p, n]`: each position of every chunk is then
    one contiguous slice. Transposing the narrow inputs (before their
    projection, which is several times wider) is the cheapest place to do it.
    """
    steps = sequence.shape[0] if sequence.shape[0] is not None else ops.shape(sequence)[0]
    shape = tuple(ops.shape(sequence)[1:])
    padding = (-steps) % chunk
    if not isinstance(padding, int) or padding:
        zeros = ops.zeros((padding, *shape), dtype=sequence.dtype)
        sequence = ops.concatenate([sequence, zeros], axis=0)
    sequence = ops.reshape(sequence, (-1, chunk, *shape))
    return ops.transpose(sequence, (1, 0, *range(2, len(shape) + 2)))


def _within_chunks(a, b, reverse):
    """Per position p of every chunk: the local state from zero and the product of a.

    a, b: lists over positions of `(chunks, batch, units)`. Forwards,
    local_p = a_p local_{p-1} + b_p and decay_p = a_p decay_{p-1}; reversed,
    from the last position down.
    """
    positions = list(range(len(a)))
    if reverse:
        positions.reverse()
    local, decay = {positions[0]: b[positions[0]]}, {positions[0]: a[positions[0]]}
    for previous, position in zip(positions[:-1], positions[1:], strict=True):
        local[position] = a[position] * local[previous] + b[position]
        decay[position] = a[position] * decay[previous]
    ordered = sorted(local)
    return [local[p] for p in ordered], [decay[p] for p in ordered]


def _combine(local, decay, incoming):
    return [value + rate * incoming for value, rate in zip(local, decay, strict=True)]


def _from_last_state(a, upstream):
    """dL/dh at every step when only h_{T-1} is read and T fills whole chunks.

    Then dL/dh_t = a_{t+1} ... a_{T-1} u: products of a alone, two passes per
    position (the product of a after it within its chunk, times the gradient at
    its chunk's end) where the general backward scan makes five.

    a: list over positions of `(chunks, batch, units)`; upstream: `(batch, units)`.
    """
    rest = [None] * len(a)  # None: the empty product, 1
    for p in range(len(a) - 2, -1, -1):
        rest[p] = a[p + 1] if rest[p + 1] is None else a[p + 1] * rest[p + 1]
    whole = a[0] if rest[0] is None else a[0] * rest[0]
    # The gradient at each chunk's last step: u in the last chunk, then the reverse
    # scan h_n = whole_{n+1} h_{n+1}.
    after = ops.concatenate([whole[1:], ops.zeros_like(whole[:1])], axis=0)
    row = ops.concatenate([ops.zeros_like(whole[:-1]), ops.expand_dims(upstream, 0)], axis=0)
    ends = scan_pairs(after, row, reverse=True)
    return [ends if product is None else product * ends for product in rest]


def gated_recurrence(gate_inputs, candidates, h0, steps, masks=None, last_only=False, gate=None):
    """h_t = (1 - z_t) h_{t-1} + z_t g(c_t), z_t = gate(inputs_t) mask_t, over chunks of time.

    The minimal cells' recurrence (`rnn_keras.cells.minimal`), with g the
    paper's positive candidate, g(c) = c + 0.5 for c >= 0 and sigmoid(c)
    below. One fused operation with a hand-written gradient: positions
    within a chunk advance together, a log-depth `scan_pairs` carries the
    state across chunks, and the backward pass is the same scan from the
    end, dL/dh_t = u_t + a_{t+1} dL/dh_{t+1}. Everything, the gate included,
    is computed one chunk position at a time, on blocks of
    `(chunks, batch, units)` that stay in the CPU's cache from one operation
    to the next; Keras's autodiff of the same expressions over whole
    sequences made about three times as many passes through memory.

    Args:
        gate_inputs: list over the chunk positions p of tuples of
            `(chunks, batch, units)` blocks, the inputs of `gate` at steps
            n * chunk + p (the layout of `to_chunks`, unstacked).
        candidates: list over the positions of blocks, c before g.
        h0: `(batch, units)`, any sign.
        steps: the real length (static int or scalar tensor); the padding of
            `to_chunks` after it is dropped.
        masks: the same list of `(chunks, batch, 1)` 0/1 blocks, or None;
            masked steps hold the state.
        last_only: return h_{T-1} alone (`steps` must then be static); its
            gradient skips the zeros of every other step.
        gate: an `UpdateGate`; None: the inputs are z itself, in [0, 1].

    Returns:
        `(steps, batch, units)`, the states h_0 ... h_{T-1}, time-major, or
        `(batch, units)` with `last_only`.

    Example:

    >>> z, c = [(ops.full((2, 1, 1), 0.5),)], [ops.ones((2, 1, 1))]  # chunks of one step
    >>> gated_recurrence(z, c, ops.zeros((1, 1)), 2)[:, 0, 0]  # g(1) = 1.5: 0.75, 1.125
    """
    gate = gate or UpdateGate()
    chunk, width = len(candidates), len(gate_inputs[0])
    flat_inputs = [block for inputs in gate_inputs for block in inputs]

    def run(*values):
        flat_inputs, candidates, h0 = (
            values[: chunk * width],
            values[chunk * width : -1],
            values[-1],
        )
        z, a, g, b, saved = [], [], [], [], []
        for p in range(chunk):
            z_p, saved_p = gate.forward(*flat_inputs[p * width : (p + 1) * width])
            if masks is not None:
                z_p = z_p * masks[p]
            g_p = positive_candidate(candidates[p])
            z.append(z_p)
            a.append(1.0 - z_p)
            g.append(g_p)
            b.append(z_p * g_p)
            saved.append(saved_p)
        local, decay = _within_chunks(a, b, reverse=False)
        # The state entering each chunk: h0, then the ends of the chunks before.
        first = ops.expand_dims(local[-1][0] + decay[-1][0] * h0, 0)
        ends = scan_pairs(decay[-1], ops.concatenate([first, local[-1][1:]], axis=0))
        incoming = ops.concatenate([ops.expand_dims(h0, 0), ends[:-1]], axis=0)
        states = _combine(local, decay, incoming)
        shape = ops.shape(h0)
        # Step T - 1 is in the last chunk (the padding is shorter than a chunk).
        last = (steps - 1) % chunk if last_only else None
        if last_only:
            output = states[last][-1]
        else:
            output = ops.reshape(ops.stack(states, axis=1), (-1, *shape))[:steps]

        def upstream_per_position(upstream):
            if last_only:
                zeros = ops.zeros_like(a[0])
                row = ops.concatenate([zeros[:-1], ops.expand_dims(upstream, 0)], axis=0)
                return [row if position == last else zeros for position in range(chunk)]
            padding = ops.shape(a[0])[0] * chunk - steps
            if not isinstance(padding, int) or padding:
                zeros = ops.zeros((padding, *shape), dtype=upstream.dtype)
                upstream = ops.concatenate([upstream, zeros], axis=0)
            upstream = ops.reshape(upstream, (-1, chunk, *shape))
            return ops.unstack(upstream, chunk, axis=1)

        def state_gradients(upstream):
            if last == chunk - 1:
                return _from_last_state(a, upstream)
            # a at the next step: the next position, or position 0 of the next chunk.
            after_chunk = ops.concatenate([a[0][1:], ops.zeros_like(a[0][:1])], axis=0)
            local, decay = _within_chunks(
                a[1:] + [after_chunk], upstream_per_position(upstream), reverse=True
            )
            ends = scan_pairs(decay[0], local[0], reverse=True)
            incoming = ops.concatenate([ends[1:], ops.zeros_like(ends[:1])], axis=0)
            return _combine(local, decay, incoming)

        def grad(upstream):
            d_states = state_gradients(upstream)
            before_chunk = ops.concatenate([ops.expand_dims(h0, 0), states[-1][:-1]], axis=0)
            previous = [before_chunk] + states[:-1]
            d_inputs, d_candidates = [], []
            for p, d in enumerate(d_states):
                d_z = d * (g[p] - previous[p])
                if masks is not None:
                    d_z = d_z * masks[p]
                d_inputs.extend(gate.backward(d_z, z[p], a[p], saved[p]))
                # g'(c) = 1 for c >= 0 (g >= 0.5), else sigmoid' = g (1 - g).
                slope = ops.where(g[p] >= 0.5, 1.0, g[p] * (1.0 - g[p]))
                d_candidates.append(d * z[p] * slope)
            return (*d_inputs, *d_candidates, a[0][0] * d_states[0][0])

        return output, grad

    return ops.custom_gradient(run)(*flat_inputs, *candidates, h0)
