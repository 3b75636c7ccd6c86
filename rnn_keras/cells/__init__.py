"""Recurrent cells that follow the Keras cell contract."""

from rnn_keras.cells.base import RecurrentCell
from rnn_keras.cells.elman import ElmanCell
from rnn_keras.cells.gru import GRUCell
from rnn_keras.cells.jordan import JordanCell
from rnn_keras.cells.lstm import LSTMCell
from rnn_keras.cells.minimal import MinGRUCell, MinLSTMCell

CELL_TYPES = {
    "elman": ElmanCell,
    "jordan": JordanCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
    "mingru": MinGRUCell,
    "minlstm": MinLSTMCell,
}


def make_cell(kind, units, **kwargs):
    """Builds a cell by name: "elman", "jordan", "lstm", "gru", "mingru" or "minlstm".

    Example:

    >>> cell = rnn_keras.make_cell("gru", 64, reset_after=False, dropout=0.1)
    """
    if kind not in CELL_TYPES:
        raise ValueError(
            f"Argument `kind` must be one of {sorted(CELL_TYPES)}. Received: kind={kind!r}"
        )
    if kind == "jordan":
        kwargs.setdefault("output_units", units)
    return CELL_TYPES[kind](units, **kwargs)


__all__ = [
    "RecurrentCell",
    "ElmanCell",
    "GRUCell",
    "JordanCell",
    "LSTMCell",
    "MinGRUCell",
    "MinLSTMCell",
    "CELL_TYPES",
    "make_cell",
]
