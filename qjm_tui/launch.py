"""Starting a command of ``qjm`` in a background process that reports back once its job set is
stored: ``qjm run --detach`` (and ``retry``/``resume``) and the app's "keep running in the
background" on quit both start one this way.

The child is ``python -m qjm_tui.cli ...`` in a session of its own (a closing terminal or
Ctrl-C does not reach it), its output appended to the log file; it is handed the write end of a
pipe and writes one JSON line on it: the job set's id, or the error and its exit code. POSIX
only (the pipe is passed with ``pass_fds`` and watched with ``select``).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qjm_tui.core.files import open_append


class LaunchError(Exception):
    """A background process cannot be started here (the message says why and what to do)."""


def read_report(read_fd: int, child: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    """The child's one JSON line, or None if it exited without writing it."""
    buffer = b""
    while True:
        ready, _, _ = select.select([read_fd], [], [], 0.5)
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            buffer += chunk
            if b"\n" in buffer:
                break
        elif child.poll() is not None:
            # Exited; anything it wrote is already in the pipe.
            ready, _, _ = select.select([read_fd], [], [], 0)
            if not ready:
                break
    line = buffer.split(b"\n", 1)[0].strip()
    if not line:
        return None
    try:
        report = json.loads(line)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def launch(argv_for: Callable[[int], list[str]]
           ) -> tuple[subprocess.Popen[bytes], dict[str, Any] | None, Path]:
    """Start ``python -m qjm_tui.cli <argv_for(fd)>`` in a session of its own, its output going
    to the log file, and wait for the one JSON line it writes on ``fd`` once the job set is
    stored. Returns the child, its report (None if it ended without one) and the log path.
    :class:`LaunchError` where this system cannot hand a child a pipe."""
    from qjm_tui.config import log_path

    if os.name != "posix":
        raise LaunchError("--detach needs a POSIX system (it hands the child a pipe); run in the foreground")
    log = log_path()
    log_fd = open_append(log)  # 0600 in a private folder; a full or unusable log is said here
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "qjm_tui.cli", *argv_for(write_fd)],
            stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            pass_fds=(write_fd,), start_new_session=True,
        )
    finally:
        os.close(write_fd)
        os.close(log_fd)
    try:
        report = read_report(read_fd, child)
    finally:
        os.close(read_fd)
    return child, report, log
