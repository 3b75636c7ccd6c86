"""The sentiment app's config: defaults of every section, overridable by file and command line.

Example:

    python -m apps.sentiment train --data ../shared/data/imdb/train.csv model.units=128
"""

import dataclasses

from apps.common.config import ExportConfig, TrainConfig, TuneConfig, choices
from apps.common.text import PretrainConfig

FORMATS = ("auto", "csv", "tsv", "folders")
STRIP_HTML = ("auto", "true", "false")
CELLS = ("lstm", "gru", "elman", "jordan", "mingru", "minlstm")
POOLINGS = ("last", "max", "mean", "attention")
ATTENTION_SCORES = ("bahdanau", "luong")


@dataclasses.dataclass
class SentimentDataConfig:
    """Where sentiment data comes from and how to read it (the app config's `data` section).

    Attributes:
        source: tfds catalog name (`imdb_reviews`, `glue/sst2`) or a path to a CSV/TSV file
            or a directory (split files, or one folder per class).
        format: `auto` (from suffixes and layout), `csv`, `tsv` or `folders`.
        text_column: text column of CSV/TSV files; empty picks text, sentence, review, content.
        label_column: label column; empty picks label, sentiment, polarity.
        encoding: encoding of local files.
        label_names: class names in index order; empty infers them from the labels.
        strip_html: `auto` (on for IMDB sources), `true` or `false`: replace tags such as
            `<br />` by a space.
        validation_fraction: share of train carved as validation when the source has none.
        seed: seed of that carve.
        data_dir: tfds data directory; empty for `$TFDS_DATA_DIR` or ~/tensorflow_datasets.
        max_examples: keep the first N examples of each split (0 keeps all), for quick runs.
    """

    source: str = "imdb_reviews"
    format: str = dataclasses.field(default="auto", metadata=choices(*FORMATS))
    text_column: str = ""
    label_column: str = ""
    encoding: str = "utf-8"
    label_names: list[str] = dataclasses.field(default_factory=list)
    strip_html: str = dataclasses.field(default="auto", metadata=choices(*STRIP_HTML))
    validation_fraction: float = 0.1
    seed: int = 1234
    data_dir: str = ""
    max_examples: int = 0


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
