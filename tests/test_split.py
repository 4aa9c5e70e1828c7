"""Splitting experiments into jobs: properties that must hold for every input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.ports import BackendLimits
from qjm_tui.core.split import plan_jobs, shot_rounds

optional_limit = st.one_of(st.none(), st.integers(min_value=1, max_value=300))


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
            assert job.size >= 1
            assert job.shots == round_shots
            if max_circuits:
                assert job.size <= max_circuits
            if user_max:
                assert job.size <= user_max
            if max_shots:
                assert job.shots <= max_shots
            if max_exec:
                assert job.size * job.shots <= max_exec
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
