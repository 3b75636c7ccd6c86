"""rnn_keras: recurrent cells, attention, CRF and seq2seq decoding for Keras 3."""

from rnn_keras.attention import BahdanauAttention, BaseAttention, LuongAttention
from rnn_keras.cells import (
    CELL_TYPES,
    ElmanCell,
    GRUCell,
    JordanCell,
    LSTMCell,
    MinGRUCell,
    MinLSTMCell,
    RecurrentCell,
    make_cell,
)
from rnn_keras.crf import (
    CRF,
    CRFModel,
    crf_decode,
    crf_log_likelihood,
    crf_log_norm,
    crf_sequence_score,
)
from rnn_keras.decoding import (
    AttentionDecoder,
    beam_search,
    greedy_search,
    length_penalty_factor,
    sampling_search,
)
from rnn_keras.recurrent import Recurrent
from rnn_keras.seq2seq import Seq2Seq
from rnn_keras.stacks import recurrent_layers

__version__ = "0.1.0"

__all__ = [
    "CELL_TYPES",
    "CRF",
    "AttentionDecoder",
    "BahdanauAttention",
    "BaseAttention",
    "CRFModel",
    "ElmanCell",
    "GRUCell",
    "JordanCell",
    "LSTMCell",
    "LuongAttention",
    "MinGRUCell",
    "MinLSTMCell",
    "Recurrent",
    "RecurrentCell",
    "Seq2Seq",
    "beam_search",
    "crf_decode",
    "crf_log_likelihood",
    "crf_log_norm",
    "crf_sequence_score",
    "greedy_search",
    "length_penalty_factor",
    "make_cell",
    "recurrent_layers",
    "sampling_search",
]
