"""The core and the backends never import Textual: the TUI is one client among others."""

from __future__ import annotations

import subprocess
import sys


def test_core_and_backends_import_without_textual() -> None:
    code = (
        "import sys\n"
        "import qjm_tui, qjm_tui.core.manager, qjm_tui.core.engine, qjm_tui.core.store\n"
        "import qjm_tui.backends.registry, qjm_tui.backends.local\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
