"""The fast sequence layer: input projection hoisted out of the time loop."""

import keras
from keras import ops

from rnn_keras import cudnn
from rnn_keras.cells import RecurrentCell
from rnn_keras.loops import scan

# Training with a fused kernel runs a sequence in at most this many chunks of
# time, each at least MIN_CHUNK_STEPS long (Recurrent._fused_chunks); chosen
# with benchmarks/cells.py on a 2-core CPU (6 and 8 chunks were no faster).
CHUNKS = 4
MIN_CHUNK_STEPS = 16


def _as_list(states):
    return list(states) if isinstance(states, (list, tuple)) else [states]


def _state_sizes(cell):
    """The cell's state sizes, nested as its states are (stacked cells nest a list per cell)."""
    return _as_list(cell.state_size)


def _prepare_keras_dropout_masks(cell, step_inputs, states):
    """Draws the per-sequence dropout masks of Keras's own cells before the loop.

    Keras's cells cache one mask per sequence on themselves; drawing it inside
    the loop would draw it in the loop's graph. This mirrors keras.layers.RNN.
    """
    state = states[0] if isinstance(states, (list, tuple)) else states
    if hasattr(cell, "get_dropout_mask") and hasattr(cell, "reset_dropout_mask"):
        cell.get_dropout_mask(step_inputs)
        cell.get_recurrent_dropout_mask(state)
    if isinstance(cell, keras.layers.StackedRNNCells):
        for inner, inner_states in zip(cell.cells, states, strict=True):
            _prepare_keras_dropout_masks(inner, step_inputs, inner_states)
            inner_states = (
                list(inner_states) if keras.tree.is_nested(inner_states) else [inner_states]
            )
            step_inputs, _ = inner(step_inputs, inner_states)


def _reset_keras_dropout_masks(cell):
    """Clears the cached masks so that the next sequence draws new ones."""
    if hasattr(cell, "reset_dropout_mask") and hasattr(cell, "reset_recurrent_dropout_mask"):
        cell.reset_dropout_mask()
        cell.reset_recurrent_dropout_mask()
    for inner in getattr(cell, "cells", []):
        _reset_keras_dropout_masks(inner)


@keras.saving.register_keras_serializable(package="rnn_keras")
class Recurrent(keras.layers.Layer):
    """Runs a recurrent cell over a sequence, the input projection hoisted.

    Same options and call signature as `keras.layers.RNN`. For rnn_keras
    cells, x_t W (+ b) for all time steps is one matrix product before the
    loop, so the loop only computes h_{t-1} U, as cuDNN and PyTorch do; the
    standard LSTM, GRU and Elman cells also run a hand-written backward pass
    (see `rnn_keras.kernels`). On a GPU, standard LSTM and GRU cells run
    through Keras's own layers, which call cuDNN (see `rnn_keras.cudnn`).
    The minimal cells (`MinGRUCell`, `MinLSTMCell`) run a whole sequence as
    one parallel scan, without a time loop. Dropout masks are drawn once per
    call (variational dropout, Gal & Ghahramani 2016). Any other Keras cell
    runs step by step, as in `keras.layers.RNN`.

    Args:
        cell: an rnn_keras cell, any Keras-contract cell, or a list of cells
            (stacked with `keras.layers.StackedRNNCells`).
        return_sequences: return the whole output sequence, not only the last.
        return_state: also return the final states.
        go_backwards: process the sequence backwards and return the reversed
            sequence.
        stateful: carry the last states of batch i into batch i of the next
            call (needs a fixed batch size; `reset_state()` clears them).
        zero_output_for_mask: output zeros at masked steps of the returned
            sequence (as cuDNN and `keras.layers.Bidirectional` do) instead of
            repeating the last real output. Default True. The last output
            (`return_sequences=False`) is always the last real step's.
        batch_groups: run the batch as this many independent recurrences,
            each over a contiguous slice of it (rnn_keras cells only; same
            results). A time loop is a chain of small dependent operations;
            separate chains can run on separate CPU cores. That pays when
            TensorFlow runs each operation on one thread
            (`tf.config.threading.set_intra_op_parallelism_threads(1)`); with
            its default multi-threaded operations it does not. Default 1.

    Call arguments:
        sequences: `(batch, time, features)`.
        initial_state: list of `(batch, state)` tensors, or None for zeros.
        mask: `(batch, time)` boolean, True for real steps; right-padded.
        training: whether dropout is active.

    Returns:
        `(batch, time, units)` if `return_sequences`, else `(batch, units)`;
        followed by the final states if `return_state`.

    Example:

    >>> layer = rnn_keras.Recurrent(rnn_keras.LSTMCell(64), return_sequences=True)
    >>> keras.layers.Bidirectional(layer)(np.zeros((8, 20, 16), "float32")).shape
    (8, 20, 128)
    """

    # None: the cuDNN path (rnn_keras.cudnn) on a GPU for eligible cells; True / False force
    # it on or off (tests check the path on a CPU with True).
    _keras_layer_path = None

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        zero_output_for_mask=True,
        batch_groups=1,
        **kwargs,
    ):
        if isinstance(cell, (list, tuple)):
            cell = keras.layers.StackedRNNCells(cell)
        if not hasattr(cell, "state_size") or not hasattr(cell, "call"):
            raise ValueError(
                f"Argument `cell` must be a recurrent cell with `state_size`. Received: cell={cell!r}"
            )
        if isinstance(batch_groups, bool) or not isinstance(batch_groups, int) or batch_groups < 1:
            raise ValueError(
                "Argument `batch_groups` must be a positive integer. "
                f"Received: batch_groups={batch_groups!r}"
            )
        if batch_groups > 1 and not isinstance(cell, RecurrentCell):
            raise ValueError(
                "Argument `batch_groups` above 1 needs an rnn_keras cell. "
                f"Received: batch_groups={batch_groups}, cell={cell!r}"
            )
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.zero_output_for_mask = zero_output_for_mask
        self.batch_groups = batch_groups
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(min_ndim=3)
        self.states = None
        if cudnn.gpu_available() and cudnn.keras_layer_eligible(cell, training=False):
            # As keras.layers.LSTM / GRU do: XLA has no kernel for cuDNN's RNN op.
            self.supports_jit = False

    @property
    def hoists_inputs(self):
        return isinstance(self.cell, RecurrentCell)

    def build(self, sequences_shape, initial_state_shape=None):
        step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
        if not self.cell.built:
            self.cell.build(step_shape)
        if self.stateful:
            batch_size = sequences_shape[0]
            if batch_size is None:
                raise ValueError(
                    "A stateful layer needs a fixed batch size: give the Input a `batch_size`."
                )
            self.states = [
                self.add_weight(
                    name=f"state_{index}",
                    shape=(batch_size, size),
                    initializer="zeros",
                    trainable=False,
                )
                for index, size in enumerate(keras.tree.flatten(_state_sizes(self.cell)))
            ]

    def reset_state(self):
        if self.states is not None:
            for state in self.states:
                state.assign(ops.zeros_like(state))

    def reset_states(self):
        self.reset_state()

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        output_size = self.cell.output_size
        if self.return_sequences:
            output_shape = (sequences_shape[0], sequences_shape[1], output_size)
        else:
            output_shape = (sequences_shape[0], output_size)
        if not self.return_state:
            return output_shape
        states = keras.tree.map_structure(
            lambda size: (sequences_shape[0], size), _state_sizes(self.cell)
        )
        return [output_shape, *states]

    def compute_mask(self, _, mask=None):
        mask = keras.tree.flatten(mask)[0] if mask is not None else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None for _ in _state_sizes(self.cell)]
        return output_mask

    def get_initial_state(self, batch_size):
        if hasattr(self.cell, "get_initial_state"):
            return _as_list(self.cell.get_initial_state(batch_size=batch_size))
        return keras.tree.map_structure(
            lambda size: ops.zeros((batch_size, size), dtype=self.compute_dtype),
            _state_sizes(self.cell),
        )

    def step(self, inputs, states):
        """One time step for streaming inference: `(batch, features)` -> `(output, new_states)`.

        State in, state out, no dropout: what an exported streaming model calls.
        """
        output, new_states = self.cell(inputs, _as_list(states), training=False)
        return output, _as_list(new_states)

    def _dropout_masks(self, sequences, states, training):
        cell = self.cell
        if not self.hoists_inputs or not training:
            return None, None
        input_mask = recurrent_mask = None
        if cell.dropout > 0:
            input_mask = keras.random.dropout(
                ops.ones_like(sequences[:, 0, :]), cell.dropout, seed=cell.seed_generator
            )
        if cell.recurrent_dropout > 0:
            recurrent_mask = keras.random.dropout(
                ops.ones_like(states[0]), cell.recurrent_dropout, seed=cell.seed_generator
            )
        return input_mask, recurrent_mask

    def _grouped_loops(self, inputs, states, mask, recurrent_mask, training):
        """`_hoisted_loop` over `batch_groups` contiguous slices of the batch, joined again.

        The slices share no operation, so TensorFlow may run their loops on
        different cores. Bounds are computed from the run-time batch size,
        which may be unknown while tracing.
        """
        groups = self.batch_groups
        if groups == 1:
            return self._hoisted_loop(inputs, states, mask, recurrent_mask, training)
        batch = ops.shape(inputs)[1]
        bounds = [index * batch // groups for index in range(groups + 1)]
        results = []
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            results.append(
                self._hoisted_loop(
                    inputs[:, start:stop],
                    [state[start:stop] for state in states],
                    None if mask is None else mask[:, start:stop],
                    None if recurrent_mask is None else recurrent_mask[start:stop],
                    training,
                )
            )
        outputs, last_outputs, final_states = zip(*results, strict=True)
        outputs = None if outputs[0] is None else ops.concatenate(outputs, axis=1)
        final_states = [ops.concatenate(parts, axis=0) for parts in zip(*final_states, strict=True)]
        return outputs, ops.concatenate(last_outputs, axis=0), final_states

    def _hoisted_loop(self, inputs, states, mask, recurrent_mask, training):
        """The loops of an rnn_keras cell, time-major; returns (outputs, last output, states).

        Training runs the cell's fused kernel where it has one (it saves what
        its hand-written backward pass needs), in chunks of time; otherwise the
        plain state loop, which does less work. Inference that needs only the
        final states asks the cell for its state-only loop first (training too, for a
        cell that scans in parallel). `outputs` is
        None when neither the returned sequence nor the mask needs it.
        """
        cell = self.cell
        if (not training or cell.scans_in_parallel) and not self.return_sequences:
            final_states = cell.fused_final_states(inputs, states, mask)
            if final_states is not None:
                last_output = final_states[0]
                if mask is not None:
                    # Keras outputs zeros for a sequence without a real step.
                    real = ops.cast(ops.max(mask, axis=0) > 0, last_output.dtype)
                    last_output = last_output * real
                return None, last_output, final_states
        if cell.scans_in_parallel:
            # No time loop to overlap with anything: the whole sequence at once.
            chunks = [cell.fused_sequence(inputs, states, mask, recurrent_mask, training)]
        elif training and cell.has_fused_kernel:
            chunks = self._fused_chunks(inputs, states, mask, recurrent_mask)
        else:
            # Inference projects inside the loop: x_t W does not depend on the
            # state, so the loop's parallel iterations overlap it with the
            # recurrent product of the step before. (Hoisted, in chunks, it
            # was slower on a 2-core CPU.)
            projected = inputs if not training else cell.project_inputs(inputs)
            chunks = [
                self._state_loop(
                    projected, states, mask, recurrent_mask, project_in_loop=not training
                )
            ]
        final_states = [sequence[-1] for sequence in chunks[-1]]
        if mask is None and not self.return_sequences:
            return None, chunks[-1][0][-1], final_states
        outputs = ops.concatenate([chunk[0] for chunk in chunks], axis=0)
        if mask is not None:
            # States hold over masked steps, so the output there repeats the
            # last real one; Keras outputs zeros before the first real step.
            outputs = outputs * ops.cast(ops.cumsum(mask, axis=0) > 0, outputs.dtype)
        last_output = outputs[-1]
        if mask is not None and self.zero_output_for_mask:
            outputs = outputs * mask
        return outputs, last_output, final_states

    def _fused_chunks(self, inputs, states, mask, recurrent_mask):
        """Training with the cell's fused kernel, over consecutive chunks of time.

        Each chunk is projected and run on its own, its final states starting
        the next. The time loop is a chain of small dependent operations that
        leaves the second CPU core mostly idle; in chunks, TensorFlow computes
        the large products of one chunk (its input projection, its weight
        gradients) on that core while the loop of the next one runs. Returns
        the list of per-chunk state sequences.
        """
        steps = inputs.shape[0]
        count = 1 if steps is None else max(1, min(CHUNKS, steps // MIN_CHUNK_STEPS))
        bounds = [round(index * steps / count) for index in range(1, count)]
        pieces = ops.split(inputs, bounds, axis=0) if count > 1 else [inputs]
        masks = [None] * count
        if mask is not None:
            masks = ops.split(mask, bounds, axis=0) if count > 1 else [mask]
        chunks = []
        for piece, piece_mask in zip(pieces, masks, strict=True):
            chunks.append(self.cell.fused_sequence(piece, states, piece_mask, recurrent_mask, True))
            states = [sequence[-1] for sequence in chunks[-1]]
        return chunks

    def _state_loop(self, inputs, states, mask, recurrent_mask, project_in_loop=False):
        """The loop of an rnn_keras cell: carries and collects only its states.

        keras.ops.scan keeps every carried tensor in TensorArrays (read, write
        and collect per step); the cell's output is its first state, so nothing
        else needs carrying. Returns the per-state sequences, time-major.
        """
        cell = self.cell

        def step(carry, xs):
            x_t = xs[0] if mask is not None else xs
            if project_in_loop:
                x_t = cell.project_inputs(x_t)
            _, new_states = cell.recurrent_step(x_t, list(carry), recurrent_mask)
            new_states = _as_list(new_states)
            if mask is not None:
                new_states = [
                    old + xs[1] * (new - old) for new, old in zip(new_states, carry, strict=True)
                ]
            return tuple(new_states), tuple(new_states)

        xs = (inputs, mask) if mask is not None else inputs
        _, sequences = scan(step, tuple(states), xs)
        return list(sequences)

    def _generic_loop(self, inputs, states, mask, training):
        """Step-by-step loop for any other Keras-contract cell, time-major.

        Returns the output sequence, the last real output and the final states.
        """
        cell = self.cell
        flat_states = keras.tree.flatten(states)

        def call_cell(x_t, flat):
            packed = keras.tree.pack_sequence_as(states, flat)
            output, new = cell(x_t, packed, training=training)
            return output, keras.tree.flatten(new)

        batch_size = ops.shape(inputs)[1]
        previous_output = ops.zeros((batch_size, cell.output_size), dtype=inputs.dtype)

        def step(carry, xs):
            # keras.ops.scan emits the carry itself, so the carry holds both the
            # last real output and the output emitted at this step.
            *flat, output_before, _ = carry
            x_t = xs[0] if mask is not None else xs
            output, new_flat = call_cell(x_t, flat)
            emitted = output
            if mask is not None:
                m_t = xs[1]
                new_flat = [
                    old + m_t * (new - old) for new, old in zip(new_flat, flat, strict=True)
                ]
                output = output_before + m_t * (output - output_before)
                emitted = output * m_t if self.zero_output_for_mask else output
            carry = (*new_flat, output, emitted)
            return carry, carry

        xs = (inputs, mask) if mask is not None else inputs
        initial = (*flat_states, previous_output, previous_output)
        final, sequences = scan(step, initial, xs)
        final_states = keras.tree.pack_sequence_as(states, list(final[:-2]))
        return sequences[-1], final[-2], _as_list(final_states)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        batch_size = ops.shape(sequences)[0]
        if initial_state is None and self.stateful:
            initial_state = keras.tree.pack_sequence_as(_state_sizes(self.cell), self.states)
        elif initial_state is None:
            initial_state = self.get_initial_state(batch_size)
        # Stacked cells nest their states: convert the leaves, keep the structure.
        states = keras.tree.map_structure(
            lambda state: ops.convert_to_tensor(state, dtype=self.compute_dtype),
            _as_list(initial_state),
        )
        input_mask, recurrent_mask = self._dropout_masks(sequences, states, training)
        if input_mask is not None:
            # One mask per sequence: applying it before the projection is exact.
            sequences = sequences * ops.expand_dims(input_mask, 1)
        if mask is not None:
            mask = keras.tree.flatten(mask)[0]
        if self.hoists_inputs and self._takes_keras_layer(training):
            output, final_states = cudnn.call_keras_layer_or_general(
                self,
                sequences,
                states,
                mask,
                lambda: self._general_call(sequences, states, mask, recurrent_mask, training),
            )
        else:
            output, final_states = self._general_call(
                sequences, states, mask, recurrent_mask, training
            )
        if self.stateful:
            for variable, value in zip(self.states, keras.tree.flatten(final_states), strict=True):
                variable.assign(ops.cast(value, variable.dtype))
        if self.return_state:
            return output, *final_states
        return output

    def _takes_keras_layer(self, training):
        """Whether this call hands the cell to keras.layers.LSTM / GRU (cuDNN on a GPU).

        `_keras_layer_path` is None (on a GPU, when the cell is eligible), or
        True / False to force it either way, which tests use on a CPU.
        """
        wanted = self._keras_layer_path
        if wanted is None:
            wanted = cudnn.gpu_available()
        return bool(wanted) and cudnn.keras_layer_eligible(self.cell, training)

    def _general_call(self, sequences, states, mask, recurrent_mask, training):
        """The time-major loops (hoisted or generic); returns (output, final states)."""
        if not self.hoists_inputs:
            _prepare_keras_dropout_masks(self.cell, sequences[:, 0, :], states)
        # Time-major before the projection: transposing (and flipping) the
        # narrow inputs is cheaper than doing it to the projection, 3-4 times
        # the units wide.
        inputs = ops.transpose(sequences, (1, 0, 2))
        if mask is not None:
            mask = ops.expand_dims(ops.transpose(ops.cast(mask, inputs.dtype)), -1)
        if self.go_backwards:
            inputs = ops.flip(inputs, axis=0)
            mask = ops.flip(mask, axis=0) if mask is not None else None

        if self.hoists_inputs:
            outputs, last_output, final_states = self._grouped_loops(
                inputs, states, mask, recurrent_mask, training
            )
        else:
            outputs, last_output, final_states = self._generic_loop(inputs, states, mask, training)
            _reset_keras_dropout_masks(self.cell)
        output = ops.transpose(outputs, (1, 0, 2)) if self.return_sequences else last_output
        return output, final_states

    def get_config(self):
        config = {
            "cell": keras.saving.serialize_keras_object(self.cell),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "zero_output_for_mask": self.zero_output_for_mask,
            "batch_groups": self.batch_groups,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(
            config["cell"], custom_objects=custom_objects
        )
        return cls(**config)
