"""Where minLSTM's training time goes: its log-space gate against cheaper (unstable) gates.

minLSTM (`rnn_keras.MinLSTMCell`) differs from minGRU by a third input projection and
by its normalised gate i' = i / (f + i), which must stay finite where f + i underflows
(`rnn_keras.cells.minimal.NormalizedInputGate`). This script times, side by side in
interleaved rounds, a training step (forward, backward, Adam; one layer, mean squared
error of the last output) and a forward pass of:

- `ours lstm`, `ours mingru`, `ours minlstm`: our cells as shipped (minLSTM's gate and
  its hand-written gradient inside the scan's fused operation);
- `previous gate`: the cell as of commit 031a302: i' from -k_f and -k_i (negated
  weights), scaled by e^-max(0, -k_f, -k_i), computed before the scan in an operation
  of its own with its own hand-written gradient (12 element-wise passes forward and 10
  backward per chunk position where the cell now makes 11 and 6);
- `two sigmoids`: the gate as i / (f + i) from two sigmoids (not finite where
  both gates underflow, which is why the cell does not use it);
- `softplus`: the paper's log-space form as written,
  sigmoid(softplus(-k_f) - softplus(-k_i)) (the cell computes the same numbers from
  three scaled exponentials);
- `one sigmoid`: three projections but the gate a plain sigmoid of one of them
  (not minLSTM: it bounds what the third projection alone costs).

The other variants are subclasses defined here; all but `previous gate` run inside the
scan's fused operation.

    python benchmarks/min_lstm_gate.py
    python benchmarks/min_lstm_gate.py --lengths 4000 --rounds 5
    python benchmarks/min_lstm_gate.py --variants "ours lstm" "ours minlstm" "previous gate"
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras import ops  # noqa: E402

import rnn_keras  # noqa: E402
from benchmarks import speed_vs_pytorch  # noqa: E402
from rnn_keras import scans  # noqa: E402


class TwoSigmoids(scans.UpdateGate):
    """i / (f + i) from the two sigmoids: the same numbers while f + i does not underflow."""

    def forward(self, k_forget, k_input):
        forget, update = ops.sigmoid(k_forget), ops.sigmoid(k_input)
        return update / (forget + update), (forget, update)

    def backward(self, d_update, update, decay, saved):
        forget, input_gate = saved
        common = d_update * update * decay
        return -(common * (1.0 - forget)), common * (1.0 - input_gate)


class Softplus(scans.UpdateGate):
    """The paper's form as written: sigmoid(softplus(-k_f) - softplus(-k_i))."""

    def forward(self, k_forget, k_input):
        update = ops.sigmoid(ops.softplus(-k_forget) - ops.softplus(-k_input))
        return update, (k_forget, k_input)

    def backward(self, d_update, update, decay, saved):
        k_forget, k_input = saved
        common = d_update * update * decay
        return -(common * ops.sigmoid(-k_forget)), common * ops.sigmoid(-k_input)


class OneSigmoid(scans.UpdateGate):
    """A minGRU-like gate from the second projection: a bound, not a model."""

    def forward(self, k_forget, k_input):
        return ops.sigmoid(k_input), ()

    def backward(self, d_update, update, decay, saved):
        return ops.zeros_like(d_update), d_update * update * decay


@ops.custom_gradient
def previous_gate(negative_k_forget, negative_k_input):
    """minLSTM's gate as of commit 031a302, from -k_f and -k_i, in an operation of its own."""
    shift = ops.relu(ops.maximum(negative_k_forget, negative_k_input))
    base = ops.exp(-shift)
    forget_term = ops.exp(negative_k_forget - shift)
    input_term = ops.exp(negative_k_input - shift)
    forget_sum, input_sum = base + forget_term, base + input_term
    update = forget_sum / (forget_sum + input_sum)

    def grad(upstream):
        common = upstream * update * (1.0 - update)
        return (
            common * forget_term / ops.maximum(forget_sum, 1e-30),
            -common * input_term / ops.maximum(input_sum, 1e-30),
        )

    return update, grad


class PreviousGate(rnn_keras.MinLSTMCell):
    """minLSTM's scan as of commit 031a302: gate weights negated, the gate before the scan.

    Only the scan is the old one (the step would feed the negated projections to the
    present gate); the layer here always scans.
    """

    def project_gates(self, inputs):
        ones = ops.ones((*ops.shape(inputs)[:-1], 1), dtype=inputs.dtype)
        inputs = ops.concatenate([inputs, ones], axis=-1)
        kernel = ops.concatenate([self.kernel, ops.expand_dims(self.bias, 0)], axis=0)
        blocks = ops.split(kernel, 3, axis=-1)
        return [ops.matmul(inputs, -blocks[0]), ops.matmul(inputs, -blocks[1])] + [
            ops.matmul(inputs, blocks[2])
        ]

    def _scan(self, inputs, initial_states, mask, last_only):
        chunk = scans.chunk_length(inputs.shape[0])
        projected = [
            ops.unstack(gate, chunk, axis=0)
            for gate in self.project_gates(scans.to_chunks(inputs, chunk))
        ]
        updates = [(previous_gate(*gates),) for gates in zip(*projected[:-1], strict=True)]
        h0 = ops.convert_to_tensor(initial_states[0], updates[0][0].dtype)
        return scans.gated_recurrence(updates, projected[-1], h0, inputs.shape[0], None, last_only)


def with_gate(gate):
    return type(f"{type(gate).__name__}Cell", (rnn_keras.MinLSTMCell,), {"gate": gate})


VARIANTS = {
    "ours lstm": rnn_keras.LSTMCell,
    "ours mingru": rnn_keras.MinGRUCell,
    "ours minlstm": rnn_keras.MinLSTMCell,
    "previous gate": PreviousGate,
    "two sigmoids": with_gate(TwoSigmoids()),
    "softplus": with_gate(Softplus()),
    "one sigmoid": with_gate(OneSigmoid()),
}


def main():
    # The layer table's own timing (interleaved rounds, medians), with these variants.
    speed_vs_pytorch.compare(
        __doc__.splitlines()[0],
        {
            name: lambda units, cell=cell: rnn_keras.Recurrent(cell(units))
            for name, cell in VARIANTS.items()
        },
        lengths=[1000],
        rounds=10,
    )


if __name__ == "__main__":
    main()
