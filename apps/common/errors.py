"""The errors that mean "the user has something to fix": one hierarchy, no TensorFlow import.

Library and pipeline code raise these and never end the process, so a run, an export or a data
source opened from a notebook raises an exception the caller can catch. Only the command
line (`apps.common.cli`) turns a `UserError` into a one-line message and exit status 2;
anything else is a bug and keeps its traceback.

Example:

    from apps.common.errors import UserError
    try:
        model, config, data_info = training.load_run(app, "runs/sentiment/x")
    except UserError as error:
        print(f"cannot load: {error}")
"""

import os


class UserError(Exception):
    """Bad input, a bad setting or a missing resource: the message says what and where."""


class ConfigError(UserError, ValueError):
    """A config key or value is invalid; the message names the dotted key."""


class DataError(UserError, ValueError):
    """A problem in an input file, named by file, line and problem.

    Args:
        path: the file.
        line: 1-based line number, or 0 when the problem concerns the whole file.
        problem: what is wrong, quoting the bad value.
    """

    def __init__(self, path: str | os.PathLike, line: int, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        location = f"{path}, line {line}" if line else str(path)
        super().__init__(f"{location}: {problem}")


class DataSourceError(UserError, ValueError):
    """A data source that cannot be read at all: a missing path, no usable files, no rows."""


class CatalogUnavailableError(UserError, RuntimeError):
    """A tfds catalog dataset is not prepared locally and cannot be downloaded."""


class RunError(UserError):
    """A run directory that cannot be used: missing files, finished, unwritable, diverged."""


class ExportError(UserError):
    """An export that cannot be written or read."""


class InputError(UserError, ValueError):
    """An input given to `predict` or a serving function that the model cannot take."""


def check_range(key, value, minimum=None, maximum=None, *, exclusive_minimum=False):
    """Raises ConfigError naming `key` unless `minimum <= value <= maximum`.

    Example:
        check_range("train.epochs", config.train.epochs, minimum=1)
    """
    if value is None:
        return
    low_fails = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if low_fails or (maximum is not None and value > maximum):
        low = "" if minimum is None else f"{'>' if exclusive_minimum else '>='} {minimum:g}"
        high = "" if maximum is None else f"<= {maximum:g}"
        wanted = " and ".join(part for part in (low, high) if part)
        raise ConfigError(f"{key}: must be {wanted}, got {value!r}")
