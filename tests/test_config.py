"""The config mechanism: defaults, JSON file, dotted overrides; errors name the key."""

import dataclasses
import json

import pytest

from apps.common import config as config_lib
from apps.common.config import ConfigError, TrainConfig


@dataclasses.dataclass
class ModelSection:
    units: int = 64
    rate: float = 0.5
    bidirectional: bool = False
    cell: str = dataclasses.field(default="gru", metadata=config_lib.choices("gru", "lstm"))
    clip: float | None = None
    sizes: list[int] = dataclasses.field(default_factory=lambda: [1, 2])


@dataclasses.dataclass
class ExampleConfig:
    seed: int = 1
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def test_overrides_are_parsed_to_each_fields_type():
    config = config_lib.resolve_config(
        ExampleConfig,
        overrides=[
            "model.units=128",
            "model.rate=0.25",
            "model.bidirectional=true",
            "model.cell=lstm",
            "model.clip=1.5",
            "model.sizes=[3, 4, 5]",
            "train.clipnorm=none",
            "seed=7",
        ],
    )
    assert config.model == ModelSection(128, 0.25, True, "lstm", 1.5, [3, 4, 5])
    assert config.train.clipnorm is None
    assert config.seed == 7
    # The defaults of the class are untouched: overrides return copies.
    assert ExampleConfig().model.units == 64


def test_file_then_overrides_with_later_layers_winning(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": {"units": 32, "rate": 1}, "train": {"epochs": 9}}))
    config = config_lib.resolve_config(ExampleConfig, str(path), ["model.units=16"])
    assert config.model.units == 16  # the command line beats the file
    assert config.model.rate == 1.0 and isinstance(config.model.rate, float)
    assert config.train.epochs == 9
    assert config.train.batch_size == TrainConfig().batch_size  # default kept


def test_saved_config_round_trips_as_a_config_file(tmp_path):
    config = config_lib.resolve_config(ExampleConfig, overrides=["model.clip=2", "seed=3"])
    path = config_lib.save_config(config, str(tmp_path / "run" / "config.json"))
    assert config_lib.resolve_config(ExampleConfig, path) == config


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.unitz=3", "model.unitz: unknown key 'unitz'"),
        ("modle.units=3", "modle.units: unknown key 'modle'"),
        ("model.units=many", "model.units: expected an integer, got 'many'"),
        ("model.rate=fast", "model.rate: expected a number, got 'fast'"),
        ("model.bidirectional=maybe", "model.bidirectional: expected true or false"),
        ("model.cell=transformer", "model.cell: bad value 'transformer'; choose one of gru, lstm"),
        ("model=3", "model: is a section"),
        ("seed.value=3", "seed.value: 'seed' is a value, not a section"),
        ("model.units", "overrides are written key=value"),
    ],
)
def test_bad_override_is_an_error_naming_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        config_lib.resolve_config(ExampleConfig, overrides=[override])
    assert message in str(error.value)


def test_bad_file_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"model": {"units": "wide"}}))
    with pytest.raises(ConfigError, match=r"bad.json: model.units: expected an integer"):
        config_lib.resolve_config(ExampleConfig, str(path))
    path.write_text(json.dumps({"train": {"epochz": 2}}))
    with pytest.raises(ConfigError, match=r"train.epochz: unknown key 'epochz'"):
        config_lib.resolve_config(ExampleConfig, str(path))
    path.write_text('{"model": {"units": 3,}}')
    with pytest.raises(ConfigError, match=r"bad.json, line 1: invalid JSON"):
        config_lib.resolve_config(ExampleConfig, str(path))
    # JSON booleans are not integers, and floats are not integers either.
    path.write_text(json.dumps({"model": {"units": True}}))
    with pytest.raises(ConfigError, match="model.units: expected an integer, got True"):
        config_lib.resolve_config(ExampleConfig, str(path))


def test_sentiment_config_defaults_and_cli_options():
    """The sentiment app's config through the shared CLI resolution (--data, --seed)."""
    from apps.common import cli
    from apps.sentiment import APP

    parser = cli.build_parser(APP, "train")
    arguments = parser.parse_intermixed_args(
        ["--data", "reviews.csv", "model.units=96", "--seed", "5", "model.cell=lstm"]
    )
    config = cli.resolve(APP, arguments)
    assert config.data.source == "reviews.csv"
    assert config.seed == 5
    assert (config.model.units, config.model.cell) == (96, "lstm")
    with pytest.raises(ConfigError, match="model.pooling: bad value 'sum'"):
        config_lib.apply_overrides(config, ["model.pooling=sum"])
    with pytest.raises(ConfigError, match="data.colour: unknown key"):
        config_lib.apply_overrides(config, ["data.colour=red"])
