"""``--detach``: run a command in a background process that reports back once the job set is
stored (see the package docstring for the protocol)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qjm_tui import launch as background
from qjm_tui.cli.output import EXIT_FAILED, EXIT_OK, CliError, note, out, print_json


def child_argv(args: argparse.Namespace, write_fd: int) -> list[str]:
    """The command line that makes a child process do this command in the foreground."""
    argv = list(args.argv)
    position = argv.index(args.command)
    rest = [a for a in argv[position + 1:] if a != "--detach"]
    return [*argv[:position], args.command, "--report-fd", str(write_fd), *rest]


def launch(argv_for: Callable[[int], list[str]]
           ) -> tuple[subprocess.Popen[bytes], dict[str, Any] | None, Path]:
    """:func:`qjm_tui.launch.launch`, its refusal on a system without pipes to hand a child
    said as the command's error."""
    try:
        return background.launch(argv_for)
    except background.LaunchError as exc:
        raise CliError(str(exc)) from None


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
