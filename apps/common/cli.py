"""The command line shared by all apps: `python -m apps.<app> <command> [options] [key=value ...]`.

Commands: train, evaluate, export, predict, tune, ensemble, and for apps whose model reads
words `vectors` (word vectors learned from the data's text, `apps.common.word_vectors`) and
`pretrain` (language-model pretraining of the encoder, `apps.common.pretraining`).
The config is resolved from the app's defaults, then `--config FILE.json`, then `--data`
(sets `data.source`), `--seed`, and dotted overrides such as `model.units=128`; the same
through `rnn-keras <app> ...`.
"""

import argparse
import hashlib
import json
import os
import sys

from apps.common import config as config_lib

COMMANDS = ("train", "evaluate", "export", "predict", "tune", "ensemble", "vectors", "pretrain")


def _add_config_options(parser, several_sources=False):
    parser.add_argument("--config", metavar="FILE.json", help="JSON config over the defaults")
    if several_sources:
        parser.add_argument(
            "--data",
            action="append",
            required=True,
            metavar="SOURCE",
            help="a data source whose train text to learn from; repeat for several",
        )
    else:
        parser.add_argument(
            "--data", metavar="SOURCE", help="sets data.source (catalog name or path)"
        )
    parser.add_argument("--seed", type=int, help="sets seed (data shuffling, initialisation)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. model.units=128"
    )


def _add_model_option(parser):
    parser.add_argument(
        "--model",
        "--run-dir",
        dest="model",
        metavar="DIR",
        help="a run directory or an exported SavedModel directory (default: the latest run)",
    )


def build_parser(app, command, program=None):
    """The argument parser of one command of `app`."""
    parser = argparse.ArgumentParser(
        prog=f"{program or f'python -m apps.{app.name}'} {command}",
        description=f"{command} for the {app.name} app",
    )
    if command == "train":
        _add_config_options(parser)
        parser.add_argument(
            "--run-dir",
            help=f"run directory (default: runs/{app.name}/<hash of the config>, so the same "
            "command resumes the same run)",
        )
    elif command == "pretrain":
        _add_config_options(parser, several_sources=True)
        parser.add_argument(
            "--run-dir",
            help=f"run directory (default: runs/{app.name}/pretrain-<hash of config and sources>,"
            " so the same command resumes the same run)",
        )
    elif command == "tune":
        _add_config_options(parser)
        parser.add_argument("--tuner", choices=("random", "hyperband", "bayesian"))
        parser.add_argument("--max-trials", type=int)
        parser.add_argument("--epochs", type=int, help="epochs per trial (Hyperband: maximum)")
        parser.add_argument(
            "--directory", help=f"search directory (default runs/{app.name}/tune); resumable"
        )
    elif command == "evaluate":
        _add_model_option(parser)
        parser.add_argument("--split", default="validation", help="split to evaluate")
        parser.add_argument("--file", help="evaluate on this file instead of a split")
        parser.add_argument("--data", metavar="SOURCE", help="evaluate on this data source")
        parser.add_argument("--output-dir", help="where to write evaluation.json and the PNG")
        parser.add_argument(
            "overrides", nargs="*", metavar="key=value", help="data.* overrides, e.g. for --file"
        )
    elif command == "export":
        _add_model_option(parser)
        parser.add_argument("--base-dir", help="export root (default: export.base_dir)")
    elif command == "ensemble":
        parser.add_argument(
            "--models", nargs="+", required=True, metavar="DIR", help="finished run directories"
        )
        parser.add_argument("--run-dir", required=True, help="where the ensemble run is written")
    elif command == "vectors":
        parser.add_argument(
            "--data",
            action="append",
            required=True,
            metavar="SOURCE",
            help="a data source whose text to learn from; repeat for several",
        )
        parser.add_argument("--output", required=True, help="the word vectors text file to write")
        parser.add_argument("--dim", type=int, default=128, help="vector size (default 128)")
        parser.add_argument("--max-words", type=int, default=20000, help="vocabulary size")
        parser.add_argument("--window", type=int, default=5, help="co-occurrence window")
        parser.add_argument("--min-count", type=int, default=5, help="rarer words get no vector")
        parser.add_argument("--split", default="train", help="split of each source to read")
        parser.add_argument(
            "overrides", nargs="*", metavar="key=value", help="data.* overrides for every source"
        )
    elif command == "predict":
        _add_model_option(parser)
        parser.add_argument("texts", nargs="*", help="inputs; none: read --file or stdin")
        parser.add_argument("--file", help="one input per line")
        parser.add_argument("--explain", action="store_true", help="show attention per token")
        parser.add_argument("--output", default="explanation.png", help="--explain heatmap PNG")
    return parser


def resolve(app, arguments):
    """The config of train/tune: defaults, --config, --data, --seed, then overrides."""
    overrides = list(arguments.overrides)
    if isinstance(arguments.data, str):
        overrides.insert(0, f"data.source={arguments.data}")
    if arguments.seed is not None:
        overrides.insert(0, f"seed={arguments.seed}")
    return config_lib.resolve_config(app.config_class, arguments.config, overrides)


def default_run_dir(app, config, prefix="", sources=()):
    described = config_lib.config_to_dict(config)
    if sources:
        described = {"config": described, "sources": list(sources)}
    digest = hashlib.sha1(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return os.path.join("runs", app.name, prefix + digest[:10])


def _model_path(app, arguments):
    from apps.common import training

    path = arguments.model or training.latest_run(app)
    if not path:
        raise SystemExit(f"no --model given and no finished run under runs/{app.name}/")
    if not os.path.isdir(path):
        raise SystemExit(f"--model {path}: no such directory")
    return path


def _read_lines(arguments):
    if arguments.texts:
        return list(arguments.texts)
    if arguments.file:
        try:
            with open(arguments.file, encoding="utf-8") as handle:
                return [line.rstrip("\n") for line in handle if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise SystemExit(f"--file {arguments.file}: {error}") from None
    if sys.stdin.isatty():
        print("reading inputs from stdin, one per line (Ctrl-D to finish)", file=sys.stderr)
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


def run_command(app, command, argv, program=None):
    """Parses `argv` for `command` and runs it; returns a process exit status."""
    parser = build_parser(app, command, program)
    arguments = parser.parse_intermixed_args(argv)
    try:
        return _dispatch(app, command, arguments)
    except config_lib.ConfigError as error:
        parser.error(str(error))
    except Exception as error:
        # A bad input file or an unreachable catalog is the user's to fix: say
        # what and where, without a traceback. (The modules are looked up, not
        # imported, so that --help never loads TensorFlow.)
        if isinstance(error, _user_error_types()):
            print(f"{parser.prog}: error: {error}", file=sys.stderr)
            return 2
        raise


def _user_error_types():
    """The exception types that mean bad input, from the modules loaded so far."""
    names = {
        "apps.common.data": ("DataError", "CatalogUnavailableError"),
        "apps.common.word_vectors": ("WordVectorsError",),
    }
    return tuple(
        getattr(sys.modules[module], name)
        for module, attributes in names.items()
        if module in sys.modules
        for name in attributes
    )


def _dispatch(app, command, arguments):
    # Imported here so that --help and config errors answer without loading TensorFlow.
    if command == "train":
        config = resolve(app, arguments)
        from apps.common import training

        training.train(app, config, arguments.run_dir or default_run_dir(app, config))
    elif command == "tune":
        config = resolve(app, arguments)
        for option, key in (
            ("tuner", "tuner"),
            ("max_trials", "max_trials"),
            ("epochs", "epochs"),
            ("directory", "directory"),
        ):
            if getattr(arguments, option) is not None:
                config = config_lib.apply_overrides(
                    config, {f"tune.{key}": getattr(arguments, option)}
                )
        from apps.common import tuning

        directory = config.tune.directory or os.path.join("runs", app.name, "tune")
        tuning.tune(app, config, directory)
    elif command == "export":
        from apps.common import export, training

        path = _model_path(app, arguments)
        if export.is_export_dir(path):
            raise SystemExit(f"{path} is already an export; give a run directory")
        model, config, data_info = training.load_run(app, path)
        export.export_model(app, model, config, data_info, arguments.base_dir)
    elif command == "predict":
        from apps.common import export

        model = export.open_model(app, _model_path(app, arguments))
        lines = _read_lines(arguments)
        if not lines:
            raise SystemExit("no input: give texts as arguments, --file FILE or lines on stdin")
        if arguments.explain:
            model.explain(lines, arguments.output)
        else:
            for line in model.predict(lines):
                print(line)
    elif command == "ensemble":
        from apps.common import ensemble

        for path in arguments.models:
            if not os.path.isdir(path):
                raise SystemExit(f"--models {path}: no such directory")
        ensemble.build_ensemble(app, arguments.models, arguments.run_dir)
    elif command == "vectors":
        from apps.common import word_vectors

        word_vectors.vectors_command(app, arguments)
    elif command == "pretrain":
        if app.tokens_of is None:
            raise SystemExit(f"the {app.name} app reads no words, so it has no language model")
        config = resolve(app, arguments)
        from apps.common import pretraining

        run_dir = arguments.run_dir or default_run_dir(app, config, "pretrain-", arguments.data)
        pretraining.pretrain(app, config, arguments.data, run_dir)
    elif command == "evaluate":
        from apps.common import evaluation, export

        model = export.open_model(app, _model_path(app, arguments))
        evaluation.evaluate_command(app, model, arguments)
    return 0


def main(app, argv=None, program=None):
    """Entry point of `python -m apps.<app>`: the first argument names the command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        program = program or f"python -m apps.{app.name}"
        usage = f"usage: {program} {{{','.join(COMMANDS)}}} [options] [key=value ...]"
        if argv and argv[0] not in ("-h", "--help"):
            print(f"{usage}\nunknown command {argv[0]!r}", file=sys.stderr)
            return 2
        print(usage + "\nrun a command with --help for its options")
        return 0 if argv else 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return run_command(app, argv[0], argv[1:], program)
