"""qjm's ``ibm-runtime`` backend through the unmodified qiskit-ibm-runtime client, against the
local IBM Quantum service (:mod:`qjm_tui.testing.ibm_service`): sign-in, instance search,
batches, sessions, pacing, usage, and every scripted fault ending in its documented state with
nothing lost and nothing run twice. The service's own record of what ran is the witness.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from qiskit import qpy

from qjm_tui.core.errors import JobSetStopped
from qjm_tui.testing.ibm_service import IBMQuantumService, LoggedRequest
from tests.ibm_double import (
    DEVICE,
    SPEC,
    StartService,
    assert_done_once,
    basis,
    manager,
    one_circuit_jobs,
    start_ibm_fixture,  # noqa: F401  (the start_ibm fixture)
)

REPO = Path(__file__).resolve().parents[1]


def _accepted(ibm) -> list[str]:  # noqa: ANN001
    return [r.line() for r in ibm.requests() if r.method == "POST" and r.path == "/api/v1/jobs"
            and r.status == 200]


# -- the happy path --------------------------------------------------------------------------


def test_a_set_runs_in_one_batch_closed_after_the_last_submission(start_ibm: StartService,
                                                                  tmp_path: Path) -> None:
    ibm = start_ibm(job_seconds=0.1)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = jm.run([basis(i) for i in range(6)], backend=SPEC, transpile=True, shots=200,
                         max_experiments_per_job=2, job_tags=["through-the-double"])
        assert job_set.wait(120) == "done"
        set_id = job_set.job_set_id()
        assert_done_once(ibm, jm, set_id)
        jobs = jm.store.jobs(set_id)
        [batch] = ibm.sessions()
        assert batch["mode"] == "batch" and batch["state"] == "closed"
        assert {(j.session_mode, j.session_id) for j in jobs} == {("batch", batch["id"])}
        # Usage as the service reported it, per job and for the set, and the estimate before.
        assert [j.usage for j in jobs] == [0.1] * 3
        # asked while a job waits or runs; a job already done at its first check has none
        assert {j.usage_estimate for j in jobs} <= {0.1, None}
        summary = jm.store.summaries([set_id])[0]
        assert summary.usage == pytest.approx(0.3) and summary.usage_estimate is None
        report = job_set.report()
        assert "QPU usage: 0.3 s" in report and f"batch {batch['id']}" in report
    lines = ibm.request_lines("quantum.")
    posts = [i for i, line in enumerate(lines) if line.startswith("POST /api/v1/jobs ->")]
    closing = [i for i, line in enumerate(lines) if line.startswith(f"PATCH /api/v1/sessions/{batch['id']}")]
    assert len(posts) == 3 and closing and closing[0] > posts[-1], lines
    tags = {tuple(j["tags"]) for j in ibm.jobs()}
    assert all("through-the-double" in t for t in tags)


@pytest.mark.parametrize("mode", ["job", "session"])
def test_job_and_session_modes(start_ibm: StartService, tmp_path: Path, mode: str) -> None:
    ibm = start_ibm()
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = jm.run([basis(i) for i in range(4)], backend=f"{SPEC},mode={mode}", transpile=True,
                         shots=100, max_experiments_per_job=2)
        assert job_set.wait(120) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
        jobs = jm.store.jobs(job_set.job_set_id())
    if mode == "job":
        assert ibm.sessions() == [] and {j.session_id for j in jobs} == {None}
    else:
        [session] = ibm.sessions()
        assert session["mode"] == "dedicated" and session["state"] == "closed"
        assert {(j.session_mode, j.session_id) for j in jobs} == {("session", session["id"])}


def test_two_hundred_circuits_split_by_the_device_and_paced_by_three_pending_jobs_cli(
        start_ibm: StartService, tmp_path: Path) -> None:
    """``qjm run --backend ibm-runtime:NAME --transpile`` in a fresh process: 200 circuits split
    by the device's published limit (20 per job), at most 3 jobs pending at the service."""
    ibm = start_ibm(max_pending_jobs=3, max_experiments=20, job_seconds=0.1)
    circuits = tmp_path / "c.qpy"
    with open(circuits, "wb") as fh:
        qpy.dump([basis(i) for i in range(200)], fh)
    # The runtime's own logging at DEBUG: its lines go to qjm.log, never with a token in them.
    env = {**os.environ, "PYTHONPATH": str(REPO), "QISKIT_IBM_RUNTIME_LOG_LEVEL": "DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "qjm_tui.cli", "run", str(circuits), "--backend", SPEC,
                           "--transpile", "--shots", "100", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["state"] == "done" and data["jobs"]["total"] == 10 and data["experiments_done"] == 200
    assert data["usage"]["quantum_seconds"] == pytest.approx(1.0)
    home = Path(os.environ["QJM_HOME"])
    with manager(home / "qjm.sqlite") as jm:
        assert_done_once(ibm, jm, data["id"])
        shown = subprocess.run([sys.executable, "-m", "qjm_tui.cli", "show", data["id"], "--json"],
                               capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        jobs = json.loads(shown.stdout)["job_list"]
        assert {j["session"]["mode"] for j in jobs} == {"batch"} and all(j["usage"]["quantum_seconds"]
                                                                         for j in jobs)
    pending = _max_pending(ibm)
    assert pending <= 3, pending
    assert ibm.refusals()["limit"] <= 10, ibm.refusals()
    log = (home / "qjm.log").read_text()
    assert "qiskit_ibm_runtime" in log and " DEBUG: " in log
    secrets = ibm.secret_values()
    assert len(secrets) >= 2  # the API key and the tokens the client was given
    for text in (proc.stdout, proc.stderr, shown.stdout, shown.stderr):
        assert not any(secret in text for secret in secrets)
    for path in home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(secret.encode() in content for secret in secrets), path


def _max_pending(ibm) -> int:  # noqa: ANN001
    """The most jobs the service held pending at once, from its record."""
    events = []
    for job in ibm.jobs():
        events.append((job["created"], 1))
    for record in ibm.jobs():
        finished = record.get("finished")
        if finished is not None:
            events.append((finished, -1))
    level = peak = 0
    for _, step in sorted(events):
        level += step
        peak = max(peak, level)
    return peak


def test_two_hundred_circuits_through_the_library(start_ibm: StartService, tmp_path: Path) -> None:
    ibm = start_ibm(max_pending_jobs=3, max_experiments=20, job_seconds=0.1)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = jm.run([basis(i) for i in range(200)], backend=SPEC, transpile=True, shots=100)
        assert job_set.wait(300) == "done"
        assert len(jm.store.jobs(job_set.job_set_id())) == 10
        assert_done_once(ibm, jm, job_set.job_set_id())
    assert _max_pending(ibm) <= 3


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["429", "400"])
def test_the_pending_jobs_limit_in_either_wording_paces_and_never_fails(
        start_ibm: StartService, tmp_path: Path, answer: str) -> None:
    """The older wording (HTTP 400, "Error code: 3458.", no "limit of") failed the set before."""
    ibm = start_ibm(max_pending_jobs=2, limit_answer=answer, job_seconds=1.0)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 4)
        assert job_set.wait(120) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
        assert job_set.error_messages() is None
    assert ibm.refusals()["limit"] >= 1 and _max_pending(ibm) <= 2


def _when_accepted(ibm: IBMQuantumService, count: int, action: Callable[[str], None]) -> None:
    """Call ``action(job_id)`` once, right after the service accepted its ``count``-th job."""
    seen: list[str] = []

    def hook(entry: LoggedRequest) -> None:
        if entry.note.startswith("accepted "):
            seen.append(entry.note.split()[1])
            if len(seen) == count:
                action(seen[-1])

    ibm.on_request = hook


def test_the_quota_used_up_stops_submitting_keeps_what_finished_and_resumes(
        start_ibm: StartService, tmp_path: Path) -> None:
    ibm = start_ibm(max_pending_jobs=2, job_seconds=0.1, quota_seconds=0.25)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 6)
        set_id = job_set.job_set_id()
        with pytest.raises(JobSetStopped) as stopped:
            job_set.wait(60)
        message = str(stopped.value)
        assert "usage quota is used up (error code 4317" in message and f"qjm resume {set_id}" in message
        refused = ibm.refusals()["quota"]
        # Refused once (or once for each submission already under way): not tried again.
        assert job_set.state() == "interrupted" and 1 <= refused <= 2
        jobs = jm.store.jobs(set_id)
        accepted = {j["tags"][-1] for j in ibm.jobs()}
        # Every job the service took finished and is kept; the others were never submitted.
        assert {j.client_tag for j in jobs if j.status == "done"} == accepted and len(accepted) >= 3
        assert all(j.status == "pending" and j.attempts == 0 and j.backend_job_id is None
                   for j in jobs if j.client_tag not in accepted)
        kept = job_set.results(wait=False)
        assert all(kept.get_counts(j.start) for j in jobs if j.status == "done")
        assert job_set.report(detailed=False).count("usage quota is used up") == 1
        assert jm.store.summaries([set_id])[0].stop_reason == jm.store.get_job_set(set_id).stop_reason
        ibm.grant_quota()
        assert job_set.resume().wait(60) == "done"
        assert_done_once(ibm, jm, set_id)
        assert jm.store.get_job_set(set_id).stop_reason is None
    assert ibm.refusals()["quota"] == refused
    assert "used up its monthly usage quota" in message and '{"error"' not in message


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_stop_the_set_and_a_resume_reattaches(start_ibm: StartService, tmp_path: Path,
                                                                  status: int) -> None:
    ibm = start_ibm(job_seconds=0.5)
    _when_accepted(ibm, 2, lambda _job: ibm.refuse_credentials(status))
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 4)
        set_id = job_set.job_set_id()
        with pytest.raises(JobSetStopped) as stopped:
            job_set.wait(60)
        words = "no longer accepts the credentials" if status == 401 else "refuses this account access"
        assert words in str(stopped.value) and f"HTTP {status}" in str(stopped.value)
        held = [j for j in jm.store.jobs(set_id) if j.backend_job_id]
        assert len(held) == len(ibm.jobs()) >= 2
        ibm.refuse_credentials(None)
        assert job_set.resume().wait(60) == "done"
        assert_done_once(ibm, jm, set_id)
    assert len(ibm.jobs()) == 4  # nothing was submitted twice


def test_a_submission_that_signs_in_after_another_thread_saw_the_token_refused_stops_the_set(
        start_ibm: StartService) -> None:
    """The race a set meets when its credentials are withdrawn: one thread sees the 401 and drops
    the service; another thread's submission then signs in with the refused credentials, and the
    client, finding no instance, says the device does not exist. That is the account refused
    (stop, resume later), never the job failed for good."""
    from qiskit import transpile

    from qjm_tui.backends.ibm_runtime import IBMRuntimeBackend
    from qjm_tui.core.errors import AccessRefused
    from qjm_tui.core.ports import JobPayload

    ibm = start_ibm()
    backend = IBMRuntimeBackend(DEVICE, mode="job", poll_interval=0.05)
    circuit = transpile(basis(1), backend.target())
    backend.submit(JobPayload([circuit], 10, {}, ["first"]))
    ibm.refuse_credentials(401)
    backend._sign_in_again(backend._epoch)  # what the thread that saw the 401 does
    with pytest.raises(AccessRefused) as refused:
        backend.submit(JobPayload([circuit], 10, {}, ["second"]))
    assert "signing in to IBM Quantum again failed" in str(refused.value)
    ibm.refuse_credentials(None)
    backend.submit(JobPayload([circuit], 10, {}, ["third"]))  # a resume goes on
    assert [j["tags"][-1] for j in ibm.jobs()] == ["first", "third"]


def test_tokens_that_expire_in_the_middle_of_a_set(start_ibm: StartService, tmp_path: Path) -> None:
    """Tokens live 12 s (the client takes a token for expired 10 s before its end, so it fetches
    a new one every 2 s), and the service also drops every token in the middle of the set
    (401): qjm signs in again and goes on."""
    ibm = start_ibm(token_seconds=12, job_seconds=0.5, max_pending_jobs=2)
    _when_accepted(ibm, 2, lambda _job: ibm.revoke_tokens())
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 6)
        assert job_set.wait(60) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
    log = ibm.requests()
    assert any(r.status == 401 and r.note == "token expired" for r in log)
    assert sum(r.note == "token issued" for r in log) >= 4  # sign-in, the batch's client, again, refresh
    assert len(ibm.jobs()) == 6


def test_429_answers_with_and_without_retry_after(start_ibm: StartService, tmp_path: Path) -> None:
    ibm = start_ibm()
    status_path = "/api/v1/jobs/" + "?" * 20  # a job's own path (ids are 20 characters)
    ibm.fail("POST", "/api/v1/jobs", 429, body={"error": {"message": "Too many requests", "code": 1001}})
    ibm.fail("GET", "/api/v1/jobs/*/results", 429, retry_after=1)
    ibm.fail("GET", status_path, 429, skip=1)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 3)
        assert job_set.wait(60) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
    log = [r for r in ibm.requests() if "quantum." in r.host]
    assert sum(r.status == 429 for r in log) == 3 and len(ibm.jobs()) == 3

    def asked_again(refused: LoggedRequest) -> float:
        return next(r.at for r in log if r.at > refused.at and r.path == refused.path) - refused.at

    refused = [r for r in log if r.status == 429 and r.method == "GET"]
    with_header = next(r for r in refused if r.path.endswith("/results"))
    without = next(r for r in refused if not r.path.endswith("/results"))
    assert asked_again(with_header) >= 0.9  # the client waited as told (1 s) and asked again itself
    assert asked_again(without) < 0.9  # the client gave up; qjm asked at its next check (0.05 s)


def test_bursts_of_5xx_and_connection_resets(start_ibm: StartService, tmp_path: Path) -> None:
    """Among them a submission whose answer is lost after the service created the job: qjm
    finds the job by its tag and follows it instead of submitting it again."""
    ibm = start_ibm()
    ibm.fail("POST", "/api/v1/jobs", 500, times=2)  # the client repeats a POST on a 5xx itself
    ibm.reset("POST", "/api/v1/jobs", after=True)  # created, answer cut off: not repeated by the client
    ibm.fail("GET", "/api/v1/jobs/*", 502, times=2, skip=2)
    ibm.reset("GET", "/api/v1/jobs/*", times=2, skip=6)
    ibm.fail("GET", "/api/v1/backends/*/status", 503)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 4)
        assert job_set.wait(60) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
    assert len(ibm.jobs()) == 4
    notes = [r.note for r in ibm.requests()]
    assert any("answer cut off" in n for n in notes) and notes.count("connection reset") == 2


def test_very_slow_answers(start_ibm: StartService, tmp_path: Path) -> None:
    ibm = start_ibm()
    ibm.slow("POST", "/api/v1/jobs", 0.8, times=2)
    ibm.slow("GET", "/api/v1/jobs/*", 0.4, times=3)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 3)
        assert job_set.wait(60) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
    assert len(ibm.jobs()) == 3


def test_a_job_that_fails_on_the_service_says_why(start_ibm: StartService, tmp_path: Path) -> None:
    ibm = start_ibm()
    ibm.fail_next_jobs(1, reason="Error in the job's circuits: qubit 3 is not calibrated", code=1517)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 3)
        assert job_set.wait(60) == "partial"
        messages = job_set.error_messages() or ""
        assert "Error code 1517; Error in the job's circuits: qubit 3 is not calibrated" in messages
        jobs = jm.store.jobs(job_set.job_set_id())
        assert [j.status for j in jobs] == ["failed", "done", "done"] and jobs[0].attempts == 1
    assert len(ibm.jobs()) == 3  # a permanent failure is not submitted again


def test_a_job_the_service_no_longer_knows(start_ibm: StartService, tmp_path: Path) -> None:
    ibm = start_ibm(job_seconds=0.4)
    _when_accepted(ibm, 1, ibm.forget_job)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 3)
        assert job_set.wait(60) == "partial"
        first = jm.store.jobs(job_set.job_set_id())[0]
        assert first.status == "failed" and "404" in (first.last_error or "")
        assert first.backend_job_id in (first.last_error or "")
    assert len(ibm.jobs()) == 3  # not submitted again behind the user's back: `qjm retry` does that


def test_queued_jobs_cancelled_when_the_batch_runs_out_of_time_run_again_in_a_new_batch_once(
        start_ibm: StartService, tmp_path: Path) -> None:
    ibm = start_ibm(parallel_jobs=1, job_seconds=0.5)
    cancelled: list[str] = []
    _when_accepted(ibm, 2, lambda _job: cancelled.extend(ibm.expire_session()))
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 4)
        assert job_set.wait(60) == "done"
        set_id = job_set.job_set_id()
        assert_done_once(ibm, jm, set_id)
        jobs = jm.store.jobs(set_id)
    first, second = ibm.sessions()
    assert first["state"] == "closed" and second["state"] == "closed" and cancelled
    records = {r["id"]: r for r in ibm.jobs()}
    again = {records[i]["tags"][-1] for i in cancelled}
    for job in jobs:
        if job.client_tag in again:
            assert job.retries == 1 and job.session_id == second["id"]
    # Each cancelled job was accepted once more, in the new batch, and nothing else was.
    assert len(records) == 4 + len(cancelled)


def test_a_results_call_that_fails_a_few_times_then_works(start_ibm: StartService, tmp_path: Path) -> None:
    ibm = start_ibm()
    ibm.fail("GET", "/api/v1/jobs/*/results", 500, times=2)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = one_circuit_jobs(jm, 2)
        assert job_set.wait(60) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
    assert [j["results_read"] for j in ibm.jobs()] == [1, 1]
    assert sum("/results -> 500" in line for line in ibm.request_lines()) == 2


@pytest.mark.slow
def test_a_results_call_failing_longer_than_the_client_retries(start_ibm: StartService,
                                                               tmp_path: Path) -> None:
    """Seven failures: the client gives up after its own five retries (about 15 s); qjm asks again."""
    ibm = start_ibm()
    ibm.fail("GET", "/api/v1/jobs/*/results", 500, times=7)
    with manager(tmp_path / "s.sqlite") as jm:
        job_set = jm.run([basis(1)], backend=SPEC, transpile=True, shots=100)
        assert job_set.wait(120) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
    assert sum("/results -> 500" in line for line in ibm.request_lines()) == 7


# -- killed and resumed ----------------------------------------------------------------------

CHILD = """
import sys
from tests.ibm_double import FAST, basis, manager
jm = manager(sys.argv[1])
job_set = jm.run([basis(i) for i in range(int(sys.argv[3]))], backend=sys.argv[2], transpile=True,
                 shots=100, max_experiments_per_job=1)
print(job_set.job_set_id(), flush=True)
job_set.wait(300)
"""


def _run_and_kill(store: Path, jobs: int, when: Callable[[sqlite3.Connection], bool], tmp_path: Path) -> None:
    """Run a set of ``jobs`` jobs in a child process and SIGKILL it once ``when(store)`` holds."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    with open(tmp_path / "child.log", "w") as log:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(store), SPEC, str(jobs)], cwd=REPO,
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if store.exists():
                try:
                    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
                        if when(db):
                            break
                except sqlite3.Error:
                    pass
            time.sleep(0.01)
        assert child.poll() is None, (tmp_path / "child.log").read_text()[-3000:]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()


def test_killed_and_resumed_reattaches_by_recorded_id_in_the_same_batch(start_ibm: StartService,
                                                                        tmp_path: Path) -> None:
    ibm = start_ibm(job_seconds=1.0, max_pending_jobs=2)
    store = tmp_path / "s.sqlite"
    _run_and_kill(store, 5, lambda db: db.execute(
        "SELECT COUNT(*) FROM jobs WHERE backend_job_id IS NOT NULL AND status != 'done'").fetchone()[0] >= 2,
        tmp_path)
    with manager(store) as jm:
        [job_set] = jm.job_sets(whole_store=True)
        assert job_set.state() == "interrupted"
        held = {j.backend_job_id for j in jm.store.jobs(job_set.job_set_id()) if j.backend_job_id}
        assert job_set.resume().wait(60) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
        jobs = jm.store.jobs(job_set.job_set_id())
        assert held <= {j.backend_job_id for j in jobs}  # followed, not submitted again
    assert len(ibm.jobs()) == 5
    [batch] = ibm.sessions()  # the resumed set went on in its batch, which was still open
    assert {j.session_id for j in jobs} == {batch["id"]} and batch["state"] == "closed"


def test_killed_before_its_job_id_was_recorded_finds_the_job_by_tag(start_ibm: StartService,
                                                                    tmp_path: Path) -> None:
    ibm = start_ibm(job_seconds=0.5)
    # The second job is created at once, its answer held back: the process dies before it
    # could write the job's id.
    ibm.slow("POST", "/api/v1/jobs", 30, after=True, skip=1, times=1)
    store = tmp_path / "s.sqlite"
    unrecorded = "SELECT COUNT(*) FROM jobs WHERE status = 'submitting' AND backend_job_id IS NULL"
    _run_and_kill(store, 3, lambda db: len(ibm.jobs()) == 2 and db.execute(unrecorded).fetchone()[0] == 1,
                  tmp_path)
    ibm.clear_faults()
    with manager(store) as jm:
        [job_set] = jm.job_sets(whole_store=True)
        blind = [j for j in jm.store.jobs(job_set.job_set_id()) if j.backend_job_id is None and j.attempts]
        assert len(blind) == 1
        assert job_set.resume().wait(60) == "done"
        assert_done_once(ibm, jm, job_set.job_set_id())
        found = jm.store.job(job_set.job_set_id(), blind[0].index)
        assert found.backend_job_id == ibm.jobs()[1]["id"] and found.attempts == 1
    assert len(ibm.jobs()) == 3


# -- the service double itself, through the client ---------------------------------------------


def test_the_client_pages_through_job_lists_and_reads_back_inputs(start_ibm: StartService) -> None:
    """7 jobs carrying one tag, 3 a page at most: the client's paging (by the service's count)
    gets every one, and a job's inputs decode back to the circuits sent."""
    from qiskit import transpile
    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

    ibm = start_ibm(job_seconds=0.01, max_page=3)
    service = QiskitRuntimeService(**ibm.service_kwargs())
    backend = service.backend(DEVICE)
    circuit = transpile(basis(5), backend)
    sampler = SamplerV2(mode=backend)
    sampler.options.environment.job_tags = ["paged"]
    sent = [sampler.run([circuit], shots=10).job_id() for _ in range(7)]
    found = service.jobs(job_tags=["paged"], limit=None)
    assert sorted(j.job_id() for j in found) == sorted(sent)
    assert [r.path for r in ibm.requests() if r.method == "GET"].count("/api/v1/jobs") == 3  # pages
    again = service.job(sent[0])
    assert again.inputs["pubs"][0][0].name == circuit.name
    assert again.result()[0].data.c.get_counts() == {"101": 10}


def test_a_wrong_api_key_is_a_clear_error_without_the_key(start_ibm: StartService, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from qjm_tui.core.errors import BackendConfigurationError

    start_ibm()
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "not-the-key-0123456789")
    with manager(tmp_path / "s.sqlite") as jm:
        with pytest.raises(BackendConfigurationError) as refused:
            jm.run([basis(1)], backend=SPEC, transpile=True)
    message = str(refused.value)
    assert "cannot connect to IBM Quantum" in message and "not-the-key-0123456789" not in message
    assert jm.store.summaries() == []  # nothing stored


def test_the_app_shows_each_job_s_batch_and_usage() -> None:
    from qjm_tui.core.store import JobRow
    from qjm_tui.tui.grid import job_details

    job = JobRow("s", 3, 6, 8, 100, 0, "done", "d1", "qjm:s:3", 1, 0, None, 1.0, 2.0, 2.0,
                 session_id="b7", session_mode="batch", usage=0.4, usage_estimate=0.5)
    assert "batch b7 · QPU 0.4 s" in job_details(job, 3.0, {"done": "#"}).plain
