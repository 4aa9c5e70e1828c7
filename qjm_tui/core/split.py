"""Plan how experiments are split into backend jobs.

Jobs are contiguous ranges of the global experiment order, each within every limit the backend
declares and the user's ``max_experiments_per_job``. When the requested shots exceed the
backend's maximum, the experiments are run in several *rounds* (each within the maximum), and
the rounds' counts and memory are merged back into one result per experiment.
"""

from __future__ import annotations

from dataclasses import dataclass

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.ports import BackendLimits


@dataclass(frozen=True)
class PlannedJob:
    """One backend job: experiments ``start`` to ``stop - 1`` of round ``round``."""

    index: int
    start: int
    stop: int
    shots: int | None
    round: int = 0

    @property
    def size(self) -> int:
        return self.stop - self.start


def shot_rounds(shots: int | None, max_shots: int | None) -> list[int | None]:
    """The shots of each round: full rounds of ``max_shots`` and one remainder round."""
    if shots is None or max_shots is None or shots <= max_shots:
        return [shots]
    full, rest = divmod(shots, max_shots)
    rounds: list[int | None] = [max_shots] * full
    if rest:
        rounds.append(rest)
    return rounds


def count_jobs(
    n_experiments: int,
    limits: BackendLimits,
    shots: int | None = None,
    max_experiments_per_job: int | None = None,
) -> int:
    """How many jobs :func:`plan_jobs` would make, computed without making them.

    A request such as a trillion shots on a backend that takes a million per job would plan a
    million rounds; counting first lets the caller refuse it before any memory or time is spent.
    """
    if n_experiments <= 0:
        return 0
    rounds: list[tuple[int | None, int]]
    if shots is None or limits.max_shots is None or shots <= limits.max_shots:
        rounds = [(shots, 1)]
    else:
        full, rest = divmod(shots, limits.max_shots)
        rounds = [(limits.max_shots, full)]
        if rest:
            rounds.append((rest, 1))
    total = 0
    for round_shots, times in rounds:
        size = _chunk_size(n_experiments, limits, round_shots, max_experiments_per_job)
        total += -(-n_experiments // size) * times
    return total


def plan_jobs(
    n_experiments: int,
    limits: BackendLimits,
    shots: int | None = None,
    max_experiments_per_job: int | None = None,
) -> list[PlannedJob]:
    """Split ``n_experiments`` into contiguous jobs within every limit.

    Raises :class:`JobManagerInputError` for a non-positive count or maximum.
    """
    if n_experiments <= 0:
        raise JobManagerInputError("there are no experiments to run")
    if max_experiments_per_job is not None and max_experiments_per_job < 1:
        raise JobManagerInputError(
            f"max_experiments_per_job must be a positive integer, got {max_experiments_per_job}"
        )
    jobs: list[PlannedJob] = []
    for round_index, round_shots in enumerate(shot_rounds(shots, limits.max_shots)):
        size = _chunk_size(n_experiments, limits, round_shots, max_experiments_per_job)
        for start in range(0, n_experiments, size):
            jobs.append(
                PlannedJob(len(jobs), start, min(start + size, n_experiments), round_shots, round_index)
            )
    return jobs


def _chunk_size(
    n_experiments: int,
    limits: BackendLimits,
    shots: int | None,
    user_max: int | None,
) -> int:
    caps = [n_experiments]
    if limits.max_experiments_per_job:
        caps.append(limits.max_experiments_per_job)
    if user_max:
        caps.append(user_max)
    if limits.max_executions and shots:
        per_job = limits.max_executions // shots
        if per_job < 1:
            raise JobManagerInputError(
                f"{shots} shots exceed the backend's {limits.max_executions} executions per job"
            )
        caps.append(per_job)
    return min(caps)
