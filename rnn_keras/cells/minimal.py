"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates without h_{t-1}.

Both cells compute, from the input alone, a decay a_t in (0, 1) and an
input b_t >= 0, and then h_t = a_t * h_{t-1} + b_t. The step is that line;
a whole sequence is a linear recurrence that `rnn_keras.Recurrent` evaluates
with a parallel scan (`rnn_keras.scans`), with no time loop, in training and
inference alike.

The coefficients follow the paper's log-space form: log z = -softplus(-k),
log(1 - z) = -softplus(k) (exponentiated: z = sigmoid(k), which is how
minGRU computes it, exact in float32 and cheaper), and the candidate goes
through g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise (positive, as the
paper's log-space version needs). Both cells are then
h_t = (1 - z_t) h_{t-1} + z_t g(h~_t), with minLSTM's z the normalised input
gate i / (f + i) = sigmoid(log i - log f), evaluated from exponentials scaled by the
largest (`NormalizedInputGate`): it stays finite where f + i itself would underflow to 0.
"""

import keras
from keras import ops

from rnn_keras import scans
from rnn_keras.cells.base import RecurrentCell
from rnn_keras.scans import positive_candidate


class MinimalCell(RecurrentCell):
    """Base of the minimal cells: weights, step and whole-sequence scan (not used on its own).

    Subclasses set `gates` (projections per unit, candidate last) and `gate`, the
    `rnn_keras.scans.UpdateGate` that makes z from the projections before the
    candidate's; the step and the scan both use it.

    The cell has `kernel` `(features, gates * units)` and `bias`
    `(gates * units,)` but no `recurrent_kernel`: no gate reads h_{t-1}, which
    is what makes the parallel scan possible. `recurrent_initializer`,
    `recurrent_regularizer` and `recurrent_constraint` are accepted (so that
    every cell takes the same arguments) and unused; `recurrent_dropout` must
    be 0 (there is no recurrent product to drop units of).
    """

    gates = None
    gate = None

    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        if self.recurrent_dropout:
            raise ValueError(
                f"{type(self).__name__} has no recurrent product to apply dropout to: "
                "argument `recurrent_dropout` must be 0. "
                f"Received: recurrent_dropout={self.recurrent_dropout!r}"
            )
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_kernel(
            "kernel",
            (input_shape[-1], width),
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
        )
        self.add_bias((width,))

    @property
    def scans_in_parallel(self):
        return True

    def project_inputs(self, inputs):
        """The step's input: every gate's `project_gates` output, side by side."""
        return ops.concatenate(self.project_gates(inputs), axis=-1)

    def project_gates(self, inputs):
        """inputs W + b for each gate (candidate last), one product per gate.

        One product per block of kernel columns leaves each result contiguous,
        where slicing the projection of all gates would copy every block. The
        bias rides in the product as a last input feature fixed at 1: adding it
        afterwards would be one more pass over each projection.
        """
        kernel = self.kernel
        if self.bias is not None:
            ones = ops.ones((*ops.shape(inputs)[:-1], 1), dtype=inputs.dtype)
            inputs = ops.concatenate([inputs, ones], axis=-1)
            kernel = ops.concatenate([kernel, ops.expand_dims(self.bias, 0)], axis=0)
        units = self.units
        return [
            ops.matmul(inputs, kernel[:, gate * units : (gate + 1) * units])
            for gate in range(self.gates)
        ]

    def coefficients(self, projected):
        """(a, b) of h_t = a_t h_{t-1} + b_t from the projection of all gates."""
        *gates, candidate = ops.split(projected, self.gates, axis=-1)
        update, _ = self.gate.forward(*gates)
        return 1.0 - update, update * positive_candidate(candidate)

    def recurrent_step(self, projected, states, recurrent_mask=None):
        h_previous = states[0] if isinstance(states, (list, tuple)) else states
        a, b = self.coefficients(projected)
        h = a * h_previous + b
        return h, [h]

    def fused_sequence(self, inputs, initial_states, mask, recurrent_mask, training):
        """The whole time-major sequence by a parallel scan: `[(time, batch, units)]`.

        Masked steps (mask 0) hold the state: z = 0 there.
        """
        return [self._scan(inputs, initial_states, mask, last_only=False)]

    def fused_final_states(self, inputs, initial_states, mask):
        """The final state alone (training too): `[(batch, units)]`; None for an unknown length."""
        if inputs.shape[0] is None:
            return None
        return [self._scan(inputs, initial_states, mask, last_only=True)]

    def _scan(self, inputs, initial_states, mask, last_only):
        steps = inputs.shape[0] if inputs.shape[0] is not None else ops.shape(inputs)[0]
        chunk = scans.chunk_length(inputs.shape[0])
        # One block per chunk position: the gates and the scan then work on blocks
        # that stay in the cache (unstacking aliases; its gradient is one stack).
        projected = [
            ops.unstack(gate, chunk, axis=0)
            for gate in self.project_gates(scans.to_chunks(inputs, chunk))
        ]
        gate_inputs = list(zip(*projected[:-1], strict=True))
        masks = None
        if mask is not None:
            masks = ops.unstack(scans.to_chunks(mask, chunk), chunk, axis=0)
        h0 = ops.convert_to_tensor(initial_states[0], projected[-1][0].dtype)
        return scans.gated_recurrence(
            gate_inputs, projected[-1], h0, steps, masks, last_only, self.gate
        )


class NormalizedInputGate(scans.UpdateGate):
    """minLSTM's normalised input gate i' = i / (f + i) from k_f and k_i, finite everywhere.

    i = sigmoid(k_i), f = sigmoid(k_f): i' = (1 + e^-k_f) / ((1 + e^-k_f) + (1 + e^-k_i)),
    with numerator and denominator scaled by e^m, m = min(0, k_f, k_i): one of the three
    exponentials is then 1 and none overflows, so i' stays finite (and exact) where
    f + i itself underflows. It equals the paper's log-space
    sigmoid(softplus(-k_f) - softplus(-k_i)) with three transcendental functions in
    place of seven across the forward and backward passes; `benchmarks/min_lstm_gate.py`
    times both forms.

    Example:

    >>> update, _ = NormalizedInputGate().forward(ops.full((1,), -200.0), ops.full((1,), -200.0))
    >>> update  # f and i are both e^-200, which float32 rounds to 0: i' = 1/2
    """

    def forward(self, k_forget, k_input):
        shift = ops.minimum(ops.minimum(k_forget, k_input), 0.0)
        base = ops.exp(shift)
        forget_term = ops.exp(shift - k_forget)
        input_term = ops.exp(shift - k_input)
        forget_sum = base + forget_term
        total = forget_sum + (base + input_term)
        return forget_sum / total, (forget_term, input_term, total)

    def backward(self, d_update, update, decay, saved):
        # di'/dk_f = -i' (1 - i') sigmoid(-k_f) = -(1 - i') e^-k_f / (sum), and
        # di'/dk_i = i' e^-k_i / (sum), both scaled by e^m; the sum is at least 1.
        forget_term, input_term, total = saved
        scaled = d_update / total
        return -(scaled * forget_term * decay), scaled * input_term * update


@keras.saving.register_keras_serializable(package="rnn_keras")
class MinGRUCell(MinimalCell):
    """minGRU cell (Feng et al. 2024, "Were RNNs All We Needed?").

    z_t = sigmoid(x W_z + b_z), h~_t = g(x W_h + b_h),
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t, with g the paper's positive
    candidate function (see `rnn_keras.cells.minimal`). Neither gate reads
    h_{t-1}: in `rnn_keras.Recurrent` a whole sequence runs as one parallel
    scan. Weights: `kernel` `(features, 2 * units)` in the order (z, h), `bias`
    `(2 * units,)`; no `recurrent_kernel`.

    Args:
        units: positive integer, dimensionality of h.
        **kwargs: the common cell arguments of `RecurrentCell`
            (`recurrent_dropout` must be 0; the `recurrent_*` initialiser,
            regulariser and constraint are unused).

    Call arguments:
        inputs: `(batch, features)`.
        states: `[h]`, `(batch, units)`; any sign (the scan is linear in h).
        training: whether dropout is active.

    Returns:
        `(h_t, [h_t])`, each `(batch, units)`. In `rnn_keras.Recurrent`:
        sequences `(batch, time, features)` give `(batch, time, units)` or
        `(batch, units)`.

    Example:

    >>> layer = rnn_keras.Recurrent(rnn_keras.MinGRUCell(32), return_sequences=True)
    >>> layer(np.zeros((4, 1000, 8), "float32")).shape
    (4, 1000, 32)
    """

    gates = 2
    # exp(-softplus(-k)), the paper's log z exponentiated, is sigmoid(k).
    gate = scans.SigmoidGate()


@keras.saving.register_keras_serializable(package="rnn_keras")
class MinLSTMCell(MinimalCell):
    """minLSTM cell (Feng et al. 2024, "Were RNNs All We Needed?").

    f_t = sigmoid(x W_f + b_f), i_t = sigmoid(x W_i + b_i),
    h~_t = g(x W_h + b_h); the gates are normalised, f' = f / (f + i),
    i' = i / (f + i), and h_t = f'_t * h_{t-1} + i'_t * h~_t (no cell state,
    no output gate). Computed stably: i' stays finite where f + i underflows.
    Neither gate reads h_{t-1}: in `rnn_keras.Recurrent` a whole sequence
    runs as one parallel scan. Weights: `kernel` `(features, 3 * units)` in
    the order (f, i, h), `bias` `(3 * units,)`; no `recurrent_kernel`.

    Args:
        units: positive integer, dimensionality of h.
        **kwargs: the common cell arguments of `RecurrentCell`
            (`recurrent_dropout` must be 0; the `recurrent_*` initialiser,
            regulariser and constraint are unused).

    Call arguments:
        inputs: `(batch, features)`.
        states: `[h]`, `(batch, units)`; any sign (the scan is linear in h).
        training: whether dropout is active.

    Returns:
        `(h_t, [h_t])`, each `(batch, units)`. In `rnn_keras.Recurrent`:
        sequences `(batch, time, features)` give `(batch, time, units)` or
        `(batch, units)`.

    Example:

    >>> layer = rnn_keras.Recurrent(rnn_keras.MinLSTMCell(32))
    >>> layer(np.zeros((4, 1000, 8), "float32")).shape
    (4, 32)
    """

    gates = 3
    gate = NormalizedInputGate()
