"""The interface every backend adapter implements, owned by the core that drives it.

The engine drives backends only through :class:`ExecutionBackend`, so it can be tested with a
scripted fake and never depends on Qiskit's job classes; the adapters in ``qjm_tui.backends``
implement it. An adapter classifies its own failures by raising
:class:`~qjm_tui.core.errors.BackendLimitReached` (wait for a slot),
:class:`~qjm_tui.core.errors.TransientBackendError` (retry with backoff),
:class:`~qjm_tui.core.errors.PermanentBackendError` (fail the job, keep the message) or
:class:`~qjm_tui.core.errors.AccessRefused` (stop submitting the set: quota, credentials), and
reports job states with :class:`~qjm_tui.core.status.JobStatus` members (queued, running,
done, failed, cancelled).

Results cross this interface as plain JSON-ready dicts, one per circuit, in the shape of
``qiskit.result.ExperimentResult.to_dict()`` with complex numbers as ``[re, im]`` pairs, so the
store can keep them without pickling and ``qiskit.result.Result.from_dict`` can rebuild them.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qjm_tui.core.circuits import circuits_to_qpy
from qjm_tui.core.status import JobStatus

#: what the manager is given to turn a spec string or a backend object into an adapter
BackendFactory = Callable[[Any], "ExecutionBackend"]

#: one circuit's result as a backend returns it: Qiskit's result dict, or its JSON text (kept
#: as text, the store writes it without parsing it)
ExperimentResult = dict[str, Any] | str


@dataclass(frozen=True)
class BackendLimits:
    """What a backend accepts; ``None`` means unknown or unlimited."""

    max_experiments_per_job: int | None = None
    max_shots: int | None = None
    max_concurrent_jobs: int | None = None
    #: circuits x shots in one job
    max_executions: int | None = None


#: a run option's value travels to the backend through the store, as JSON: these are the kinds
#: a declaration speaks of (a tuple is stored as a list)
JSON_KINDS: dict[type, str] = {bool: "bool", int: "int", float: "float", str: "str", list: "list",
                               dict: "dict", type(None): "null"}


@dataclass(frozen=True)
class RunOption:
    """One run option a backend takes, as the backend itself declares it.

    ``kinds`` are the JSON kinds its value may have (``int``, ``float``, ``bool``, ``str``,
    ``list``, ``dict``, ``type(None)``); empty means the backend says nothing checkable about it.
    An ``int`` is taken where a ``float`` is, a ``bool`` never where an ``int`` is. ``choices``
    limits the value to those; ``fields`` makes it a dict of sub-options (IBM's option groups),
    each checked in turn. ``set_by`` marks an option the backend has but qjm sets itself (so a
    value given for it would be overwritten, or would override qjm): it says what to use instead.
    """

    name: str
    kinds: tuple[type, ...] = ()
    default: Any = None
    has_default: bool = False
    choices: tuple[Any, ...] = ()
    fields: tuple[RunOption, ...] = ()
    set_by: str | None = None

    def type_text(self) -> str:
        """The kinds of value it takes, as a reader wants them: ``int``, ``bool or null``,
        ``one of 'XX', 'XY4'``, ``{enable, sequence_type, ...}``."""
        if self.fields:
            return "{" + ", ".join(f.name for f in self.fields) + "}"
        if self.choices:
            shown = ", ".join(repr(c) for c in self.choices)
            rest = [JSON_KINDS[k] for k in self.kinds
                    if not any(type(c) is k for c in self.choices) and k in JSON_KINDS]
            return f"one of {shown}" + "".join(f" or {r}" for r in rest)
        return " or ".join(JSON_KINDS.get(k, k.__name__) for k in self.kinds) or "any"

    def field(self, name: str) -> RunOption | None:
        """The sub-option called ``name``, if this option is a group that has one."""
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class RunOptions:
    """Every run option a backend takes (the ``**run_config`` of ``run()``).

    ``source`` says where the declaration was read from (``AerSimulator options``, ``SamplerV2
    options (qiskit-ibm-runtime 0.44.1)``), so a listing can say why an option is or is not there.
    """

    options: tuple[RunOption, ...]
    source: str = ""

    def get(self, name: str) -> RunOption | None:
        """The option called ``name``, or None."""
        return next((o for o in self.options if o.name == name), None)

    def names(self) -> list[str]:
        """The options' names, in declaration order."""
        return [o.name for o in self.options]


@dataclass(frozen=True)
class JobStatusInfo:
    """A backend job's state. ``retryable`` marks a failure worth running again.

    Where the service says so, also what the job costs and where it runs: ``usage`` is the
    quantum time it used in seconds (known once it ran), ``usage_estimate`` the service's
    estimate before it runs, and ``session_id`` / ``session_mode`` the group of jobs the service
    runs it in (an IBM Runtime batch or session). The engine records them on the job.
    """

    state: JobStatus
    message: str | None = None
    retryable: bool = False
    usage: float | None = None
    usage_estimate: float | None = None
    session_id: str | None = None
    session_mode: str | None = None


@dataclass
class JobPayload:
    """One backend job's work: its circuits, shots, options and tags.

    ``qpy`` carries the circuits already serialised (the store needs that form anyway), so
    adapters that ship circuits to another process reuse it instead of serialising twice.
    ``group`` names the job set the job belongs to, for adapters that run a set's jobs
    together (see :meth:`ExecutionBackend.start_group`).
    """

    circuits: Sequence[Any]
    shots: int | None
    run_options: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    qpy: bytes | None = None
    group: str | None = None

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
    #: what the backend runs: ``"circuits"``, ``"schedules"`` (pulse), or both
    experiment_kinds: tuple[str, ...] = ("circuits",)

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()

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
    def result(self, job_id: str) -> Sequence[ExperimentResult]:
        """The finished job's per-circuit result dicts (or their JSON text), in order."""

    @abstractmethod
    def cancel(self, job_id: str) -> bool:
        """Ask the backend to cancel the job; True if it was (or already is) stopped."""

    def target(self) -> Any | None:
        """A Qiskit ``BackendV2`` (or ``None``) used to validate and transpile circuits."""
        return None

    def check_schedules(self, schedules: Sequence[Any]) -> None:
        """Raise :class:`~qjm_tui.core.errors.JobManagerInputError`, naming the schedule and
        what is wrong, if this backend cannot run one of ``schedules`` (pulse backends only)."""

    def run_options(self) -> RunOptions | None:
        """The run options this backend takes, read from the backend itself where it can say.

        ``JobManager.run`` checks ``**run_config`` against it before anything is stored: an
        option not declared, or a value of the wrong kind, is refused. ``None`` (the default,
        for adapters that declare nothing) leaves the options unchecked.
        """
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

    def start_group(self, group: str, earlier: Sequence[str]) -> None:
        """A job set (``group``) starts or resumes here. ``earlier`` are the ids of the groups
        its jobs ran in before (an IBM Runtime batch), oldest first: an adapter that groups a
        set's jobs may go on in the newest one while the service still takes jobs in it."""

    def end_group(self, group: str) -> None:
        """Every job of the set has been submitted (or the set stops): an adapter that groups
        jobs closes the group, so the service knows no more are coming. Jobs in it go on."""

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Register a callback the adapter calls (from any thread) when a job may have changed.

        The engine uses it to wake its poller at once instead of waiting a poll interval.
        Several runners may share one adapter, so each adds and removes its own. The list is
        replaced, never changed in place, so :meth:`_notify` iterates a stable copy.
        """
        with self._listeners_lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        with self._listeners_lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    def describe(self) -> dict[str, Any]:
        """A short, secret-free description for listings."""
        return {"spec": self.spec, "limits": self.limits().__dict__}

    def close(self) -> None:
        """Release executors, sessions and files."""


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
        self.experiment_kinds = inner.experiment_kinds

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

    def result(self, job_id: str) -> Sequence[ExperimentResult]:
        return self.inner.result(job_id)

    def cancel(self, job_id: str) -> bool:
        return self.inner.cancel(job_id)

    def target(self) -> Any | None:
        return self.inner.target()

    def check_schedules(self, schedules: Sequence[Any]) -> None:
        self.inner.check_schedules(schedules)

    def run_options(self) -> RunOptions | None:
        return self.inner.run_options()

    def find(self, tags: Sequence[str]) -> list[str]:
        return self.inner.find(tags)

    def can_reattach(self) -> bool:
        return self.inner.can_reattach()

    def knows(self, job_id: str) -> bool:
        return self.inner.knows(job_id)

    def start_group(self, group: str, earlier: Sequence[str]) -> None:
        self.inner.start_group(group, earlier)

    def end_group(self, group: str) -> None:
        self.inner.end_group(group)

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
