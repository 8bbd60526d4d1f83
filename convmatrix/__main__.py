"""``python -m convmatrix``: the command line."""

import sys

from convmatrix.cli import main

sys.exit(main())
