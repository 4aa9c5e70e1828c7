"""The retry policy on its own, without a runner: how long each retry waits, when a job is
given up, and what it says then."""

from __future__ import annotations

import random

import pytest

from qjm_tui.core.retry import Retry, RetryPolicy, gave_up


def test_each_retry_waits_twice_as_long_as_the_last_up_to_the_maximum() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=6.0, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0, 6.0]


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 1.0])
def test_jitter_takes_at_most_its_share_off_each_wait(jitter: float) -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0, jitter=jitter)
    rng = random.Random(7)
    for retry in range(1, 10):
        bound = min(60.0, 2.0 ** (retry - 1))
        waits = [policy.delay(retry, rng) for _ in range(200)]
        assert all(bound * (1 - jitter) - 1e-12 <= w <= bound for w in waits), (retry, min(waits))
        if jitter:
            # clients retrying together spread over the whole range, not around one point
            assert max(waits) - min(waits) > 0.8 * jitter * bound


def test_a_job_is_retried_until_its_attempts_are_used_up() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=2.0, jitter=0.0)
    rng = random.Random(0)
    assert policy.next_retry(attempts=1, retries=0, rng=rng) == Retry(1, 2.0)
    assert policy.next_retry(attempts=2, retries=1, rng=rng) == Retry(2, 4.0)
    assert policy.next_retry(attempts=3, retries=2, rng=rng) is None
    # attempts given back (a "limit reached" is not the job's fault) do not count
    assert policy.next_retry(attempts=2, retries=2, rng=rng) == Retry(3, 8.0)


def test_a_policy_of_one_attempt_never_retries() -> None:
    assert RetryPolicy(max_attempts=1).next_retry(1, 0, random.Random(0)) is None


def test_a_job_given_up_says_how_often_it_was_tried_and_why_it_failed_last() -> None:
    assert gave_up(1, "service busy") == "gave up after 1 attempt; last error: service busy"
    assert gave_up(5, "timeout") == "gave up after 5 attempts; last error: timeout"
