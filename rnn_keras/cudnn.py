"""The cuDNN path: standard LSTM and GRU cells handed to Keras's own layers on a GPU.

`keras.layers.LSTM` and `keras.layers.GRU` call cuDNN's fused RNN kernel on a
GPU (Keras 3, TensorFlow backend), many times faster there than any time loop
of Keras operations. `rnn_keras.Recurrent` runs a cell through them, with the
cell's own variables, when `keras_layer_eligible` says the cell computes
exactly what cuDNN computes and `gpu_available()`; everything else keeps the
general path (on a CPU that path is faster: its hand-written kernels,
`rnn_keras.kernels`). The cuDNN kernel also needs right-padded masks without
fully masked rows; `Recurrent` checks that at run time and otherwise takes the
general path.

The outputs follow `Recurrent`'s conventions, not cuDNN's: masked steps of the
returned sequence are zeros (`zero_output_for_mask=True`) or repeat the last
real output, and the last output is the last real step's.
"""

import keras
from keras import ops

from rnn_keras.cells.base import activation_name
from rnn_keras.cells.gru import GRUCell
from rnn_keras.cells.lstm import LSTMCell


def gpu_available():
    """Whether the TensorFlow backend sees a GPU (cuDNN's kernels need one)."""
    if keras.backend.backend() != "tensorflow":
        return False
    return bool(keras.distribution.list_devices("gpu"))


def keras_layer_eligible(cell, training):
    """Whether `cell` computes what Keras's cuDNN LSTM / GRU computes (a pure function).

    True for an rnn_keras `LSTMCell` without peepholes or layer normalisation
    and a `GRUCell` with `reset_after=True`, both with biases, the default
    activations (tanh, sigmoid) and no recurrent dropout while training
    (input dropout is applied by `Recurrent` before any path). False for any
    other cell, including subclasses, whose steps may differ.
    """
    if type(cell) not in (LSTMCell, GRUCell):
        return False
    if not cell.use_bias or (training and cell.recurrent_dropout > 0):
        return False
    if activation_name(cell.activation) != "tanh":
        return False
    if activation_name(cell.recurrent_activation) != "sigmoid":
        return False
    if isinstance(cell, LSTMCell):
        return not (cell.peephole or cell.layer_norm)
    return cell.reset_after


def mask_suits_cudnn(mask):
    """Whether a `(batch, time)` mask is right-padded with a real step in every row (a tensor)."""
    mask = ops.cast(mask, "int32")
    lengths = ops.sum(mask, axis=1)
    positions = ops.expand_dims(ops.arange(ops.shape(mask)[1], dtype="int32"), 0)
    right_padded = ops.all(ops.equal(mask, ops.cast(positions < lengths[:, None], "int32")))
    return ops.logical_and(right_padded, ops.all(lengths > 0))


def _keras_layer(cell, go_backwards):
    """A Keras LSTM / GRU layer whose cell reads `cell`'s variables (creates none)."""
    if isinstance(cell, LSTMCell):
        layer = keras.layers.LSTM(
            cell.units, return_sequences=True, return_state=True, go_backwards=go_backwards
        )
    else:
        layer = keras.layers.GRU(
            cell.units,
            return_sequences=True,
            return_state=True,
            go_backwards=go_backwards,
            reset_after=True,
        )
    # Assigned before `built` is set, so Keras tracks them on this throwaway layer only.
    layer.cell.kernel = cell.kernel
    layer.cell.recurrent_kernel = cell.recurrent_kernel
    layer.cell.bias = cell.bias
    layer.cell.built = True
    layer.built = True
    return layer


def keras_layer_sequence(cell, sequences, states, mask, go_backwards, zero_output_for_mask):
    """Runs an eligible cell over a sequence through `keras.layers.LSTM` / `GRU`.

    On a GPU Keras picks cuDNN; elsewhere Keras's own loop runs, with the same
    numbers (tests use that to check this function on a CPU).

    Args:
        cell: an rnn_keras `LSTMCell` or `GRUCell` for which
            `keras_layer_eligible` is True.
        sequences: `(batch, time, features)`, input dropout already applied.
        states: list of `(batch, units)` initial states (`[h, c]` or `[h]`).
        mask: `(batch, time)` boolean, right-padded, no fully masked row; or None.
        go_backwards: process the sequence backwards; the returned sequence is
            in processing order, as `Recurrent` returns it.
        zero_output_for_mask: zeros at masked steps of the returned sequence,
            else the last real output repeated.

    Returns:
        `(outputs, last_output, final_states)`: `(batch, time, units)`,
        `(batch, units)` and the list of final states.

    Example:

    >>> cell = rnn_keras.GRUCell(8); cell.build((None, 4))
    >>> x = np.zeros((2, 5, 4), "float32"); h0 = np.zeros((2, 8), "float32")
    >>> outputs, last, states = keras_layer_sequence(cell, x, [h0], None, False, True)
    """
    layer = _keras_layer(cell, go_backwards)
    outputs, *final_states = layer(sequences, initial_state=list(states), mask=mask)
    last_output = final_states[0]
    if mask is not None:
        # Keras's own loop and cuDNN disagree at masked steps; impose Recurrent's rule.
        real = ops.cast(mask, outputs.dtype)
        real = ops.flip(real, axis=1) if go_backwards else real
        real = ops.expand_dims(real, -1)
        if zero_output_for_mask:
            outputs = outputs * real
        else:
            started = ops.cast(ops.cumsum(real, axis=1) > 0, outputs.dtype)
            held = ops.expand_dims(last_output, 1) * started
            outputs = outputs * real + held * (1.0 - real)
    return outputs, last_output, final_states


def call_keras_layer_or_general(layer, sequences, states, mask, general):
    """`layer`'s call through `keras_layer_sequence` where the mask suits cuDNN, else `general()`.

    Args:
        layer: the `rnn_keras.Recurrent` layer (its cell and output options).
        sequences, states, mask: as `keras_layer_sequence` takes them; the mask
            is checked at run time (right-padded, a real step in every row).
        general: `() -> (output, final_states)`, the general path.

    Returns:
        `(output, final_states)`, the output a sequence if `layer.return_sequences`.
    """

    def keras_layer():
        outputs, last_output, final_states = keras_layer_sequence(
            layer.cell, sequences, states, mask, layer.go_backwards, layer.zero_output_for_mask
        )
        return (outputs if layer.return_sequences else last_output), *final_states

    def general_path():
        output, final_states = general()
        return output, *final_states

    if mask is None:
        output, *final_states = keras_layer()
    else:
        output, *final_states = ops.cond(mask_suits_cudnn(mask), keras_layer, general_path)
    return output, list(final_states)
