"""The small interface every backend adapter implements.

The engine drives backends only through :class:`ExecutionBackend`, so it can be tested with a
scripted fake and never depends on Qiskit's job classes. An adapter classifies its own failures
by raising :class:`~qjm_tui.core.errors.BackendLimitReached` (wait for a slot),
:class:`~qjm_tui.core.errors.TransientBackendError` (retry with backoff) or
:class:`~qjm_tui.core.errors.PermanentBackendError` (fail the job, keep the message).

Results cross this interface as plain JSON-ready dicts, one per circuit, in the shape of
``qiskit.result.ExperimentResult.to_dict()`` with complex numbers as ``[re, im]`` pairs, so the
store can keep them without pickling and ``qiskit.result.Result.from_dict`` can rebuild them.
"""

from __future__ import annotations

import datetime
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Job states as adapters report them. "done", "failed" and "cancelled" are final.
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED})

#: ``qiskit.providers.JobStatus`` names (also used by IBM's job classes) as adapter states
QISKIT_JOB_STATES = {"INITIALIZING": QUEUED, "QUEUED": QUEUED, "VALIDATING": QUEUED,
                     "RUNNING": RUNNING, "DONE": DONE, "ERROR": FAILED, "CANCELLED": CANCELLED}


def state_of_qiskit_status(status: Any) -> str:
    """The adapter state for a Qiskit job status (an enum member or its name)."""
    return QISKIT_JOB_STATES.get(str(getattr(status, "name", status)).upper(), QUEUED)


@dataclass(frozen=True)
class BackendLimits:
    """What a backend accepts; ``None`` means unknown or unlimited."""

    max_experiments_per_job: int | None = None
    max_shots: int | None = None
    max_concurrent_jobs: int | None = None
    #: circuits x shots in one job
    max_executions: int | None = None


@dataclass(frozen=True)
class JobStatusInfo:
    """A backend job's state. ``retryable`` marks a failure worth running again."""

    state: str
    message: str | None = None
    retryable: bool = False


@dataclass
class JobPayload:
    """One backend job's work: its circuits, shots, options and tags.

    ``qpy`` carries the circuits already serialised (the store needs that form anyway), so
    adapters that ship circuits to another process reuse it instead of serialising twice.
    """

    circuits: Sequence[Any]
    shots: int | None
    run_options: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    qpy: bytes | None = None

    def qpy_bytes(self) -> bytes:
        """The circuits as QPY bytes, made once on first use."""
        if self.qpy is None:
            self.qpy = circuits_to_qpy(self.circuits)
        return self.qpy


class ExecutionBackend(ABC):
    """A backend as the engine sees it.

    ``spec`` is the string that recreates this backend through the registry (stored with the
    job set so a new process can retrieve and resume it). ``inline_submit`` says whether
    ``submit`` returns quickly (local work handed to an executor); if not, the engine calls it
    from a small thread pool so slow submissions overlap.
    """

    spec: str = ""
    inline_submit: bool = True
    #: seconds between status polls when the adapter has no completion callbacks
    poll_interval: float = 1.0

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    @abstractmethod
    def limits(self) -> BackendLimits:
        """The backend's limits, as far as they are known."""

    @abstractmethod
    def submit(self, payload: JobPayload) -> str:
        """Start one job and return its backend job id."""

    @abstractmethod
    def status(self, job_id: str) -> JobStatusInfo:
        """The job's current state."""

    @abstractmethod
    def result(self, job_id: str) -> list[dict[str, Any] | str]:
        """The finished job's per-circuit result dicts (or their JSON text), in order."""

    @abstractmethod
    def cancel(self, job_id: str) -> bool:
        """Ask the backend to cancel the job; True if it was (or already is) stopped."""

    def target(self) -> Any | None:
        """A Qiskit ``BackendV2`` (or ``None``) used to validate and transpile circuits."""
        return None

    def find(self, tags: Sequence[str]) -> list[str]:
        """Backend job ids carrying every tag; empty where the backend cannot search."""
        return []

    def can_reattach(self) -> bool:
        """Whether jobs survive this process, so a new one can reattach to them by id."""
        return False

    def knows(self, job_id: str) -> bool:
        """Whether the backend can still tell this job's status (it has not forgotten it)."""
        try:
            self.status(job_id)
        except Exception:
            return False
        return True

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Register a callback the adapter calls (from any thread) when a job may have changed.

        The engine uses it to wake its poller at once instead of waiting a poll interval.
        Several runners may share one adapter, so each adds and removes its own.
        """
        self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        self._listeners = [x for x in self._listeners if x is not listener]

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    def describe(self) -> dict[str, Any]:
        """A short, secret-free description for listings."""
        return {"spec": self.spec, "limits": self.limits().__dict__}

    def close(self) -> None:
        """Release executors, sessions and files."""


def circuits_to_qpy(circuits: Sequence[Any]) -> bytes:
    """Serialise circuits to QPY bytes."""
    from qiskit import qpy

    buffer = io.BytesIO()
    qpy.dump(list(circuits), buffer)
    return buffer.getvalue()


def circuits_from_qpy(data: bytes) -> list[Any]:
    """Load circuits from QPY bytes."""
    from qiskit import qpy

    return list(qpy.load(io.BytesIO(data)))


def jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into what it can: complex numbers as
    ``[re, im]`` (the form ``Result.from_dict`` reads back), numpy values as plain numbers and
    lists, dates as ISO text, objects with ``to_dict`` as their dict."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, complex | np.complexfloating):
        return [float(value.real), float(value.imag)]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    # quantum_info objects (Statevector, Operator, DensityMatrix) keep their matrix in .data;
    # their to_dict() would give a ket dict that Result cannot read back.
    if isinstance(getattr(value, "data", None), np.ndarray):
        return jsonable(value.data)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return value


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


def narrow_limits(declared: BackendLimits, configured: dict[str, int]) -> BackendLimits:
    """The tighter of what a backend declares and what the user configured, field by field."""
    values = {}
    for name, own in declared.__dict__.items():
        mine = configured.get(name)
        values[name] = own if mine is None else (mine if own is None else min(own, mine))
    return BackendLimits(**values)


class ConfiguredBackend(ExecutionBackend):
    """An adapter seen through the user's configured limits (which only ever narrow).

    Every call and attribute goes to the wrapped adapter; only :meth:`limits` differs.
    """

    def __init__(self, inner: ExecutionBackend, configured: dict[str, int]) -> None:
        super().__init__()
        self.inner = inner
        self.configured = dict(configured)
        self.spec = inner.spec
        self.inline_submit = inner.inline_submit
        self.poll_interval = inner.poll_interval

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this wrapper lacks (preferred_job_size, submissions, ...).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def limits(self) -> BackendLimits:
        return narrow_limits(self.inner.limits(), self.configured)

    def submit(self, payload: JobPayload) -> str:
        return self.inner.submit(payload)

    def status(self, job_id: str) -> JobStatusInfo:
        return self.inner.status(job_id)

    def result(self, job_id: str) -> list[dict[str, Any]]:
        return self.inner.result(job_id)

    def cancel(self, job_id: str) -> bool:
        return self.inner.cancel(job_id)

    def target(self) -> Any | None:
        return self.inner.target()

    def find(self, tags: Sequence[str]) -> list[str]:
        return self.inner.find(tags)

    def can_reattach(self) -> bool:
        return self.inner.can_reattach()

    def knows(self, job_id: str) -> bool:
        return self.inner.knows(job_id)

    def add_listener(self, listener: Callable[[], None]) -> None:
        self.inner.add_listener(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        self.inner.remove_listener(listener)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "limits": self.limits().__dict__,
                "configured_limits": dict(self.configured)}

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"ConfiguredBackend({self.inner!r}, {self.configured!r})"
