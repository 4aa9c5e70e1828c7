"""The ``qjm`` command line: run job sets and look at them from scripts, CI jobs and shells.

Conventions, so that ``qjm`` behaves like any well-made Unix tool:

- Data goes to stdout (a job-set id, a table, a report, JSON or CSV); progress and messages go
  to stderr. ``ID=$(qjm run bell.qasm)`` therefore captures just the id.
- Progress is a live bar when stderr is a terminal, and plain, throttled lines otherwise (logs
  of CI jobs stay readable). ``-q`` turns it off.
- Every read command takes ``--json``. Job-set ids may be shortened to any unique prefix.
- Errors are one line on stderr, ``qjm: error: <what is wrong, and where>``; ``--debug`` adds
  the traceback.
- Exit codes: 0 success; 1 the job set finished with failures (partial, failed, cancelled,
  interrupted), a timeout, or another failure; 2 bad usage or bad input (unreadable circuit
  files, invalid shots, an unknown backend, a circuit the backend cannot run, an unknown or
  ambiguous job-set id); 130 interrupted by Ctrl-C.

Running in the background (``qjm run --detach``): a job set's jobs run in threads of the
process that started it, so that process has to live until the set is finished. ``--detach``
therefore starts a child process (``python -m qjm_tui.cli run ...`` in a new session, so a
closing terminal or Ctrl-C does not reach it, with its output appended to the log file) and
hands it a pipe. The child does everything a foreground run does - loads the files, checks
shots and options, resolves the backend, validates the circuits and stores the job set - and
then writes one JSON line to the pipe: the new id, or the error and its exit code. The parent
waits for that line, so ``qjm run --detach`` exits 2 on bad input exactly like a foreground run,
and when it exits 0 the job set is already in the store and can be watched with ``qjm wait``.
Validation runs once, in the same code (``JobManager.run``) for both modes, so the two can never
disagree. If the child dies before reporting, the parent notices (it polls the child while it
waits) and points at the log. ``retry --detach`` and ``resume --detach`` work the same way.
(POSIX only: the pipe is passed with ``pass_fds`` and watched with ``select``.)

``qjm`` with no arguments prints the usage help; the terminal interface will take its place.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import fnmatch
import io
import json
import os
import select
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from qjm_tui.core.errors import (
    JobManagerError,
    JobManagerInputError,
    JobManagerInvalidStateError,
    JobManagerJobNotFound,
    JobManagerTimeoutError,
    JobManagerUnknownJobSet,
    StoreError,
)
from qjm_tui.views import duration, histogram_lines, iso

if TYPE_CHECKING:
    from qjm_tui.core.jobset import ManagedJobSet, Progress
    from qjm_tui.core.manager import JobManager

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

STATES = ("running", "done", "partial", "failed", "cancelled", "interrupted")
DEMO_BACKEND = "aer"


class CliError(Exception):
    """A failure reported as one line on stderr, with the exit code it stands for."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def exit_code_for(exc: BaseException) -> int:
    """2 for bad input (the user can fix the command or point it at a usable store), 1 for the rest."""
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, (JobManagerInputError, JobManagerUnknownJobSet, JobManagerJobNotFound, StoreError)):
        return EXIT_USAGE
    return EXIT_FAILED


# -- output helpers --------------------------------------------------------------------------


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _note(text: str) -> None:
    _err(f"qjm: {text}")


def to_json(data: Any, indent: int | None = 2) -> str:
    """``data`` as JSON text, with Qiskit's result values (complex, numpy, dates) converted."""
    from qjm_tui.backends.base import jsonable

    return json.dumps(jsonable(data), indent=indent)


def _print_json(data: Any) -> None:
    _out(to_json(data))


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table: rich on a terminal; aligned plain columns (greppable, no wrapping) otherwise."""
    if _stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for header in headers:
            # One line per row, however narrow the terminal: long names end in an ellipsis.
            table.add_column(header, no_wrap=True, overflow="ellipsis")
        for row in rows:
            table.add_row(*row)
        Console(file=sys.stdout).print(table)
        return
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        _out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())


# -- job-set views ---------------------------------------------------------------------------


def job_set_summary(manager: JobManager, job_set: ManagedJobSet, jobs: bool = False) -> dict[str, Any]:
    """A job set as plain data: the shape of ``--json`` for ls, show, report and wait."""
    row = manager.store.get_job_set(job_set.job_set_id())
    p = job_set.progress()
    data: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "tags": list(row.tags),
        "backend": row.backend,
        "state": p.state,
        "shots": row.shots,
        "run_options": row.run_options,
        "created": iso(row.created),
        "finished": iso(row.finished) if p.state in ("done", "partial", "failed", "cancelled") else None,
        "elapsed": round(p.elapsed, 3),
        "eta": None if p.eta is None else round(p.eta, 3),
        "experiments": p.experiments,
        "experiments_done": p.experiments_done,
        "jobs": {"total": p.total_jobs, "done": p.done, "failed": p.failed, "cancelled": p.cancelled,
                 "running": p.running, "pending": p.pending},
        "retries": p.retries,
    }
    if jobs:
        data["job_list"] = [
            {
                "index": j.index,
                "first_experiment": j.start_index,
                "last_experiment": j.end_index,
                "shots_round": j.shots_round,
                "status": j.store_status(),
                "backend_job_id": j.job_id(),
                "attempts": j.attempts,
                "retries": j.retries,
                "error": j.error_message(),
            }
            for j in job_set.managed_jobs()
        ]
    return data


class _NullView:
    def __enter__(self) -> _NullView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, p: Progress, final: bool = False) -> None:
        return None


class _LineView(_NullView):
    """Plain progress lines for logs: one on each change, at most one a second, and the last."""

    def __init__(self, job_set_id: str) -> None:
        self.job_set_id = job_set_id
        self._last_key: tuple[Any, ...] | None = None
        self._last_time = 0.0

    def update(self, p: Progress, final: bool = False) -> None:
        key = (p.state, p.done, p.failed, p.cancelled, p.running, p.experiments_done, p.retries)
        now = time.monotonic()
        if key == self._last_key or (not final and now - self._last_time < 1.0):
            return
        self._last_key, self._last_time = key, now
        extra = "".join(f", {n} {label}" for n, label in
                        ((p.failed, "failed"), (p.cancelled, "cancelled"), (p.retries, "retries")) if n)
        eta = f", about {duration(p.eta)} left" if p.eta and not final else ""
        _note(f"{self.job_set_id}: {p.state}: {p.done}/{p.total_jobs} jobs done{extra}, "
              f"{p.experiments_done}/{p.experiments} experiments, {duration(p.elapsed)}{eta}")


class _BarView(_NullView):
    """A rich progress bar on stderr."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
        from rich.table import Column

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}",
                       table_column=Column(max_width=20, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[detail]}", table_column=Column(no_wrap=True)),
            console=Console(file=sys.stderr),
            refresh_per_second=8,
            expand=True,
        )
        self._task = self._progress.add_task(label, total=None, detail="starting")

    def __enter__(self) -> _BarView:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, p: Progress, final: bool = False) -> None:
        parts = [f"{p.finished_jobs}/{p.total_jobs} jobs", f"{p.experiments_done}/{p.experiments} exp"]
        if p.failed:
            parts.append(f"[red]{p.failed} failed[/]")
        if p.cancelled:
            parts.append(f"[yellow]{p.cancelled} cancelled[/]")
        if p.retries:
            parts.append(f"{p.retries} retries")
        parts.append(duration(p.elapsed))
        if p.eta and not final:
            parts.append(f"~{duration(p.eta)} left")
        if final:
            parts.append(p.state)
        self._progress.update(self._task, total=p.total_jobs, completed=p.finished_jobs,
                              detail=" · ".join(parts))


def _label(job_set: ManagedJobSet) -> str:
    """``name (id)``, or just the id when the set has no name of its own."""
    name, jid = job_set.name(), job_set.job_set_id()
    return jid if name == jid else f"{name} ({jid})"


def _view(mode: str, job_set: ManagedJobSet) -> _NullView:
    if mode == "none":
        return _NullView()
    if mode == "bar":
        # the line above the bar already names the id; the bar keeps its width for progress
        return _BarView(job_set.name())
    return _LineView(job_set.job_set_id())


def _progress_mode(args: argparse.Namespace) -> str:
    if getattr(args, "quiet", False):
        return "none"
    return "bar" if _stderr_is_terminal() else "lines"


def follow(job_set: ManagedJobSet, mode: str, timeout: float | None = None) -> str:
    """Wait for the job set to be final, showing its progress; returns the final state.

    Raises JobManagerTimeoutError after ``timeout`` seconds, and CliError for an interrupted
    set (nobody is running it, so waiting would never end).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with _view(mode, job_set) as view:
        while True:
            step = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            try:
                state = job_set.wait(timeout=step)
            except JobManagerTimeoutError:
                view.update(job_set.progress())
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobManagerTimeoutError(
                        f"job set {job_set.job_set_id()} did not finish within {timeout:g} seconds "
                        f"(state: {job_set.state()})") from None
                continue
            except JobManagerInvalidStateError:
                if job_set.state() == "interrupted":
                    raise CliError(
                        f"job set {job_set.job_set_id()} is interrupted: the process running it "
                        f"ended; run `qjm resume {job_set.job_set_id()}` to finish it") from None
                raise
            view.update(job_set.progress(), final=True)
            return state


def _outcome(job_set: ManagedJobSet, state: str, quiet: bool = False) -> int:
    """Say how a finished job set ended (on stderr); 0 if it is done, else 1."""
    p = job_set.progress()
    jid = job_set.job_set_id()
    if state == "done":
        if not quiet:
            _note(f"job set {jid} done: {p.total_jobs} jobs, {p.experiments} experiments "
                  f"in {duration(p.elapsed)}")
        return EXIT_OK
    _note(f"job set {jid} {state}: {p.done} of {p.total_jobs} jobs done, {p.failed} failed, "
          f"{p.cancelled} cancelled; {p.experiments_done}/{p.experiments} experiments have results")
    errors = job_set.error_messages()
    if errors:
        lines = errors.splitlines()
        for line in lines[:6]:
            _err(f"  {line}")
        if len(lines) > 6:
            _err(f"  ... see `qjm show {jid}`")
    if state in ("partial", "failed", "cancelled"):
        _err(f"  run `qjm retry {jid}` to run the failed and cancelled jobs again")
    return EXIT_FAILED


# -- the manager and job sets ----------------------------------------------------------------


def _manager() -> JobManager:
    from qjm_tui.core.manager import JobManager

    return JobManager()


def _job_set(manager: JobManager, job_set_id: str) -> ManagedJobSet:
    return manager.retrieve_job_set(job_set_id)


# -- background runs -------------------------------------------------------------------------


def _child_argv(args: argparse.Namespace, write_fd: int) -> list[str]:
    """The command line that makes a child process do this command in the foreground."""
    argv = list(args.argv)
    position = argv.index(args.command)
    rest = [a for a in argv[position + 1:] if a != "--detach"]
    return [*argv[:position], args.command, "--report-fd", str(write_fd), *rest]


def _read_report(read_fd: int, child: subprocess.Popen[bytes]) -> dict[str, Any] | None:
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


def start_detached(args: argparse.Namespace) -> int:
    """Run this command in a background process and return once it has started the job set."""
    from qjm_tui.config import log_path

    if os.name != "posix":
        raise CliError("--detach needs a POSIX system (it hands the child a pipe); run in the foreground")
    log = log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    try:
        with open(log, "ab") as log_file:
            child = subprocess.Popen(
                [sys.executable, "-m", "qjm_tui.cli", *_child_argv(args, write_fd)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                pass_fds=(write_fd,), start_new_session=True,
            )
    finally:
        os.close(write_fd)
    try:
        report = _read_report(read_fd, child)
    finally:
        os.close(read_fd)
    if report is None:
        code = child.poll()
        raise CliError(f"the background process ended (exit code {code}) before it started the job "
                       f"set; see {log}")
    if "error" in report:
        raise CliError(str(report["error"]), int(report.get("code", EXIT_FAILED)))
    jid = str(report["id"])
    if args.json:
        _print_json({"id": jid, "pid": child.pid, "log": str(log), "state": report.get("state")})
    else:
        _out(jid)
        if not args.quiet:
            _note(f"job set {jid} runs in the background (pid {child.pid}, log {log}); "
                  f"follow it with `qjm wait {jid}`")
    return EXIT_OK


def _report_to_parent(args: argparse.Namespace, data: dict[str, Any]) -> None:
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


def _log(text: str) -> None:
    """A timestamped line on stderr (a detached child's stderr is the log file)."""
    _err(f"{dt.datetime.now().isoformat(timespec='seconds')} qjm[{os.getpid()}]: {text}")


def _cancel_on_interrupt(job_set: ManagedJobSet) -> int:
    """Ctrl-C while following a set this process runs: cancel it, keep what finished."""
    jid = job_set.job_set_id()
    job_set.cancel()
    with contextlib.suppress(JobManagerError):
        job_set.wait(timeout=15)
    _note(f"interrupted: job set {jid} cancelled; finished jobs keep their results, "
          f"`qjm retry {jid}` runs the rest")
    return EXIT_INTERRUPTED


def _drive(args: argparse.Namespace, manager: JobManager, job_set: ManagedJobSet, started: str) -> int:
    """Wait for a job set this process runs, then report: the tail of run, retry and resume."""
    jid = job_set.job_set_id()
    if getattr(args, "report_fd", None) is not None:
        _report_to_parent(args, {"id": jid, "state": job_set.state()})
        _log(f"{started} job set {_label(job_set)}")
        try:
            state = job_set.wait()
        except JobManagerError as exc:
            _log(f"job set {jid} stopped: {exc}")
            return EXIT_FAILED
        _log(f"job set {jid} finished: {state}")
        if state != "done" and job_set.error_messages():
            _log(job_set.error_messages() or "")
        return EXIT_OK if state == "done" else EXIT_FAILED
    if not args.json:
        _out(jid)  # at once, so a caller has the id even if this process is stopped
    mode = _progress_mode(args)
    if mode != "none" and not args.json:
        p = job_set.progress()
        _note(f"{started} job set {_label(job_set)}: {p.experiments} experiments in "
              f"{p.total_jobs} jobs on {job_set.backend_spec()}")
    try:
        state = follow(job_set, mode)
    except KeyboardInterrupt:
        return _cancel_on_interrupt(job_set)
    code = _outcome(job_set, state, quiet=mode == "none")
    if args.json:
        _print_json(job_set_summary(manager, job_set))
    return code


# -- commands --------------------------------------------------------------------------------


def _run_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--option expects KEY=VALUE, got {pair!r}", EXIT_USAGE)
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    if "shots" in options:
        raise CliError("give shots with --shots, not --option", EXIT_USAGE)
    return options


def cmd_run(args: argparse.Namespace) -> int:
    """Load circuit files, validate them, store the job set and run it."""
    if args.detach:
        return start_detached(args)
    manager = _manager()
    run_config = _run_options(args.option)
    if args.shots is not None:
        run_config["shots"] = args.shots
    job_set = manager.run(
        list(args.files), backend=args.backend, name=args.name,
        max_experiments_per_job=args.max_per_job, job_tags=args.tag or None,
        transpile=args.transpile, **run_config,
    )
    return _drive(args, manager, job_set, "started")


def cmd_demo(args: argparse.Namespace) -> int:
    """The seed's scenario: many random circuits, transpiled, split into jobs, run, shown."""
    if args.circuits < 1:
        raise CliError(f"--circuits must be a positive integer, got {args.circuits}", EXIT_USAGE)
    quiet = _progress_mode(args) == "none"
    if not quiet:
        _note(f"building {args.circuits} random 5-qubit depth-4 circuits (seed {args.seed})")
    from qiskit.circuit.random import random_circuit

    circuits = []
    for i in range(args.circuits):
        circuit = random_circuit(5, 4, measure=True, seed=args.seed + i)
        circuit.name = f"random_{i}"
        circuits.append(circuit)
    manager = _manager()
    if not quiet:
        _note(f"transpiling for {args.backend} and storing the job set")
    run_config: dict[str, Any] = {}
    if args.shots is not None:
        run_config["shots"] = args.shots
    job_set = manager.run(circuits, backend=args.backend, name=args.name,
                          max_experiments_per_job=args.max_per_job, job_tags=["demo"],
                          transpile=True, **run_config)
    jid = job_set.job_set_id()
    if not quiet:
        p = job_set.progress()
        _note(f"running job set {jid}: {p.experiments} circuits in {p.total_jobs} jobs on "
              f"{job_set.backend_spec()}")
    try:
        state = follow(job_set, _progress_mode(args))
    except KeyboardInterrupt:
        return _cancel_on_interrupt(job_set)
    _out(job_set.report(detailed=args.detailed))
    results = job_set.results(partial=True)
    wanted = args.show if args.show else [i for i in (5, 6, 7) if i < args.circuits] or [0]
    for index in wanted:
        _out("")
        _print_histogram(manager, job_set, results, index)
    _out("")
    _out(f"Job set id: {jid}")
    _out(f"More:  qjm show {jid}\n       qjm results {jid} --experiment {wanted[0]}")
    return _outcome(job_set, state, quiet=True) if state != "done" else EXIT_OK


def _print_histogram(manager: JobManager, job_set: ManagedJobSet, results: Any, experiment: Any) -> bool:
    """Print one experiment's counts as bars; False if it has none."""
    from qjm_tui.core.errors import ManagedResultDataNotAvailable

    index = job_set.experiment_index(experiment)
    row = manager.store.get_job_set(job_set.job_set_id())
    name = row.experiment_names[index] if index < len(row.experiment_names) else ""
    try:
        counts = results.get_counts(index)
    except ManagedResultDataNotAvailable as exc:
        _out(f"Experiment {index} ({name}): {exc}")
        return False
    _out(f"Experiment {index} ({name}): {sum(counts.values())} shots, {len(counts)} outcomes")
    for line in histogram_lines(counts):
        _out(line)
    return True


def cmd_ls(args: argparse.Namespace) -> int:
    """List job sets, newest first, with filters."""
    manager = _manager()
    rows = manager.store.list_job_sets()
    selected = []
    for row in rows:
        if args.name and not fnmatch.fnmatchcase(row.name, args.name):
            continue
        if args.backend and not fnmatch.fnmatchcase(row.backend, args.backend):
            continue
        if args.tag and not all(t in row.tags for t in args.tag):
            continue
        job_set = _job_set(manager, row.id)
        summary = job_set_summary(manager, job_set)
        if args.state and summary["state"] not in args.state:
            continue
        selected.append(summary)
        if args.limit and len(selected) >= args.limit:
            break
    if args.json:
        _print_json(selected)
        return EXIT_OK
    if not selected:
        _note("no job sets" + (" match" if rows else f" in {manager.store.path}"))
        return EXIT_OK
    table = []
    for s in selected:
        jobs = s["jobs"]
        job_text = f"{jobs['done']}/{jobs['total']}"
        if jobs["failed"]:
            job_text += f" ({jobs['failed']} failed)"
        # The id starts with the creation time, so the table does not repeat it (--json has it).
        table.append([s["id"], s["name"], s["state"], job_text,
                      f"{s['experiments_done']}/{s['experiments']}", s["backend"],
                      ",".join(s["tags"])])
    _print_table(["ID", "NAME", "STATE", "JOBS", "EXPS", "BACKEND", "TAGS"], table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """One job set's report."""
    manager = _manager()
    job_set = _job_set(manager, args.id)
    if args.json:
        _print_json(job_set_summary(manager, job_set, jobs=True))
    else:
        _out(job_set.report(detailed=not args.brief))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """The report of every job set in the store."""
    manager = _manager()
    if args.json:
        _print_json([job_set_summary(manager, s, jobs=args.detailed) for s in manager.job_sets()])
    else:
        _out(manager.report(detailed=args.detailed))
    return EXIT_OK


def cmd_wait(args: argparse.Namespace) -> int:
    """Block until a job set (run by any process) is finished."""
    if args.timeout is not None and args.timeout < 0:
        raise CliError(f"--timeout must not be negative, got {args.timeout:g}", EXIT_USAGE)
    manager = _manager()
    job_set = _job_set(manager, args.id)
    state = follow(job_set, _progress_mode(args), timeout=args.timeout)
    code = _outcome(job_set, state, quiet=args.json or _progress_mode(args) == "none")
    if args.json:
        _print_json(job_set_summary(manager, job_set))
    return code


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel every unfinished job of a job set, whichever process runs it."""
    manager = _manager()
    job_set = _job_set(manager, args.id)
    jid = job_set.job_set_id()
    before = job_set.state()
    if not job_set.cancel():
        _note(f"job set {jid} is already {before}; nothing to cancel")
        return EXIT_FAILED
    if args.wait:
        state = follow(job_set, "none", timeout=args.timeout)
        _note(f"job set {jid} {state}")
    else:
        _note(f"cancelling job set {jid} (it was {before}); `qjm wait {jid}` waits until it stops")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    """Run the failed and cancelled jobs of a job set again."""
    if args.detach:
        return start_detached(args)
    manager = _manager()
    job_set = _job_set(manager, args.id).retry_failed()
    return _drive(args, manager, job_set, "retrying")


def cmd_resume(args: argparse.Namespace) -> int:
    """Finish an interrupted job set."""
    if args.detach:
        return start_detached(args)
    manager = _manager()
    job_set = _job_set(manager, args.id).resume()
    return _drive(args, manager, job_set, "resuming")


def cmd_rename(args: argparse.Namespace) -> int:
    """Give a job set a new name."""
    manager = _manager()
    job_set = _job_set(manager, args.id)
    old = job_set.name()
    new = job_set.update_name(args.name)
    _note(f"job set {job_set.job_set_id()} renamed: {old!r} -> {new!r}")
    return EXIT_OK


def cmd_tag(args: argparse.Namespace) -> int:
    """Add or remove tags; prints the resulting tags, one a line."""
    manager = _manager()
    job_set = _job_set(manager, args.id)
    if args.add or args.remove:
        tags = job_set.update_tags(additional_tags=args.add or None, removal_tags=args.remove or None)
    else:
        tags = job_set.tags()
    if args.json:
        _print_json({"id": job_set.job_set_id(), "tags": tags})
    else:
        for tag in tags:
            _out(tag)
    return EXIT_OK


def _parse_experiment(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _result_rows(manager: JobManager, job_set: ManagedJobSet, experiments: Sequence[str] | None
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job set's header data and one dict per requested experiment (counts or why not)."""
    from qjm_tui.core.errors import ManagedResultDataNotAvailable

    row = manager.store.get_job_set(job_set.job_set_id())
    results = job_set.results(partial=True)
    if experiments:
        indices = [job_set.experiment_index(_parse_experiment(e)) for e in experiments]
    else:
        indices = list(range(row.n_experiments))
    out = []
    for index in indices:
        item: dict[str, Any] = {"index": index, "name": row.experiment_names[index],
                                "shots": None, "counts": None, "error": None}
        try:
            counts = results.get_counts(index)
        except ManagedResultDataNotAvailable as exc:
            item["error"] = str(exc)
        except Exception as exc:  # e.g. a statevector-only experiment has no counts
            item["error"] = f"no counts for experiment {index}: {exc}"
        else:
            item["counts"] = dict(counts)
            item["shots"] = sum(counts.values())
        out.append(item)
    header = {"id": row.id, "name": row.name, "backend": row.backend, "state": job_set.state()}
    return header, out


def _csv_text(items: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["experiment", "name", "outcome", "count"])
    for item in items:
        for outcome, count in sorted((item["counts"] or {}).items()):
            writer.writerow([item["index"], item["name"], outcome, count])
    return buffer.getvalue()


def _missing_note(header: dict[str, Any], items: Sequence[dict[str, Any]]) -> int:
    missing = [i for i in items if i["counts"] is None]
    if not missing:
        return EXIT_OK
    first = missing[0]
    running = " (the job set is still running)" if header["state"] == "running" else ""
    _note(f"{len(missing)} of {len(items)} experiments have no counts{running}; "
          f"first: {first['error']}")
    return EXIT_FAILED


def cmd_results(args: argparse.Namespace) -> int:
    """Counts per experiment: text, JSON or CSV. Never waits: use `qjm wait` first."""
    manager = _manager()
    job_set = _job_set(manager, args.id)
    header, items = _result_rows(manager, job_set, args.experiment)
    if args.json:
        _print_json({**header, "experiments": items})
    elif args.csv:
        sys.stdout.write(_csv_text(items))
        sys.stdout.flush()
    elif args.experiment:
        for n, item in enumerate(items):
            if n:
                _out("")
            _out(f"Experiment {item['index']} ({item['name']}): " + (
                f"{item['shots']} shots, {len(item['counts'])} outcomes" if item["counts"] is not None
                else item["error"]))
            if item["counts"] is not None:
                for line in histogram_lines(item["counts"]):
                    _out(line)
    else:
        for item in items:
            if item["counts"] is None:
                _out(f"{item['index']}\t{item['name']}\t-\t{item['error']}")
            else:
                ordered = sorted(item["counts"].items(), key=lambda kv: (-kv[1], kv[0]))
                _out(f"{item['index']}\t{item['name']}\t{item['shots']}\t"
                     + " ".join(f"{k}:{v}" for k, v in ordered))
    return _missing_note(header, items)


def _write_output(target: str, text: str) -> None:
    """Write to a file atomically (a reader never sees half a file), or to stdout for '-'."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target)
    if path.is_dir():
        raise CliError(f"{path}: is a directory; give a file name to -o", EXIT_USAGE)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CliError(f"{path}: cannot write: {exc.strerror}") from None


def cmd_export(args: argparse.Namespace) -> int:
    """Write a job set's results to a file: JSON, CSV, or a Qiskit Result as JSON."""
    manager = _manager()
    job_set = _job_set(manager, args.id)
    code = EXIT_OK
    if args.format == "qiskit":
        results = job_set.results(partial=True)
        if args.partial:
            data = results.to_dict()
            n = len(results.available())
            if n < len(results):
                _note(f"only {n} of {len(results)} experiments have results; exporting those")
                code = EXIT_FAILED
        else:
            data = results.combine_results().to_dict()
            n = len(results)
        text = to_json(data) + "\n"
    else:
        header, items = _result_rows(manager, job_set, None)
        n = sum(1 for i in items if i["counts"] is not None)
        code = _missing_note(header, items)
        text = to_json({**header, "experiments": items}) + "\n" if args.format == "json" \
            else _csv_text(items)
    _write_output(args.output, text)
    if args.output != "-":
        _note(f"wrote {n} experiments of job set {job_set.job_set_id()} to {args.output} ({args.format})")
    return code


def _probe_backend(spec: str, config: Any) -> dict[str, Any]:
    """What a backend spec resolves to: limits and width, or why it is not available."""
    import dataclasses

    from qjm_tui.backends.registry import resolve_spec

    entry: dict[str, Any] = {"spec": spec, "available": False, "limits": None, "num_qubits": None,
                             "detail": None}
    if "<" in spec:
        entry["available"] = None
        entry["detail"] = "a family: put a name in place of <...> and run `qjm backends SPEC`"
        return entry
    # "emulator[:key=value,...]": the part before the optional bracket is a spec of its own.
    spec = spec.split("[", 1)[0]
    # Probe with in-process threads: no worker pool is started just to read limits.
    probe_config = dataclasses.replace(config, executor="threads") if dataclasses.is_dataclass(config) \
        else config
    try:
        adapter = resolve_spec(spec, probe_config)
    except JobManagerInputError as exc:
        entry["detail"] = str(exc)
        entry["unknown"] = True
        return entry
    except Exception as exc:
        entry["detail"] = str(exc).strip() or type(exc).__name__
        return entry
    try:
        entry["limits"] = dataclasses.asdict(adapter.limits())
        target = adapter.target()
        width = getattr(getattr(target, "target", None), "num_qubits", None)
        if width is None:
            width = getattr(target, "num_qubits", None)
        entry["num_qubits"] = width
        entry["available"] = True
        entry["detail"] = getattr(target, "name", None) or type(adapter).__name__
    except Exception as exc:
        entry["detail"] = str(exc).strip() or type(exc).__name__
    return entry


def cmd_backends(args: argparse.Namespace) -> int:
    """Known backend specs, their limits and whether they can be used here."""
    from qjm_tui.backends import registry
    from qjm_tui.config import load_config

    config = load_config()
    specs = list(args.specs) if args.specs else list(registry.KNOWN_SPECS)
    entries = []
    for spec in specs:
        entry = _probe_backend(spec, config)
        entry["default"] = spec == config.default_backend
        entries.append(entry)
    unknown = [e for e in entries if e.pop("unknown", False)]
    # A spec the user typed that names no backend is bad input, as in `qjm run --backend`.
    code = EXIT_USAGE if unknown else EXIT_OK
    if args.json:
        _print_json(entries)
        return code

    def limit_text(entry: dict[str, Any]) -> str:
        limits = entry["limits"] or {}
        shown = [f"{k.replace('max_', 'max ').replace('_', ' ')}={v}" for k, v in limits.items() if v]
        return ", ".join(shown) or ("none" if entry["limits"] is not None else "")

    rows = []
    for e in entries:
        available = {True: "yes", False: "no", None: "-"}[e["available"]]
        rows.append([e["spec"] + (" (default)" if e["default"] else ""), available,
                     "" if e["num_qubits"] is None else str(e["num_qubits"]), limit_text(e),
                     e["detail"] or ""])
    _print_table(["SPEC", "AVAILABLE", "QUBITS", "LIMITS", "DETAIL"], rows)
    for entry in unknown:
        _err(f"qjm: error: {entry['detail']}")
    return code


def cmd_config(args: argparse.Namespace) -> int:
    """The effective configuration (secrets masked) and where qjm keeps its files."""
    from qjm_tui.config import config_path, load_config

    config = load_config()
    data = config.masked()
    path = config_path()
    data["config_path"] = str(path)
    data["config_file_exists"] = path.exists()
    if args.json:
        _print_json(data)
        return EXIT_OK
    _out(f"config file: {path}" + ("" if path.exists() else " (not found; built-in defaults in use)"))
    _out(f"store:       {data['store']}")
    _out(f"log:         {data['log']}")
    _out("")
    for key in ("default_backend", "default_shots", "executor"):
        _out(f"{key} = {json.dumps(data[key])}")
    for section in ("retry", "ibm"):
        if data[section]:
            _out(f"\n[{section}]")
            for key, value in data[section].items():
                _out(f"{key} = {json.dumps(value)}")
    for spec, limits in (data["backends"] or {}).items():
        _out(f"\n[backends.{json.dumps(spec)}]")
        for key, value in limits.items():
            _out(f"{key} = {value}")
    return EXIT_OK


# -- the parser ------------------------------------------------------------------------------

_MAIN_EPILOG = """\
examples:
  qjm demo                                  run 1000 random circuits on the local simulator
  qjm run bell.qasm ghz.qpy --shots 2000    run circuit files, wait, print the job-set id
  ID=$(qjm run *.qasm --detach)             run in the background
  qjm wait $ID && qjm results $ID --json    wait for it, then read the counts
  qjm ls --state partial                    job sets with failed jobs

exit codes: 0 success; 1 the job set finished with failures, or the command failed;
            2 bad usage or bad input; 130 interrupted.
environment: QJM_HOME (store and log folder), QJM_CONFIG (config file), QJM_BACKEND,
             QJM_SHOTS, QJM_EXECUTOR.
"""


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}".rstrip() for line in lines)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the option and what is wrong), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``qjm`` argument parser with every subcommand."""
    from qjm_tui import __version__

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    parser = _Parser(
        prog="qjm",
        description="qjm: split many quantum circuits into backend jobs, run them, keep the results.",
        epilog=_MAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument("--version", action="version", version=f"qjm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str,
            epilog: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text + ".",
                           epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    def add_json(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON (for scripts)")

    def add_id(p: argparse.ArgumentParser) -> None:
        p.add_argument("id", metavar="ID", help="job-set id, or any unique prefix of it")

    def add_driving(p: argparse.ArgumentParser) -> None:
        mode = p.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true",
                          help="wait until the job set is finished, showing progress (the default)")
        mode.add_argument("--detach", action="store_true",
                          help="return at once; a background process runs the job set")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        add_json(p)
        p.add_argument("--report-fd", type=int, default=None, help=argparse.SUPPRESS)

    p = add("run", cmd_run, "Run circuit files as one job set", _examples(
        "qjm run bell.qasm                          # default backend and shots",
        "qjm run a.qasm b.qasm c.qpy --backend aer:fake_manila --transpile --shots 4000",
        "qjm run circuits.qpy --max-per-job 50 --name sweep --tag nightly --tag v2",
        "qjm run big.qpy --option memory=true --option seed_simulator=42",
        "ID=$(qjm run big.qpy --detach) && qjm wait $ID",
        "",
        "Everything is checked before anything is stored: unreadable files, bad shots, an",
        "unknown backend or a circuit the backend cannot run exit 2 and store nothing.",
        "The job-set id goes to stdout; progress goes to stderr.",
    ))
    p.add_argument("files", nargs="+", metavar="FILE", help="OpenQASM 2/3 or QPY files")
    p.add_argument("-b", "--backend", metavar="SPEC", help="backend spec (see `qjm backends`)")
    p.add_argument("-n", "--name", help="a name for the job set (default: its id)")
    p.add_argument("-s", "--shots", type=int, help="shots per circuit (default: from the config)")
    p.add_argument("--max-per-job", type=int, metavar="N", help="at most N circuits per job")
    p.add_argument("-t", "--tag", action="append", metavar="TAG", help="a tag (repeatable)")
    p.add_argument("--transpile", action="store_true", help="transpile the circuits for the backend")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a backend run option, VALUE as JSON or text (repeatable)")
    add_driving(p)

    p = add("demo", cmd_demo, "Run random circuits on the local simulator and show the results",
            _examples(
                "qjm demo                                   # 1000 circuits, about 16 jobs",
                "qjm demo --circuits 200 --max-per-job 25 --shots 4000",
                "qjm demo --show 0 --show 42 --detailed",
            ))
    p.add_argument("--circuits", type=int, default=1000, metavar="N", help="how many (default 1000)")
    p.add_argument("--max-per-job", type=int, metavar="N", help="at most N circuits per job")
    p.add_argument("-s", "--shots", type=int, help="shots per circuit (default: from the config)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first random circuit (default 0)")
    p.add_argument("-b", "--backend", default=DEMO_BACKEND, metavar="SPEC",
                   help=f"backend spec (default {DEMO_BACKEND})")
    p.add_argument("-n", "--name", default="demo", help="job-set name (default demo)")
    p.add_argument("--show", type=int, action="append", metavar="I",
                   help="draw experiment I's counts (repeatable; default 5, 6 and 7)")
    p.add_argument("--detailed", action="store_true", help="include every job in the report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    p = add("ls", cmd_ls, "List job sets, newest first", _examples(
        "qjm ls",
        "qjm ls --state running --state interrupted",
        "qjm ls --name 'sweep*' --tag nightly --backend aer --json",
    ))
    p.add_argument("--name", help="only names matching this (shell-style wildcards)")
    p.add_argument("--tag", action="append", metavar="TAG", help="only sets with this tag (repeatable)")
    p.add_argument("--backend", metavar="SPEC", help="only this backend spec (wildcards allowed)")
    p.add_argument("--state", action="append", choices=STATES, help="only sets in this state (repeatable)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="at most N job sets")
    add_json(p)

    p = add("show", cmd_show, "Show one job set's report", _examples(
        "qjm show 20250101-120000-ab12cd34",
        "qjm show 20250101-1200            # a unique prefix is enough",
        "qjm show ID --json | jq .job_list",
    ))
    add_id(p)
    p.add_argument("--brief", action="store_true", help="the summary only, without each job")
    add_json(p)

    p = add("report", cmd_report, "Report on every job set in the store", _examples(
        "qjm report", "qjm report --detailed", "qjm report --json"))
    p.add_argument("--detailed", action="store_true", help="include each job")
    add_json(p)

    p = add("wait", cmd_wait, "Wait until a job set is finished, whichever process runs it", _examples(
        "qjm wait ID",
        "qjm wait ID --timeout 600 || echo 'not done'",
        "qjm wait ID --json -q",
        "",
        "Exits 0 when every job is done, 1 if any failed or was cancelled, on timeout, or if",
        "the set was interrupted (then run `qjm resume ID`).",
    ))
    add_id(p)
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_json(p)

    p = add("cancel", cmd_cancel, "Cancel a job set's unfinished jobs", _examples(
        "qjm cancel ID", "qjm cancel ID --wait",
        "", "Finished jobs keep their results; `qjm retry ID` runs the cancelled ones later."))
    add_id(p)
    p.add_argument("--wait", action="store_true", help="wait until the job set has stopped")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this long")

    p = add("retry", cmd_retry, "Run a job set's failed and cancelled jobs again", _examples(
        "qjm retry ID", "qjm retry ID --detach"))
    add_id(p)
    add_driving(p)

    p = add("resume", cmd_resume, "Finish an interrupted job set (its process ended)", _examples(
        "qjm resume ID", "qjm resume ID --detach",
        "", "Jobs already done are not run again."))
    add_id(p)
    add_driving(p)

    p = add("rename", cmd_rename, "Rename a job set", _examples("qjm rename ID 'calibration run 2'"))
    add_id(p)
    p.add_argument("name", metavar="NAME", help="the new name")

    p = add("tag", cmd_tag, "Add or remove a job set's tags; prints the tags", _examples(
        "qjm tag ID                         # list the tags",
        "qjm tag ID --add nightly --add v2 --remove draft"))
    add_id(p)
    p.add_argument("--add", action="append", metavar="TAG", help="add this tag (repeatable)")
    p.add_argument("--remove", action="append", metavar="TAG", help="remove this tag (repeatable)")
    add_json(p)

    p = add("results", cmd_results, "Print the counts of a job set's experiments", _examples(
        "qjm results ID                     # one line per experiment: index, name, shots, counts",
        "qjm results ID --experiment 5      # a histogram",
        "qjm results ID --experiment bell --json",
        "qjm results ID --csv > counts.csv",
        "",
        "Does not wait: run `qjm wait ID` first. Exits 1 if an experiment asked for has no result.",
    ))
    add_id(p)
    p.add_argument("-e", "--experiment", action="append", metavar="I|NAME",
                   help="only this experiment, by index or circuit name (repeatable)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV: experiment,name,outcome,count")

    p = add("export", cmd_export, "Write a job set's results to a file", _examples(
        "qjm export ID --format json -o counts.json",
        "qjm export ID --format csv -o counts.csv",
        "qjm export ID --format qiskit -o result.json",
        "  # then: Result.from_dict(json.load(open('result.json')))",
        "qjm export ID --format qiskit --partial -o - | gzip > result.json.gz",
    ))
    add_id(p)
    p.add_argument("-f", "--format", choices=("json", "csv", "qiskit"), default="json",
                   help="json (counts), csv (counts) or qiskit (a full Result as JSON); default json")
    p.add_argument("-o", "--output", default="-", metavar="FILE", help="output file ('-' for stdout)")
    p.add_argument("--partial", action="store_true",
                   help="qiskit format: export the experiments that have results even if some do not")

    p = add("backends", cmd_backends, "List backend specs, their limits and availability", _examples(
        "qjm backends", "qjm backends aer:fake_manila basic", "qjm backends --json"))
    p.add_argument("specs", nargs="*", metavar="SPEC", help="specs to check (default: the known ones)")
    add_json(p)

    p = add("config", cmd_config, "Show the effective configuration and file locations", _examples(
        "qjm config", "qjm config --json | jq -r .store",
        "", "Secrets (tokens, passwords) are shown as ***."))
    add_json(p)
    return parser


# -- entry point -----------------------------------------------------------------------------


@contextlib.contextmanager
def _warnings_as_notes() -> Iterator[None]:
    """Show Python warnings as ``qjm: warning: ...`` lines instead of source excerpts."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        _err(f"qjm: warning: {message}")

    with warnings.catch_warnings():
        warnings.showwarning = show
        # qiskit-ibm-runtime warns about one fake device whenever the device list is built;
        # it says nothing about the backend the user asked for.
        warnings.filterwarnings("ignore", message="Properties of fake_", category=UserWarning)
        # Deprecation notices are for developers of the libraries qjm uses, not for its users.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qjm`` command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stdout)
        return EXIT_OK
    args.argv = argv
    debug = bool(getattr(args, "debug", False))
    try:
        with _warnings_as_notes():
            return args.func(args)
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`qjm ls | head`): stop quietly, as Unix tools do.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except (JobManagerError, CliError) as exc:
        code = exit_code_for(exc)
        from qjm_tui.core.inputs import strip_ansi

        message = strip_ansi(str(exc)).strip() or type(exc).__name__
        _report_to_parent(args, {"error": message, "code": code})
        if debug:
            traceback.print_exc()
        _err(f"qjm: error: {message}")
        return code
    except Exception as exc:
        _report_to_parent(args, {"error": f"internal error: {exc}", "code": EXIT_FAILED})
        if debug:
            traceback.print_exc()
        _err(f"qjm: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
