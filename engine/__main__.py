"""``python -m engine``: the command line (see ``engine/cli.py``)."""

import sys

from .cli import main

sys.exit(main())
