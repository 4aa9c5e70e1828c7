"""Splitting experiments into jobs: properties that must hold for every input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.ports import BackendLimits
from qjm_tui.core.split import (
    Group,
    JobTime,
    PlannedJob,
    count_jobs,
    merge_groups,
    plan_jobs,
    shot_rounds,
)

optional_limit = st.one_of(st.none(), st.integers(min_value=1, max_value=300))


def _check_limits(job: PlannedJob, max_circuits: int | None, user_max: int | None,
                  max_exec: int | None) -> None:
    """The job holds an experiment at least and no more than any limit allows."""
    assert job.size >= 1
    if max_circuits:
        assert job.size <= max_circuits
    if user_max:
        assert job.size <= user_max
    if max_exec:
        assert job.size * job.shots <= max_exec


@given(
    n=st.integers(min_value=1, max_value=1000),
    max_circuits=optional_limit,
    user_max=optional_limit,
    shots=st.integers(min_value=1, max_value=20000),
    max_shots=st.one_of(st.none(), st.integers(min_value=2000, max_value=8000)),
    max_exec=st.one_of(st.none(), st.integers(min_value=20000, max_value=10**6)),
)
def test_plan_covers_every_experiment_in_order_within_every_limit(
    n: int, max_circuits: int | None, user_max: int | None, shots: int, max_shots: int | None,
    max_exec: int | None,
) -> None:
    limits = BackendLimits(max_experiments_per_job=max_circuits, max_shots=max_shots,
                           max_executions=max_exec)
    plan = plan_jobs(n, limits, shots, user_max)
    rounds = shot_rounds(shots, max_shots)
    assert sum(r for r in rounds) == shots
    assert [j.index for j in plan] == list(range(len(plan)))
    for round_index, round_shots in enumerate(rounds):
        jobs = [j for j in plan if j.round == round_index]
        # contiguous, in order, covering 0..n-1 exactly once per round
        assert jobs[0].start == 0 and jobs[-1].stop == n
        for a, b in zip(jobs, jobs[1:], strict=False):
            assert a.stop == b.start
        for job in jobs:
            assert job.shots == round_shots
            if max_shots:
                assert job.shots <= max_shots
            _check_limits(job, max_circuits, user_max, max_exec)
        # only the last job of a round may be smaller than the others
        assert len({j.size for j in jobs[:-1]}) <= 1


def test_shots_above_the_maximum_become_full_rounds_and_a_remainder() -> None:
    assert shot_rounds(250_000, 100_000) == [100_000, 100_000, 50_000]
    assert shot_rounds(200_000, 100_000) == [100_000, 100_000]
    assert shot_rounds(10, None) == [10]


def test_no_experiments_is_an_error() -> None:
    with pytest.raises(JobManagerInputError, match="no experiments"):
        plan_jobs(0, BackendLimits())


def test_shots_that_cannot_fit_the_executions_budget_are_an_error() -> None:
    with pytest.raises(JobManagerInputError, match="executions"):
        plan_jobs(5, BackendLimits(max_executions=100), shots=1000)


def test_user_maximum_must_be_positive() -> None:
    with pytest.raises(JobManagerInputError, match="positive"):
        plan_jobs(5, BackendLimits(), max_experiments_per_job=0)


# -- groups kept together, jobs sized by time ---------------------------------------------------


@st.composite
def grouped_sets(draw: st.DrawFn) -> tuple[int, list[Group]]:
    """A number of experiments and some groups over them (spans may touch, overlap or nest)."""
    n = draw(st.integers(min_value=1, max_value=400))
    groups = []
    for k in range(draw(st.integers(min_value=0, max_value=12))):
        start = draw(st.integers(min_value=0, max_value=n - 1))
        size = draw(st.integers(min_value=1, max_value=min(12, n - start)))
        groups.append(Group(start, start + size, f"group {k}"))
    return n, groups


def _check_plan(plan: list, n: int, groups: list[Group], rounds: list) -> None:
    for round_index, _shots in enumerate(rounds):
        jobs = [j for j in plan if j.round == round_index]
        # contiguous, in order, covering 0..n-1 exactly once per round
        assert jobs[0].start == 0 and jobs[-1].stop == n
        for a, b in zip(jobs, jobs[1:], strict=False):
            assert a.stop == b.start
        cut_points = {j.start for j in jobs}
        for group in groups:
            # no cut falls strictly inside a group: the whole group is in one job
            assert not any(group.start < c < group.stop for c in cut_points), (group, jobs)


@given(
    data=grouped_sets(),
    max_circuits=st.one_of(st.none(), st.integers(min_value=12, max_value=60)),
    user_max=st.one_of(st.none(), st.integers(min_value=12, max_value=60)),
    shots=st.integers(min_value=1, max_value=20000),
    max_shots=st.one_of(st.none(), st.integers(min_value=2000, max_value=8000)),
    max_exec=st.one_of(st.none(), st.integers(min_value=12 * 8000, max_value=10**6)),
    preferred=st.one_of(st.none(), st.integers(min_value=1, max_value=30)),
)
def test_groups_are_never_split_and_every_limit_holds(
    data: tuple[int, list[Group]], max_circuits: int | None, user_max: int | None, shots: int,
    max_shots: int | None, max_exec: int | None, preferred: int | None,
) -> None:
    n, groups = data
    limits = BackendLimits(max_experiments_per_job=max_circuits, max_shots=max_shots,
                           max_executions=max_exec)
    merged = merge_groups(groups, n)
    rounds = shot_rounds(shots, max_shots)
    caps = [c for c in (max_circuits, user_max) if c]
    if max_exec:
        caps.append(max_exec // max(r for r in rounds))
    try:
        plan = plan_jobs(n, limits, shots, user_max, groups=groups, preferred=preferred)
    except JobManagerInputError as exc:
        # only when a group (merged with those it overlaps) is larger than any job may be
        assert "more than one job can hold" in str(exc)
        assert any(g.size > min(caps) for g in merged)
        return
    assert [j.index for j in plan] == list(range(len(plan)))
    assert count_jobs(n, limits, shots, user_max, groups=groups, preferred=preferred) == len(plan)
    _check_plan(plan, n, merged, rounds)
    for job in plan:
        _check_limits(job, max_circuits, user_max, max_exec)
        if preferred and job.size > preferred:
            # only a group larger than the preferred size makes a job larger than it
            assert any(g.start == job.start and g.stop == job.stop for g in merged), job


@given(
    data=grouped_sets(),
    per_shot=st.lists(st.floats(min_value=1e-6, max_value=2e-3), min_size=400, max_size=400),
    shots=st.integers(min_value=1, max_value=4000),
    overhead=st.floats(min_value=0.0, max_value=5.0),
    budget=st.floats(min_value=0.5, max_value=120.0),
    max_circuits=st.one_of(st.none(), st.integers(min_value=12, max_value=300)),
)
def test_jobs_sized_by_time_stay_within_the_maximum(
    data: tuple[int, list[Group]], per_shot: list[float], shots: int, overhead: float,
    budget: float, max_circuits: int | None,
) -> None:
    n, groups = data
    prefix = [0.0]
    for seconds in per_shot[:n]:
        prefix.append(prefix[-1] + seconds)
    timing = JobTime(prefix, overhead, overhead + budget)
    limits = BackendLimits(max_experiments_per_job=max_circuits)
    merged = merge_groups(groups, n)
    try:
        plan = plan_jobs(n, limits, shots, groups=groups, timing=timing)
    except JobManagerInputError as exc:
        # only when some group (or experiment) alone is too long or too large, named in the error
        assert "max_job_seconds" in str(exc) or "more than one job can hold" in str(exc)
        too_long = [g for g in merged if timing.seconds(g.start, g.stop, shots) > timing.max_seconds]
        singles = [i for i in range(n) if timing.seconds(i, i + 1, shots) > timing.max_seconds]
        too_big = [g for g in merged if max_circuits and g.size > max_circuits]
        assert too_long or singles or too_big
        return
    _check_plan(plan, n, merged, [shots])
    for job in plan:
        assert job.seconds is not None
        assert job.seconds <= timing.max_seconds * (1 + 1e-9)
        assert job.seconds == pytest.approx(overhead + shots * sum(per_shot[job.start:job.stop]))
        if max_circuits:
            assert job.size <= max_circuits
    # packed: no job could also have taken the whole unit (group or experiment) that follows it
    for job in plan[:-1]:
        after = next((g.stop for g in merged if g.start == job.stop), job.stop + 1)
        too_big = max_circuits is not None and after - job.start > max_circuits
        assert too_big or timing.seconds(job.start, after, shots) > timing.max_seconds
    assert count_jobs(n, limits, shots, groups=groups, timing=timing) == len(plan)


def test_a_group_larger_than_a_job_names_the_group_and_the_limit() -> None:
    groups = [Group(0, 4, "'cal'"), Group(4, 30, "'sweep'")]
    with pytest.raises(JobManagerInputError, match=r"'sweep' \(experiments 4-29\) holds 26 experiments.*"
                       r"the backend's limit of 20 circuits per job"):
        plan_jobs(40, BackendLimits(max_experiments_per_job=20), 100, groups=groups)
    with pytest.raises(JobManagerInputError, match=r"max_experiments_per_job=10"):
        plan_jobs(40, BackendLimits(), 100, 10, groups=groups)
    with pytest.raises(JobManagerInputError, match=r"executions"):
        plan_jobs(40, BackendLimits(max_executions=2000), 100, groups=groups)


def test_groups_are_packed_whole_and_a_preferred_size_bends_for_them() -> None:
    groups = [Group(0, 3, "a"), Group(3, 6, "b"), Group(6, 9, "c")]
    plan = plan_jobs(9, BackendLimits(max_experiments_per_job=7), 10, groups=groups)
    assert [(j.start, j.stop) for j in plan] == [(0, 6), (6, 9)]
    plan = plan_jobs(10, BackendLimits(), 10, groups=[Group(2, 8, "g")], preferred=4)
    assert [(j.start, j.stop) for j in plan] == [(0, 2), (2, 8), (8, 10)]


def test_a_job_too_long_for_max_job_seconds_names_the_experiment() -> None:
    timing = JobTime([0.0, 0.001, 0.031, 0.032], overhead=2.0, max_seconds=8.3)
    with pytest.raises(JobManagerInputError, match=r"experiment 1 is estimated at 32\.0 s with 1,000 shots"):
        plan_jobs(3, BackendLimits(), 1000, timing=timing)
    plan = plan_jobs(3, BackendLimits(), 200, timing=timing)
    assert [(j.start, j.stop) for j in plan] == [(0, 2), (2, 3)]
    assert plan[0].seconds == pytest.approx(2.0 + 200 * 0.031)


def test_overlapping_groups_are_merged_and_groups_outside_the_set_refused() -> None:
    merged = merge_groups([Group(5, 8, "b"), Group(0, 3, "a"), Group(2, 6, "c")], 10)
    assert merged == [Group(0, 8, "a + c + b")]
    with pytest.raises(JobManagerInputError, match="outside the experiments 0 to 9"):
        merge_groups([Group(8, 12, "x")], 10)
