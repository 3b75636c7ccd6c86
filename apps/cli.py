"""The `rnn-keras` console script: `rnn-keras <app> <command> [options] [key=value ...]`.

Same commands and options as `python -m apps.<app>`; see `apps.common.cli`.
"""

import sys


def main(argv=None):
    """Entry point declared in pyproject.toml as `rnn-keras = apps.cli:main`."""
    from apps.common import app as app_lib
    from apps.common import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: rnn-keras <app> {train,evaluate,export,predict,tune,ensemble} [options] "
            "[key=value ...]"
        )
        print("apps: sentiment (more as they are added); e.g. rnn-keras sentiment train --help")
        return 0 if argv else 2
    return cli.main(app_lib.load_app(argv[0]), argv[1:], program=f"rnn-keras {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
