"""Stacks of `Recurrent` layers: several layers, each hoisting its own input projection."""

import keras

from rnn_keras.cells import make_cell
from rnn_keras.recurrent import Recurrent


def recurrent_layers(
    kind="lstm",
    units=128,
    num_layers=1,
    bidirectional=False,
    return_sequences=False,
    name=None,
    batch_groups=1,
    **cell_kwargs,
):
    """A stack of `Recurrent` layers, one cell each; all but the last return sequences.

    Stacking layers (rather than cells in one loop) lets every layer hoist its
    input projection over the whole sequence. Apply the layers in order;
    Keras propagates the mask between them.

    Args:
        kind: "elman", "jordan", "lstm", "gru", "mingru" or "minlstm".
        units: units per layer (per direction when bidirectional).
        num_layers: positive number of stacked layers.
        bidirectional: wrap each layer in `keras.layers.Bidirectional`
            (outputs concatenated).
        return_sequences: whether the last layer returns sequences.
        name: optional prefix of the layer names.
        batch_groups: each layer's `Recurrent(batch_groups=...)`.
        **cell_kwargs: passed to every cell (e.g. `dropout`, `reset_after`).

    Returns:
        A list of `num_layers` layers.

    Example:

    >>> tokens = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(1000, 32, mask_zero=True)(tokens)
    >>> for layer in rnn_keras.recurrent_layers("gru", 64, num_layers=2, bidirectional=True):
    ...     x = layer(x)
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(
            f"Argument `num_layers` must be a positive integer. Received: num_layers={num_layers!r}"
        )
    layers = []
    for index in range(num_layers):
        sequences = return_sequences or index < num_layers - 1
        layer_name = f"{name}_{index}" if name else None
        layer = Recurrent(
            make_cell(kind, units, **cell_kwargs),
            return_sequences=sequences,
            batch_groups=batch_groups,
            name=None if bidirectional else layer_name,
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=layer_name)
        layers.append(layer)
    return layers
