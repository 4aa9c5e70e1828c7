"""``python -m qjm_tui``: the same as the ``qjm`` command."""

import sys

from qjm_tui.cli import main

sys.exit(main())
