"""A generic adapter for any Qiskit backend object the user passes in (``backend.run`` API)."""

from __future__ import annotations

import itertools
from typing import Any

from qjm_tui.backends.base import QiskitJobs, experiments_from_result, limits_of, state_of_qiskit_status
from qjm_tui.core.errors import PermanentBackendError, TransientBackendError
from qjm_tui.core.ports import BackendLimits, ExecutionBackend, JobPayload, JobStatusInfo, RunOptions
from qjm_tui.core.status import JobStatus


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
        self._jobs = QiskitJobs()
        self._ids = itertools.count()

    def limits(self) -> BackendLimits:
        return limits_of(self.backend)

    def target(self) -> Any:
        return self.backend

    def run_options(self) -> RunOptions:
        """The backend's ``Options`` and ``run`` parameters."""
        from qjm_tui.backends.options import backend_run_options

        return backend_run_options(self.backend)

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
        self._jobs.add(job_id, job)
        return job_id

    def status(self, job_id: str) -> JobStatusInfo:
        state = state_of_qiskit_status(self._jobs.get(job_id).status())
        if state == JobStatus.FAILED:
            return JobStatusInfo(JobStatus.FAILED, "the backend reported an error")
        return JobStatusInfo(state)

    def result(self, job_id: str) -> list[dict[str, Any]]:
        try:
            result = self._jobs.get(job_id).result()
        except PermanentBackendError:
            raise
        except Exception as exc:
            raise PermanentBackendError(f"{type(exc).__name__}: {exc}") from None
        self._jobs.forget(job_id)
        return experiments_from_result(result)

    def cancel(self, job_id: str) -> bool:
        return self._jobs.cancel(job_id)
