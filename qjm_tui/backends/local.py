"""Local simulators (Aer, BasicSimulator) run on a ``concurrent.futures`` executor.

By default jobs run on a warm process pool with one worker per core: Aer's Python-side circuit
assembly holds the GIL, so threads barely overlap it, while processes do. Circuits travel to the
workers as QPY (the form the store keeps anyway) and results come back as JSON-ready dicts.
``executor="threads"`` runs jobs in this process (no serialisation; best for small runs), and
any ``concurrent.futures.Executor`` (a Dask ``distributed.Client`` is one) can be passed in.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, cast

from qjm_tui.backends.base import experiments_from_result, limits_of
from qjm_tui.core.circuits import circuits_from_qpy
from qjm_tui.core.errors import BackendConfigurationError, PermanentBackendError, TransientBackendError
from qjm_tui.core.ports import BackendLimits, ExecutionBackend, JobPayload, JobStatusInfo, RunOptions
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import process_alive

# -- what runs inside a worker ---------------------------------------------------------------

_SIMULATORS: dict[str, Any] = {}


def make_simulator(kind: str) -> Any:
    """Build (once per process) the Qiskit simulator for a local spec such as ``aer`` or
    ``aer:fake_manila`` or ``basic``."""
    sim = _SIMULATORS.get(kind)
    if sim is not None:
        return sim
    if kind == "basic":
        from qiskit.providers.basic_provider import BasicSimulator

        sim = BasicSimulator()
    elif kind == "aer":
        from qiskit_aer import AerSimulator

        sim = AerSimulator()
    elif kind.startswith("aer:"):
        from qiskit_aer import AerSimulator

        from qjm_tui.backends.devices import fake_device

        sim = AerSimulator.from_backend(fake_device(kind.split(":", 1)[1]))
    else:
        raise PermanentBackendError(f"unknown local simulator {kind!r}")
    _SIMULATORS[kind] = sim
    return sim


def run_local_job(kind: str, circuits_or_qpy: Any, shots: int | None,
                  run_options: dict[str, Any], as_text: bool = False) -> list[Any]:
    """Run one job's circuits on the simulator and return per-circuit result dicts.

    With ``as_text`` each result is its JSON text instead: a worker process serialises it once,
    in parallel, and the store keeps that text as it is. Module-level so process pools and
    Dask can ship it by reference.
    """
    circuits = circuits_from_qpy(circuits_or_qpy) if isinstance(circuits_or_qpy, bytes) \
        else circuits_or_qpy
    sim = make_simulator(kind)
    options = dict(run_options)
    if shots is not None:
        options["shots"] = shots
    try:
        result = sim.run(list(circuits), **options).result()
    except Exception as exc:
        raise PermanentBackendError(f"{type(exc).__name__}: {exc}") from None
    experiments = experiments_from_result(result)
    failed = [(i, e.get("status")) for i, e in enumerate(experiments) if not e.get("success", True)]
    if failed and len(failed) == len(experiments):
        raise PermanentBackendError(f"the simulator failed every circuit: {failed[0][1]}")
    if as_text:
        return [json.dumps(e, separators=(",", ":")) for e in experiments]
    return experiments


def _warm(kind: str) -> int:
    """Make a worker's simulator ahead of its first job; returns the worker's pid."""
    make_simulator(kind)
    return os.getpid()


@dataclass(frozen=True)
class WorkerSetup:
    """What a pool's workers load before their first job: modules imported by the forkserver
    (so every worker forks with them), and a module-level function each worker runs with the
    backend's kind (it makes the simulator; returns the worker's pid)."""

    preload: tuple[str, ...] = ()
    warm: Callable[[str], int] = _warm


# -- pool processes die with their owner -----------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends (``prctl(PR_SET_PDEATHSIG)``);
    False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_owner(owner: int, parent: int) -> None:
    """End this worker, and the forkserver that is its parent, when ``owner`` (the process that
    made the pool) ends: wait on a pidfd where there is one, else look twice a second."""
    try:
        fd = os.pidfd_open(owner)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while process_alive(owner):
            time.sleep(0.5)
    if parent not in (1, owner) and os.getppid() == parent:
        with contextlib.suppress(OSError):
            os.kill(parent, signal.SIGKILL)  # the forkserver: it would outlive its owner too
    os.kill(os.getpid(), signal.SIGKILL)


def _worker_start(owner: int) -> None:
    """The first thing every pool worker runs: it must not outlive the process that made the
    pool (a killed ``qjm run`` left its forkserver and workers running, about 225 MB each).
    The worker dies with its parent, the forkserver (a parent-death signal), and a thread
    watches the owner: when it ends, the thread ends the forkserver and the worker."""
    parent = os.getppid()
    _die_with_parent()
    if not process_alive(owner):
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch_owner, args=(owner, parent), name="qjm-owner-watch",
                     daemon=True).start()


# -- shared executors ------------------------------------------------------------------------

#: shots per job for a simulator that declares no maximum (BasicSimulator samples shot by shot
#: in Python): Aer's own figure
FALLBACK_MAX_SHOTS = 1_000_000

_POOL_LOCK = threading.Lock()
_PROCESS_POOL: ProcessPoolExecutor | None = None
_THREAD_POOL: ThreadPoolExecutor | None = None
#: pools being started in the background, and the first task of each worker, waited for at exit
_STARTING: list[threading.Thread] = []
_WARMING: list[Future[Any]] = []


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Hide ``__main__`` from multiprocessing while workers start.

    Workers started by forkserver re-import the parent's main script, which runs a user's
    unguarded script a second time in every worker. Our workers only ever run this module's
    functions, so they have no need of it. An empty module stands in for it in ``sys.modules``
    meanwhile; the script's own globals (its ``__file__``) are never touched, so the script
    can go on running while the pool starts in the background.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


@contextlib.contextmanager
def _stderr_with_a_descriptor() -> Iterator[None]:
    """Give ``sys.stderr`` a real file descriptor while workers start.

    multiprocessing's resource tracker hands ``sys.stderr.fileno()`` to the process it starts.
    Under a full-screen app (Textual) ``sys.stderr`` is a capture whose ``fileno()`` is -1, and
    starting the pool would fail with "bad value(s) in fds_to_keep"; meanwhile the tracker
    writes to the null device instead, so nothing it says can land on the app's screen.
    """
    try:
        usable = sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable:
        yield
        return
    captured = sys.stderr
    with open(os.devnull, "w") as null:
        sys.stderr = null
        try:
            yield
        finally:
            sys.stderr = captured


def shared_process_pool(workers: int | None = None, kind: str = "aer",
                        setup: WorkerSetup = WorkerSetup()) -> ProcessPoolExecutor:
    """The process-wide warm pool (forkserver: workers never inherit our threads or sockets).

    Every worker is started here, at once, so none is started later with the main module
    visible; a pool broken by a crashed worker is replaced.
    """
    global _PROCESS_POOL
    with _POOL_LOCK:
        if _PROCESS_POOL is not None and getattr(_PROCESS_POOL, "_broken", False):
            _PROCESS_POOL.shutdown(wait=False, cancel_futures=True)
            _PROCESS_POOL = None
        if _PROCESS_POOL is None:
            count = workers or default_workers()
            ctx = multiprocessing.get_context("forkserver")
            # Workers fork from the server with these imported; a backend's own (qiskit-dynamics:
            # seconds to import) only when the pool is started for it.
            ctx.set_forkserver_preload(["qiskit", "qiskit_aer", "qjm_tui.backends.local", *setup.preload])
            with _main_module_hidden(), _stderr_with_a_descriptor():
                pool = ProcessPoolExecutor(count, mp_context=ctx, initializer=_worker_start,
                                           initargs=(os.getpid(),))
                _WARMING[:] = [pool.submit(setup.warm, kind) for _ in range(count)]
            _PROCESS_POOL = pool
        return _PROCESS_POOL


def start_shared_process_pool(workers: int | None = None, kind: str = "aer",
                              setup: WorkerSetup = WorkerSetup()) -> Future[ProcessPoolExecutor]:
    """:func:`shared_process_pool`, started on a background thread.

    Starting workers waits for the forkserver to import Qiskit and Aer (about half a second in
    a fresh process); meanwhile the caller validates and stores the circuits.
    """
    future: Future[ProcessPoolExecutor] = Future()

    def start() -> None:
        try:
            future.set_result(shared_process_pool(workers, kind, setup))
        except BaseException as exc:  # handed to whoever waits for the pool
            future.set_exception(exc)

    thread = threading.Thread(target=start, name="qjm-pool-start", daemon=True)
    _STARTING[:] = [t for t in _STARTING if t.is_alive()] + [thread]
    thread.start()
    return future


def shared_thread_pool(workers: int | None = None) -> ThreadPoolExecutor:
    """The process-wide thread pool for ``executor="threads"``."""
    global _THREAD_POOL
    with _POOL_LOCK:
        if _THREAD_POOL is None:
            _THREAD_POOL = ThreadPoolExecutor(workers or default_workers(),
                                              thread_name_prefix="qjm-sim")
        return _THREAD_POOL


def settle_pool_start(timeout: float = 60.0) -> None:
    """Wait until a pool being started in the background has every worker running.

    A process that ends while its workers are still starting (a command refused after the
    backend was set up) leaves them unable to start, each printing a traceback; a program
    about to exit calls this first (it takes about a second, and only in that case). It must
    run before the interpreter's own shutdown, which stops the pool's manager thread.
    """
    for thread in _STARTING:
        thread.join(timeout=timeout)
    concurrent.futures.wait(_WARMING, timeout=timeout)


def terminate_pools() -> None:
    """Stop the shared process pool's workers now, abandoning the jobs they run: for a process
    told to stop (SIGTERM), whose sets are left to be resumed (local jobs are run again then).
    Without this, exiting waits for every job already handed to a worker."""
    global _PROCESS_POOL
    with _POOL_LOCK:
        pool, _PROCESS_POOL = _PROCESS_POOL, None
    if pool is None:
        return
    for process in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _shutdown_pools() -> None:
    for pool in (_PROCESS_POOL, _THREAD_POOL):
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


# -- Dask ------------------------------------------------------------------------------------

_DASK_CLIENTS: dict[str, Any] = {}


def _is_dask_client(obj: Any) -> bool:
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")


def dask_executor(where: Any) -> Executor:
    """A ``concurrent.futures`` executor on a Dask cluster.

    ``where`` is ``"dask://HOST:PORT"`` (a client to that scheduler is made once per process and
    reused) or a ``distributed.Client``. Tasks are submitted impure: two jobs with the same
    circuits are two runs, never one cached result.
    """
    try:
        import distributed
    except ImportError:
        raise BackendConfigurationError(
            "executor 'dask://...' needs the 'distributed' package: pip install distributed"
        ) from None
    if isinstance(where, str):
        address = where[len("dask://"):]
        if not address:
            raise BackendConfigurationError("executor 'dask://' names no scheduler; "
                                            "write it as dask://HOST:PORT")
        with _POOL_LOCK:
            client = _DASK_CLIENTS.get(address)
            if client is None or client.status in ("closed", "closing"):
                try:
                    client = distributed.Client(f"tcp://{address}" if "://" not in address else address,
                                                timeout=10, set_as_default=False)
                except OSError as exc:
                    raise BackendConfigurationError(
                        f"cannot reach the Dask scheduler at {address}: {exc}") from None
                _DASK_CLIENTS[address] = client
    else:
        client = where
    return client.get_executor(pure=False)


# -- the adapter -----------------------------------------------------------------------------


class LocalBackend(ExecutionBackend):
    """A local simulator behind an executor.

    ``executor`` is ``"processes"`` (default), ``"threads"``, ``"dask://HOST:PORT"``, a Dask
    ``distributed.Client``, or any ``concurrent.futures.Executor``.
    ``job_size`` caps circuits per job so the executor has work to spread; by default the
    experiments are cut into about eight jobs per worker.
    """

    inline_submit = True
    poll_interval = 0.5
    #: what the process pool's workers load for this kind of backend
    worker_setup = WorkerSetup()

    def __init__(self, kind: str = "aer", executor: str | Executor = "processes",
                 workers: int | None = None, job_size: int | None = None,
                 max_shots: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.spec = kind
        self.workers = workers or default_workers()
        self.job_size = job_size
        self.max_shots = max_shots
        self._executor: Executor | None = None
        self._starting: Future[ProcessPoolExecutor] | None = None
        if isinstance(executor, str):
            if executor == "processes":
                self._starting = start_shared_process_pool(self.workers, kind, self.worker_setup)
                self._ships_qpy = True
            elif executor == "threads":
                self._executor = shared_thread_pool(self.workers)
                self._ships_qpy = False
            elif executor.startswith("dask://"):
                self._executor = dask_executor(executor)
                self._ships_qpy = True
            else:
                raise BackendConfigurationError(
                    f"unknown executor {executor!r}; use 'processes', 'threads' or "
                    "'dask://HOST:PORT' (the address of a Dask scheduler)"
                )
            self.executor_name = executor
        elif _is_dask_client(executor):
            self._executor = dask_executor(executor)
            self._ships_qpy = True
            self.executor_name = f"dask:{cast(Any, executor).scheduler.address}"
        else:
            self._executor = executor
            self._ships_qpy = True
            self.executor_name = type(executor).__name__
        #: jobs handed to the executor at once: enough to keep every worker busy, few enough
        #: that a set of a million circuits is not all queued (each job holds its circuits);
        #: a Dask cluster's size is its own, so it takes what it is given
        self.queue_depth: int | None = None if self.executor_name.startswith("dask") \
            else 4 * self.workers
        self._futures: dict[str, Future[list[Any]]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._target_backend: Any | None = None

    def limits(self) -> BackendLimits:
        """``job_size`` circuits per job; the shots per job the simulator declares (Aer: a
        million), so a larger request runs in rounds instead of exhausting memory in one call."""
        max_shots = self.max_shots or limits_of(self.target()).max_shots or FALLBACK_MAX_SHOTS
        return BackendLimits(max_experiments_per_job=self.job_size, max_shots=max_shots)

    def preferred_job_size(self, n_experiments: int) -> int:
        """Circuits per job when neither the user nor the backend sets a maximum."""
        return max(1, min(500, math.ceil(n_experiments / (self.workers * 8))))

    def repetition_delay(self) -> float | None:
        """The seconds between shots on the device an ``aer:<device>`` simulator copies (its
        simulator object does not carry it); None for the plain simulators."""
        if not self.kind.startswith("aer:"):
            return None
        from qjm_tui.backends.devices import fake_device

        value = getattr(fake_device(self.kind.split(":", 1)[1]), "default_rep_delay", None)
        return float(value) if isinstance(value, (int, float)) else None

    def target(self) -> Any:
        if self._target_backend is None:
            self._target_backend = make_simulator(self.kind)
        return self._target_backend

    def run_options(self) -> RunOptions:
        """The simulator's own options (Aer's or BasicSimulator's) and its ``run`` parameters."""
        from qjm_tui.backends.options import backend_run_options

        return backend_run_options(self.target())

    def _job(self, payload: JobPayload) -> tuple[Any, ...]:
        """What the executor is given for one job: the worker function and its arguments."""
        work = payload.qpy_bytes() if self._ships_qpy else list(payload.circuits)
        options = dict(payload.run_options)
        if self.kind.startswith("aer") and self.executor_name in ("processes", "threads"):
            # Aer would start one OpenMP thread per core in every worker; with one worker per
            # core they only fight each other.
            options.setdefault("max_parallel_threads", max(1, default_workers() // self.workers))
        # Workers in other processes send results back as JSON text (see run_local_job).
        return (run_local_job, self.kind, work, payload.shots, options, self._ships_qpy)

    def submit(self, payload: JobPayload) -> str:
        job = self._job(payload)
        try:
            future = self._started().submit(*job)
        except BrokenProcessPool:
            if self.executor_name != "processes":
                raise TransientBackendError("the executor is broken") from None
            self._executor = shared_process_pool(self.workers, self.kind, self.worker_setup)
            future = self._executor.submit(*job)
        job_id = f"local-{os.getpid()}-{next(self._ids)}"
        with self._lock:
            self._futures[job_id] = future
        future.add_done_callback(lambda _f: self._notify())
        return job_id

    def _started(self) -> Executor:
        """The executor, waiting for the shared process pool if it is still starting."""
        if self._executor is None:
            assert self._starting is not None
            self._executor = self._starting.result()
        return self._executor

    def _future(self, job_id: str) -> Future[list[Any]]:
        with self._lock:
            future = self._futures.get(job_id)
        if future is None:
            raise PermanentBackendError(
                f"local job {job_id} is not known to this process (local jobs end with the "
                "process that ran them)"
            )
        return future

    def status(self, job_id: str) -> JobStatusInfo:
        future = self._future(job_id)
        if future.cancelled():
            return JobStatusInfo(JobStatus.CANCELLED)
        if not future.done():
            return JobStatusInfo(JobStatus.RUNNING if future.running() else JobStatus.QUEUED)
        exc = future.exception()
        if exc is None:
            return JobStatusInfo(JobStatus.DONE)
        retryable = not isinstance(exc, PermanentBackendError)
        detail = str(exc) if isinstance(exc, PermanentBackendError) else \
            "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return JobStatusInfo(JobStatus.FAILED, detail, retryable=retryable)

    def result(self, job_id: str) -> list[Any]:
        future = self._future(job_id)
        try:
            return future.result()
        finally:
            with self._lock:
                self._futures.pop(job_id, None)

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            future = self._futures.get(job_id)
        if future is None:
            return True
        return future.cancel() or future.done()

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "executor": self.executor_name, "workers": self.workers,
                "limits": self.limits().__dict__}
