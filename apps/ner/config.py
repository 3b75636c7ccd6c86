"""The NER app's config: defaults of every section, overridable by file and command line.

Example:

    python -m apps.ner train --data ../shared/data/conll2003 model.head=softmax
"""

import dataclasses

from apps.common.config import ExportConfig, TrainConfig, TuneConfig, choices

TAG_SCHEMES = ("iob2", "iob1")
CELLS = ("lstm", "gru", "mingru", "minlstm")
CHAR_ENCODERS = ("lstm", "cnn", "none")
HEADS = ("crf", "softmax")


@dataclasses.dataclass
class NerDataConfig:
    """Where tagged sentences come from and how to read them (the config's `data` section).

    Attributes:
        source: tfds catalog name (`conll2003`), a CoNLL file, or a directory of split files
            (`train.txt`, `valid.txt`/`dev.txt`, `test.txt`).
        token_column: 0-based column holding the token.
        tag_column: 0-based column holding the tag; negative counts from the end (-1: last),
            so 2-column `token tag` and 4-column `token POS chunk NER` files both work.
        delimiter: "" splits columns on any whitespace; "\\t" on tabs (tokens may hold spaces).
        tag_scheme: `iob2` (an I- tag must continue an entity of its type; anything else is an
            error naming file and line) or `iob1` (the file is read as IOB1 and converted to
            IOB2: an I- tag that starts an entity becomes B-).
        encoding: encoding of local files.
        validation_fraction: share of train carved as validation when the source has none.
        seed: seed of that carve.
        data_dir: tfds data directory; empty for `$TFDS_DATA_DIR` or ~/tensorflow_datasets.
        max_examples: keep the first N sentences of each split (0 keeps all), for quick runs.
    """

    source: str = "conll2003"
    token_column: int = 0
    tag_column: int = -1
    delimiter: str = ""
    tag_scheme: str = dataclasses.field(default="iob2", metadata=choices(*TAG_SCHEMES))
    encoding: str = "utf-8"
    validation_fraction: float = 0.1
    seed: int = 1234
    data_dir: str = ""
    max_examples: int = 0


@dataclasses.dataclass
class NerModelConfig:
    """Word and character features, the bidirectional encoder and the tagging head."""

    # Words (lower-cased, digits mapped to 0) seen at least `min_word_count` times in train,
    # at most `max_words` of them; the rest share the out-of-vocabulary row.
    max_words: int = 50000
    min_word_count: int = 1
    word_embedding_dim: int = 100
    # A word vectors text file (GloVe format) whose vectors start the embedding rows.
    word_vectors: str = ""
    # Casing of the original token (lower, upper, title, digits, mixed, ...), embedded.
    case_embedding_dim: int = 8
    # Word dropout: share of training tokens replaced by the unknown word.
    word_dropout: float = 0.05
    char_encoder: str = dataclasses.field(default="cnn", metadata=choices(*CHAR_ENCODERS))
    char_embedding_dim: int = 25
    # Units per direction of the character BiLSTM (Lample et al. 2016: 25).
    char_units: int = 25
    # Filters and width of the character CNN (Ma & Hovy 2016: 30 filters of width 3).
    char_filters: int = 50
    char_kernel_size: int = 3
    # Longer tokens are cut to their first `max_word_chars` characters.
    max_word_chars: int = 20
    cell: str = dataclasses.field(default="lstm", metadata=choices(*CELLS))
    units: int = 100
    num_layers: int = 1
    head: str = dataclasses.field(default="crf", metadata=choices(*HEADS))
    embedding_dropout: float = 0.5
    dropout: float = 0.5


@dataclasses.dataclass
class NerScheduleConfig:
    """Learning-rate decay on a plateau of validation entity F1 (`ReduceLROnPlateau`).

    After `patience` epochs without a better `val_entity_f1` the learning rate is multiplied
    by `factor` (1 disables the decay), down to `min_learning_rate`.
    """

    factor: float = 0.5
    patience: int = 1
    min_learning_rate: float = 1e-4


def _train_defaults():
    return TrainConfig(
        epochs=30,
        batch_size=32,
        learning_rate=2e-3,
        clipnorm=5.0,
        early_stopping_patience=4,
    )


@dataclasses.dataclass
class NerConfig:
    """Everything an NER run needs; saved as config.json beside every run and export."""

    seed: int = 1337
    data: NerDataConfig = dataclasses.field(default_factory=NerDataConfig)
    model: NerModelConfig = dataclasses.field(default_factory=NerModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=_train_defaults)
    schedule: NerScheduleConfig = dataclasses.field(default_factory=NerScheduleConfig)
    tune: TuneConfig = dataclasses.field(default_factory=TuneConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
