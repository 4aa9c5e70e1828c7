"""JobManager: split experiments into jobs, run them, and keep every job set in the store.

It keeps the original IBMQJobManager's methods with the same meanings (``run``, ``job_sets``,
``report``, ``retrieve_job_set``) and adds a persistent store, retries, pacing, cancel at any
time and events.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import warnings
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
        **run_config: Any,
    ) -> ManagedJobSet:
        """Split ``experiments`` into jobs within the backend's limits and start them.

        ``experiments`` are circuits, circuit files (OpenQASM 2/3, QPY) or a mix; ``backend``
        is a Qiskit backend or a spec string such as ``"aer"``. Everything is validated before
        anything is stored or submitted. Returns once every circuit is safely in the store
        (jobs are already running by then); the jobs go on in the background.
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
        if name is not None and not isinstance(name, str):
            raise JobManagerInputError(f"name must be a string, got {type(name).__name__}")
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
        self._known[job_set_id] = None
        return ManagedJobSet(self, job_set_id)

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
        if job.status in st.JOB_FINAL:
            return job.status == st.CANCELLED
        runner = self._runner(job_set_id)
        if runner is not None and not runner.finished.is_set():
            runner.cancel_job(index)
            return True
        row = self.store.get_job_set(job_set_id)
        if self.store.effective_state(row) == st.SET_RUNNING:
            raise JobManagerInvalidStateError(
                f"job set {job_set_id} is being run by process {row.owner_pid} on {row.owner_host};"
                " cancel single jobs from there, or cancel the whole set"
            )
        adapter = self.backend_for(job_set_id) if job.backend_job_id else None
        if adapter is not None and adapter.can_reattach():
            with contextlib.suppress(Exception):
                adapter.cancel(job.backend_job_id)
        self.store.update_job(job_set_id, index, status=st.CANCELLED, finished=time.time())
        return True

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
        self._unregister_exit_hook()
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
            if not self._exit_hook_registered:
                # threading's exit hooks run before the interpreter joins threads and before
                # concurrent.futures stops taking work (its own hook, registered earlier, runs
                # after ours), so the runners can still finish local work here.
                threading._register_atexit(self._finish_at_exit)
                self._exit_hook_registered = True
        runner.start()
        return runner

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


def _say(text: str) -> None:
    sys.stderr.write(f"qjm: {text}\n")
    sys.stderr.flush()


def _check_tags(tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise JobManagerInputError("job_tags must be a list of non-empty strings")
    return list(tags)


def _jsonable_options(options: dict[str, Any]) -> dict[str, Any]:
    import json

    try:
        json.dumps(options)
    except TypeError as exc:
        raise JobManagerInputError(
            f"run options must be plain values (numbers, strings, lists, dicts): {exc}"
        ) from None
    return dict(options)
