"""What jobs cost on a service and where they ran, in the words every view uses.

A service such as IBM Quantum reports the quantum time a job used once it ran, and may give an
estimate before; qjm keeps both per job (see :class:`~qjm_tui.core.store.JobRow`). The report,
the command line and the app all say them through these functions, so an estimate always reads
as one.
"""

from __future__ import annotations


def seconds_text(value: float) -> str:
    """Quantum seconds as people read them: ``0.3 s``, ``12.5 s``, ``1,234 s``."""
    return f"{value:,.0f} s" if value >= 100 else f"{value:.1f} s"


def usage_phrase(used: float | None, estimate: float | None) -> str | None:
    """The quantum time used, and what is estimated for what has not run yet: ``12.5 s``,
    ``12.5 s, and about 4.0 s estimated for jobs still to run``, ``about 4.0 s (estimated)``;
    None when the service reported neither."""
    if used is None and estimate is None:
        return None
    if estimate is None:
        return seconds_text(used or 0.0)
    if used is None:
        return f"about {seconds_text(estimate)} (estimated)"
    return f"{seconds_text(used)}, and about {seconds_text(estimate)} estimated for jobs still to run"


def job_usage_phrase(used: float | None, estimate: float | None) -> str | None:
    """One job's quantum time: ``0.3 s`` once it ran, ``about 0.3 s (estimated)`` before."""
    if used is not None:
        return seconds_text(used)
    return None if estimate is None else f"about {seconds_text(estimate)} (estimated)"


def session_phrase(mode: str | None, session_id: str | None) -> str | None:
    """Where the service ran the job: ``batch 3f2a...`` or ``session 3f2a...``; None alone."""
    if not session_id:
        return None
    return f"{mode or 'session'} {session_id}"
