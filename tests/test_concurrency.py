"""Safe concurrency: one owner per job set (claim is a compare-and-set), a store many processes
can create at once, and a manager that can stop waiting (close with a timeout) or let go of its
work (detach) without cancelling it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from qjm_tui import JobManager
from qjm_tui.backends.emulator import EmulatorBackend
from qjm_tui.config import Config
from qjm_tui.core.errors import JobManagerInvalidStateError, JobManagerTimeoutError
from qjm_tui.core.status import SetState
from qjm_tui.core.store import Store
from tests.conftest import bell

REPO = Path(__file__).resolve().parents[1]

RESUMER = """
import json, sys, time
from pathlib import Path
from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.errors import JobManagerInvalidStateError

store, set_id, ready, go = sys.argv[1:5]
manager = JobManager(store, config=Config(executor="threads"))
job_set = manager.retrieve_job_set(set_id)
job_set.backend_spec()
import qjm_tui.backends.emulator, qiskit_aer  # loaded before the start line, so both start together
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.005)
try:
    job_set.resume()
except JobManagerInvalidStateError as exc:
    print(json.dumps({"refused": str(exc)}))
    sys.exit(0)
print(json.dumps({"ran": job_set.wait(120)}))
manager.close()
"""


def test_two_processes_resume_one_interrupted_set_and_only_one_runs_it(tmp_path: Path) -> None:
    spec = f"emulator:dir={tmp_path / 'service'},latency=0.02,queue=0.3,run=0.1,max_jobs=3,seed=1"
    store = tmp_path / "store.sqlite"
    first = JobManager(store, config=Config(executor="threads"))
    job_set = first.run([bell(f"b{i}") for i in range(12)], backend=spec, max_experiments_per_job=1,
                        shots=50)
    first.detach()  # this process lets the set go: it reads interrupted, its jobs stay with the service
    assert JobManager(store, config=Config(executor="threads")).retrieve_job_set(
        job_set.job_set_id()).state() == SetState.INTERRUPTED

    go = tmp_path / "go"
    procs = []
    for n in range(2):
        ready = tmp_path / f"ready-{n}"
        procs.append((ready, subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RESUMER), str(store), job_set.job_set_id(),
             str(ready), str(go)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)))
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready, _ in procs):
        assert time.monotonic() < deadline and all(p.poll() is None for _, p in procs), \
            [p.communicate() for _, p in procs if p.poll() is not None]
        time.sleep(0.01)
    go.touch()
    answers = []
    for _, proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))

    ran = [a for a in answers if "ran" in a]
    refused = [a["refused"] for a in answers if "refused" in a]
    assert len(ran) == 1 and len(refused) == 1, answers
    assert ran[0]["ran"] == SetState.DONE
    winner = [p.pid for _, p in procs][answers.index(ran[0])]
    assert f"process {winner} on " in refused[0]

    # What the service saw: every job accepted exactly once, across the first process and the resume.
    accepted = Counter(tag for e in EmulatorBackend(f"dir={tmp_path / 'service'}").submissions()
                       if e["kind"] == "accepted" for tag in e["tags"] if tag.startswith("qjm:"))
    assert set(accepted) == {f"qjm:{job_set.job_set_id()}:{i}" for i in range(12)}
    assert set(accepted.values()) == {1}, accepted
    results = JobManager(store, config=Config(executor="threads")).retrieve_job_set(
        job_set.job_set_id()).results(partial=True)
    assert all(sum(results.get_counts(i).values()) == 50 for i in range(12))


def test_two_threads_resume_one_set_and_only_one_runs_it(tmp_path: Path) -> None:
    spec = f"emulator:dir={tmp_path / 'service'},latency=0.02,queue=0.2,run=0.05,max_jobs=2"
    store = tmp_path / "store.sqlite"
    first = JobManager(store, config=Config(executor="threads"))
    set_id = first.run([bell(f"b{i}") for i in range(6)], backend=spec, max_experiments_per_job=1,
                       shots=20).job_set_id()
    first.detach()
    manager = JobManager(store, config=Config(executor="threads"))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def resume() -> None:
        job_set = manager.retrieve_job_set(set_id)
        barrier.wait()
        try:
            job_set.resume()
            outcomes.append("ran")
        except JobManagerInvalidStateError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes)[-1] == "ran" and outcomes.count("ran") == 1, outcomes
    refusal = next(o for o in outcomes if o != "ran")
    assert f"pid {os.getpid()} on " in refusal
    assert manager.retrieve_job_set(set_id).wait(60) == SetState.DONE
    accepted = Counter(tag for e in EmulatorBackend(f"dir={tmp_path / 'service'}").submissions()
                       if e["kind"] == "accepted" for tag in e["tags"] if tag.startswith("qjm:"))
    assert len(accepted) == 6 and set(accepted.values()) == {1}, accepted
    manager.close()


OPENER = """
import sys, time
from pathlib import Path
from qjm_tui.core.store import Store
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
store = Store(sys.argv[1])
print(store.change_seq())
"""


def test_four_processes_create_one_fresh_store_at_once(tmp_path: Path) -> None:
    for attempt in range(3):
        path, go = tmp_path / f"fresh-{attempt}.sqlite", tmp_path / f"go-{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(path), str(go)], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        time.sleep(1.0)  # every process is waiting on the start line
        go.touch()
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-2000:]
            assert out.strip() == "0"
        assert Store(path).change_seq() == 0


def test_close_with_a_timeout_says_which_sets_still_run(tmp_path: Path) -> None:
    spec = f"emulator:dir={tmp_path / 'service'},queue=30,max_jobs=1"
    manager = JobManager(tmp_path / "store.sqlite", config=Config(executor="threads"))
    job_set = manager.run([bell()], backend=spec, shots=10)
    started = time.monotonic()
    with pytest.raises(JobManagerTimeoutError, match=job_set.job_set_id()):
        manager.close(timeout=0.3)
    assert time.monotonic() - started < 5
    assert job_set.state() == SetState.RUNNING  # still going, the store still open
    manager.close(cancel=True, timeout=30)
    assert manager.active() == []


def test_detach_leaves_work_running_and_the_set_resumable(tmp_path: Path) -> None:
    service = tmp_path / "service"
    spec = f"emulator:dir={service},latency=0.01,queue=0.5,run=0.1,max_jobs=4"
    store = tmp_path / "store.sqlite"
    manager = JobManager(store, config=Config(executor="threads"))
    job_set = manager.run([bell(f"b{i}") for i in range(8)], backend=spec, max_experiments_per_job=1,
                          shots=20)
    time.sleep(0.2)
    started = time.monotonic()
    manager.detach()
    assert time.monotonic() - started < 5
    emulator = EmulatorBackend(f"dir={service}")
    assert not any(e["kind"] == "cancelled" for e in emulator.submissions())  # nothing was cancelled
    later = JobManager(store, config=Config(executor="threads"))
    again = later.retrieve_job_set(job_set.job_set_id())
    assert again.state() == SetState.INTERRUPTED
    assert again.resume().wait(60) == SetState.DONE
    accepted = Counter(tag for e in emulator.submissions() if e["kind"] == "accepted"
                       for tag in e["tags"] if tag.startswith("qjm:"))
    assert len(accepted) == 8 and set(accepted.values()) == {1}, accepted
    later.close()


def test_closing_waits_for_a_write_under_way_in_another_thread(tmp_path: Path) -> None:
    """Closing a connection in the middle of its COMMIT crashes SQLite (the process dies); a
    store closed while another thread writes waits for that write, which lands whole."""
    store = Store(tmp_path / "qjm.sqlite")
    store.create_job_set(job_set_id="s", name="before", tags=[], backend="aer", shots=1,
                         run_options={}, experiment_names=["c0"], jobs=[(0, 0, 1, 1, 0)],
                         circuit_blocks=[])
    inside = threading.Event()
    go_on = threading.Event()

    def slow_rename() -> None:
        with store._change() as (tx, seq):
            tx.execute("UPDATE job_sets SET name = ?, seq = ? WHERE id = 's'", ("after", seq))
            inside.set()
            go_on.wait(10)

    writer = threading.Thread(target=slow_rename)
    writer.start()
    assert inside.wait(10)
    closing = threading.Thread(target=store.close)
    closing.start()
    closing.join(0.3)
    assert closing.is_alive(), "close() waits while the write is under way"
    go_on.set()
    writer.join(10)
    closing.join(10)
    assert not closing.is_alive()
    assert Store(tmp_path / "qjm.sqlite").get_job_set("s").name == "after"
