"""``main``: parse the command line, run the command, turn failures into one line and an exit code."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from qjm_tui.cli.commands import leave_on_stop
from qjm_tui.cli.detach import report_to_parent
from qjm_tui.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    err,
    exit_code_for,
    log_to_file,
    note,
    warnings_as_notes,
)
from qjm_tui.cli.parser import build_parser
from qjm_tui.cli.signals import Stopped, stop_on_signals
from qjm_tui.core.errors import JobManagerError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qjm`` command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:  # plain `qjm` opens the app
        args = parser.parse_args(["tui", *argv])
    if args.read_only and args.command not in ("tui", "serve"):
        err(f"qjm: error: --read-only is for the app (qjm, qjm tui, qjm serve), not for "
            f"`qjm {args.command}` (see qjm --help)")
        return EXIT_USAGE
    args.argv = argv
    log_to_file()
    debug = bool(getattr(args, "debug", False))
    detached = getattr(args, "report_fd", None) is not None
    # The app and the server handle their own signals; every other command stops on SIGTERM
    # and SIGHUP as it does on Ctrl-C, leaving what it runs resumable.
    stopping = stop_on_signals() if args.command not in ("tui", "serve") else contextlib.nullcontext()
    try:
        with warnings_as_notes(), stopping:
            try:
                return args.func(args)
            finally:
                settle_workers()
    except KeyboardInterrupt:
        note("interrupted")
        return EXIT_INTERRUPTED
    except Stopped as stop:
        return leave_on_stop(stop, detached)
    except BrokenPipeError:
        # The reader went away (`qjm ls | head`): stop quietly, as Unix tools do.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except (JobManagerError, CliError) as exc:
        code = exit_code_for(exc)
        from qjm_tui.core.text import strip_ansi

        message = strip_ansi(str(exc)).strip() or type(exc).__name__
        report_to_parent(args, {"error": message, "code": code})
        if debug:
            traceback.print_exc()
        err(f"qjm: error: {message}")
        return code
    except (OSError, sqlite3.DatabaseError) as exc:
        # The environment, not qjm: a file or folder that cannot be read or written, a full
        # disk, a damaged store. Named, with exit 2, since the user can fix it.
        message = environment_message(exc)
        report_to_parent(args, {"error": message, "code": EXIT_USAGE})
        if debug:
            traceback.print_exc()
        err(f"qjm: error: {message}")
        return EXIT_USAGE
    except Exception as exc:
        report_to_parent(args, {"error": f"internal error: {exc}", "code": EXIT_FAILED})
        if debug:
            traceback.print_exc()
        err(f"qjm: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_FAILED


def settle_workers() -> None:
    """Let a simulator pool still starting in the background finish starting, so a command
    that ends early exits without the workers' tracebacks (see ``settle_pool_start``)."""
    local = sys.modules.get("qjm_tui.backends.local")
    if local is not None:
        local.settle_pool_start()


def environment_message(exc: OSError | sqlite3.DatabaseError) -> str:
    """One line naming the place an environment failure is about and what to do."""
    from qjm_tui.config import load_config
    from qjm_tui.core.files import describe_os_error
    from qjm_tui.core.store import store_problem
    from qjm_tui.core.text import strip_ansi

    if isinstance(exc, OSError):
        place = exc.filename or "a file qjm uses"
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return f"{place}: {describe_os_error(exc)}"
        return f"{place}: {exc.strerror or exc}; check that it exists and that you may read and write it"
    try:
        store = str(load_config().store_path())
    except JobManagerError:
        store = "the store"
    problem = store_problem(exc, Path(store))
    if problem is not None:
        return str(problem)
    text = strip_ansi(str(exc))
    if "readonly" in text or "read-only" in text:
        return (f"{store}: the store cannot be written ({text}); make the file and its folder writable "
                "or set QJM_HOME to another folder")
    return f"{store}: {text}; check that the file and its folder can be read and written"
