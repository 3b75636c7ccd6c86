"""`python -m apps.sentiment train|evaluate|export|predict|tune [options] [key=value ...]`."""

import sys

from apps.common.cli import main
from apps.sentiment import APP

if __name__ == "__main__":
    sys.exit(main(APP))
