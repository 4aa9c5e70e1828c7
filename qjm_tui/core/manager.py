"""JobManager: split experiments into jobs, run them, and keep every job set in the store.

It keeps the original IBMQJobManager's methods with the same meanings (``run``, ``job_sets``,
``report``, ``retrieve_job_set``) and adds a persistent store, retries, pacing, cancel at any
time and events.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from qjm_tui.backends.base import ExecutionBackend, circuits_to_qpy
from qjm_tui.backends.registry import resolve
from qjm_tui.config import Config, load_config
from qjm_tui.core import store as st
from qjm_tui.core.engine import Clock, JobSetRunner, RetryPolicy
from qjm_tui.core.errors import (
    BackendConfigurationError,
    JobManagerError,
    JobManagerInputError,
    JobManagerInvalidStateError,
)
from qjm_tui.core.events import Event, EventBus
from qjm_tui.core.inputs import (
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    check_label,
    normalize_experiments,
    strip_ansi,
    transpile_for,
    validate_for_target,
    validate_shots,
)
from qjm_tui.core.jobset import ManagedJobSet
from qjm_tui.core.split import plan_jobs


class _BlockTracker:
    """Which circuit blocks are safely in the store, so the runner submits only those."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exact: dict[tuple[int, int], bytes] = {}
        self._stored_until = 0

    def add(self, start: int, stop: int, qpy: bytes) -> None:
        with self._lock:
            self._exact[(start, stop)] = qpy
            self._stored_until = max(self._stored_until, stop)

    def ready(self, start: int, stop: int) -> bytes | None:
        """The block's QPY if it is exactly one stored block; ``b""`` if covered; else None."""
        with self._lock:
            exact = self._exact.get((start, stop))
            if exact is not None:
                return exact
            return b"" if stop <= self._stored_until else None


class JobManager:
    """Runs experiments as job sets and finds them again, in this process or a later one.

    ``store`` is a :class:`~qjm_tui.core.store.Store`, a path to a store file, or None for the
    default (``$QJM_HOME/qjm.sqlite`` or the platform's user data folder).
    """

    def __init__(self, store: st.Store | str | os.PathLike[str] | None = None, *,
                 config: Config | None = None, retry_policy: RetryPolicy | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config if config is not None else load_config()
        if store is None:
            store = self.config.store_path()
        self.store = store if isinstance(store, st.Store) else st.Store(store)
        self.bus = EventBus()
        self.retry_policy = retry_policy or self.config.retry_policy()
        self.clock = clock
        self.default_backend = self.config.default_backend
        self.default_shots = self.config.default_shots
        self._runners: dict[str, JobSetRunner] = {}
        self._lock = threading.Lock()

    # -- the original API --------------------------------------------------------------------

    def run(
        self,
        experiments: Any,
        backend: Any = None,
        name: str | None = None,
        max_experiments_per_job: int | None = None,
        job_tags: Sequence[str] | None = None,
        transpile: bool = False,
        **run_config: Any,
    ) -> ManagedJobSet:
        """Split ``experiments`` into jobs within the backend's limits and start them.

        ``experiments`` are circuits, circuit files (OpenQASM 2/3, QPY) or a mix; ``backend``
        is a Qiskit backend or a spec string such as ``"aer"``. Everything is validated before
        anything is stored or submitted. Returns once every circuit is safely in the store
        (jobs are already running by then); the jobs go on in the background.
        """
        shots = validate_shots(run_config.pop("shots", self.default_shots))
        if max_experiments_per_job is not None and (
                isinstance(max_experiments_per_job, bool)
                or not isinstance(max_experiments_per_job, int) or max_experiments_per_job < 1):
            raise JobManagerInputError(
                f"max_experiments_per_job must be a positive integer, got {max_experiments_per_job!r}")
        tags = _check_tags(job_tags)
        if name is not None and not isinstance(name, str):
            raise JobManagerInputError(f"name must be a string, got {type(name).__name__}")
        if name is not None:
            check_label(name, "the job set's name", MAX_NAME_LENGTH)
        adapter = self._adapter(backend if backend is not None else self.default_backend)
        circuits = normalize_experiments(experiments)
        target_backend = adapter.target()
        if transpile:
            if target_backend is not None:
                circuits = transpile_for(circuits, target_backend, adapter.spec)
        else:
            validate_for_target(circuits, getattr(target_backend, "target", None), adapter.spec)
        limits = adapter.limits()
        per_job = max_experiments_per_job
        if per_job is None and limits.max_experiments_per_job is None:
            preferred = getattr(adapter, "preferred_job_size", None)
            per_job = preferred(len(circuits)) if preferred else None
        plan = plan_jobs(len(circuits), limits, shots, per_job)
        job_set_id = st.new_job_set_id()
        self.store.create_job_set(
            job_set_id=job_set_id,
            name=name or job_set_id,
            tags=tags,
            backend=adapter.spec,
            shots=shots,
            run_options=_jsonable_options(run_config),
            experiment_names=[c.name for c in circuits],
            jobs=[(j.index, j.start, j.stop, j.shots, j.round) for j in plan],
            circuit_blocks=[],
        )
        tracker = _BlockTracker()
        runner = self._start(job_set_id, adapter, circuits=circuits, blocks_ready=tracker.ready)
        try:
            for job in plan:
                if job.round == 0:
                    qpy = circuits_to_qpy(circuits[job.start:job.stop])
                    self.store.add_circuit_block(job_set_id, job.start, job.stop, qpy)
                    tracker.add(job.start, job.stop, qpy)
                    runner.wake()
        except Exception as exc:
            runner.cancel()
            runner.finished.wait()
            self.store.delete_job_set(job_set_id)
            raise JobManagerInputError(
                f"the circuits cannot be stored ({strip_ansi(str(exc))}); nothing was kept"
            ) from exc
        return ManagedJobSet(self, job_set_id)

    def job_sets(self, name: str | None = None) -> list[ManagedJobSet]:
        """Every job set in the store, newest first; only those called ``name`` if given."""
        return [ManagedJobSet(self, row.id) for row in self.store.list_job_sets(name)]

    def report(self, detailed: bool = True) -> str:
        """A report on every job set in the store."""
        sets = self.job_sets()
        if not sets:
            return f"No job sets in {self.store.path}."
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
        return ManagedJobSet(self, self.store.resolve_id(job_set_id))

    # -- beyond the original -----------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every engine event; returns a function that unsubscribes."""
        return self.bus.subscribe(callback)

    def wait_all(self, timeout: float | None = None) -> None:
        """Wait for every job set this manager is running."""
        for runner in list(self._runners.values()):
            runner.finished.wait(timeout)

    def close(self, cancel: bool = False) -> None:
        """Optionally cancel running job sets, wait for the runners, and close the store."""
        runners = list(self._runners.values())
        if cancel:
            for runner in runners:
                runner.cancel()
        for runner in runners:
            runner.finished.wait()
        self.store.close()

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals used by ManagedJobSet -----------------------------------------------------

    def _adapter(self, backend: Any) -> ExecutionBackend:
        return resolve(backend, config=self.config)

    def _start(self, job_set_id: str, adapter: ExecutionBackend, **kwargs: Any) -> JobSetRunner:
        runner = JobSetRunner(self.store, self.bus, job_set_id, adapter, clock=self.clock,
                              policy=self.retry_policy, **kwargs)
        with self._lock:
            self._runners[job_set_id] = runner
        runner.start()
        return runner

    def _runner(self, job_set_id: str) -> JobSetRunner | None:
        with self._lock:
            runner = self._runners.get(job_set_id)
        return runner

    def _cancel(self, job_set_id: str) -> bool:
        runner = self._runner(job_set_id)
        if runner is not None and not runner.finished.is_set():
            runner.cancel()
            return True
        row = self.store.get_job_set(job_set_id)
        state = self.store.effective_state(row)
        if state in st.SET_FINAL:
            return False
        if state == st.SET_RUNNING:
            self.store.update_job_set(job_set_id, cancel_requested=1)
            return True
        # Interrupted: nobody runs it, so cancel here.
        open_jobs = [j for j in self.store.jobs(job_set_id) if j.status not in st.JOB_FINAL]
        adapter = None
        if any(j.backend_job_id for j in open_jobs):
            try:
                adapter = self._adapter(row.backend)
            except JobManagerError:
                adapter = None
        for job in open_jobs:
            if adapter is not None and job.backend_job_id and adapter.can_reattach():
                try:
                    adapter.cancel(job.backend_job_id)
                except Exception:
                    pass
        self.store.update_jobs(job_set_id, [j.index for j in open_jobs], status=st.CANCELLED)
        self.store.update_job_set(job_set_id, state=st.SET_CANCELLED)
        return True

    def _restart(self, job_set_id: str, reset: set[str], backend: Any) -> ManagedJobSet:
        job_set = ManagedJobSet(self, job_set_id)
        runner = self._runner(job_set_id)
        if runner is not None and not runner.finished.is_set():
            raise JobManagerInvalidStateError(f"job set {job_set_id} is already running here")
        row = self.store.get_job_set(job_set_id)
        state = self.store.effective_state(row)
        if state == st.SET_RUNNING and row.owner_pid != os.getpid():
            raise JobManagerInvalidStateError(
                f"job set {job_set_id} is being run by process {row.owner_pid} on "
                f"{row.owner_host}; wait for it or cancel it first"
            )
        jobs = self.store.jobs(job_set_id)
        to_reset = [j.index for j in jobs if j.status in reset]
        if to_reset:
            self.store.update_jobs(job_set_id, to_reset, status=st.PENDING, backend_job_id=None,
                                   attempts=0, last_error=None, finished=None)
        if all(j.status == st.DONE for j in self.store.jobs(job_set_id)):
            if row.state != st.SET_DONE:
                self.store.update_job_set(job_set_id, state=st.SET_DONE)
            return job_set
        if not any(j.status not in st.JOB_FINAL for j in self.store.jobs(job_set_id)):
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
        self._start(job_set_id, adapter)
        return job_set


def _check_tags(tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise JobManagerInputError("job_tags must be a list of non-empty strings")
    return [check_label(t, "a tag", MAX_TAG_LENGTH) for t in tags]


def _jsonable_options(options: dict[str, Any]) -> dict[str, Any]:
    import json

    try:
        json.dumps(options)
    except TypeError as exc:
        raise JobManagerInputError(
            f"run options must be plain values (numbers, strings, lists, dicts): {exc}"
        ) from None
    return dict(options)
