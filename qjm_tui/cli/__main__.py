"""``python -m qjm_tui.cli``: the ``qjm`` command (a detached run's child is started this way)."""

import sys

from qjm_tui.cli import main

sys.exit(main())
