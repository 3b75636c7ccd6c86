"""One config mechanism for every app: dataclass defaults, a JSON file, dotted overrides.

A config is a dataclass whose fields are plain values (int, float, bool, str, optional
or list of those) or nested dataclasses ("sections": `data`, `model`, `train`, ...).
It is resolved in three layers, each overriding the one before:

1. the dataclass defaults,
2. optionally a JSON file holding any subset of the sections and keys,
3. dotted overrides such as `model.units=128` from the command line.

Every value is converted to the type its field declares; an unknown key, a value of
the wrong type or a value outside a field's `choices` raises `ConfigError` naming the
dotted key. The resolved config is saved as `config.json` beside every run and export,
and that file is itself a valid `--config` file.

Example:

    config = resolve_config(SentimentConfig, "best.json", ["model.units=128"])
    save_config(config, "runs/sentiment/x/config.json")
"""

import dataclasses
import json
import os
import types
import typing

from apps.common.errors import ConfigError

__all__ = ["ConfigError", "resolve_config", "save_config", "apply_overrides"]

CONFIG_FILENAME = "config.json"


def choices(*allowed):
    """Field metadata restricting a string field to `allowed` values."""
    return {"choices": tuple(allowed)}


@dataclasses.dataclass
class TrainConfig:
    """Settings of `model.fit`, shared by every app."""

    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 1e-3
    # `cosine`: the rate falls from `learning_rate` to a tenth of it along half a cosine
    # over the planned steps (epochs x batches per epoch; Loshchilov & Hutter 2017).
    learning_rate_schedule: str = dataclasses.field(
        default="constant", metadata=choices("constant", "cosine")
    )
    # Gradient clipping by global norm; None disables it.
    clipnorm: float | None = None
    # Decoupled weight decay (AdamW, Loshchilov & Hutter 2019; PyTorch's AdamW uses 0.01)
    # applied to every weight; None or 0 trains with plain Adam.
    weight_decay: float | None = None
    # Polyak averaging: validation, checkpoints and exports use an exponential moving
    # average of the weights with this momentum (e.g. 0.999); None disables it.
    ema_momentum: float | None = None
    early_stopping_patience: int = 2
    shuffle_buffer: int = 20000
    # Batches of examples of similar length waste fewer recurrent steps on padding.
    bucket_by_length: bool = True
    steps_per_epoch: int | None = None
    # A finished run directory whose weights start this run (transfer learning):
    # layers of the same name and weight shapes are copied; the app maps the
    # vocabulary-dependent ones. Empty: random initialisation.
    initialize_from: str = ""
    # Layers (by name) whose weights stay fixed, e.g. ["embedding"] after a warm start:
    # words the new training data lacks keep the meaning the earlier run gave them.
    frozen_layers: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TuneConfig:
    """Settings of a keras-tuner search, shared by every app."""

    tuner: str = dataclasses.field(
        default="random", metadata=choices("random", "hyperband", "bayesian")
    )
    max_trials: int = 10
    epochs: int = 2
    # Hyperband's reduction factor.
    factor: int = 3
    directory: str | None = None
    # Keys of the search space held at the base config's value, e.g. the architecture
    # of a `train.initialize_from` run, so that every trial can take its weights.
    fixed: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ExportConfig:
    """Where `export` writes SavedModels: `<base_dir>/<app>/<integer version>/`."""

    base_dir: str = "saved_models"


def _is_section(field_type):
    return isinstance(field_type, type) and dataclasses.is_dataclass(field_type)


def _field_types(config_class):
    return typing.get_type_hints(config_class)


def _describe(field_type):
    return getattr(field_type, "__name__", None) or str(field_type).replace("typing.", "")


def _convert(value, field_type, key, from_text):
    """Returns `value` as `field_type`; `from_text` means it came from a command line."""
    origin = typing.get_origin(field_type)
    arguments = typing.get_args(field_type)
    if origin in (typing.Union, types.UnionType):
        members = [member for member in arguments if member is not type(None)]
        if type(None) in arguments:
            if value is None or (from_text and str(value).strip().lower() in ("none", "null")):
                return None
        errors = []
        for member in members:
            try:
                return _convert(value, member, key, from_text)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: bad value {value!r}")
    if origin in (list, tuple):
        if from_text and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = [part for part in value.split(",") if part]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_type = arguments[0] if arguments else str
        items = [_convert(item, item_type, key, from_text) for item in value]
        return list(items) if origin is list else tuple(items)
    if field_type is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if field_type is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if field_type is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_text and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if field_type is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if field_type is typing.Any:
        return value
    raise ConfigError(f"{key}: fields of type {_describe(field_type)} are not supported")


def _fields_by_name(config_class):
    return {field.name: field for field in dataclasses.fields(config_class)}


def _set_value(config, dotted_key, value, from_text):
    """Returns a copy of `config` with `dotted_key` set to `value`, converted and checked."""
    head, _, rest = dotted_key.partition(".")
    fields = _fields_by_name(type(config))
    if head not in fields:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{dotted_key}: unknown key {head!r} (known keys here: {known})")
    field_type = _field_types(type(config))[head]
    current = getattr(config, head)
    if _is_section(field_type):
        if not rest:
            raise ConfigError(f"{dotted_key}: is a section; set one of its keys, e.g. {head}.X=...")
        try:
            updated = _set_value(current, rest, value, from_text)
        except ConfigError as error:
            raise ConfigError(f"{head}.{error}") from None
        return dataclasses.replace(config, **{head: updated})
    if rest:
        raise ConfigError(f"{dotted_key}: {head!r} is a value, not a section")
    converted = _convert(value, field_type, head, from_text)
    allowed = fields[head].metadata.get("choices")
    if allowed and converted not in allowed:
        raise ConfigError(f"{head}: bad value {converted!r}; choose one of {', '.join(allowed)}")
    return dataclasses.replace(config, **{head: converted})


def apply_overrides(config, overrides):
    """Returns a copy of `config` with dotted overrides applied.

    Args:
        config: a config dataclass instance.
        overrides: a mapping of dotted key to value, or an iterable of `"key=value"`
            strings from a command line (values parsed to each field's type).
    """
    if isinstance(overrides, dict):
        items = [(key, value, False) for key, value in overrides.items()]
    else:
        items = []
        for text in overrides:
            key, separator, value = text.partition("=")
            if not separator or not key.strip():
                raise ConfigError(
                    f"{text!r}: overrides are written key=value, e.g. model.units=128"
                )
            items.append((key.strip(), value, True))
    for key, value, from_text in items:
        config = _set_value(config, key, value, from_text)
    return config


def _flatten(mapping, prefix=""):
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ConfigError(f"{prefix}{key!r}: keys must be strings")
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_from_dict(config_class, mapping, base=None):
    """Builds a config from a (nested) dict such as a parsed `config.json`."""
    config = base if base is not None else config_class()
    return apply_overrides(config, dict(_flatten(mapping)))


def config_to_dict(config):
    """The config as a nested dict of JSON values."""
    return dataclasses.asdict(config)


def load_config_file(config_class, path, base=None):
    """Reads a JSON config file (any subset of keys) over `base` or the defaults."""
    try:
        with open(path, encoding="utf-8") as handle:
            mapping = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"config file {path}, line {error.lineno}: invalid JSON: {error.msg}"
        ) from None
    if not isinstance(mapping, dict):
        raise ConfigError(f"config file {path}: expected a JSON object at the top level")
    try:
        return config_from_dict(config_class, mapping, base=base)
    except ConfigError as error:
        raise ConfigError(f"config file {path}: {error}") from None


def resolve_config(config_class, config_file=None, overrides=()):
    """Defaults, then `config_file` (if any), then `overrides`: the three config layers."""
    config = config_class()
    if config_file:
        config = load_config_file(config_class, config_file, base=config)
    return apply_overrides(config, overrides)


def save_config(config, path):
    """Writes the resolved config as JSON (a valid `--config` file); returns the path."""
    if os.path.isdir(path):
        path = os.path.join(path, CONFIG_FILENAME)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config_to_dict(config), handle, indent=2, sort_keys=True)
        handle.write("\n")
    return path
