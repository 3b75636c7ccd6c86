"""The `rnn-keras` console script: `rnn-keras <app> <command> [options] [key=value ...]`.

Same commands and options as `python -m apps.<app>`; see `apps.common.cli`.
"""

import sys


def main(argv=None):
    """Entry point declared in pyproject.toml as `rnn-keras = apps.cli:main`."""
    import pkgutil

    import apps
    from apps.common import app as app_lib
    from apps.common import cli
    from apps.common.errors import UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    known = sorted(
        module.name
        for module in pkgutil.iter_modules(apps.__path__)
        if module.ispkg and module.name != "common"
    )
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: rnn-keras <app> <command> [options] [key=value ...]")
        print(f"apps: {', '.join(known)}; e.g. rnn-keras {known[0]} --help")
        return 0 if argv else 2
    try:
        app = app_lib.load_app(argv[0])
    except UserError as error:
        print(f"rnn-keras: error: {error}", file=sys.stderr)
        return 2
    return cli.main(app, argv[1:], program=f"rnn-keras {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
