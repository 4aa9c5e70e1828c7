"""JobManager: split experiments into jobs, run them, and keep every job set in the store.

It keeps the original IBMQJobManager's methods with the same meanings (``run``, ``job_sets``,
``report``, ``retrieve_job_set``) and adds a persistent store, retries, pacing, cancel at any
time and events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qjm_tui.core import store as st
from qjm_tui.core.circuits import circuits_from_qpy
from qjm_tui.core.clock import Clock
from qjm_tui.core.engine import JobSetRunner
from qjm_tui.core.errors import (
    BackendConfigurationError,
    JobManagerError,
    JobManagerInputError,
    JobManagerInvalidStateError,
    JobManagerTimeoutError,
    JobSetStopped,
    StoreFullError,
)
from qjm_tui.core.events import (
    Event,
    EventBus,
    JobSetCreated,
    JobSetDeleted,
    JobSetRenamed,
    JobSetTagsChanged,
)
from qjm_tui.core.inputs import (
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    check_kind_runs,
    check_label,
    check_schedules,
    experiment_kind,
    normalize_experiments,
    validate_shots,
)
from qjm_tui.core.intake import (
    Scanned,
    check_keep_together,
    count_hint,
    groups,
    holds_schedules,
    listed,
    scan,
)
from qjm_tui.core.jobset import ManagedJobSet, unstored_message
from qjm_tui.core.lifecycle import Lifecycle, final_state
from qjm_tui.core.options import check_run_options
from qjm_tui.core.ports import BackendFactory, BackendLimits, ExecutionBackend
from qjm_tui.core.retry import RetryPolicy
from qjm_tui.core.split import Group, JobTime, count_jobs, plan_jobs
from qjm_tui.core.status import JOB_FINAL, SET_FINAL, JobStatus, SetState
from qjm_tui.core.text import strip_ansi
from qjm_tui.core.timing import (
    DeviceTiming,
    check_max_job_seconds,
    device_timing,
    no_durations,
    prefix_sums,
)

log = logging.getLogger(__name__)

#: the jobs one job set may need unless the caller allows more: beyond this a request is far
#: more likely a typo (a trillion shots) than a plan, and planning it alone would take minutes
DEFAULT_MAX_JOBS_PER_SET = 10_000


class Settings(Protocol):
    """What the manager needs from a configuration (``qjm_tui.config.Config`` has it)."""

    default_backend: str
    default_shots: int
    #: the most jobs one job set may need; a larger request is refused before anything is stored
    max_jobs_per_set: int
    #: the most seconds one job may be estimated to take (None: jobs are not sized by time);
    #: a settings object without it reads as None
    max_job_seconds: float | None

    # Carried for the front ends, which read the configuration through the manager:
    @property
    def keys(self) -> dict[str, str]:
        """The app's binding ids remapped to keys (``"set.cancel" = "ctrl+x"``)."""

    @property
    def source(self) -> Path | None:
        """The file the settings were read from (None: defaults, or made in code)."""

    def retry_policy(self) -> RetryPolicy:
        """How passing failures are retried."""


@dataclass
class Defaults:
    """The settings a manager uses when it is given none."""

    default_backend: str = "aer"
    default_shots: int = 1024
    max_jobs_per_set: int = DEFAULT_MAX_JOBS_PER_SET
    max_job_seconds: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    keys: dict[str, str] = field(default_factory=dict)
    source: Path | None = None

    def retry_policy(self) -> RetryPolicy:
        return self.retry


def adapters_only(backend: Any) -> ExecutionBackend:
    """The backend factory of a manager given none: it accepts ready-made adapters only."""
    if isinstance(backend, ExecutionBackend):
        return backend
    raise BackendConfigurationError(
        f"this manager has no backend registry, so it cannot build the backend {backend!r}; pass "
        "an ExecutionBackend, or make the manager with backends=... (qjm_tui.JobManager has the "
        "built-in registry)"
    )


class _BlockTracker:
    """Which circuit blocks are safely in the store, so the runner submits only those.

    The blocks themselves are kept for the runner (so it need not read back what was just
    written) up to ``keep_bytes``; beyond that only "stored" is kept and the runner reads the
    block from the store, so storing far ahead of the jobs does not hold the set in memory.
    """

    def __init__(self, keep_bytes: int = 16 << 20) -> None:
        self._lock = threading.Lock()
        self._exact: dict[tuple[int, int], bytes] = {}
        self._held = 0
        self._keep = keep_bytes
        self._stored_until = 0

    def add(self, start: int, stop: int, qpy: bytes) -> None:
        with self._lock:
            if self._held + len(qpy) <= self._keep:
                self._exact[(start, stop)] = qpy
                self._held += len(qpy)
            self._stored_until = max(self._stored_until, stop)

    def ready(self, start: int, stop: int) -> bytes | None:
        """The block's QPY if it is exactly one stored block; ``b""`` if covered; else None.

        A block is handed out once (its job is being submitted) and then forgotten, so the
        set's circuits are never all in memory; asked again (a retry), it reads ``b""`` and
        the runner takes it from the store."""
        with self._lock:
            exact = self._exact.pop((start, stop), None)
            if exact is not None:
                self._held -= len(exact)
                return exact
            return b"" if stop <= self._stored_until else None


class JobManager:
    """Runs experiments as job sets and finds them again, in this process or a later one.

    ``store`` is a :class:`~qjm_tui.core.store.Store`, a path to a store file, or None for the
    default (``$QJM_HOME/qjm.sqlite`` or the platform's user data folder). The manager is given
    what it depends on: ``backends`` turns a spec string or backend object into an adapter
    (without it only ready-made adapters are accepted), ``config`` holds the defaults and the
    retry policy, ``clock`` drives the engine's waits, ``now`` gives wall-clock time and
    ``new_id`` makes job-set ids. ``qjm_tui.JobManager`` is this class wired to the built-in
    backend registry and the user's configuration file.
    """

    def __init__(self, store: st.Store | str | os.PathLike[str] | None = None, *,
                 backends: BackendFactory | None = None, config: Settings | None = None,
                 retry_policy: RetryPolicy | None = None, clock: Clock | None = None,
                 now: Callable[[], float] | None = None,
                 new_id: Callable[[], str] | None = None) -> None:
        self.config: Settings = config if config is not None else Defaults()
        #: wall-clock time stamped on events and rows (injectable, so screens can be snapshotted)
        self.now = now or time.time
        # A store made here is written to disk with its first job set, not before: a request
        # refused up front leaves nothing behind.
        self.store = store if isinstance(store, st.Store) else st.Store(store, now=self.now,
                                                                        create_on_write=True)
        self._backends = backends or adapters_only
        self._new_id = new_id or st.new_job_set_id
        self.bus = EventBus(clock=self.now)
        #: every state change this manager makes goes through here
        self.life = Lifecycle(self.store, self.bus, self.now)
        self.retry_policy = retry_policy or self.config.retry_policy()
        self.clock = clock
        self.default_backend = self.config.default_backend
        self.default_shots = self.config.default_shots
        self._runners: dict[str, JobSetRunner] = {}
        #: the internal error a runner here stopped on, kept so wait() can report it
        self._crashes: dict[str, BaseException] = {}
        self._lock = threading.Lock()
        #: the sets run or retrieved through this manager (what job_sets() and report() cover)
        self._known: dict[str, None] = {}
        self._exit_hook_registered = False

    # -- the original API --------------------------------------------------------------------

    def run(
        self,
        experiments: Any,
        backend: Any = None,
        name: str | None = None,
        max_experiments_per_job: int | None = None,
        job_tags: Sequence[str] | None = None,
        transpile: bool = False,
        max_jobs_per_set: int | None = None,
        keep_together: Any = None,
        max_job_seconds: float | None = None,
        **run_config: Any,
    ) -> ManagedJobSet:
        """Split ``experiments`` into jobs within the backend's limits and start them.

        ``experiments`` are circuits, circuit files (OpenQASM 2/3, QPY) or a mix, as a list or
        any iterable (a generator of a million circuits is read once, never held), or pulse
        schedules (``Schedule``, ``ScheduleBlock``, QPY files of blocks) for a pulse backend
        such as ``"dynamics"``; ``backend`` is a Qiskit backend or a spec string such as
        ``"aer"``. Everything is validated before anything is stored or submitted. Returns
        once every circuit is safely in the store (jobs are already running by then); the jobs
        go on in the background.

        ``keep_together`` names groups of experiments that must each run in one job: a list
        of groups (each a list or range of experiment indices or circuit names), a mapping of
        group names to such lists, or ``"files"`` for one group per circuit file. A group no
        job can hold is refused, naming the group and the limit.

        ``max_job_seconds`` keeps each job's estimated time on the backend within that many
        seconds: shots x (each circuit's scheduled duration + the repetition delay) + a per-job
        overhead. It needs a backend that publishes instruction durations (an error says so
        otherwise); the configuration's ``max_job_seconds``, the default, applies only to such
        backends.

        A set that would need more than ``max_jobs_per_set`` jobs (default: the configuration's
        ``max_jobs_per_set``, 10,000) is refused, as it is almost always a typo in ``shots``.
        """
        if "job_share_level" in run_config:
            run_config.pop("job_share_level")
            warnings.warn("job_share_level is no longer used by any backend and is ignored",
                          DeprecationWarning, stacklevel=2)
        shots = validate_shots(run_config.pop("shots", self.default_shots))
        if max_experiments_per_job is not None and (
                isinstance(max_experiments_per_job, bool)
                or not isinstance(max_experiments_per_job, int) or max_experiments_per_job < 1):
            raise JobManagerInputError(
                f"max_experiments_per_job must be a positive integer, got {max_experiments_per_job!r}")
        tags = _check_tags(job_tags)
        job_cap = _job_cap(max_jobs_per_set if max_jobs_per_set is not None
                           else getattr(self.config, "max_jobs_per_set", DEFAULT_MAX_JOBS_PER_SET))
        max_seconds = check_max_job_seconds(max_job_seconds if max_job_seconds is not None
                                            else getattr(self.config, "max_job_seconds", None))
        check_keep_together(keep_together)
        if name is not None and not isinstance(name, str):
            raise JobManagerInputError(f"name must be a string, got {type(name).__name__}")
        if name is not None:
            check_label(name, "the job set's name", MAX_NAME_LENGTH)
        adapter = self._adapter(backend if backend is not None else self.default_backend)
        kind = "schedules" if holds_schedules(experiments) else "circuits"
        check_kind_runs(kind, adapter.experiment_kinds, adapter.spec, transpile)
        run_config = check_run_options(run_config, adapter.run_options(), adapter.spec)
        limits = adapter.limits()
        target_backend = adapter.target() if kind == "circuits" else None
        timing = device_timing(target_backend, adapter.spec, adapter, run_config) \
            if target_backend is not None else None
        if max_seconds is not None and timing is None and max_job_seconds is None:
            max_seconds = None  # the configured default sizes jobs on backends that can be timed
        if max_seconds is not None:
            if timing is None:
                raise no_durations(adapter.spec)
            if shots is None:
                raise JobManagerInputError("max_job_seconds needs a number of shots to estimate jobs by")
        # A local simulator's own job size applies only where the user sized nothing.
        # the backend's preferred job size, where nothing else sizes the jobs
        preferred_size: Callable[[int], int | None] | None = getattr(adapter, "preferred_job_size", None)
        if not (max_experiments_per_job is None and limits.max_experiments_per_job is None
                and max_seconds is None):
            preferred_size = None
        # Counted before the circuits are read, transpiled or checked: a runaway request is
        # refused at once, however many circuits it has.
        hint = count_hint(experiments)
        if hint:
            _check_job_count(count_jobs(hint, limits, shots, max_experiments_per_job,
                                        preferred=preferred_size(hint) if preferred_size else None),
                             job_cap, limits, shots, adapter.spec)
        max_file_mb = getattr(self.config, "max_circuit_file_mb", None)
        if kind == "schedules":
            schedules = normalize_experiments(experiments, max_file_mb)
            check_schedules(schedules)
            adapter.check_schedules(schedules)
            scanned = listed(schedules)
        else:
            scanned = scan(experiments, target_backend=target_backend, spec=adapter.spec,
                           transpile=transpile, timing=timing, timing_required=max_seconds is not None,
                           max_file_mb=max_file_mb)
        try:
            return self._store_and_start(scanned, adapter, limits, shots, name, tags, run_config,
                                         job_cap, max_experiments_per_job,
                                         preferred_size(scanned.count) if preferred_size else None,
                                         groups(keep_together, scanned), timing, max_seconds)
        finally:
            scanned.blocks.close()

    def _store_and_start(self, scanned: Scanned, adapter: ExecutionBackend, limits: BackendLimits,
                         shots: int | None, name: str | None, tags: list[str],
                         run_config: dict[str, Any], job_cap: int, per_job: int | None,
                         preferred: int | None, kept: list[Group], timing: DeviceTiming | None,
                         max_seconds: float | None) -> ManagedJobSet:
        """Plan the jobs of experiments read by :func:`scan`, store the set, start its runner
        and store the circuits block by block (each job goes as soon as its block is stored)."""
        n = scanned.count
        job_time = None
        if timing is not None and scanned.shot_seconds is not None and shots is not None:
            job_time = JobTime(prefix_sums(scanned.shot_seconds), timing.overhead, max_seconds)
        _check_job_count(count_jobs(n, limits, shots, per_job, groups=kept, timing=job_time,
                                    preferred=preferred), job_cap, limits, shots, adapter.spec)
        plan = plan_jobs(n, limits, shots, per_job, groups=kept, timing=job_time, preferred=preferred)
        job_set_id = self._new_id()
        first_round = [j for j in plan if j.round == 0]
        # A backend that keeps jobs (a remote service: its jobs cost money and outlive this
        # process) gets nothing before every circuit is stored, in the same transaction as the
        # set: a failure (a full disk) leaves nothing stored and nothing submitted. Local
        # simulators start on the first block while the rest are written (their jobs end with
        # this process anyway).
        pipelined = not adapter.can_reattach()
        tracker = _BlockTracker()
        blocks: Iterable[tuple[int, int, bytes]] = []
        if not pipelined:
            blocks = _tracked_blocks(scanned, first_round, tracker)
            if scanned.circuits is not None:
                # The caller's own circuits (held anyway) are serialised before the write lock
                # is taken, so other processes' writes wait only for the inserts; circuits read
                # from files are byte copies of their QPY, made one block at a time inside the
                # transaction so a million of them are never all in memory.
                blocks = list(blocks)
        try:
            self.store.create_job_set(
                job_set_id=job_set_id,
                name=name or job_set_id,
                tags=tags,
                backend=adapter.spec,
                shots=shots,
                run_options=_jsonable_options(run_config),
                experiment_names=scanned.names,
                jobs=[(j.index, j.start, j.stop, j.shots, j.round, j.seconds) for j in plan],
                circuit_blocks=blocks,
            )
        except sqlite3.DatabaseError as exc:
            problem = st.store_problem(exc, self.store.path)
            if isinstance(problem, StoreFullError):
                raise StoreFullError(
                    f"disk full: job set {job_set_id} ({n:,} circuits) could not be "
                    f"stored in {self.store.path}; nothing was stored or submitted. Free some "
                    "space and run it again") from None
            raise problem or exc from None
        except (OSError, JobManagerInputError) as exc:  # a block could not be read from its file
            raise JobManagerInputError(
                f"the circuits cannot be stored ({strip_ansi(str(exc))}); nothing was stored or "
                "submitted") from exc
        created = JobSetCreated(job_set_id, name or job_set_id, adapter.spec, len(plan), n)
        if pipelined:
            self._run_while_storing(job_set_id, adapter, scanned, first_round, tracker, created)
        else:
            self.bus.publish(created)
            self._start(job_set_id, adapter, circuits=scanned.circuits, blocks_ready=tracker.ready)
        self._known[job_set_id] = None
        return ManagedJobSet(self, job_set_id)

    def _run_while_storing(self, job_set_id: str, adapter: ExecutionBackend, scanned: Scanned,
                           first_round: Sequence[Any], tracker: _BlockTracker, created: Event) -> None:
        """Start the set's runner and write its circuits block by block, the runner submitting
        each as it lands.

        If a block cannot be stored, or the caller is interrupted meanwhile (Ctrl-C, SIGTERM),
        the set's jobs are cancelled and the set deleted: the caller never got its id, so
        nothing is kept.
        """
        stored = 0
        try:
            self.bus.publish(created)
            runner = self._start(job_set_id, adapter, circuits=scanned.circuits,
                                 blocks_ready=tracker.ready)
            for job in first_round:
                qpy = scanned.blocks.qpy(job.start, job.stop)
                self.store.add_circuit_block(job_set_id, job.start, job.stop, qpy)
                tracker.add(job.start, job.stop, qpy)
                stored = job.stop
                runner.wake()
        except BaseException as exc:
            started = self._runner(job_set_id)
            if started is not None:
                started.cancel()
                started.finished.wait()
            try:
                self.store.delete_job_set(job_set_id)
                self.bus.publish(JobSetDeleted(job_set_id))
                left = "its jobs were cancelled and nothing was kept"
            except Exception:
                left = (f"its jobs were cancelled, and it is left in the store, interrupted: once "
                        f"there is space, `qjm resume {job_set_id}` runs the {stored:,} stored circuits "
                        "(the rest must be run again from their source)")
            if not isinstance(exc, Exception):
                raise  # Ctrl-C, SIGTERM: the interruption goes on
            problem = st.store_problem(exc, self.store.path)
            if isinstance(problem, StoreFullError):
                raise StoreFullError(
                    f"disk full: job set {job_set_id} stored {stored:,} of {scanned.count:,} circuits "
                    f"in {self.store.path} before the disk filled; {left}. Free some space and run "
                    "it again") from None
            raise JobManagerInputError(
                f"the circuits cannot be stored ({strip_ansi(str(exc))}); {left}"
            ) from exc

    def job_sets(self, name: str | None = None, whole_store: bool = False) -> list[ManagedJobSet]:
        """The job sets this manager ran or retrieved (as the original's "this session"),
        newest first; only those called ``name`` if given. ``whole_store=True``: every job set
        in the store, whoever ran it."""
        rows = self.store.list_job_sets(name)
        if not whole_store:
            rows = [r for r in rows if r.id in self._known]
        return [ManagedJobSet(self, row.id) for row in rows]

    def report(self, detailed: bool = True, whole_store: bool = False) -> str:
        """A report on the job sets of :meth:`job_sets` (``whole_store`` as there)."""
        sets = self.job_sets(whole_store=whole_store)
        if not sets:
            where = f"in {self.store.path}" if whole_store else "run or retrieved by this manager"
            return f"No job sets {where}."
        return "\n\n".join(s.report(detailed) for s in sets)

    def retrieve_job_set(self, job_set_id: str, provider: Any = None,
                         refresh: bool = False) -> ManagedJobSet:
        """The job set with this id (or unique id prefix), from this process or an earlier one.

        ``provider`` and ``refresh`` are accepted for compatibility: the store holds all a job
        set needs, and is always read afresh.
        """
        del provider, refresh
        if not isinstance(job_set_id, str):
            raise JobManagerInputError(f"a job-set id is a string, got {type(job_set_id).__name__}")
        full_id = self.store.resolve_id(job_set_id)
        self._known[full_id] = None
        return ManagedJobSet(self, full_id)

    # -- beyond the original -----------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every engine event; returns a function that unsubscribes."""
        return self.bus.subscribe(callback)

    def backend_for(self, job_set_id: str) -> ExecutionBackend | None:
        """The adapter that runs (or would run) the set: this process's runner's if it runs
        here, else one made from the set's stored spec; None if that spec cannot be made now."""
        runner = self._runner(job_set_id)
        if runner is not None:
            return runner.backend
        try:
            return self._adapter(self.store.get_job_set(job_set_id).backend)
        except JobManagerError:
            return None

    def reattachable(self, job_set_id: str) -> bool:
        """Whether the set's backend keeps jobs beyond a process, so another can pick them up."""
        adapter = self.backend_for(job_set_id)
        return adapter is not None and adapter.can_reattach()

    def cancel_job(self, job_set_id: str, index: int) -> bool:
        """Cancel one job of a set; True if it is (now) stopped.

        A set run by this process has its runner cancel the job (and not resubmit it). A set
        nobody runs has the job cancelled at the backend and in the store. A set another live
        process runs cannot have single jobs cancelled from here.
        """
        job = self.store.job(job_set_id, index)
        if job.status in JOB_FINAL:
            return job.status == JobStatus.CANCELLED
        runner = self._runner(job_set_id)
        if runner is not None and not runner.finished.is_set():
            runner.cancel_job(index)
            return True
        row = self.store.get_job_set(job_set_id)
        if self.store.effective_state(row) == SetState.RUNNING:
            raise JobManagerInvalidStateError(
                f"job set {job_set_id} is being run by process {row.owner_pid} on {row.owner_host};"
                " cancel single jobs from there, or cancel the whole set"
            )
        backend_job_id = job.backend_job_id
        adapter = self.backend_for(job_set_id) if backend_job_id else None
        if adapter is not None and backend_job_id and adapter.can_reattach():
            with contextlib.suppress(Exception):
                adapter.cancel(backend_job_id)
        self.life.move_job(job_set_id, index, JobStatus.CANCELLED)
        return True

    def wait_all(self, timeout: float | None = None) -> None:
        """Wait for every job set this manager is running (each up to ``timeout`` seconds)."""
        for runner in self._active_runners():
            runner.finished.wait(timeout)

    def active(self) -> list[str]:
        """The ids of the job sets this manager is running now."""
        return [r.job_set_id for r in self._active_runners()]

    def close(self, cancel: bool = False, timeout: float | None = None) -> None:
        """Optionally cancel the job sets running here, wait for them, then close the store.

        Waits up to ``timeout`` seconds in all (None: as long as it takes). If some are still
        running then, raises :class:`JobManagerTimeoutError` naming them and leaves the store
        open, so they go on; call ``close`` again, or :meth:`detach`.
        """
        runners = self._active_runners()
        if cancel:
            for runner in runners:
                self.life.request_cancel(runner.job_set_id)
                runner.cancel()
        self._await(runners, timeout, "close")
        self._unregister_exit_hook()
        self.store.close()

    def detach(self, timeout: float | None = 10.0) -> None:
        """Leave the job sets running here to be finished later, and close the store.

        For a UI that quits without cancelling work and without waiting for it. Each runner
        here stops submitting, lets submit calls already under way return and records their
        backend job ids, then gives its set up: the store keeps every job's status and id, and
        the set reads ``interrupted`` to everyone. Nothing is cancelled; jobs already with the
        backend go on there. ``resume()`` (in any process) finishes the set: it reattaches to
        those jobs where the backend keeps them (emulator, IBM), and runs again the ones that
        lived only in this process (local simulators) or never reached the backend.

        Waits up to ``timeout`` seconds for the runners to stop (a submit call in progress is
        waited for); raises :class:`JobManagerTimeoutError` naming any that did not, leaving
        the store open.
        """
        runners = self._active_runners()
        for runner in runners:
            runner.detach()
        self._await(runners, timeout, "detach")
        self.store.close()

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the handles use ----------------------------------------------------------------

    def running_here(self, job_set_id: str) -> bool:
        """Whether this process runs the job set now (through this manager or another one)."""
        return _running_in_process(self.store, job_set_id)

    def job_set_state(self, job_set_id: str, row: st.JobSetRow | None = None) -> SetState:
        """The job set's state: ``running`` while a runner here has it, else as the store says
        (with ``interrupted`` for a running set whose owner is gone)."""
        row = row if row is not None else self.store.get_job_set(job_set_id)
        if row.state == SetState.RUNNING and self._runner(job_set_id) is not None:
            return SetState.RUNNING
        return self.store.effective_state(row)

    def wait_for(self, job_set_id: str, timeout: float | None = None) -> SetState:
        """Block until every job of the set is final; returns the set's state.

        Works for a set run by this process (waits on its runner) or by another one (watches
        the store: a row is read again only when the file changed, or once a second to notice
        an owner that died). Raises :class:`JobManagerTimeoutError` after ``timeout`` seconds
        and :class:`JobManagerInvalidStateError` if the set is interrupted or its runner here
        stopped on an internal error.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        runner = self._runner(job_set_id)
        if runner is not None and not runner.finished.wait(timeout):
            raise JobManagerTimeoutError(f"job set {job_set_id} did not finish within {timeout} seconds")
        version: int | None = None
        recheck = 0.0
        delay = 0.02
        while True:
            crash = self._crashes.get(job_set_id)
            if isinstance(crash, StoreFullError):
                raise JobSetStopped(
                    f"job set {job_set_id} is interrupted: {crash}; `qjm resume {job_set_id}` (or "
                    "resume()) continues it once there is space", str(crash)) from crash
            if crash is not None:
                raise JobManagerInvalidStateError(
                    f"job set {job_set_id} stopped on an internal error: {crash}") from crash
            current = self.store.data_version()
            if current != version or time.monotonic() >= recheck:
                version, recheck = current, time.monotonic() + 1.0
                state = self.job_set_state(job_set_id)
                if state in SET_FINAL:
                    return state
                reason = self.store.get_job_set(job_set_id).stop_reason \
                    if state == SetState.INTERRUPTED else None
                if reason:
                    # Stopped on purpose (the service refused the account): resuming at once
                    # would only be refused again.
                    raise JobSetStopped(stopped_message(job_set_id, reason), reason)
                if state == SetState.INTERRUPTED and not self.store.read_only \
                        and self.reattachable(job_set_id):
                    # The backend kept the jobs: pick them up where the ended process left them
                    # (a store opened to look only, as `qjm wait` opens it, cannot take the set).
                    self.resume_job_set(job_set_id)
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    return self.wait_for(job_set_id, left)
                if state == SetState.INTERRUPTED:
                    raise JobManagerInvalidStateError(
                        f"job set {job_set_id} was interrupted (the process running it ended or "
                        "let it go); call resume() to finish it"
                    )
            if deadline is not None and time.monotonic() >= deadline:
                raise JobManagerTimeoutError(
                    f"job set {job_set_id} did not finish within {timeout} seconds")
            time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.25)

    def rename_job_set(self, job_set_id: str, name: str) -> str:
        """Rename a job set; returns the new name."""
        check_label(name, "a job set's name", MAX_NAME_LENGTH)
        self.store.rename_job_set(job_set_id, name)
        self.bus.publish(JobSetRenamed(job_set_id, name))
        return name

    def retag_job_set(self, job_set_id: str, tags: Sequence[str]) -> list[str]:
        """Replace a job set's tags; returns them."""
        tags = _check_tags(tags)
        self.store.set_job_set_tags(job_set_id, tags)
        self.bus.publish(JobSetTagsChanged(job_set_id, tuple(tags)))
        return tags

    def delete_job_set(self, job_set_id: str) -> None:
        """Remove a job set, its jobs, circuits and results from the store.

        Refuses (JobManagerInvalidStateError) a set that is running, here or in another live
        process: cancel it and wait for it first. Interrupted and finished sets can go.
        """
        with _RESTART_LOCK:
            if self.running_here(job_set_id):
                raise JobManagerInvalidStateError(
                    f"job set {job_set_id} is running in this process (pid {os.getpid()} on "
                    f"{self.store.host}); cancel it and wait for it before deleting it")
            self.store.delete_job_set(job_set_id, if_idle=True)
            self._crashes.pop(job_set_id, None)
            self.bus.publish(JobSetDeleted(job_set_id))

    def cancel_job_set(self, job_set_id: str) -> bool:
        """Cancel every job of the set that has not finished, wherever it runs.

        A set run here is cancelled by its runner; one run by another process gets a request
        through the store, which its runner picks up with its next heartbeat; an interrupted
        set (nobody runs it) is cancelled in place. Returns True if the set is (now) stopped or
        stopping, False if it had already finished.
        """
        with _RESTART_LOCK:
            runner = self._runner(job_set_id)
            if runner is not None and not runner.finished.is_set():
                self.life.request_cancel(job_set_id)
                runner.cancel()
                return True
            state = self.job_set_state(job_set_id)
            if state in SET_FINAL:
                return False
            if state == SetState.RUNNING:
                self.life.request_cancel(job_set_id, through_store=True)
                return True
            self._cancel_in_place(job_set_id)
            return True

    def retry_job_set(self, job_set_id: str, backend: Any = None) -> ManagedJobSet:
        """Run again every job of the set that failed or was cancelled."""
        return self._restart(job_set_id, {JobStatus.FAILED, JobStatus.CANCELLED}, backend)

    def resume_job_set(self, job_set_id: str, backend: Any = None) -> ManagedJobSet:
        """Finish an interrupted set: reattach to jobs the backend still has and submit the
        jobs that never finished.

        Of two resumes of one set at once (threads or processes) exactly one runs it; the other
        raises JobManagerInvalidStateError naming the owner and changes nothing.
        """
        return self._restart(job_set_id, set(), backend)

    # -- internals ---------------------------------------------------------------------------

    def _adapter(self, backend: Any) -> ExecutionBackend:
        return self._backends(backend)

    def _active_runners(self) -> list[JobSetRunner]:
        with self._lock:
            return list(self._runners.values())

    def _await(self, runners: list[JobSetRunner], timeout: float | None, doing: str) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for runner in runners:
            runner.finished.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        left = [r.job_set_id for r in runners if not r.finished.is_set()]
        if left:
            raise JobManagerTimeoutError(
                f"{doing}: {len(left)} job set(s) still running after {timeout} seconds "
                f"({', '.join(left)}); the store stays open so they can go on")

    def _start(self, job_set_id: str, adapter: ExecutionBackend, **kwargs: Any) -> JobSetRunner:
        runner = JobSetRunner(self.store, self.bus, job_set_id, adapter, clock=self.clock,
                              policy=self.retry_policy, now=self.now,
                              on_finished=self._runner_finished, **kwargs)
        with self._lock:
            self._runners[job_set_id] = runner
            self._crashes.pop(job_set_id, None)
        _mark_running(self.store, job_set_id, True)
        if not self._exit_hook_registered:
            # threading's exit hooks run before the interpreter joins threads and before
            # concurrent.futures stops taking work (its own hook, registered earlier, runs
            # after ours), so the runners can still finish local work here.
            threading._register_atexit(self._finish_at_exit)  # type: ignore[attr-defined]
            self._exit_hook_registered = True
        runner.start()
        return runner

    def _runner_finished(self, runner: JobSetRunner) -> None:
        """A runner stopped: drop it (its outcome is in the store; a crash is kept for wait())."""
        _mark_running(self.store, runner.job_set_id, False)
        with self._lock:
            if self._runners.get(runner.job_set_id) is runner:
                del self._runners[runner.job_set_id]
            if runner.error is not None:
                self._crashes[runner.job_set_id] = runner.error

    def _unregister_exit_hook(self) -> None:
        self._exit_hook_registered = False

    def _finish_at_exit(self) -> None:
        """At interpreter exit, as ``concurrent.futures`` does: wait for this process's job
        sets, so a script that runs and ends still gets every result stored.

        Sets on a backend that keeps jobs (a remote service) are waited on only until every
        job is submitted; the jobs then go on there and ``retrieve_job_set(id).results()``
        picks them up later. Ctrl-C stops the wait; the set is then ``interrupted`` and a
        warning on stderr says how to finish it.
        """
        if not self._exit_hook_registered:
            return
        live = [r for r in list(self._runners.values()) if not r.finished.is_set()]
        for runner in live:
            set_id = runner.job_set_id
            remote = runner.backend.can_reattach()
            try:
                if remote:
                    while not runner.finished.is_set() and not runner.all_submitted():
                        runner.finished.wait(0.1)
                    if not runner.finished.is_set():
                        runner.detach()
                        runner.finished.wait(10)
                        _say(f"job set {set_id}: {runner.open_jobs()} jobs go on at {runner.backend.spec};"
                             f" collect them later with `qjm wait {set_id}` or"
                             f" JobManager().retrieve_job_set({set_id!r}).results()")
                    continue
                _say(f"waiting for job set {set_id} to finish ({runner.open_jobs()} jobs left) before"
                     " exiting; Ctrl-C stops waiting")
                runner.finished.wait()
            except KeyboardInterrupt:
                runner.detach()
                runner.finished.wait(10)
                _say(f"job set {set_id} is interrupted with {runner.open_jobs()} jobs unfinished; finish"
                     f" it with `qjm resume {set_id}` or JobManager().retrieve_job_set({set_id!r}).resume()")

    def _runner(self, job_set_id: str) -> JobSetRunner | None:
        with self._lock:
            return self._runners.get(job_set_id)

    def _cancel_in_place(self, job_set_id: str) -> None:
        """Cancel an interrupted set: nobody runs it, so this process does, after claiming it
        (so a resume elsewhere cannot start it half-way through)."""
        self.life.claim(job_set_id)
        self.life.request_cancel(job_set_id)
        row = self.store.get_job_set(job_set_id)
        open_jobs = [j for j in self.store.jobs(job_set_id) if j.status not in JOB_FINAL]
        if any(j.backend_job_id for j in open_jobs):
            try:
                adapter: ExecutionBackend | None = self._adapter(row.backend)
            except JobManagerError:
                adapter = None
            if adapter is not None and adapter.can_reattach():
                for job in open_jobs:
                    if job.backend_job_id:
                        try:
                            adapter.cancel(job.backend_job_id)
                        except Exception as exc:
                            log.warning("cancelling backend job %s failed: %s", job.backend_job_id, exc)
        self.life.move_jobs(job_set_id, [j.index for j in open_jobs], JobStatus.CANCELLED)
        self.life.finish(job_set_id, self.store.status_counts(job_set_id), cancelled=True)

    def _restart(self, job_set_id: str, reset: set[JobStatus], backend: Any) -> ManagedJobSet:
        job_set = ManagedJobSet(self, job_set_id)
        with _RESTART_LOCK:
            if self.running_here(job_set_id):
                raise JobManagerInvalidStateError(
                    f"job set {job_set_id} is already running in this process (pid "
                    f"{os.getpid()} on {self.store.host})")
            row = self.store.get_job_set(job_set_id)
            unrunnable = self._fail_unstored(job_set, row)
            counts = self.store.status_counts(job_set_id)
            to_reset = [i for i in self.store.job_indices(job_set_id, reset) if i not in unrunnable] \
                if reset else []
            open_jobs = sum(n for status, n in counts.items() if status not in JOB_FINAL)
            if not to_reset and not open_jobs:
                if final_state(counts) == SetState.DONE and row.state != SetState.DONE:
                    self.life.finish(job_set_id, counts)
                elif self.store.effective_state(row) == SetState.INTERRUPTED:
                    # Every job is final, some for good: the set ends here, for everyone.
                    self.life.finish(job_set_id, counts, take_over=True)
                return job_set
            try:
                adapter = self._adapter(backend if backend is not None else row.backend)
            except JobManagerInputError:
                if backend is None and row.backend.startswith("object:"):
                    raise BackendConfigurationError(
                        f"job set {job_set_id} ran on a backend object ({row.backend[7:]}); pass "
                        "the same backend again: resume(backend=...) or retry_failed(backend=...)"
                    ) from None
                raise
            if backend is not None and adapter.spec != row.backend:
                self._check_kind_moves(job_set_id, adapter)
                try:  # the set's options go with it: the new backend must take them too
                    check_run_options(row.run_options, adapter.run_options(), adapter.spec)
                except JobManagerInputError as exc:
                    raise JobManagerInputError(f"job set {job_set_id} cannot move to {adapter.spec}, "
                                               f"its run options do not fit: {exc}") from None
            moving = backend is not None and adapter.spec != row.backend
            # Jobs the old backend held but never finished are run again on the new one (it
            # cannot know their ids); jobs already done keep their results.
            held = set(JobStatus) - JOB_FINAL - {JobStatus.PENDING} if moving else set()
            self.life.claim(job_set_id, reset=reset | held, keep=unrunnable,
                            backend=adapter.spec if moving else None)
            self._start(job_set_id, adapter)
        return job_set


    def _fail_unstored(self, job_set: ManagedJobSet, row: st.JobSetRow) -> set[int]:
        """Fail, for good, the unfinished jobs whose circuits never reached the store (the
        process that created the set ended while storing them); returns their indices.

        Nothing can run them: the message on each names the experiments and says they must be
        run again from their source, and retry leaves them alone.
        """
        unrunnable = set(job_set.unrunnable_jobs())
        if not unrunnable:
            return set()
        message = unstored_message(row, job_set.unstored_experiments())
        to_fail = [i for i in sorted(unrunnable) if self.store.job(row.id, i).last_error != message]
        self.life.move_jobs(row.id, to_fail, JobStatus.FAILED, last_error=message)
        return unrunnable

    def _check_kind_moves(self, job_set_id: str, adapter: ExecutionBackend) -> None:
        """Refuse to move a set to a backend that cannot run its kind of experiment (pulse
        schedules to a circuit backend, or the reverse); the first stored one tells the kind."""
        ranges = self.store.stored_ranges(job_set_id)
        if not ranges:
            return
        start = ranges[0][0]
        first = circuits_from_qpy(self.store.circuit_blocks(job_set_id, start, start + 1)[0][2])[:1]
        try:
            check_kind_runs(experiment_kind(first), adapter.experiment_kinds, adapter.spec)
        except JobManagerInputError as exc:
            raise JobManagerInputError(f"job set {job_set_id} cannot move to {adapter.spec}: {exc}") \
                from None


def stopped_message(job_set_id: str, reason: str) -> str:
    """What a set that stopped submitting (the service refused the account) tells its reader."""
    return (f"job set {job_set_id} stopped: {reason}; finished jobs keep their results, and "
            f"nothing more was submitted: resume it (qjm resume {job_set_id}) once that is fixed")


def _say(text: str) -> None:
    sys.stderr.write(f"qjm: {text}\n")
    sys.stderr.flush()


#: one restart, cancel-in-place or delete at a time in this process, whichever manager asks
_RESTART_LOCK = threading.RLock()
_RUNNING: set[tuple[str, str]] = set()
_RUNNING_LOCK = threading.Lock()


def _mark_running(store: st.Store, job_set_id: str, running: bool) -> None:
    key = (str(store.path.resolve()), job_set_id)
    with _RUNNING_LOCK:
        if running:
            _RUNNING.add(key)
        else:
            _RUNNING.discard(key)


def _running_in_process(store: st.Store, job_set_id: str) -> bool:
    with _RUNNING_LOCK:
        return (str(store.path.resolve()), job_set_id) in _RUNNING


def _check_tags(tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise JobManagerInputError("job_tags must be a list of non-empty strings")
    return [check_label(t, "a tag", MAX_TAG_LENGTH) for t in tags]


def _check_job_count(needed: int, cap: int, limits: BackendLimits, shots: int | None, spec: str) -> None:
    """Refuse a set needing more than ``cap`` jobs, naming the count and every way to allow it."""
    if needed <= cap:
        return
    in_rounds = shots is not None and limits.max_shots is not None and shots > limits.max_shots
    rounds = (f" ({shots:,} shots in rounds of at most {limits.max_shots:,}, the most {spec} takes "
              "per job)" if in_rounds else "")
    raise JobManagerInputError(
        f"this job set would need {needed:,} jobs{rounds}, more than the limit of {cap:,}; to allow "
        "it, raise max_jobs_per_set (qjm run --max-jobs-per-set N, the config key max_jobs_per_set, "
        "or run(max_jobs_per_set=N))")


def _tracked_blocks(scanned: Scanned, jobs: Sequence[Any],
                    tracker: _BlockTracker) -> Iterator[tuple[int, int, bytes]]:
    """Each job's circuit block ``(start, stop, qpy)``, made as it is asked for, noted in
    ``tracker`` for the runner (which starts only once they are all stored)."""
    for job in jobs:
        qpy = scanned.blocks.qpy(job.start, job.stop)
        tracker.add(job.start, job.stop, qpy)
        yield job.start, job.stop, qpy


def _job_cap(value: Any) -> int:
    """``value`` as the most jobs a set may need, or a clear error naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise JobManagerInputError(f"max_jobs_per_set must be a positive integer, got {value!r}")
    return value


def _jsonable_options(options: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(options)
    except TypeError as exc:
        bad = next((k for k, v in options.items() if not _dumps(v)), None)
        which = f" ({bad!r} is a {type(options[bad]).__name__})" if bad is not None else ""
        raise JobManagerInputError(
            f"run options must be plain values (numbers, strings, lists, dicts), since the store "
            f"keeps them{which}: {exc}"
        ) from None
    return dict(options)


def _dumps(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
