"""The emulated remote service: options, limits, faults, persistence and reattach after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from qjm_tui import JobManager
from qjm_tui.backends.emulator import EmulatorBackend, parse_options
from qjm_tui.backends.registry import resolve_spec
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.errors import BackendLimitReached, PermanentBackendError, UnknownBackendError
from qjm_tui.core.ports import JobPayload
from qjm_tui.core.status import JobStatus
from tests.conftest import basis_state

FAST_RETRIES = RetryPolicy(max_attempts=10, base_delay=0.05, max_delay=0.5, limit_wait=0.1,
                           max_poll_errors=5)


def _wait_done(emu: EmulatorBackend, job_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = emu.status(job_id).state
        if state in (JobStatus.DONE, JobStatus.FAILED):
            return state
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


def test_options_defaults_and_overrides() -> None:
    options = parse_options("latency=0,queue=0.5,max_jobs=2,fault_rate=0.3,seed=3")
    assert options["queue"] == 0.5 and options["max_jobs"] == 2 and options["seed"] == 3
    assert options["submit_error"] == pytest.approx(0.1)
    assert options["status_error"] == pytest.approx(0.3)
    assert parse_options("fault_rate=0.3,fail=0")["fail"] == 0


@pytest.mark.parametrize(("text", "words"), [
    ("bogus=1", ["unknown option 'bogus'", "max_jobs"]),
    ("latency", ["'latency' is not key=value"]),
    ("fault_rate=1.5", ["fault_rate", "between 0 and 1"]),
    ("max_jobs=-1", ["max_jobs", "non-negative integer"]),
    ("queue=soon", ["queue", "non-negative number", "'soon'"]),
])
def test_bad_options_are_clear(text: str, words: list[str], tmp_path: Path) -> None:
    with pytest.raises(UnknownBackendError) as err:
        resolve_spec(f"emulator:{text}")
    message = str(err.value)
    assert f"emulator:{text}" in message
    for word in words:
        assert word in message


def test_job_lifecycle_persists_across_instances(tmp_path: Path) -> None:
    opts = f"dir={tmp_path},latency=0,queue=0.1,run=0.1,max_jobs=0"
    emu = EmulatorBackend(opts)
    assert emu.can_reattach() and not emu.inline_submit
    job_id = emu.submit(JobPayload([basis_state("101")], 50, {}, ["set-a", "job-0"]))
    assert emu.status(job_id).state == "queued"
    # A second client (a new process, as far as the service can tell) sees the same job.
    other = EmulatorBackend(opts)
    assert other.find(["set-a", "job-0"]) == [job_id]
    assert other.find(["set-a", "job-1"]) == []
    assert _wait_done(other, job_id) == JobStatus.DONE
    [experiment] = other.result(job_id)
    assert experiment["data"]["counts"] == {"0x5": 50}
    assert emu.result(job_id) == [experiment]  # computed once, then kept
    with pytest.raises(PermanentBackendError, match="no job 'nope'"):
        emu.status("nope")


def test_cancel_frees_the_slot(tmp_path: Path) -> None:
    emu = EmulatorBackend(f"dir={tmp_path},latency=0,queue=5,run=1,max_jobs=1")
    first = emu.submit(JobPayload([basis_state("1")], 10))
    with pytest.raises(BackendLimitReached, match="limit is 1"):
        emu.submit(JobPayload([basis_state("1")], 10))
    assert emu.cancel(first)
    assert emu.status(first).state == "cancelled"
    emu.submit(JobPayload([basis_state("1")], 10))
    kinds = [e["kind"] for e in emu.submissions()]
    assert kinds == ["accepted", "refused", "cancelled", "accepted"]


def test_declared_limits(tmp_path: Path) -> None:
    hidden = EmulatorBackend(f"dir={tmp_path},max_jobs=4,max_per_job=7,max_shots=900")
    assert hidden.limits().max_concurrent_jobs is None
    assert hidden.limits().max_experiments_per_job == 7 and hidden.limits().max_shots == 900
    shown = EmulatorBackend(f"dir={tmp_path},max_jobs=4,advertise=1")
    assert shown.limits().max_concurrent_jobs == 4
    with pytest.raises(PermanentBackendError, match="at most 7"):
        hidden.submit(JobPayload([basis_state("1")] * 8, 10))


def test_faults_repeat_with_the_same_seed(tmp_path: Path) -> None:
    def fates(folder: Path) -> list[str]:
        emu = EmulatorBackend(f"dir={folder},latency=0,queue=0,run=0,max_jobs=0,fault_rate=0.5,seed=11")
        seen = []
        for _ in range(20):
            try:
                emu.submit(JobPayload([basis_state("1")], 10))
                seen.append("accepted")
            except Exception as exc:
                seen.append(type(exc).__name__)
        return seen + [job["fate"] for job in emu.jobs()]

    first = fates(tmp_path / "a")
    assert first == fates(tmp_path / "b")
    assert "TransientBackendError" in first and len(set(first)) > 2


def test_limit_and_faults_sixty_jobs(tmp_path: Path) -> None:
    """60 jobs, 5 at a time at most, 20% faults: every result arrives; retries are reported."""
    spec = (f"emulator:dir={tmp_path / 'svc'},latency=0.02,queue=0.1,run=0.05,max_jobs=5,"
            "fault_rate=0.2,seed=7,max_per_job=2")
    circuits = [basis_state(format(i % 8, "03b"), name=f"c{i}") for i in range(120)]
    with JobManager(tmp_path / "s.sqlite", config=Config(executor="threads"),
                    retry_policy=FAST_RETRIES) as jm:
        job_set = jm.run(circuits, backend=spec, shots=64)
        assert job_set.wait(timeout=120) == "done"
        results = job_set.results()
        for i in range(120):
            assert results.get_counts(i) == {format(i % 8, "03b"): 64}
        report = job_set.report()
    assert len(job_set.managed_jobs()) == 60
    emu = EmulatorBackend(spec.split(":", 1)[1])
    kinds = Counter(e["kind"] for e in emu.submissions())
    # The service's own record: never more than 5 in flight, and it did have to refuse some.
    assert emu.max_concurrency() <= 5
    assert max(e["in_flight"] for e in emu.submissions()) <= 5
    assert kinds["refused"] > 0 and kinds["submit_error"] > 0
    client_tags = {j.client_tag for j in jm.store.jobs(job_set.job_set_id())}
    good_runs = Counter(t for j in emu.jobs() if j["fate"] == "ok" for t in j["tags"] if t in client_tags)
    assert set(good_runs) == client_tags  # every job got a good run on the service
    retries = sum(j.retries for j in job_set.managed_jobs())
    assert retries > 0
    assert f"Retries: {retries}" in report
    assert any(f"(retries: {n})" in report for n in range(1, 10))


_CHILD = textwrap.dedent("""
    import sys, time
    from qiskit import QuantumCircuit
    from qjm_tui import JobManager
    from qjm_tui.config import Config

    store, spec = sys.argv[1], sys.argv[2]
    circuits = []
    for i in range(12):
        qc = QuantumCircuit(3, 3, name=f"c{i}")
        for q in range(3):
            if ((i % 8) >> q) & 1:
                qc.x(q)
        qc.measure(range(3), range(3))
        circuits.append(qc)
    jm = JobManager(store, config=Config(executor="threads"))
    job_set = jm.run(circuits, backend=spec, shots=32, max_experiments_per_job=2)
    while sum(1 for j in jm.store.jobs(job_set.job_set_id()) if j.backend_job_id) < 3:
        time.sleep(0.02)
    print(job_set.job_set_id(), flush=True)
    time.sleep(600)
""")


def test_reattach_after_the_client_is_killed(tmp_path: Path) -> None:
    """A killed client's jobs are reattached by id in a new process, not submitted again."""
    store = tmp_path / "s.sqlite"
    spec = f"emulator:dir={tmp_path / 'svc'},latency=0.01,queue=3,run=0.2,max_jobs=3,advertise=1"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(store), spec],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        job_set_id = child.stdout.readline().strip()
        assert job_set_id, "the child did not start its job set"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    emu = EmulatorBackend(spec.split(":", 1)[1])
    before = [j for j in emu.jobs()]
    assert len(before) == 3 and all(j["client_pid"] == child.pid for j in before)

    with JobManager(store, config=Config(executor="threads")) as jm:
        job_set = jm.retrieve_job_set(job_set_id)
        assert job_set.state() == "interrupted"
        job_set.resume()
        assert job_set.wait(timeout=60) == "done"
        results = job_set.results()
        for i in range(12):
            assert results.get_counts(f"c{i}") == {format(i % 8, "03b"): 32}
        client_tags = [j.client_tag for j in jm.store.jobs(job_set_id)]

    jobs = emu.jobs()
    assert len(jobs) == 6  # 3 reattached + 3 never submitted before the kill: no duplicates
    assert [j["id"] for j in jobs[:3]] == [j["id"] for j in before]
    assert all(j["client_pid"] == os.getpid() for j in jobs[3:])
    per_tag = Counter(tag for j in jobs for tag in j["tags"] if tag in client_tags)
    assert sorted(per_tag.values()) == [1] * 6


def test_a_stalled_device_runs_later_jobs_forever_and_a_seed_repeats_job_ids(tmp_path: Path) -> None:
    def run_once(directory: Path) -> tuple[list[str], list[str]]:
        emu = EmulatorBackend(f"dir={directory},latency=0,queue=0,run=0,seed=7,stall=2,max_jobs=0")
        payload = JobPayload(circuits=[basis_state("01")], shots=8, run_options={}, tags=("t",))
        ids = [emu.submit(payload) for _ in range(3)]
        time.sleep(0.05)
        return ids, [emu.status(i).state for i in ids]

    ids, states = run_once(tmp_path / "a")
    assert states[:2] == [JobStatus.DONE, JobStatus.DONE]
    assert states[2] == JobStatus.RUNNING, "the third job stalls"
    again, _ = run_once(tmp_path / "b")
    assert again == ids, "with a seed, a fresh directory gives the same job ids"
