"""The sentiment app's config: defaults of every section, overridable by file and command line.

Example:

    python -m apps.sentiment train --data ../shared/data/imdb/train.csv model.units=128
"""

import dataclasses

from apps.common.config import ExportConfig, PretrainConfig, TrainConfig, TuneConfig, choices
from apps.sentiment.data import SentimentDataConfig

CELLS = ("lstm", "gru", "elman", "jordan")
POOLINGS = ("last", "max", "mean", "attention")
ATTENTION_SCORES = ("bahdanau", "luong")


@dataclasses.dataclass
class SentimentModelConfig:
    """Text vectorization, embedding, recurrent encoder, pooling and classifier."""

    # Vocabulary size including the padding and out-of-vocabulary tokens.
    max_tokens: int = 20000
    # Longer texts are cut to their first `sequence_length` tokens.
    sequence_length: int = 400
    embedding_dim: int = 128
    # A word vectors text file (GloVe / word2vec format, or `vectors` output) whose
    # vectors start the embedding rows of the words it holds; "" for random rows.
    word_vectors: str = ""
    cell: str = dataclasses.field(default="gru", metadata=choices(*CELLS))
    units: int = 64
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = dataclasses.field(default="max", metadata=choices(*POOLINGS))
    attention_score: str = dataclasses.field(
        default="bahdanau", metadata=choices(*ATTENTION_SCORES)
    )
    attention_units: int = 64
    # Word dropout: share of tokens replaced by the unknown token in training.
    token_dropout: float = 0.0
    embedding_dropout: float = 0.2
    dropout: float = 0.3
    recurrent_dropout: float = 0.0


@dataclasses.dataclass
class SentimentConfig:
    """Everything a sentiment run needs; saved as config.json beside every run and export."""

    seed: int = 1337
    data: SentimentDataConfig = dataclasses.field(default_factory=SentimentDataConfig)
    model: SentimentModelConfig = dataclasses.field(default_factory=SentimentModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    tune: TuneConfig = dataclasses.field(default_factory=TuneConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
