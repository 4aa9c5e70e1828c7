"""How a job that failed for a passing reason is tried again.

:class:`RetryPolicy` says how often and after how long: bounded exponential backoff with
jitter, so many clients retrying at once spread out instead of hitting the service together.
:meth:`RetryPolicy.next_retry` is the one decision the engine asks for: the next retry of a
job, or None once its attempts are used up (:func:`gave_up` says so in the job's message).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    """The next retry of a job: its number (1 for the first) and the seconds to wait first."""

    number: int
    delay: float


@dataclass(frozen=True)
class RetryPolicy:
    """How passing failures are retried.

    A job is submitted at most ``max_attempts`` times. The n-th retry waits
    ``min(max_delay, base_delay * 2**(n-1))`` reduced by up to ``jitter`` of itself, so many
    clients retrying at once spread out instead of hitting the service together.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5
    #: consecutive transient errors while polling or fetching before the job is resubmitted
    max_poll_errors: int = 8
    #: after "limit reached", how long until one submission probes for more room than the jobs
    #: of ours then in flight (a job of ours finishing frees a slot at once, without this wait);
    #: each refused probe doubles the wait, up to ``max_delay``
    limit_wait: float = 5.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        bound = min(self.max_delay, self.base_delay * (2.0 ** (retry - 1)))
        return bound * (1.0 - self.jitter * rng.random())

    def next_retry(self, attempts: int, retries: int, rng: random.Random) -> Retry | None:
        """The retry of a job submitted ``attempts`` times and retried ``retries`` times so
        far, or None: its attempts are used up and it fails."""
        if attempts >= self.max_attempts:
            return None
        number = retries + 1
        return Retry(number, self.delay(number, rng))


def gave_up(attempts: int, message: str) -> str:
    """What a job says once its attempts are used up, ending with the last error."""
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return f"gave up after {tries}; last error: {message}"
