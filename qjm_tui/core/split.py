"""Plan how experiments are split into backend jobs.

Jobs are contiguous ranges of the global experiment order, each within every limit the backend
declares and the user's ``max_experiments_per_job``. When the requested shots exceed the
backend's maximum, the experiments are run in several *rounds* (each within the maximum), and
the rounds' counts and memory are merged back into one result per experiment.

Two further rules shape the cut when asked for:

- **Groups kept together** (:class:`Group`): experiments that must run in one job (calibration
  circuits and the circuits they calibrate). A cut never falls inside a group; whole groups are
  packed into jobs within every limit, and a group larger than any job may be is an error that
  names the group and the limit.
- **Jobs sized by time** (:class:`JobTime`): each experiment's estimated seconds per shot, a
  per-job overhead, and the most seconds one job may take. A job's estimate is the overhead
  plus shots x the sum of its experiments' seconds per shot; every job stays within the maximum.

Without either rule the jobs are equal chunks (only the last may be smaller), as before.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.ports import BackendLimits


@dataclass(frozen=True)
class PlannedJob:
    """One backend job: experiments ``start`` to ``stop - 1`` of round ``round``; ``seconds``
    is its estimated time on the backend (None where the backend publishes no durations)."""

    index: int
    start: int
    stop: int
    shots: int | None
    round: int = 0
    seconds: float | None = None

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Group:
    """Experiments ``start`` to ``stop - 1`` must land in one job; ``label`` names the group in
    errors (``'cal-q0'``, ``group 3``, ``file bell.qpy``)."""

    start: int
    stop: int
    label: str

    @property
    def size(self) -> int:
        return self.stop - self.start

    def describe(self) -> str:
        """``group 'x' (experiments 4-9)``: the label and the span."""
        span = f"experiment {self.start}" if self.size == 1 else f"experiments {self.start}-{self.stop - 1}"
        return f"{self.label} ({span})"


@dataclass(frozen=True)
class JobTime:
    """What sizes jobs by time.

    ``prefix[i]`` is the sum of the estimated seconds per shot of experiments ``0`` to ``i - 1``
    (so it has one more entry than there are experiments); ``overhead`` is added once per job;
    ``max_seconds`` is the most one job may take (None: estimate only, no limit).
    """

    prefix: Sequence[float]
    overhead: float
    max_seconds: float | None = None

    def seconds(self, start: int, stop: int, shots: int | None) -> float:
        """The estimate of a job holding experiments ``start`` to ``stop - 1``."""
        return self.overhead + (shots or 1) * (self.prefix[stop] - self.prefix[start])

    def furthest_stop(self, start: int, shots: int | None) -> int:
        """The largest ``stop`` whose job from ``start`` stays within ``max_seconds``
        (``start`` itself when even one experiment does not)."""
        if self.max_seconds is None:
            return len(self.prefix) - 1
        budget = (self.max_seconds - self.overhead) / (shots or 1)
        # A hair of slack, so a job estimated at exactly the limit (sums of floats) still fits.
        bound = self.prefix[start] + budget * (1 + 1e-12)
        return max(start, bisect.bisect_right(self.prefix, bound, lo=start) - 1)


def shot_rounds(shots: int | None, max_shots: int | None) -> list[int | None]:
    """The shots of each round: full rounds of ``max_shots`` and one remainder round."""
    if shots is None or max_shots is None or shots <= max_shots:
        return [shots]
    full, rest = divmod(shots, max_shots)
    rounds: list[int | None] = [max_shots] * full
    if rest:
        rounds.append(rest)
    return rounds


def merge_groups(groups: Sequence[Group], n_experiments: int) -> list[Group]:
    """Groups sorted by start, overlapping ones merged (their labels joined with ``+``), checked
    to lie within the experiments. Jobs hold consecutive experiments, so a group holds every
    experiment from its first to its last."""
    ordered = sorted(groups, key=lambda g: (g.start, g.stop))
    merged: list[Group] = []
    for group in ordered:
        if group.start < 0 or group.stop > n_experiments or group.size < 1:
            raise JobManagerInputError(
                f"{group.describe()} is outside the experiments 0 to {n_experiments - 1}")
        if merged and group.start < merged[-1].stop:
            last = merged[-1]
            merged[-1] = Group(last.start, max(last.stop, group.stop), f"{last.label} + {group.label}")
        else:
            merged.append(group)
    return merged


def count_jobs(
    n_experiments: int,
    limits: BackendLimits,
    shots: int | None = None,
    max_experiments_per_job: int | None = None,
    *,
    groups: Sequence[Group] = (),
    timing: JobTime | None = None,
    preferred: int | None = None,
) -> int:
    """How many jobs :func:`plan_jobs` would make, computed without making them.

    A request such as a trillion shots on a backend that takes a million per job would plan a
    million rounds; counting first lets the caller refuse it before any memory or time is spent.
    Rounds with the same shots are cut alike, so each distinct round is cut once.
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
    merged = merge_groups(groups, n_experiments)
    total = 0
    for round_shots, times in rounds:
        total += len(_cuts(n_experiments, limits, round_shots, max_experiments_per_job, merged,
                           timing, preferred)) * times
    return total


def plan_jobs(
    n_experiments: int,
    limits: BackendLimits,
    shots: int | None = None,
    max_experiments_per_job: int | None = None,
    *,
    groups: Sequence[Group] = (),
    timing: JobTime | None = None,
    preferred: int | None = None,
) -> list[PlannedJob]:
    """Split ``n_experiments`` into contiguous jobs within every limit.

    ``groups`` must each land in one job; ``timing`` estimates each job and, with a maximum,
    keeps every job within it; ``preferred`` is a soft size (a local simulator's choice): jobs
    are cut to it where they can be, but a group larger than it gets a job of its own rather
    than an error. Raises :class:`JobManagerInputError` for a non-positive count or maximum, and
    for a group or an experiment that no job can hold (naming it and the limit).
    """
    if n_experiments <= 0:
        raise JobManagerInputError("there are no experiments to run")
    if max_experiments_per_job is not None and max_experiments_per_job < 1:
        raise JobManagerInputError(
            f"max_experiments_per_job must be a positive integer, got {max_experiments_per_job}"
        )
    merged = merge_groups(groups, n_experiments)
    jobs: list[PlannedJob] = []
    for round_index, round_shots in enumerate(shot_rounds(shots, limits.max_shots)):
        for start, stop in _cuts(n_experiments, limits, round_shots, max_experiments_per_job, merged,
                                 timing, preferred):
            seconds = timing.seconds(start, stop, round_shots) if timing is not None else None
            jobs.append(PlannedJob(len(jobs), start, stop, round_shots, round_index, seconds))
    return jobs


def _cuts(n: int, limits: BackendLimits, shots: int | None, user_max: int | None,
          groups: Sequence[Group], timing: JobTime | None,
          preferred: int | None) -> list[tuple[int, int]]:
    """The ``(start, stop)`` of each job of one round."""
    caps = _caps(limits, shots, user_max)
    hard = min([n] + [value for value, _ in caps])
    soft = min(hard, preferred) if preferred else hard
    limited_by_time = timing is not None and timing.max_seconds is not None
    if not groups and not limited_by_time:
        return [(start, min(start + soft, n)) for start in range(0, n, soft)]
    starts = [g.start for g in groups]
    cuts = []
    start = 0
    while start < n:
        stop = min(n, start + soft)
        if limited_by_time:
            assert timing is not None
            stop = min(stop, timing.furthest_stop(start, shots))
        inside = _group_across(groups, starts, stop)
        if inside is not None:
            stop = inside.start
        if stop <= start:
            # Nothing fits from here but a group that starts here, or one experiment too long:
            # it gets a job of its own if the hard limits allow, else it cannot run at all.
            group = _group_at(groups, starts, start)
            stop = group.stop if group is not None else start + 1
            _check_fits(start, stop, group, caps, hard, timing, shots)
        cuts.append((start, stop))
        start = stop
    return cuts


def _group_across(groups: Sequence[Group], starts: Sequence[int], cut: int) -> Group | None:
    """The group a cut before experiment ``cut`` would split, if any."""
    i = bisect.bisect_right(starts, cut - 1) - 1
    if i >= 0 and groups[i].start < cut < groups[i].stop:
        return groups[i]
    return None


def _group_at(groups: Sequence[Group], starts: Sequence[int], start: int) -> Group | None:
    i = bisect.bisect_left(starts, start)
    return groups[i] if i < len(groups) and groups[i].start == start else None


def _check_fits(start: int, stop: int, group: Group | None, caps: list[tuple[int, str]], hard: int,
                timing: JobTime | None, shots: int | None) -> None:
    """Raise, naming the group (or experiment) and the limit, if one job cannot hold it."""
    what = group.describe() if group is not None else f"experiment {start}"
    if stop - start > hard:
        value, why = min(caps)
        raise JobManagerInputError(
            f"{what} holds {stop - start:,} experiments, more than one job can hold: {why} "
            f"allows at most {value:,}; make the group smaller or split it into several groups")
    if timing is not None and timing.max_seconds is not None:
        seconds = timing.seconds(start, stop, shots)
        if seconds > timing.max_seconds * (1 + 1e-12):
            shots_text = f" with {shots:,} shots" if shots else ""
            raise JobManagerInputError(
                f"{what} is estimated at {seconds:,.1f} s{shots_text} (including {timing.overhead:g} s "
                f"per job), longer than max_job_seconds={timing.max_seconds:g}; raise "
                f"max_job_seconds, use fewer shots{' or a smaller group' if group else ''}")


def _caps(limits: BackendLimits, shots: int | None, user_max: int | None) -> list[tuple[int, str]]:
    """Every limit on experiments per job, each with the words that name it."""
    caps = []
    if limits.max_experiments_per_job:
        caps.append((limits.max_experiments_per_job, "the backend's limit of "
                     f"{limits.max_experiments_per_job:,} circuits per job"))
    if user_max:
        caps.append((user_max, f"max_experiments_per_job={user_max}"))
    if limits.max_executions and shots:
        per_job = limits.max_executions // shots
        if per_job < 1:
            raise JobManagerInputError(
                f"{shots} shots exceed the backend's {limits.max_executions} executions per job"
            )
        caps.append((per_job, f"the backend's {limits.max_executions:,} executions (circuits x shots)"
                     f" per job at {shots:,} shots"))
    return caps
