"""``--detach``: run a command in a background process that reports back once the job set is
stored (see the package docstring for the protocol)."""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qjm_tui.cli.output import EXIT_FAILED, EXIT_OK, CliError, note, out, print_json
from qjm_tui.core.files import open_append


def child_argv(args: argparse.Namespace, write_fd: int) -> list[str]:
    """The command line that makes a child process do this command in the foreground."""
    argv = list(args.argv)
    position = argv.index(args.command)
    rest = [a for a in argv[position + 1:] if a != "--detach"]
    return [*argv[:position], args.command, "--report-fd", str(write_fd), *rest]


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
    stored. Returns the child, its report (None if it ended without one) and the log path."""
    from qjm_tui.config import log_path

    if os.name != "posix":
        raise CliError("--detach needs a POSIX system (it hands the child a pipe); run in the foreground")
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


def start_detached(args: argparse.Namespace) -> int:
    """Run this command in a background process and return once it has started the job set."""
    child, report, log = launch(lambda fd: child_argv(args, fd))
    if report is None:
        code = child.poll()
        raise CliError(f"the background process ended (exit code {code}) before it started the job "
                       f"set; see {log}")
    if "error" in report:
        raise CliError(str(report["error"]), int(report.get("code", EXIT_FAILED)))
    jid = str(report["id"])
    if args.json:
        print_json({"id": jid, "pid": child.pid, "log": str(log), "state": report.get("state")})
    else:
        out(jid)
        if not args.quiet:
            note(f"job set {jid} runs in the background (pid {child.pid}, log {log}); "
                 f"follow it with `qjm wait {jid}`")
    return EXIT_OK


def report_to_parent(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Write the one JSON line a detached child owes its parent (once; later calls do nothing)."""
    fd = getattr(args, "report_fd", None)
    if fd is None:
        return
    args.report_fd = None
    try:
        os.write(fd, (json.dumps(data) + "\n").encode())
        os.close(fd)
    except OSError:
        pass  # the parent is gone; the run goes on regardless
