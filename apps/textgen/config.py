"""The text generation app's config: defaults of every section, overridable by file and command line.

Example:

    python -m apps.textgen train --data ../shared/data/tiny_shakespeare model.units=512
"""

import dataclasses

from apps.common.config import ExportConfig, TrainConfig, TuneConfig, choices

CELLS = ("lstm", "gru", "elman", "jordan", "mingru", "minlstm")
TRAINING_MODES = ("shuffled", "stateful")


@dataclasses.dataclass
class TextGenDataConfig:
    """Where the text comes from and how it is cut (the app config's `data` section).

    Attributes:
        source: tfds catalog name (`tiny_shakespeare`), a directory holding `train.txt` and
            `validation.txt` (`test.txt` optional; `dev`/`valid` also name validation), or
            one text file, split in order 90/5/5 into train/validation/test as tfds splits
            Tiny Shakespeare.
        encoding: encoding of local files.
        data_dir: tfds data directory; empty for `$TFDS_DATA_DIR` or ~/tensorflow_datasets.
        window: characters per training window (truncated backpropagation through time).
        mode: `shuffled` (independent windows, each from the zero state, in random order) or
            `stateful` (each batch row reads consecutive windows of its own stretch of the
            text, the state carried from one batch to the next, reset at each epoch start).
        max_chars: keep the first N characters of each split (0 keeps all), for quick runs.
    """

    source: str = "tiny_shakespeare"
    encoding: str = "utf-8"
    data_dir: str = ""
    window: int = 128
    mode: str = dataclasses.field(default="shuffled", metadata=choices(*TRAINING_MODES))
    max_chars: int = 0


@dataclasses.dataclass
class TextGenModelConfig:
    """Character lookup, embedding, stacked recurrent layers and the output layer."""

    embedding_dim: int = 64
    # The embedding starts as N(0, embedding_stddev^2), as PyTorch's nn.Embedding does.
    # Keras's uniform(-0.05, 0.05) (None) gives the first layer inputs about 30 times
    # smaller and learned 0.25 nats/char less in the first 150 steps
    # (benchmarks/textgen_per_step.py; benchmarks/README.md).
    embedding_stddev: float | None = 1.0
    cell: str = dataclasses.field(default="lstm", metadata=choices(*CELLS))
    units: int = 512
    num_layers: int = 2
    # Layer normalisation inside the cell (Ba et al. 2016); the LSTM cell has it.
    layer_norm: bool = False
    # Dropout on the inputs of every recurrent layer above the first and on the last output.
    dropout: float = 0.2
    # Output logits from the embedding matrix (Press & Wolf 2017), through a projection of
    # the last layer's output to `embedding_dim`.
    tie_weights: bool = False


@dataclasses.dataclass
class TextGenSampleConfig:
    """The sample printed at the end of each training epoch."""

    prompt: str = "ROMEO:"
    length: int = 200
    temperature: float = 0.8
    # 0 prints no sample.
    every_epochs: int = 1


@dataclasses.dataclass
class TextGenConfig:
    """Everything a text generation run needs; saved as config.json beside every run/export."""

    seed: int = 1337
    data: TextGenDataConfig = dataclasses.field(default_factory=TextGenDataConfig)
    model: TextGenModelConfig = dataclasses.field(default_factory=TextGenModelConfig)
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(
            epochs=20,
            batch_size=64,
            learning_rate=2e-3,
            clipnorm=1.0,
            early_stopping_patience=3,
            shuffle_buffer=100000,
            bucket_by_length=False,
        )
    )
    tune: TuneConfig = dataclasses.field(default_factory=TuneConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    sample: TextGenSampleConfig = dataclasses.field(default_factory=TextGenSampleConfig)
