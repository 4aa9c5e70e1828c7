"""Time as the engine sees it: monotonic seconds, and waiting on an event.

The engine never sleeps or reads the time itself: it asks a :class:`Clock`, so tests drive
retries, backoff and pacing with :class:`FakeClock` instead of sleeping.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Real time: monotonic seconds, and waiting on an event."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)


class FakeClock(Clock):
    """Time that moves only when the engine waits: tests see every delay without sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.waits: list[float] = []

    def now(self) -> float:
        return self.t

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        self.waits.append(timeout)
        self.t += timeout
        return False
