"""Time loops for the recurrent layers, and the bias addition with a matrix-product gradient.

`scan` is for loops that automatic differentiation goes through; `sliced_scan`
for the loops inside hand-written gradients (`rnn_keras.kernels`), where it
avoids copying the sequences. All sequences are time-major, `(time, ...)`.
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


def keep_masked(new, old, mask_t):
    """Where the mask is 0 the state carries over unchanged."""
    return old + mask_t * (new - old)


def zeros_if_none(gradient, like):
    return ops.zeros_like(like) if gradient is None else gradient
