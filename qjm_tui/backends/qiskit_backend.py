"""A generic adapter for any Qiskit backend object the user passes in (``backend.run`` API)."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from qjm_tui.backends.base import (
    FAILED,
    BackendLimits,
    ExecutionBackend,
    JobPayload,
    JobStatusInfo,
    experiments_from_result,
    state_of_qiskit_status,
)
from qjm_tui.core.errors import PermanentBackendError, TransientBackendError


def _limits_of(backend: Any) -> BackendLimits:
    max_circuits = getattr(backend, "max_circuits", None)
    max_shots = None
    config = getattr(backend, "configuration", None)
    if callable(config):
        try:
            conf = config()
            max_shots = getattr(conf, "max_shots", None)
            max_circuits = max_circuits or getattr(conf, "max_experiments", None)
        except Exception:
            pass
    return BackendLimits(max_experiments_per_job=max_circuits or None, max_shots=max_shots or None)


class QiskitBackendAdapter(ExecutionBackend):
    """Runs jobs through ``backend.run(circuits, shots=..., **options)``.

    Jobs live in this process only: after a restart they are run again from the stored circuits.
    """

    inline_submit = True
    poll_interval = 0.2

    def __init__(self, backend: Any, spec: str | None = None) -> None:
        super().__init__()
        self.backend = backend
        name = getattr(backend, "name", None)
        name = name() if callable(name) else name
        self.spec = spec or f"object:{name or type(backend).__name__}"
        self._jobs: dict[str, Any] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def limits(self) -> BackendLimits:
        return _limits_of(self.backend)

    def target(self) -> Any:
        return self.backend

    def submit(self, payload: JobPayload) -> str:
        options = dict(payload.run_options)
        if payload.shots is not None:
            options["shots"] = payload.shots
        try:
            job = self.backend.run(list(payload.circuits), **options)
        except (ConnectionError, TimeoutError) as exc:
            raise TransientBackendError(str(exc)) from None
        except Exception as exc:
            raise PermanentBackendError(f"{type(exc).__name__}: {exc}") from None
        job_id = f"{job.job_id()}#{next(self._ids)}"
        with self._lock:
            self._jobs[job_id] = job
        return job_id

    def _job(self, job_id: str) -> Any:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise PermanentBackendError(f"job {job_id} is not known to this process")
        return job

    def status(self, job_id: str) -> JobStatusInfo:
        state = state_of_qiskit_status(self._job(job_id).status())
        if state == FAILED:
            return JobStatusInfo(FAILED, "the backend reported an error")
        return JobStatusInfo(state)

    def result(self, job_id: str) -> list[dict[str, Any]]:
        try:
            result = self._job(job_id).result()
        except PermanentBackendError:
            raise
        except Exception as exc:
            raise PermanentBackendError(f"{type(exc).__name__}: {exc}") from None
        with self._lock:
            self._jobs.pop(job_id, None)
        return experiments_from_result(result)

    def cancel(self, job_id: str) -> bool:
        try:
            return bool(self._job(job_id).cancel())
        except Exception:
            return False
