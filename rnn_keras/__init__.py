"""rnn_keras: recurrent cells, attention, CRF and seq2seq decoding for Keras 3."""

from rnn_keras.cells import (
    CELL_TYPES,
    ElmanCell,
    GRUCell,
    JordanCell,
    LSTMCell,
    RecurrentCell,
    make_cell,
)
from rnn_keras.recurrent import Recurrent, recurrent_layers

__version__ = "0.1.0"

__all__ = [
    "CELL_TYPES",
    "ElmanCell",
    "GRUCell",
    "JordanCell",
    "LSTMCell",
    "RecurrentCell",
    "Recurrent",
    "make_cell",
    "recurrent_layers",
]
