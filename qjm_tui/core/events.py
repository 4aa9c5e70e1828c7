"""Typed events describing every change to a job set, and the bus that delivers them.

Every change is written to the store first and then published here: the CLI's progress and the
app's live views subscribe. States change only in ``core/lifecycle.py``, and each move there is
carried by exactly one event: a job's by :class:`JobStatusChanged` (or, for jobs sent back to
pending together, one :class:`JobsReset`), a set's by :class:`JobSetStateChanged`, which is
followed by one :class:`JobSetFinished` when the set reaches a final state.

The bus stamps each event with a sequence number (1, 2, 3... per bus, with no gaps, so a
subscriber can tell it missed nothing) and a time. Subscribers are called on the publishing
thread, in sequence order, so they must be quick and must never touch a UI directly (the app
merges them into a dict and repaints from a timer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from qjm_tui.core.status import JobStatus, SetState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base class: something happened to a job set. ``seq`` and ``time`` are set by the bus."""

    job_set_id: str
    seq: int = field(default=0, kw_only=True)
    time: float = field(default=0.0, kw_only=True)


@dataclass(frozen=True)
class JobSetCreated(Event):
    """A new job set and its jobs are in the store (its circuits may still be being stored)."""

    name: str
    backend: str
    n_jobs: int
    n_experiments: int


@dataclass(frozen=True)
class JobStatusChanged(Event):
    """A job moved from one store status to another (or, for the moves a status makes to
    itself, took a new backend id or error)."""

    job_index: int
    old: JobStatus
    new: JobStatus
    backend_job_id: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class JobDetailsChanged(Event):
    """The service said anew what a job costs or where it runs (its status is unchanged)."""

    job_index: int
    usage: float | None = None
    usage_estimate: float | None = None
    session_id: str | None = None
    session_mode: str | None = None


@dataclass(frozen=True)
class JobRetryScheduled(Event):
    """A job failed for a passing reason and will be tried again after ``delay`` seconds."""

    job_index: int
    attempt: int
    delay: float
    message: str


@dataclass(frozen=True)
class JobsReset(Event):
    """Jobs went back to pending so they run again (retry of failed jobs, or resume); ``old``
    holds each one's status before, in the order of ``job_indices``."""

    job_indices: tuple[int, ...]
    old: tuple[JobStatus, ...] = ()


@dataclass(frozen=True)
class JobSetStateChanged(Event):
    """The job set as a whole moved to a new state (running, done, failed, cancelled...);
    ``old`` is its state before, as this process saw it. A runner taking its set up moves it
    from running to running."""

    state: SetState
    old: SetState | None = None


@dataclass(frozen=True)
class JobSetFinished(Event):
    """Every job reached a final state; ``state`` is the job set's final state."""

    state: SetState


@dataclass(frozen=True)
class JobSetStopping(Event):
    """The set submits nothing more (the service refused the account) and ends interrupted,
    resumable, with ``reason``."""

    reason: str


@dataclass(frozen=True)
class CancelRequested(Event):
    """Someone asked for the set to be cancelled (this process, or another through the store)."""


@dataclass(frozen=True)
class JobSetRenamed(Event):
    """The job set's name changed."""

    name: str


@dataclass(frozen=True)
class JobSetTagsChanged(Event):
    """The job set's tags changed."""

    tags: tuple[str, ...]


@dataclass(frozen=True)
class JobSetDeleted(Event):
    """The job set and everything it held left the store."""


Subscriber = Callable[[Event], None]


class EventBus:
    """Thread-safe publish/subscribe, in order and numbered. A failing subscriber is logged,
    never fatal.

    ``clock`` gives the time stamped on events (injectable, so screens can be snapshotted).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        # Re-entrant: a subscriber may publish (delivery happens under the lock, to keep order).
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        self._seq = 0
        self._clock = clock

    @property
    def last_seq(self) -> int:
        """The sequence number of the last event published (0 before the first)."""
        return self._seq

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not callback]

        return unsubscribe

    def publish(self, event: Event) -> Event:
        """Number, stamp and deliver ``event`` to every subscriber; returns the stamped event."""
        with self._lock:
            self._seq += 1
            stamped = replace(event, seq=self._seq, time=self._clock())
            for callback in self._subscribers:
                try:
                    callback(stamped)
                except Exception:  # a broken subscriber must not stop the engine
                    log.exception("event subscriber failed on %r", stamped)
        return stamped
