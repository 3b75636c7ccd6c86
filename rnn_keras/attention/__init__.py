"""Attention mechanisms: one base class (masking, softmax, weighted sum) and its score functions."""

from rnn_keras.attention.bahdanau import BahdanauAttention
from rnn_keras.attention.base import BaseAttention
from rnn_keras.attention.luong import LuongAttention

__all__ = ["BaseAttention", "BahdanauAttention", "LuongAttention"]
