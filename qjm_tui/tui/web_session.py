"""One browser tab's app process: ``python -m qjm_tui.tui.web_session --store PATH [--read-only]``.

``qjm serve`` (:mod:`qjm_tui.web.server`) starts one of these per websocket, in a process
group of its own, and talks to it over its stdin and stdout (Textual's web driver protocol).
Two guards make sure it never outlives the server, whatever happens to the server:

- the kernel sends it SIGTERM when the server process dies, even by ``kill -9``
  (``PR_SET_PDEATHSIG``, Linux);
- when its input ends without the app having been told to stop (the server's end of the pipe
  closed), the app is asked to exit, and if it has not within a few seconds, the process ends
  itself at once.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from pathlib import Path

from textual import messages
from textual.drivers.web_driver import WebDriver

#: how long an app whose server went away gets to exit cleanly before the process ends itself
ORPHAN_GRACE = 5.0

#: what ``TEXTUAL_DRIVER`` names for these processes
DRIVER = f"{__name__}:SessionDriver"


class SessionDriver(WebDriver):
    """Textual's web driver, which also stops the app when its input ends unannounced."""

    def run_input_thread(self) -> None:
        super().run_input_thread()
        if self.exit_event.is_set():
            return  # the app is stopping normally
        # The server is gone (its end of the pipe closed). Ask the app to exit; a process that
        # cannot (a loop that never yields, a write that blocks) is ended regardless.
        timer = threading.Timer(ORPHAN_GRACE, os._exit, (1,))
        timer.daemon = True
        timer.start()
        self._app.post_message(messages.ExitApp())


def die_with_parent() -> None:
    """Have the kernel send SIGTERM to this process when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Run the app on the store for one browser tab (Textual picks the driver from
    ``TEXTUAL_DRIVER``, which the server sets to :class:`SessionDriver`)."""
    die_with_parent()
    parser = argparse.ArgumentParser(prog="python -m qjm_tui.tui.web_session")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--read-only", action="store_true")
    args = parser.parse_args(argv)
    from qjm_tui.tui.app import run_app

    return run_app(args.store, read_only=args.read_only)


if __name__ == "__main__":
    sys.exit(main())
