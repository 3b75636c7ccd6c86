"""The character language model: characters -> ids -> embedding -> stacked cells -> logits.

`build_model(config, data_info)` returns a compiled functional model

    chars (batch, time) tf.string -> StringLookup "lookup" -> CharNetwork "char_network"
    -> logits (batch, time, vocabulary + 1)

Id 0 is the out-of-vocabulary id: a character the training text lacks maps to it and
never crashes. The loss is the mean cross-entropy in nats per character.

`CharNetwork` also runs one step at a time (`step`: ids (batch,) and states in, logits and
states out, plain matrix products, no loop), which is what generation and the exported
`step` signature call: a character costs the same whatever came before it.
"""

import keras
import tensorflow as tf
from keras import ops

import rnn_keras

# The character the model's vocabulary reserves for id 0 when ids are shown as text.
OOV_TEXT = ""


@keras.saving.register_keras_serializable(package="apps.textgen")
class CharNetwork(keras.layers.Layer):
    """Embedding, stacked `rnn_keras` recurrent layers and the output logits of a char LM.

    Args:
        vocabulary_size: number of ids, out-of-vocabulary id 0 included.
        embedding_dim: width of the character embedding.
        cell: `lstm`, `gru`, `elman`, `jordan`, `mingru` or `minlstm` (`rnn_keras.make_cell`).
        units: units per recurrent layer.
        num_layers: stacked recurrent layers.
        dropout: dropout rate on the inputs of each layer above the first and on the last
            layer's output (training only).
        layer_norm: layer-normalised LSTM cells (Ba et al. 2016); LSTM only.
        tie_weights: logits = (h P) E^T + b with the embedding matrix E (Press & Wolf 2017),
            P a learned projection from `units` to `embedding_dim`.
        embedding_stddev: the embedding starts as N(0, stddev^2) (PyTorch's `nn.Embedding`
            draws N(0, 1)); None keeps Keras's uniform(-0.05, 0.05).
        carry_batch_size: above 0, training calls start from the states the previous
            training call ended with (stateful truncated backpropagation through time) for
            batches of exactly this size; `reset_carried_states()` zeroes them. Calls with
            `training=False` always start from zeros.
        seed: dropout seed (the weights follow `keras.utils.set_random_seed`).

    Call arguments:
        ids: `(batch, time)` integer ids.
        training: whether dropout (and state carrying) is active.

    Returns:
        logits `(batch, time, vocabulary_size)`.

    Example:

    >>> network = CharNetwork(10, 8, "gru", 16, 2)
    >>> network(np.zeros((3, 5), "int32")).shape
    (3, 5, 10)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        cell,
        units,
        num_layers,
        dropout=0.0,
        layer_norm=False,
        tie_weights=False,
        embedding_stddev=None,
        carry_batch_size=0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.embedding_dim = int(embedding_dim)
        self.cell = cell
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.layer_norm = bool(layer_norm)
        self.tie_weights = bool(tie_weights)
        self.embedding_stddev = None if embedding_stddev is None else float(embedding_stddev)
        self.carry_batch_size = int(carry_batch_size)
        self.seed = seed
        if layer_norm and cell != "lstm":
            raise ValueError(f"layer_norm is an option of the lstm cell, not of {cell!r}")
        cell_options = {"layer_norm": True} if layer_norm else {}
        embedding_initializer = (
            "uniform"
            if embedding_stddev is None
            else keras.initializers.RandomNormal(stddev=self.embedding_stddev)
        )
        self.embedding = keras.layers.Embedding(
            vocabulary_size,
            embedding_dim,
            embeddings_initializer=embedding_initializer,
            name="embedding",
        )
        self.recurrent = [
            rnn_keras.Recurrent(
                rnn_keras.make_cell(cell, units, **cell_options),
                return_sequences=True,
                return_state=True,
                name=f"recurrent_{index}",
            )
            for index in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout, seed=seed, name="dropout")
        if tie_weights:
            self.projection = keras.layers.Dense(embedding_dim, name="projection")
            self.output_bias = None
        else:
            self.projection = keras.layers.Dense(vocabulary_size, name="logits")
        self.carried = None

    @property
    def state_sizes(self):
        """Sizes of the flat list of states, layer by layer (LSTM: h and c)."""
        sizes = []
        for layer in self.recurrent:
            size = layer.cell.state_size
            sizes += list(size) if isinstance(size, (list, tuple)) else [size]
        return sizes

    def build(self, ids_shape):
        self.embedding.build(ids_shape)
        width = self.embedding_dim
        for layer in self.recurrent:
            layer.build((None, None, width))
            width = self.units
        self.projection.build((None, width))
        if self.tie_weights:
            self.output_bias = self.add_weight(
                name="output_bias", shape=(self.vocabulary_size,), initializer="zeros"
            )
        if self.carry_batch_size:
            self.carried = [
                self.add_weight(
                    name=f"carried_state_{index}",
                    shape=(self.carry_batch_size, size),
                    initializer="zeros",
                    trainable=False,
                )
                for index, size in enumerate(self.state_sizes)
            ]

    def initial_states(self, batch_size):
        """Zero states, a flat list (see `state_sizes`), each `(batch_size, size)`."""
        return [
            ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_sizes
        ]

    def reset_carried_states(self):
        """Zeroes the states carried between training calls (stateful training)."""
        for variable in self.carried or []:
            variable.assign(ops.zeros_like(variable))

    def logits_of(self, outputs):
        """Logits from the last layer's outputs `(..., units)`."""
        projected = self.projection(outputs)
        if not self.tie_weights:
            return projected
        return ops.matmul(projected, ops.transpose(self.embedding.embeddings)) + self.output_bias

    def _split_states(self, states):
        grouped, index = [], 0
        for layer in self.recurrent:
            count = len(layer.cell.state_size) if isinstance(layer.cell.state_size, list) else 1
            grouped.append(list(states[index : index + count]))
            index += count
        return grouped

    def run(self, ids, states=None, mask=None, training=False):
        """The whole sequence: `(logits (batch, time, vocabulary), final states)`.

        Args:
            ids: `(batch, time)` ids.
            states: flat list of initial states, or None for zeros.
            mask: `(batch, time)` booleans, True for real steps (right-padded); states hold
                over padded steps, so the final states are those after the last real step.
        """
        x = self.embedding(ids)
        grouped = self._split_states(states) if states is not None else [None] * self.num_layers
        final = []
        for index, (layer, layer_states) in enumerate(zip(self.recurrent, grouped, strict=True)):
            if index > 0:
                x = self.dropout_layer(x, training=training)
            x, *new_states = layer(x, initial_state=layer_states, mask=mask, training=training)
            final += new_states
        x = self.dropout_layer(x, training=training)
        return self.logits_of(x), final

    def call(self, ids, training=False):
        carry = bool(training) and self.carried is not None
        states = [ops.convert_to_tensor(variable) for variable in self.carried] if carry else None
        logits, final = self.run(ids, states, training=training)
        if carry:
            for variable, value in zip(self.carried, final, strict=True):
                variable.assign(ops.stop_gradient(value))
        return logits

    def step(self, ids, states):
        """One character per row: ids `(batch,)`, flat states -> logits `(batch, V)`, states."""
        x = self.embedding(ids)
        final = []
        for layer, layer_states in zip(self.recurrent, self._split_states(states), strict=True):
            x, new_states = layer.step(x, layer_states)
            final += new_states
        return self.logits_of(x), final

    def last_logits(self, states):
        """Logits of the next character from states alone (the top layer's output is its
        first state, for every rnn_keras cell)."""
        return self.logits_of(states[len(self.state_sizes) - self._top_state_count()])

    def _top_state_count(self):
        size = self.recurrent[-1].cell.state_size
        return len(size) if isinstance(size, list) else 1

    def compute_output_shape(self, ids_shape):
        return tuple(ids_shape) + (self.vocabulary_size,)

    def get_config(self):
        config = {
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "layer_norm": self.layer_norm,
            "tie_weights": self.tie_weights,
            "embedding_stddev": self.embedding_stddev,
            "carry_batch_size": self.carry_batch_size,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def make_lookup(vocabulary, name="lookup"):
    """StringLookup of single characters: the vocabulary gets ids 1.., anything else 0."""
    return keras.layers.StringLookup(
        vocabulary=list(vocabulary), num_oov_indices=1, mask_token=None, name=name
    )


def build_model(config, data_info, carry_batch_size=None):
    """The compiled character model of `config` (a `TextGenConfig`) over the data's vocabulary.

    Args:
        carry_batch_size: overrides the stateful batch size (default: `train.batch_size`
            in `stateful` mode, 0 otherwise).
    """
    vocabulary = data_info["vocabulary"]
    model_config = config.model
    if carry_batch_size is None:
        stateful = config.data.mode == "stateful"
        carry_batch_size = config.train.batch_size if stateful else 0
    chars = keras.Input(shape=(None,), dtype="string", name="chars")
    ids = make_lookup(vocabulary)(chars)
    network = CharNetwork(
        vocabulary_size=len(vocabulary) + 1,
        embedding_dim=model_config.embedding_dim,
        cell=model_config.cell,
        units=model_config.units,
        num_layers=model_config.num_layers,
        dropout=model_config.dropout,
        layer_norm=model_config.layer_norm,
        tie_weights=model_config.tie_weights,
        embedding_stddev=model_config.embedding_stddev,
        carry_batch_size=carry_batch_size,
        seed=config.seed,
        name="char_network",
    )
    model = keras.Model(chars, network(ids), name="textgen")
    from apps.common import training

    model.compile(
        optimizer=training.make_optimizer(config.train),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def parts(model):
    """`(lookup, network)` of a built model."""
    return model.get_layer("lookup"), model.get_layer("char_network")


def id_to_char_table(vocabulary):
    """A string tensor indexed by id: id 0 (out of vocabulary) shows as `OOV_TEXT`."""
    return tf.constant([OOV_TEXT] + list(vocabulary))


class ResetCarriedStates(keras.callbacks.Callback):
    """Zeroes the carried states at the start of every epoch (stateful training)."""

    def on_epoch_begin(self, epoch, logs=None):
        parts(self.model)[1].reset_carried_states()
