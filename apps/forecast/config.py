"""The forecast app's config: defaults of every section, overridable by file and command line.

Example:

    python -m apps.forecast train --data ett/ETTh1 model.horizon=96 model.lookback=720
    python -m apps.forecast train --data my.csv data.splits=fractions data.target_columns=OT
"""

import dataclasses

from apps.common.config import ExportConfig, TrainConfig, TuneConfig, choices

# How rows are split in time order; `auto` takes the ETT borders for files named ETTh*/ETTm*.
SPLIT_PRESETS = ("auto", "ett_hourly", "ett_15min", "borders", "fractions")
# What a missing cell (empty, NA, NaN, null) becomes.
MISSING_POLICIES = ("error", "ffill", "interpolate")
MODEL_KINDS = ("segrnn", "direct", "seq2seq", "linear", "last", "seasonal")
CELLS = ("gru", "lstm", "elman", "mingru", "minlstm")
NORMALIZATIONS = ("last", "revin", "none")
ATTENTION_SCORES = ("bahdanau", "luong")


@dataclasses.dataclass
class ForecastDataConfig:
    """Where the series comes from and how it is split (the app config's `data` section).

    Attributes:
        source: `ett/ETTh1` (also ETTh2, ETTm1, ETTm2: the tfds `ett` builder, local file
            `ett_dir/<name>.csv`, downloaded when missing and online) or a CSV path.
        ett_dir: where the `ett` builder looks for `ETTh1.csv` and the others.
        timestamp_column: the time column; empty takes the first column.
        feature_columns: model inputs; empty takes every other column.
        target_columns: forecast columns (a subset of the features); empty: all features.
        splits: `auto`, `ett_hourly` (train [0, 8640), validation [8640, 11520), test
            [11520, 14400)), `ett_15min` (4x those rows), `borders` (`data.borders`) or
            `fractions` (`data.fractions`, in time order).
        borders: `[train end, validation end, test end]` rows for `splits=borders`.
        fractions: train, validation, test shares for `splits=fractions` (DLinear's
            protocol: train and test rounded down, validation takes the rest).
        missing: `error` (name row and column), `ffill` (previous row's value) or
            `interpolate` (linear between the neighbours); a cell that is not a number is
            always an error.
        stride: rows between consecutive training windows.
        data_dir: tfds data directory; empty for `$TFDS_DATA_DIR` or ~/tensorflow_datasets.
    """

    source: str = "ett/ETTh1"
    ett_dir: str = "../shared/data/ett"
    timestamp_column: str = ""
    feature_columns: list[str] = dataclasses.field(default_factory=list)
    target_columns: list[str] = dataclasses.field(default_factory=list)
    splits: str = dataclasses.field(default="auto", metadata=choices(*SPLIT_PRESETS))
    borders: list[int] = dataclasses.field(default_factory=list)
    fractions: list[float] = dataclasses.field(default_factory=lambda: [0.7, 0.1, 0.2])
    missing: str = dataclasses.field(default="error", metadata=choices(*MISSING_POLICIES))
    stride: int = 1
    data_dir: str = ""


@dataclasses.dataclass
class ForecastModelConfig:
    """Windows, normalisation and the forecasting model.

    `kind`: `segrnn` (segment recurrence, Lin et al. 2023), `direct` (last state to all
    horizon steps), `seq2seq` (segment encoder, attention decoder), and the baselines
    `linear` (one shared linear map of the look-back, NLinear-like), `last` (last value)
    and `seasonal` (the value `season` steps earlier).
    """

    kind: str = dataclasses.field(default="segrnn", metadata=choices(*MODEL_KINDS))
    lookback: int = 720
    horizon: int = 96
    # Look-back and horizon are cut into segments of this many steps (SegRNN's w).
    segment_length: int = 48
    cell: str = dataclasses.field(default="gru", metadata=choices(*CELLS))
    # 256: on ETTh1 (horizon 96) validation MSE 0.634 against 0.639 with 128.
    units: int = 256
    dropout: float = 0.5
    # `last` subtracts each window's last value (SegRNN, NLinear); `revin` the window's
    # mean and standard deviation with a learned affine map (Kim et al. 2022).
    normalization: str = dataclasses.field(default="last", metadata=choices(*NORMALIZATIONS))
    # One series per channel with shared weights (segrnn always is); False: `direct`,
    # `seq2seq` and `linear` read all channels at once.
    channel_independent: bool = True
    attention: str = dataclasses.field(default="bahdanau", metadata=choices(*ATTENTION_SCORES))
    # Training loss on the standardized scale (also `val_loss`, the objective): `mae` (L1,
    # robust to outliers, as SegRNN trains; on ETTh1 it gave a lower validation MSE than
    # training on MSE, 0.639 against 0.648) or `mse`. Both are logged as metrics.
    loss: str = dataclasses.field(default="mae", metadata=choices("mse", "mae"))
    # The learning rate is multiplied by this after every epoch (DLinear's schedule halves
    # it: 0.5); 1 keeps it constant.
    lr_decay: float = 1.0
    # Season of the `seasonal` baseline in steps (24: a day of hourly rows).
    season: int = 24


@dataclasses.dataclass
class ForecastConfig:
    """Everything a forecast run needs; saved as config.json beside every run and export."""

    seed: int = 1337
    data: ForecastDataConfig = dataclasses.field(default_factory=ForecastDataConfig)
    model: ForecastModelConfig = dataclasses.field(default_factory=ForecastModelConfig)
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(
            epochs=12,
            batch_size=256,
            learning_rate=1e-3,
            early_stopping_patience=3,
            bucket_by_length=False,
        )
    )
    tune: TuneConfig = dataclasses.field(default_factory=TuneConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
