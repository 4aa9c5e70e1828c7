"""Settling a job with the service when this process cannot tell what became of it.

A job whose submission was interrupted (the process ended, or the answer got lost), or whose
status checks kept failing, may be held by the service once, several times (a failed attempt,
a retry that succeeded, one whose id was never recorded) or not at all. Submitting it again
blindly could run it twice, and a job run twice costs money. So before anything is submitted
again every job the service holds for the job's client tag is looked at
(:func:`reconcile`): one that succeeded, else one still queued or running, is followed and the
others still active are cancelled; if none can finish the job is submitted again; and while
the service cannot say, nothing is submitted, and the job is asked about again with backoff
(:class:`Settling`) until, after ``max_attempts`` rounds, it fails rather than run twice.

:func:`on_resume` says what a runner taking up a set does with each of its jobs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection, MutableMapping
from dataclasses import dataclass, field
from typing import Literal

from qjm_tui.core.errors import PermanentBackendError
from qjm_tui.core.ports import ExecutionBackend
from qjm_tui.core.retry import RetryPolicy
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import JobRow
from qjm_tui.core.text import error_text

log = logging.getLogger(__name__)

#: what reconciling a job with the service decided (see :func:`reconcile`)
Verdict = Literal["adopt", "submit", "unknown"]

#: what a runner taking up a set does with a job: submit it (``ready``), follow its recorded
#: backend job, settle it with the service first, or run it again from scratch (``reset``)
ResumeAction = Literal["ready", "follow", "settle", "reset"]


@dataclass(frozen=True)
class Settlement:
    """The outcome of :func:`reconcile`: the verdict, the backend job to follow (``adopt``)
    or the job's last known id (``unknown``), and the other attempts still active at the
    service, to be cancelled."""

    verdict: Verdict
    job_id: str | None = None
    stray: tuple[str, ...] = ()
    #: what the service said when the search or the last status check failed (``unknown``);
    #: it informs, it does not decide, so two settlements compare without it
    said: str | None = field(default=None, compare=False)


def on_resume(job: JobRow, reattach: bool) -> ResumeAction | None:
    """What a runner taking up a set does with ``job`` (None: it is final, nothing to do).
    ``reattach``: the backend keeps its jobs beyond the process that submitted them.

    A job never submitted is ready; one submitted once whose id was recorded is followed;
    one an earlier process submitted otherwise is settled with the service first; on a
    backend that does not keep jobs, a job that was with it runs again from scratch.
    """
    if job.status == JobStatus.PENDING and not (reattach and job.attempts):
        return "ready"
    if job.status not in (JobStatus.PENDING, JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING):
        return None
    if not reattach:
        return "reset"
    if job.backend_job_id and job.attempts == 1 and job.status != JobStatus.PENDING:
        return "follow"  # submitted once, and the service's id for it recorded: no other attempt
    return "settle"


def state_of(backend: ExecutionBackend, job_id: str, checks: int,
             ended: MutableMapping[str, JobStatus] | None = None) -> tuple[JobStatus | None, str | None]:
    """The state of a backend job, asking up to ``checks`` times, and what the service said
    when every check failed (the state is then None). A job the service does not know counts
    as failed. ``ended`` remembers the jobs found failed or cancelled (that never changes), so
    they are not asked about again: each question is one more chance for a flaky service to
    leave the job unsettled."""
    if ended is not None and job_id in ended:
        return ended[job_id], None
    said: str | None = None
    for _ in range(max(1, checks)):
        try:
            state = backend.status(job_id).state
        except PermanentBackendError:
            state = JobStatus.FAILED
        except Exception as exc:
            said = error_text(exc)
            log.debug("status of %s: %s", job_id, exc)
            continue
        if ended is not None and state in (JobStatus.FAILED, JobStatus.CANCELLED):
            ended[job_id] = state
        return state, None
    log.warning("the service did not tell the state of job %s in %d tries; the last said: %s",
                job_id, max(1, checks), said)
    return None, said


def reconcile(backend: ExecutionBackend, client_tag: str, known: str | None, *,
              unfetchable: Collection[str] = (), checks: int = 1,
              ended: MutableMapping[str, JobStatus] | None = None) -> Settlement:
    """Settle a job with every job ``backend`` holds for its ``client_tag``.

    ``adopt`` (with an id): one of them succeeded, or none did and one is still queued or
    running (the job's own last id ``known`` first); that one is followed and the others
    still queued or running (or whose state is unknown, next to a success) are ``stray``.
    ``submit``: none of them can finish (failed, cancelled, forgotten, or none at all).
    ``unknown``: the service cannot say now (the search or a status check fails), so nothing
    may be submitted yet; ``known`` is returned for the caller to keep. A job whose result
    could not be fetched (``unfetchable``) never counts. Each state is asked up to
    ``checks`` times; ``ended`` is passed on to :func:`state_of`.
    """
    try:
        found = backend.find([client_tag])
    except Exception as exc:
        log.warning("could not search the service for %s: %s", client_tag, exc)
        return Settlement("unknown", known, said=error_text(exc))
    candidates = [i for i in dict.fromkeys([*([known] if known else []), *found]) if i not in unfetchable]
    answers = {job_id: state_of(backend, job_id, checks, ended) for job_id in candidates}
    states = {job_id: state for job_id, (state, _) in answers.items()}
    done = [i for i, s in states.items() if s == JobStatus.DONE]
    active = [i for i, s in states.items() if s in (JobStatus.QUEUED, JobStatus.RUNNING)]
    unknown = [i for i, s in states.items() if s is None]
    if done:
        return Settlement("adopt", done[0], (*active, *unknown))
    if unknown:
        return Settlement("unknown", known, said=answers[unknown[-1]][1])
    if active:
        return Settlement("adopt", active[0], tuple(active[1:]))
    return Settlement("submit")


@dataclass
class Settling:
    """A job whose fate the service cannot tell now: nothing is submitted for it meanwhile.

    ``known`` is its last backend id; ``reason`` why it is being settled (None: a resume found
    it open); ``since`` the wall-clock time the first check failed; ``rounds`` how many rounds
    of checks found no answer, and ``due`` (clock seconds) when the next one is.
    """

    known: str | None
    reason: str | None
    since: float
    rounds: int = 0
    due: float = 0.0
    #: what the service said when the last round found no answer
    said: str | None = None

    def unanswered(self, policy: RetryPolicy, rng: random.Random, now: float,
                   said: str | None = None) -> bool:
        """A round found no answer (the service said ``said``): the next is due after the retry
        policy's backoff (from ``now``, clock seconds). Returns True once ``max_attempts`` rounds
        found none: the job fails rather than run twice (see :meth:`give_up_message`)."""
        self.rounds += 1
        self.said = said or self.said
        if self.rounds >= policy.max_attempts:
            return True
        self.due = now + policy.delay(self.rounds, rng)
        return False

    def give_up_message(self, wall_now: float) -> str:
        """Why the job failed unsettled: how long the service did not answer, what may
        still run there, and the reason it was being settled."""
        where = f"job {self.known} may still run there; a cancel was sent" if self.known \
            else "it may have been taken"
        said = f" (the last said: {self.said})" if self.said else ""
        return (f"the service answered none of {self.rounds} rounds of status checks over "
                f"{wall_now - self.since:.0f} s{said}, so the job was not submitted again ({where})"
                + (f"; before that: {self.reason}" if self.reason else ""))
