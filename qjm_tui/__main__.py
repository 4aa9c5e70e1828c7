"""``python -m qjm_tui``: the same as the ``qjm`` command (with no arguments, the terminal app)."""

import sys

from qjm_tui.cli import main

sys.exit(main())
