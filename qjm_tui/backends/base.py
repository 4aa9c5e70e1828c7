"""What the adapters share: reading Qiskit job objects, their statuses, results and limits.

The interface the adapters implement is :mod:`qjm_tui.core.ports`; this module holds only the
adapter-side code several adapters use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from qjm_tui.core.errors import PermanentBackendError
from qjm_tui.core.jsonable import jsonable
from qjm_tui.core.ports import BackendLimits
from qjm_tui.core.status import JobStatus

#: ``qiskit.providers.JobStatus`` names (also used by IBM's job classes) as adapter states
QISKIT_JOB_STATES = {"INITIALIZING": JobStatus.QUEUED, "QUEUED": JobStatus.QUEUED,
                     "VALIDATING": JobStatus.QUEUED, "RUNNING": JobStatus.RUNNING,
                     "DONE": JobStatus.DONE, "ERROR": JobStatus.FAILED,
                     "CANCELLED": JobStatus.CANCELLED}


def state_of_qiskit_status(status: Any) -> JobStatus:
    """The adapter state for a Qiskit job status (an enum member or its name)."""
    return QISKIT_JOB_STATES.get(str(getattr(status, "name", status)).upper(), JobStatus.QUEUED)


def import_runtime() -> ModuleType:
    """``qiskit_ibm_runtime``, with its log lines going through Python logging like any library's.

    On import it gives its logger a handler that prints to the terminal; that handler is taken
    off again, so an application decides where the lines go (the CLI writes them to its log
    file) and they never break a table or a progress bar.
    """
    import qiskit_ibm_runtime

    route_library_logs("qiskit_ibm_runtime")
    return qiskit_ibm_runtime


def route_library_logs(name: str) -> None:
    """Take the terminal handlers off the logger ``name`` and let its records propagate."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        if type(handler) is logging.StreamHandler:
            logger.removeHandler(handler)
    logger.propagate = True


def limits_of(backend: Any) -> BackendLimits:
    """What a Qiskit backend object declares: ``max_circuits`` and its configuration's
    ``max_shots`` / ``max_experiments`` where it has them."""
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


def experiments_from_result(result: Any) -> list[dict[str, Any]]:
    """Per-circuit JSON-ready dicts from a ``qiskit.result.Result`` (or its dict)."""
    raw = result if isinstance(result, dict) else result.to_dict()
    out = []
    for exp in raw.get("results", []):
        exp = dict(exp)
        data = exp.get("data")
        if data is not None and not isinstance(data, dict):
            data = data.to_dict()
        exp["data"] = jsonable(data or {})
        header = exp.get("header")
        if header is not None and not isinstance(header, dict):
            header = header.to_dict()
        exp["header"] = jsonable(header or {})
        out.append({k: jsonable(v) for k, v in exp.items()})
    return out


class QiskitJobs:
    """The Qiskit job objects an adapter has submitted (or reattached to), by job id.

    Safe to use from several threads. ``reattach`` rebuilds the job object for an id this
    process does not hold (a service lookup); without it an unknown id is a permanent error,
    since such jobs lived only in the process that ran them.
    """

    def __init__(self, reattach: Callable[[str], Any] | None = None) -> None:
        self._jobs: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._reattach = reattach

    def add(self, job_id: str, job: Any) -> None:
        """Hold ``job`` under ``job_id``."""
        with self._lock:
            self._jobs[job_id] = job

    def get(self, job_id: str) -> Any:
        """The job object, reattached on first use where the adapter can."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        if self._reattach is None:
            raise PermanentBackendError(f"job {job_id} is not known to this process")
        job = self._reattach(job_id)
        with self._lock:
            return self._jobs.setdefault(job_id, job)

    def forget(self, job_id: str) -> None:
        """Drop the job object (its result has been read)."""
        with self._lock:
            self._jobs.pop(job_id, None)

    def cancel(self, job_id: str) -> bool:
        """Ask the job to cancel; True unless that failed or the job said no."""
        try:
            answer = self.get(job_id).cancel()
        except Exception:
            return False
        return True if answer is None else bool(answer)
