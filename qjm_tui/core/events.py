"""Small frozen dataclasses describing state changes, and the bus that delivers them.

The engine publishes an event for every state change; the CLI's progress bar and the TUI
subscribe. Subscribers are called on the engine's thread, so they must be quick and must not
touch a UI directly (the TUI turns them into messages with ``post_message``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base class: something happened to a job set."""

    job_set_id: str


@dataclass(frozen=True)
class JobStatusChanged(Event):
    """A job moved from one store status to another."""

    job_index: int
    old: str
    new: str
    backend_job_id: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class JobRetryScheduled(Event):
    """A job failed for a passing reason and will be tried again after ``delay`` seconds."""

    job_index: int
    attempt: int
    delay: float
    message: str


@dataclass(frozen=True)
class JobSetStateChanged(Event):
    """The job set as a whole moved to a new state (running, done, failed, cancelled...)."""

    state: str


@dataclass(frozen=True)
class JobSetFinished(Event):
    """Every job reached a final state; ``state`` is the job set's final state."""

    state: str


Subscriber = Callable[[Event], None]


class EventBus:
    """Thread-safe publish/subscribe. A failing subscriber is logged, never fatal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber."""
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not stop the engine
                log.exception("event subscriber failed on %r", event)
