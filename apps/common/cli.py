"""The command line of every app: `python -m apps.<app> <command> [options] [key=value ...]`.

Commands come from one registry: the shared ones (`train`, `evaluate`, `export`,
`predict`, `tune`) and those the app declares (`App.extra_commands`), so `--help` lists
exactly what the app has. The config is resolved from the app's defaults, then
`--config FILE.json`, then `--data` (sets `data.source`), `--seed`, and dotted overrides
such as `model.units=128`; every command that builds a config takes overrides.

Library code raises `apps.common.errors.UserError`; only `main` turns one into a
one-line message and exit status 2.
"""

import argparse
import hashlib
import json
import os
import sys

from apps.common import config as config_lib
from apps.common.app import Command
from apps.common.errors import InputError, RunError, UserError


def add_config_options(parser, app=None, data_help="sets data.source (catalog name or path)"):
    """`--config`, `--data`, `--seed` and `key=value` overrides."""
    parser.add_argument("--config", metavar="FILE.json", help="JSON config over the defaults")
    parser.add_argument("--data", metavar="SOURCE", help=data_help)
    parser.add_argument("--seed", type=int, help="sets seed (data shuffling, initialisation)")
    add_overrides(parser)


def add_overrides(parser, help_text="dotted overrides, e.g. model.units=128"):
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=help_text)


def add_model_option(parser):
    parser.add_argument(
        "--model",
        "--run-dir",
        dest="model",
        metavar="DIR",
        help="a run directory or an exported SavedModel directory (default: the latest run)",
    )


def resolve(app, arguments):
    """The config of a command: defaults, --config, --data, --seed, then overrides."""
    overrides = list(arguments.overrides)
    if isinstance(getattr(arguments, "data", None), str):
        overrides.insert(0, f"data.source={arguments.data}")
    if getattr(arguments, "seed", None) is not None:
        overrides.insert(0, f"seed={arguments.seed}")
    config = config_lib.resolve_config(app.config_class, arguments.config, overrides)
    app.check_config(config)
    return config


def default_run_dir(app, config, prefix="", sources=()):
    """`runs/<app>/<prefix><hash of the config>`: the same command resumes the same run."""
    described = config_lib.config_to_dict(config)
    if sources:
        described = {"config": described, "sources": list(sources)}
    digest = hashlib.sha1(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return os.path.join("runs", app.name, prefix + digest[:10])


def model_path(app, arguments):
    """`--model`, or the latest finished run of the app."""
    from apps.common import training

    path = arguments.model or training.latest_run(app)
    if not path:
        raise RunError(f"no --model given and no finished run under runs/{app.name}/")
    if not os.path.isdir(path):
        raise RunError(f"--model {path}: no such directory")
    return path


def read_lines(arguments):
    """Inputs of `predict`: arguments, `--file`, or stdin (one per line)."""
    if arguments.inputs:
        return list(arguments.inputs)
    try:
        if arguments.file:
            with open(arguments.file, encoding="utf-8") as handle:
                return [line.rstrip("\n") for line in handle if line.strip()]
        if sys.stdin.isatty():
            print("reading inputs from stdin, one per line (Ctrl-D to finish)", file=sys.stderr)
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    except UnicodeDecodeError as error:
        where = f"--file {arguments.file}" if arguments.file else "stdin"
        raise InputError(
            f"{where}: not valid UTF-8 ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise InputError(f"--file {arguments.file}: {error.strerror}") from None


# ---- the shared commands ----------------------------------------------------------------


def _train_arguments(parser, app):
    add_config_options(parser, app)
    parser.add_argument(
        "--run-dir",
        help=f"run directory (default: runs/{app.name}/<hash of the config>, so the same "
        "command resumes the same run)",
    )


def _train(app, arguments):
    config = resolve(app, arguments)
    from apps.common import training

    training.train(app, config, arguments.run_dir or default_run_dir(app, config))


def _tune_arguments(parser, app):
    add_config_options(parser, app)
    parser.add_argument("--tuner", choices=("random", "hyperband", "bayesian"))
    parser.add_argument("--max-trials", type=int)
    parser.add_argument("--epochs", type=int, help="epochs per trial (Hyperband: maximum)")
    parser.add_argument(
        "--directory", help=f"search directory (default runs/{app.name}/tune); resumable"
    )


def _tune(app, arguments):
    for option in ("tuner", "max_trials", "epochs", "directory"):
        if getattr(arguments, option) is not None:
            arguments.overrides.append(f"tune.{option}={getattr(arguments, option)}")
    config = resolve(app, arguments)
    from apps.common import tuning

    tuning.tune(app, config, config.tune.directory or os.path.join("runs", app.name, "tune"))


def _evaluate_arguments(parser, app):
    add_model_option(parser)
    parser.add_argument("--split", default="validation", help="split to evaluate")
    parser.add_argument("--file", help="evaluate on this file instead of a split")
    parser.add_argument("--data", metavar="SOURCE", help="evaluate on this data source")
    parser.add_argument("--output-dir", help="where to write evaluation.json and the PNGs")
    add_overrides(parser, "data.* overrides, e.g. for --file")


def _evaluate(app, arguments):
    from apps.common import evaluation, export

    model = export.open_model(app, model_path(app, arguments))
    evaluation.evaluate_command(app, model, arguments)


def _export_arguments(parser, app):
    add_model_option(parser)
    parser.add_argument("--base-dir", help="export root (default: export.base_dir)")


def _export(app, arguments):
    from apps.common import export, training

    path = model_path(app, arguments)
    if export.is_export_dir(path):
        raise RunError(f"{path} is already an export; give a run directory")
    model, config, data_info = training.load_run(app, path)
    export.export_model(app, model, config, data_info, arguments.base_dir)


def _predict_arguments(parser, app):
    add_model_option(parser)
    parser.add_argument("inputs", nargs="*", help="inputs; none: read --file or stdin")
    parser.add_argument("--file", help="one input per line")
    app.add_predict_arguments(parser)


def _predict(app, arguments):
    from apps.common import export

    model = export.open_model(app, model_path(app, arguments))
    lines = read_lines(arguments)
    if not lines:
        raise InputError("no input: give inputs as arguments, --file FILE or lines on stdin")
    app.predict(model, lines, arguments)


SHARED_COMMANDS = (
    Command("train", "train a model into a run directory", _train_arguments, _train),
    Command("evaluate", "metrics and plots of a run or export", _evaluate_arguments, _evaluate),
    Command("export", "write a run as a SavedModel version", _export_arguments, _export),
    Command("predict", "answer inputs with a run or export", _predict_arguments, _predict),
    Command("tune", "keras-tuner search over the app's space", _tune_arguments, _tune),
)


def commands_of(app):
    """Name to `Command`: the shared commands, then the app's own."""
    registry = {command.name: command for command in SHARED_COMMANDS}
    for command in app.extra_commands():
        if command.name in registry:
            raise ValueError(f"{app.name}: command {command.name!r} is already defined")
        registry[command.name] = command
    return registry


def build_parser(app, command_name, program=None):
    """The argument parser of one command of `app` (shared or the app's own)."""
    command = commands_of(app)[command_name]
    program = program or f"python -m apps.{app.name}"
    parser = argparse.ArgumentParser(prog=f"{program} {command.name}", description=command.help)
    command.add_arguments(parser, app)
    return parser


def usage(app, program):
    registry = commands_of(app)
    lines = [f"usage: {program} {{{','.join(registry)}}} [options] [key=value ...]", "commands:"]
    lines += [f"  {name:<10} {command.help}" for name, command in registry.items()]
    lines.append("run a command with --help for its options")
    return "\n".join(lines)


def main(app, argv=None, program=None):
    """Entry point of `python -m apps.<app>`; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    program = program or f"python -m apps.{app.name}"
    registry = commands_of(app)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(app, program))
        return 0 if argv else 2
    if argv[0] not in registry:
        print(f"{usage(app, program)}\nunknown command {argv[0]!r}", file=sys.stderr)
        return 2
    command = registry[argv[0]]
    parser = build_parser(app, command.name, program)
    arguments = parser.parse_intermixed_args(argv[1:])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        status = command.run(app, arguments)
    except UserError as error:
        # The user's to fix: what and where, without a traceback.
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    return 0 if status is None else int(status)
