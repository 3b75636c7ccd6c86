"""`python -m apps.textgen train|evaluate|export|predict|tune [options] [key=value ...]`."""

import sys

from apps.common.cli import main
from apps.textgen import APP

if __name__ == "__main__":
    sys.exit(main(APP))
