"""How many jobs of one set the service is asked to hold at once, when it does not say.

A service that refuses a submission ("limit reached", :class:`BackendLimitReached`) has a job
limit it never published. :class:`Pacer` learns it from the refusals: no more jobs in flight
than the service held when it refused. A job of ours finishing frees a slot for the next at
once; only a probe, after ``limit_wait`` (doubling while probes are refused, up to
``max_delay``), tries for more room, in case the refusal came while other clients held slots
that are free again. A probe the service takes, or any acceptance past the limit, raises it.

The learned limit is shared through the store (:class:`LimitBook`): a refusal tells every
runner on the store how many jobs its sets together may have in flight at the backend, and a
runner that starts reads it, instead of finding it out with refusals of its own.
"""

from __future__ import annotations

from typing import Protocol

from qjm_tui.core.clock import Clock
from qjm_tui.core.retry import RetryPolicy

#: seconds between two reads of what the store's other sets hold at the backend
OTHERS_EVERY = 0.25


class LimitBook(Protocol):
    """What pacing reads and writes of the store: the limit runners learned for a backend,
    and what the store's other running sets hold there."""

    def learned_limit(self, backend: str) -> int | None: ...

    def learn_limit(self, backend: str, max_jobs: int) -> None: ...

    def jobs_in_flight(self, backend: str, besides: str, accepted_only: bool = False) -> int: ...


class Pacer:
    """The learned job limit of one set's runner at ``backend`` and its probes for more room.

    The runner asks :meth:`cap` (how many jobs of ours the service should hold now) and
    :meth:`allows` (whether one more may be submitted), and tells it of each submission:
    :meth:`submitting` before it, then :meth:`accepted`, or :meth:`ended` and, when the service
    said "limit reached", :meth:`refused`.
    """

    def __init__(self, book: LimitBook, backend: str, job_set_id: str, clock: Clock,
                 policy: RetryPolicy) -> None:
        self.book = book
        self.backend = backend
        self.job_set_id = job_set_id
        self.clock = clock
        self.policy = policy
        #: jobs of ours the service holds when it last said "limit reached" and nothing since
        #: showed more room: the learned limit (None until the first refusal)
        self.learned: int | None = None
        #: the jobs the store's sets together may have in flight at this backend, as runners
        #: on this store learned it (read now, so a new runner does not learn it again)
        self.shared: int | None = book.learned_limit(backend)
        self._others_count = 0
        self._others_read = -OTHERS_EVERY
        #: when the next probe for room above the limit may go, and how long after a refusal
        self.probe_at = 0.0
        self.probe_wait = policy.limit_wait
        #: the job sent to probe for room above the learned limit
        self.probe: int | None = None

    def start(self) -> None:
        """The runner starts: with the limit known, no probe before the usual wait."""
        if self.shared is not None:
            self.probe_at = self.clock.now() + self.probe_wait

    def cap(self) -> int | None:
        """How many jobs of ours the service should hold now: the limit runners on this store
        learned less what the other sets hold there; else what this runner learned alone;
        None while no limit is known."""
        if self.shared is None:
            return self.learned
        return max(self.shared - self._others(), 0)

    def allows(self, held: int, submitting: bool) -> bool:
        """Whether one more job may be submitted while ``held`` slots at the service are ours
        (or may be): always below the limit; at it, one probe at a time (none while
        ``submitting``), and only once its wait is over."""
        cap = self.cap()
        if cap is None or held < cap:
            return True
        return not submitting and self.clock.now() >= self.probe_at

    def probe_due(self) -> float | None:
        """Seconds until a probe may go, if that is still ahead (the runner wakes then)."""
        left = self.probe_at - self.clock.now()
        return left if left > 0 else None

    def submitting(self, index: int, held: int) -> None:
        """Job ``index`` is about to be submitted while ``held`` slots are ours: at the limit,
        it is the probe."""
        cap = self.cap()
        if cap is not None and held >= cap:
            self.probe = index

    def ended(self, index: int) -> bool:
        """Job ``index``'s submission came back (whatever became of it); whether it was the
        probe."""
        if index != self.probe:
            return False
        self.probe = None
        return True

    def accepted(self, index: int, accepted: int) -> None:
        """The service took job ``index`` and now holds ``accepted`` jobs of ours: more than
        the limit says means that much room, at least."""
        self.ended(index)
        cap = self.cap()
        if cap is not None and accepted > cap:
            self.learned = accepted
            self._share(accepted + self._others_accepted())
            self.probe_wait = self.policy.limit_wait

    def refused(self, accepted: int, *, probe: bool) -> None:
        """The service refused a job ("limit reached") holding ``accepted`` jobs of ours: that
        is the limit, until a probe finds more room. A refused ``probe`` (see :meth:`ended`)
        doubles the wait before the next."""
        if probe:
            self.probe_wait = min(self.probe_wait * 2, max(self.policy.max_delay, self.policy.limit_wait))
        self.learned = accepted
        self._share(self.learned + self._others_accepted())
        self.probe_at = self.clock.now() + self.probe_wait

    def _others(self) -> int:
        """Jobs the store's other running sets have in flight at this backend, or are
        submitting there (read at most every :data:`OTHERS_EVERY` seconds)."""
        now = self.clock.now()
        if now - self._others_read >= OTHERS_EVERY:
            self._others_count = self.book.jobs_in_flight(self.backend, self.job_set_id)
            self._others_read = now
        return self._others_count

    def _others_accepted(self) -> int:
        """Jobs the service has accepted from the store's other running sets, now: with ours,
        what it held when it refused or accepted one more."""
        return self.book.jobs_in_flight(self.backend, self.job_set_id, accepted_only=True)

    def _share(self, limit: int) -> None:
        if limit != self.shared:
            self.shared = limit
            self.book.learn_limit(self.backend, limit)
