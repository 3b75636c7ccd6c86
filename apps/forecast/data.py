"""Forecast data: the tfds `ett` builder and a generic CSV time-series builder.

Both read a CSV with a timestamp column and numeric columns, check it (missing cells,
non-numeric cells, unsorted or duplicated timestamps raise `DataError` naming the line and
the column, unless `data.missing` fills gaps), cut its rows into train, validation and test
in time order (never shuffled) and prepare them once as a tfds dataset
(`apps.common.data.prepare_local_files`).

Each split is ONE element holding the series up to the split's end:

    {"values": float32 (time, features), "context": int64}

where the first `context` rows belong to earlier splits: validation and test windows may
take their look-back from them (the papers' protocol), but no target lies there. Train
has `context` 0; nothing after a split's end is in its element, so the scaler fitted on
the train element never sees a validation or test row.

Example:

    loaded = load(ForecastDataConfig(source="ett/ETTh1", ett_dir="../shared/data/ett"))
    train = next(iter(loaded.splits["train"]))["values"]      # (8640, 7)
"""

from __future__ import annotations

import datetime
import os
import re
import urllib.request
from pathlib import Path

import numpy as np

from apps.common.data import (
    CatalogUnavailableError,
    DataError,
    DataSourceError,
    files_fingerprint,
    load_source,
    network_available,
    prepare_local_files,
    read_table,
    resolve_data_dir,
)
from apps.common.errors import ConfigError

ETT_NAMES = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{name}.csv"
# Informer's borders: 12 months train, 4 validation, 4 test (hours; 15-minute files x4).
ETT_HOURLY_BORDERS = (8640, 11520, 14400)
MISSING_MARKERS = {"", "na", "nan", "n/a", "null", "none", "?"}
TIME_FORMATS = ("%d.%m.%Y %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%m/%d/%Y %H:%M", "%m/%d/%Y")


def ett_name(source: str) -> str | None:
    """`ETTh1` for sources `ett/ETTh1`, `ett/etth1`; None for anything else."""
    match = re.fullmatch(r"ett/(ett[hm][12])", source.strip(), flags=re.IGNORECASE)
    return None if match is None else "ETT" + match.group(1)[3:].lower()


def parse_time(text: str) -> float:
    """Seconds since 1970 of an ISO date (`2016-07-01 00:00:00`, `1949-01`) or a number."""
    text = text.strip()
    try:
        return float(np.datetime64(text, "s").astype(np.int64))
    except ValueError:
        pass
    for pattern in TIME_FORMATS:
        try:
            moment = datetime.datetime.strptime(text, pattern)
            return moment.replace(tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            continue
    return float(text)  # A plain number (step index); ValueError when it is none.


def read_series(path, timestamp_column="", feature_columns=(), missing="error"):
    """Reads and checks a time-series CSV.

    Returns:
        `(times, values, columns)`: float64 seconds `(rows,)`, float32 `(rows, features)`
        and the feature column names.

    Raises:
        DataError: naming line and column for a missing cell (with `missing="error"`), a
            cell that is not a number, a timestamp that cannot be read, or timestamps out of
            order or repeated.
    """
    header, rows = read_table(path)
    time_column = timestamp_column or header[0]
    if time_column not in header:
        raise DataError(path, 1, f"no timestamp column {time_column!r} (columns: {header})")
    columns = list(feature_columns) or [name for name in header if name != time_column]
    unknown = [name for name in columns if name not in header]
    if unknown or not columns:
        raise DataError(path, 1, f"feature columns {unknown or columns} not in {header}")
    lines, times, values = [], [], []
    for line, row in rows:
        try:
            moment = parse_time(row[time_column])
        except ValueError:
            raise DataError(
                path, line, f"column {time_column!r}: {row[time_column]!r} is not a timestamp"
            ) from None
        if times and moment <= times[-1]:
            what = "repeats" if moment == times[-1] else "is earlier than"
            raise DataError(
                path,
                line,
                f"column {time_column!r}: timestamp {row[time_column]!r} {what} the one on "
                f"line {lines[-1]}; rows must be sorted by time, each timestamp once",
            )
        cells = []
        for name in columns:
            text = row[name].strip()
            if text.lower() in MISSING_MARKERS:
                if missing == "error":
                    raise DataError(
                        path,
                        line,
                        f"column {name!r}: missing value {text!r}; fill it, or set "
                        "data.missing=ffill or data.missing=interpolate",
                    )
                cells.append(np.nan)
                continue
            try:
                cells.append(float(text))
            except ValueError:
                raise DataError(path, line, f"column {name!r}: {text!r} is not a number") from None
        lines.append(line)
        times.append(moment)
        values.append(cells)
    if not values:
        raise DataSourceError(f"{path}: no rows after the header")
    values = np.asarray(values, dtype=np.float64)
    if missing != "error":
        values = fill_missing(values, missing, path, lines, columns)
    return np.asarray(times), values.astype(np.float32), columns


def fill_missing(values, policy, path="", lines=(), columns=()):
    """Fills NaN cells per column: `ffill` (previous value) or `interpolate` (linear).

    A column whose first value is missing cannot be forward-filled: `DataError`. With
    `interpolate`, leading and trailing gaps take the nearest value.
    """
    values = np.array(values, dtype=np.float64)
    for column in range(values.shape[1]):
        series = values[:, column]
        gaps = np.isnan(series)
        if not gaps.any():
            continue
        if gaps.all():
            raise DataError(path, 0, f"column {columns[column]!r}: every value is missing")
        if policy == "ffill":
            if gaps[0]:
                raise DataError(
                    path,
                    lines[0] if len(lines) else 2,
                    f"column {columns[column]!r}: the first value is missing; ffill has "
                    "nothing to carry forward (use data.missing=interpolate)",
                )
            index = np.where(gaps, 0, np.arange(len(series)))
            series = series[np.maximum.accumulate(index)]
        else:
            known = np.flatnonzero(~gaps)
            series = np.interp(np.arange(len(series)), known, series[known])
        values[:, column] = series
    return values


def split_borders(config, rows: int, path: str) -> tuple[int, int, int, str]:
    """`(train end, validation end, test end, description)` of the configured split."""
    preset = config.splits
    if preset == "auto":
        stem = Path(path).stem
        preset = "fractions"
        if re.fullmatch(r"ETTh\d", stem):
            preset = "ett_hourly"
        elif re.fullmatch(r"ETTm\d", stem):
            preset = "ett_15min"
    if preset in ("ett_hourly", "ett_15min"):
        factor = 1 if preset == "ett_hourly" else 4
        borders = [border * factor for border in ETT_HOURLY_BORDERS]
    elif preset == "borders":
        borders = list(config.borders)
        if len(borders) == 2:
            borders.append(rows)
        if len(borders) != 3 or not 0 < borders[0] < borders[1] <= borders[2]:
            raise ConfigError(
                f"data.borders: expected [train end, validation end, test end] increasing "
                f"(test end optional), got {config.borders}"
            )
    else:
        fractions = list(config.fractions)
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
            raise ConfigError(
                f"data.fractions: expected three shares summing to 1, got {fractions}"
            )
        train, test = int(rows * fractions[0]), int(rows * fractions[2])
        borders = [train, rows - test, rows]
    if borders[2] > rows:
        raise DataSourceError(
            f"{path}: split {preset} needs {borders[2]:,} rows, the file has {rows:,}; "
            "choose data.splits=fractions or data.borders"
        )
    if borders[0] < 1 or borders[1] <= borders[0]:
        raise DataSourceError(f"{path}: {rows} rows leave an empty train or validation split")
    note = (
        f"splits ({preset}): train rows [0, {borders[0]:,}), validation [{borders[0]:,}, "
        f"{borders[1]:,}), test [{borders[1]:,}, {borders[2]:,}) of {rows:,}"
    )
    return borders[0], borders[1], borders[2], note


def _prepare(config, path: Path, builder_name: str, label: str, notes: list[str]):
    """Prepares `path` as a tfds dataset of three one-element splits; returns splits, info."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    path = Path(path).resolve()
    options = {
        "timestamp_column": config.timestamp_column,
        "feature_columns": list(config.feature_columns),
        "missing": config.missing,
        "splits": config.splits,
        "borders": list(config.borders),
        "fractions": list(config.fractions),
    }
    fingerprint = {"files": files_fingerprint([path], path.parent), "options": options}

    def plan():
        times, values, columns = read_series(
            path, config.timestamp_column, config.feature_columns, config.missing
        )
        train_end, validation_end, test_end, _ = split_borders(config, len(values), str(path))
        features = tfds.features.FeaturesDict(
            {
                "values": tfds.features.Tensor(shape=(None, len(columns)), dtype=np.float32),
                "context": np.int64,
                "columns": tfds.features.Tensor(shape=(len(columns),), dtype=tf.string),
            }
        )

        def split(start, end):
            def examples():
                yield "0", {"values": values[:end], "context": start, "columns": columns}

            return examples

        split_examples = {
            "train": split(0, train_end),
            "validation": split(train_end, validation_end),
        }
        if test_end > validation_end:
            split_examples["test"] = split(validation_end, test_end)
        return features, split_examples

    builder, prepared_now = prepare_local_files(
        builder_name=builder_name,
        label=label,
        fingerprint=fingerprint,
        plan=plan,
        data_dir=config.data_dir or None,
        description=f"time series {path.name}",
    )
    splits = {
        name: builder.as_dataset(split=name, shuffle_files=False) for name in builder.info.splits
    }
    first = next(iter(splits["train"].take(1)))
    columns = [name.decode() for name in first["columns"].numpy()]
    sizes = {}
    for name, dataset in splits.items():
        element = next(iter(dataset.take(1)))
        rows = int(element["values"].shape[0])
        sizes[name] = (int(element["context"]), rows)
    notes.append(
        "splits (rows, time order): "
        + ", ".join(f"{name} [{start:,}, {end:,})" for name, (start, end) in sizes.items())
    )
    info = {
        "source": str(path),
        "columns": columns,
        "split_rows": {name: list(bounds) for name, bounds in sizes.items()},
        "prepared": "now" if prepared_now else "reused",
        "builder_dir": str(builder.data_dir),
    }
    return splits, info


def _ett_file(config, name: str, notes: list[str]) -> Path:
    """The local `ETTh1.csv` (or others); downloaded into the tfds directory when online."""
    local = Path(config.ett_dir, f"{name}.csv")
    if local.exists():
        return local
    cached = Path(resolve_data_dir(config.data_dir or None), "downloads", "ett", f"{name}.csv")
    if cached.exists():
        return cached
    url = ETT_URL.format(name=name)
    if not network_available((url,)):
        raise CatalogUnavailableError(
            f"ett/{name}: no local file {local} and {url} cannot be downloaded (offline?). "
            f"Put {name}.csv in {config.ett_dir} (data.ett_dir=DIR) or give "
            f"--data path/to/{name}.csv"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    urllib.request.urlretrieve(url, partial)  # noqa: S310 (a fixed https URL)
    os.replace(partial, cached)
    notes.append(f"downloaded {url}")
    return cached


def load(config):
    """Loads the splits described by the `data` config; see the module docstring.

    Raises:
        ConfigError: bad split settings. DataError: a malformed file (line and column).
        DataSourceError: no such file or too few rows. CatalogUnavailableError: an ETT
        file that is neither local nor downloadable.
    """
    check_data_config(config)
    name = ett_name(config.source)
    source = f"ett/{name.lower()}" if name else config.source

    def read_catalog(notes):
        if name is None:
            raise DataSourceError(
                f"data.source {config.source!r}: neither a CSV file nor one of "
                + ", ".join(f"ett/{known}" for known in ETT_NAMES)
            )
        path = _ett_file(config, name, notes)
        splits, info = _prepare(config, path, "ett", name, notes)
        info["source"] = f"ett/{name} ({path})"
        return splits, info

    def read_local(notes):
        path = Path(config.source)
        if path.is_dir():
            raise DataSourceError(f"data.source {path}: a directory; give one CSV file")
        return _prepare(config, path, "forecast_csv", path.stem, notes)

    loaded = load_source(source, read_catalog=read_catalog, read_local=read_local)
    loaded.info["num_examples"] = {  # Rows of each split's own (windows come later).
        name: end - start for name, (start, end) in loaded.info["split_rows"].items()
    }
    return loaded


def check_data_config(config) -> None:
    """Raises ConfigError naming the `data.` key of a bad value."""
    if config.stride < 1:
        raise ConfigError(f"data.stride: must be >= 1, got {config.stride}")
    if len(set(config.feature_columns)) != len(config.feature_columns):
        raise ConfigError(f"data.feature_columns: {config.feature_columns} repeats a column")
