"""The commands that run and manage job sets: run, demo, retry, resume, ls, show, report, wait,
cancel, rename and tag."""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qjm_tui.cli.detach import report_to_parent, start_detached
from qjm_tui.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    log_line,
    note,
    out,
    print_json,
    print_table,
)
from qjm_tui.cli.progress import follow, label, outcome, progress_mode, read_figures
from qjm_tui.core.errors import JobManagerError
from qjm_tui.views import histogram_lines, job_set_cells, job_set_summary, printable

if TYPE_CHECKING:
    from qjm_tui.cli.signals import Stopped
    from qjm_tui.core.jobset import ManagedJobSet
    from qjm_tui.core.manager import JobManager

STATES = ("running", "done", "partial", "failed", "cancelled", "interrupted")
DEMO_BACKEND = "aer"


def open_manager(store: Path | None = None, read_only: bool = False) -> JobManager:
    """The manager on ``store``, else on the store and config of the environment (``QJM_HOME``,
    ``QJM_CONFIG``).

    ``read_only`` for the commands that only look: they work on a store nobody may write and
    create nothing on disk (no store file, no folder) where there is no store yet. A command
    that writes creates the store only when it first writes (a refused request leaves nothing),
    and checks an existing one first: a damaged store is refused before anything is written.
    """
    from qjm_tui import JobManager
    from qjm_tui.config import load_config
    from qjm_tui.core.store import Store

    config = load_config()
    manager = JobManager(Store(store if store is not None else config.store_path(), read_only=read_only,
                               create_on_write=True, check=not read_only), config=config)
    _OPENED.append(manager)
    return manager


#: the managers this process's command opened (what a SIGTERM or SIGHUP has to wind down)
_OPENED: list[JobManager] = []


def leave_on_stop(stop: Stopped, detached: bool) -> int:
    """SIGTERM or SIGHUP arrived: give up every job set this process runs, so each reads
    ``interrupted`` and ``qjm resume ID`` finishes it; say so on stderr (a detached runner's
    stderr is the log) and in the log; exit with 128 + the signal's number."""
    import logging

    from qjm_tui.core.status import JOB_FINAL

    lines = []
    for manager in _OPENED:
        running = manager.active()
        if not running:
            continue
        try:
            manager.detach(timeout=30)
        except JobManagerError as exc:
            lines.append(str(exc))
        for jid in running:
            counts = manager.store.status_counts(jid)
            left = sum(n for status, n in counts.items() if status not in JOB_FINAL)
            kept = " (the jobs already with the backend go on there)" if manager.reattachable(jid) else ""
            lines.append(f"job set {jid} is interrupted with {left} of {sum(counts.values())} jobs "
                         f"unfinished{kept}; `qjm resume {jid}` finishes it")
    local = sys.modules.get("qjm_tui.backends.local")
    if local is not None:
        local.terminate_pools()  # their jobs are run again on resume; exiting need not wait
    if not lines:
        lines.append("stopped")
    for line in lines:
        text = f"{stop.name}: {line}"
        with contextlib.suppress(OSError, ValueError):  # the terminal may be gone (SIGHUP)
            if detached:
                log_line(text)
            else:
                note(text)
        if not detached:
            logging.getLogger("qjm_tui.cli").warning(text)
    return stop.exit_code


def summary_data(manager: JobManager, job_set_id: str, jobs: bool = False) -> dict[str, Any]:
    """One job set as plain data (the ``--json`` shape, see :func:`qjm_tui.views.job_set_summary`)."""
    store = manager.store
    run_options = store.get_job_set(job_set_id).run_options  # first: a clear error if it is gone
    summary = store.summaries([job_set_id])[0]
    return job_set_summary(summary, time.time(), run_options, store.jobs(job_set_id) if jobs else None)


def cancel_on_interrupt(job_set: ManagedJobSet) -> int:
    """Ctrl-C while following a set this process runs: cancel it, keep what finished."""
    jid = job_set.job_set_id()
    job_set.cancel()
    with contextlib.suppress(JobManagerError):
        job_set.wait(timeout=15)
    note(f"interrupted: job set {jid} cancelled; finished jobs keep their results, "
         f"`qjm retry {jid}` runs the rest")
    return EXIT_INTERRUPTED


def drive(args: argparse.Namespace, manager: JobManager, job_set: ManagedJobSet, started: str) -> int:
    """Wait for a job set this process runs, then report: the tail of run, retry and resume."""
    jid = job_set.job_set_id()
    if getattr(args, "report_fd", None) is not None:
        report_to_parent(args, {"id": jid, "state": job_set.state()})
        log_line(f"{started} job set {label(job_set)}")
        try:
            state: str = job_set.wait()
        except JobManagerError as exc:
            log_line(f"job set {jid} stopped: {exc}")
            return EXIT_FAILED
        log_line(f"job set {jid} finished: {state}")
        if state != "done" and job_set.error_messages():
            log_line(job_set.error_messages() or "")
        return EXIT_OK if state == "done" else EXIT_FAILED
    if not args.json:
        out(jid)  # at once, so a caller has the id even if this process is stopped
    mode = progress_mode(args)
    if mode != "none" and not args.json:
        p = read_figures(manager, jid)
        note(f"{started} job set {label(job_set)}: {p.experiments} experiments in "
             f"{p.total_jobs} jobs on {job_set.backend_spec()}")
    try:
        state = follow(manager, job_set, mode)
    except KeyboardInterrupt:
        return cancel_on_interrupt(job_set)
    code = outcome(manager, job_set, state, quiet=mode == "none")
    if args.json:
        print_json(summary_data(manager, job_set.job_set_id()))
    return code


#: run()'s own parameters and the flags that give them
_OWN_FLAGS = {"shots": "--shots", "max_jobs_per_set": "--max-jobs-per-set", "backend": "--backend",
              "name": "--name", "job_tags": "--tag", "transpile": "--transpile",
              "max_experiments_per_job": "--max-per-job", "max_job_seconds": "--max-job-seconds",
              "keep_together": "--group-by-file or --group"}
#: text that is not JSON but looks meant as a JSON value, so taking it as text would be a guess
_LOOKS_LIKE_JSON = re.compile(r"^\s*([\[{\"]|[+-]?\.?\d|[+-]?(true|false|null|none|nan|inf(inity)?)\s*$)",
                              re.IGNORECASE)


def option_value(key: str, text: str) -> Any:
    """One ``--option`` VALUE: JSON where it parses, else the text itself where that cannot be
    mistaken (``statevector``); text that looks meant as JSON but is not (``[1,2``, ``True``,
    ``1.2.3``, nothing) is an error saying how to write it."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        if text.strip() and not _LOOKS_LIKE_JSON.match(text):
            return text
        word = text.strip().lower()
        if not word:
            problem = "no value"
        elif word in ("true", "false", "null", "none"):
            problem = f"not JSON: write {word.replace('none', 'null')}"
        elif isinstance(exc, json.JSONDecodeError) and "NaN" not in exc.msg:
            problem = f"not valid JSON: {exc.msg} at column {exc.pos + 1}"
        else:
            problem = "not a JSON number"
        raise CliError(f"--option {key}={text.strip()}: {problem} (text is written as "
                       f"{key}='\"...\"')", EXIT_USAGE) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"NaN and Infinity are not JSON ({name})")


def run_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as run options (see :func:`option_value` for VALUE).

    A dotted KEY sets an option inside a group: ``--option twirling.enable_gates=true`` is
    ``twirling={"enable_gates": true}``. A key given twice is an error, not a silent overwrite.
    """
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise CliError(f"--option expects KEY=VALUE, got {pair!r}", EXIT_USAGE)
        *groups, last = key.split(".")
        if groups[:1] and groups[0] in _OWN_FLAGS or not groups and last in _OWN_FLAGS:
            own = groups[0] if groups else last
            raise CliError(f"give {own} with {_OWN_FLAGS[own]}, not --option", EXIT_USAGE)
        place = options
        for depth, group in enumerate(groups):
            place = place.setdefault(group, {})
            if not isinstance(place, dict):
                raise CliError(f"--option {key}: {'.'.join(groups[:depth + 1])} is already given a "
                               "value that is not a group", EXIT_USAGE)
        if last in place:
            raise CliError(f"--option {key} is given twice", EXIT_USAGE)
        place[last] = option_value(key, value)
    return options


def cmd_run(args: argparse.Namespace) -> int:
    """Load circuit files, validate them, store the job set and run it."""
    run_config = run_options(args.option)  # before detaching: a typo is told here, at once
    if args.detach:
        return start_detached(args)
    manager = open_manager()
    if args.shots is not None:
        run_config["shots"] = args.shots
    keep_together: Any = "files" if args.group_by_file else args.group
    job_set = manager.run(
        list(args.files), backend=args.backend, name=args.name,
        max_experiments_per_job=args.max_per_job, job_tags=args.tag or None,
        transpile=args.transpile, max_jobs_per_set=args.max_jobs_per_set,
        keep_together=keep_together, max_job_seconds=args.max_job_seconds, **run_config,
    )
    return drive(args, manager, job_set, "started")


def cmd_demo(args: argparse.Namespace) -> int:
    """The seed's scenario: many random circuits, transpiled, split into jobs, run, shown."""
    if args.circuits < 1:
        raise CliError(f"--circuits must be a positive integer, got {args.circuits}", EXIT_USAGE)
    quiet = progress_mode(args) == "none"
    if not quiet:
        note(f"building {args.circuits} random 5-qubit depth-4 circuits (seed {args.seed})")
    from qiskit.circuit.random import random_circuit

    circuits = []
    for i in range(args.circuits):
        circuit = random_circuit(5, 4, measure=True, seed=args.seed + i)
        circuit.name = f"random_{i}"
        circuits.append(circuit)
    manager = open_manager()
    if not quiet:
        note(f"transpiling for {args.backend} and storing the job set")
    run_config: dict[str, Any] = {}
    if args.shots is not None:
        run_config["shots"] = args.shots
    job_set = manager.run(circuits, backend=args.backend, name=args.name,
                          max_experiments_per_job=args.max_per_job, job_tags=["demo"],
                          transpile=True, max_jobs_per_set=args.max_jobs_per_set, **run_config)
    jid = job_set.job_set_id()
    if not quiet:
        p = read_figures(manager, jid)
        note(f"running job set {jid}: {p.experiments} circuits in {p.total_jobs} jobs on "
             f"{job_set.backend_spec()}")
    try:
        state = follow(manager, job_set, progress_mode(args))
    except KeyboardInterrupt:
        return cancel_on_interrupt(job_set)
    out(job_set.report(detailed=args.detailed))
    results = job_set.results(partial=True)
    wanted = args.show if args.show else [i for i in (5, 6, 7) if i < args.circuits] or [0]
    for index in wanted:
        out("")
        print_histogram(manager, job_set, results, index)
    out("")
    out(f"Job set id: {jid}")
    out(f"More:  qjm show {jid}\n       qjm results {jid} --experiment {wanted[0]}")
    return outcome(manager, job_set, state, quiet=True) if state != "done" else EXIT_OK


def print_histogram(manager: JobManager, job_set: ManagedJobSet, results: Any, experiment: Any) -> bool:
    """Print one experiment's counts as bars; False if it has none."""
    from qjm_tui.core.errors import ManagedResultDataNotAvailable

    index = job_set.experiment_index(experiment)
    row = manager.store.get_job_set(job_set.job_set_id())
    name = row.experiment_names[index] if index < len(row.experiment_names) else ""
    try:
        counts = results.get_counts(index)
    except ManagedResultDataNotAvailable as exc:
        out(f"Experiment {index} ({name}): {exc}")
        return False
    out(f"Experiment {index} ({name}): {sum(counts.values())} shots, {len(counts)} outcomes")
    for line in histogram_lines(counts):
        out(line)
    return True


def cmd_ls(args: argparse.Namespace) -> int:
    """List job sets, newest first, with filters (one query for every set's figures)."""
    manager = open_manager(read_only=True)
    summaries = manager.store.summaries()
    selected = []
    for summary in summaries:
        if args.name and not fnmatch.fnmatchcase(summary.name, args.name):
            continue
        if args.backend and not fnmatch.fnmatchcase(summary.backend, args.backend):
            continue
        if args.tag and not all(t in summary.tags for t in args.tag):
            continue
        if args.state and summary.state not in args.state:
            continue
        selected.append(summary)
        if args.limit and len(selected) >= args.limit:
            break
    now = time.time()
    if args.json:
        options = {row.id: row.run_options for row in manager.store.list_job_sets()} if selected else {}
        print_json([job_set_summary(s, now, options.get(s.id)) for s in selected])
        return EXIT_OK
    if not selected:
        note("no job sets" + (" match" if summaries else f" in {manager.store.path}"))
        return EXIT_OK
    table = []
    for summary in selected:
        cells = job_set_cells(summary, now)
        # The id starts with the creation time, so the table does not repeat it (--json has it).
        table.append([cells.id, cells.name, cells.state, cells.jobs, cells.experiments, cells.backend,
                      cells.tags])
    print_table(["ID", "NAME", "STATE", "JOBS", "EXPS", "BACKEND", "TAGS"], table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """One job set's report."""
    manager = open_manager(read_only=True)
    job_set = manager.retrieve_job_set(args.id)
    if args.json:
        print_json(summary_data(manager, job_set.job_set_id(), jobs=True))
    else:
        out(job_set.report(detailed=not args.brief))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """The report of every job set in the store."""
    manager = open_manager(read_only=True)
    if args.json:
        store, now = manager.store, time.time()
        options = {row.id: row.run_options for row in store.list_job_sets()}
        print_json([job_set_summary(s, now, options.get(s.id), store.jobs(s.id) if args.detailed else None)
                    for s in store.summaries()])
    else:
        out(manager.report(detailed=args.detailed, whole_store=True))
    return EXIT_OK


def cmd_wait(args: argparse.Namespace) -> int:
    """Block until a job set (run by any process) is finished."""
    if args.timeout is not None and args.timeout < 0:
        raise CliError(f"--timeout must not be negative, got {args.timeout:g}", EXIT_USAGE)
    manager = open_manager(read_only=True)
    job_set = manager.retrieve_job_set(args.id)
    state = follow(manager, job_set, progress_mode(args), timeout=args.timeout)
    code = outcome(manager, job_set, state, quiet=args.json or progress_mode(args) == "none")
    if args.json:
        print_json(summary_data(manager, job_set.job_set_id()))
    return code


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel every unfinished job of a job set, whichever process runs it."""
    manager = open_manager()
    job_set = manager.retrieve_job_set(args.id)
    jid = job_set.job_set_id()
    before = job_set.state()
    if not job_set.cancel():
        note(f"job set {jid} is already {before}; nothing to cancel")
        return EXIT_FAILED
    if args.wait:
        state = follow(manager, job_set, "none", timeout=args.timeout)
        note(f"job set {jid} {state}")
    else:
        note(f"cancelling job set {jid} (it was {before}); `qjm wait {jid}` waits until it stops")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    """Run the failed and cancelled jobs of a job set again."""
    if args.detach:
        return start_detached(args)
    manager = open_manager()
    job_set = manager.retrieve_job_set(args.id).retry_failed(backend=args.backend)
    return drive(args, manager, job_set, "retrying")


def cmd_resume(args: argparse.Namespace) -> int:
    """Finish an interrupted job set."""
    if args.detach:
        return start_detached(args)
    manager = open_manager(args.store)
    job_set = manager.retrieve_job_set(args.id).resume(backend=args.backend)
    return drive(args, manager, job_set, "resuming")


def cmd_rename(args: argparse.Namespace) -> int:
    """Give a job set a new name."""
    manager = open_manager()
    job_set = manager.retrieve_job_set(args.id)
    old = job_set.name()
    new = job_set.update_name(args.name)
    note(f"job set {job_set.job_set_id()} renamed: {old!r} -> {new!r}")
    return EXIT_OK


def cmd_tui(args: argparse.Namespace) -> int:
    """Open the full-screen app on the store (``--store``, or the one in ``$QJM_HOME``)."""
    try:
        from qjm_tui.tui.app import run_app
    except ImportError as exc:
        raise CliError(f"the terminal app cannot start in this installation ({exc}); "
                       f"the other commands work: see `qjm --help`") from None
    return run_app(args.store, read_only=getattr(args, "read_only", False))


def cmd_tag(args: argparse.Namespace) -> int:
    """Add or remove tags; prints the resulting tags, one a line."""
    manager = open_manager(read_only=not (args.add or args.remove))
    job_set = manager.retrieve_job_set(args.id)
    if args.add or args.remove:
        tags = job_set.update_tags(additional_tags=args.add or None, removal_tags=args.remove or None)
    else:
        tags = job_set.tags()
    if args.json:
        print_json({"id": job_set.job_set_id(), "tags": tags})
    else:
        for tag in tags:
            out(printable(tag))
    return EXIT_OK
