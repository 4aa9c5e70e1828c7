"""Runners that die or are told to stop: `qjm wait` on a dead runner, SIGTERM and SIGHUP, and
the local pool's worker processes, which must not outlive the process that started them.

Every case runs the real command line in its own process and sends real signals.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOOD_QASM = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nx q[0];\nmeasure q -> c;\n'


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, QJM_HOME=str(home), QJM_CONFIG=str(home.parent / "no-config.toml"),
               PYTHONPATH=str(REPO))
    for var in ("QJM_BACKEND", "QJM_SHOTS", "QJM_EXECUTOR"):
        env.pop(var, None)
    env.update(extra)
    return env


def qjm(home: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qjm_tui.cli", *argv], env=env_for(home, **extra),
                          capture_output=True, text=True, timeout=180)


def store_has(home: Path, query: str, timeout: float = 60) -> None:
    """Wait until ``query`` (a count) is non-zero in the store (which may not exist yet, or
    be half made)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with sqlite3.connect(f"file:{home / 'qjm.sqlite'}?mode=ro", uri=True, timeout=30) as db:
                if db.execute(query).fetchone()[0]:
                    return
        except sqlite3.Error:
            pass  # not made yet
        assert time.monotonic() < deadline, f"never true: {query}"
        time.sleep(0.05)


def gone(pid: int, timeout: float = 15.0) -> bool:
    """Whether the process ended (a zombie counts as ended) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def slow_emulator(tmp_path: Path, run: float = 2.0) -> str:
    return (f"emulator:dir={tmp_path / 'service'},latency=0.01,queue=0.2,run={run},max_jobs=2,"
            "max_per_job=1")


def circuit_file(tmp_path: Path) -> Path:
    path = tmp_path / "one.qasm"
    path.write_text(GOOD_QASM)
    return path


def test_wait_on_a_set_whose_runner_died_says_interrupted_and_how_to_resume(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = circuit_file(tmp_path)
    started = qjm(home, "run", str(source), str(source), str(source), "-b", slow_emulator(tmp_path),
                  "--detach", "--json")
    assert started.returncode == 0, started.stderr
    report = json.loads(started.stdout)
    set_id, pid = report["id"], report["pid"]
    os.kill(pid, signal.SIGKILL)
    assert gone(pid)

    waited = qjm(home, "wait", set_id, "--timeout", "60")
    # Before: exit 2, "opened read-only; this change needs a writable store".
    assert waited.returncode == 1, waited.stderr
    assert "interrupted" in waited.stderr and f"`qjm resume {set_id}`" in waited.stderr, waited.stderr
    assert "read-only" not in waited.stderr
    resumed = qjm(home, "resume", set_id, "-q")
    assert resumed.returncode == 0, resumed.stderr


# -- the local pool's workers ----------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found.update(children)
        frontier.extend(children)
    return found


def heavy_circuits(tmp_path: Path) -> Path:
    """Circuits that keep the pool's workers busy for a while (12 qubits, many shots)."""
    from qiskit import QuantumCircuit, qpy

    circuit = QuantumCircuit(12, 12)
    circuit.h(range(12))
    for q in range(11):
        circuit.cx(q, q + 1)
    circuit.measure(range(12), range(12))
    path = tmp_path / "heavy.qpy"
    with open(path, "wb") as fh:
        qpy.dump([circuit] * 200, fh)
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_pool_workers_die_with_a_killed_run(tmp_path: Path, sig: signal.Signals) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "qjm_tui.cli", "run", str(heavy_circuits(tmp_path)),
                             "-b", "aer", "--shots", "20000", "-q"], env=env_for(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    below: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        # The resource tracker, the forkserver and one worker per core.
        while len(below) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            below = descendants(proc.pid)
        assert len(below) >= 4, f"the pool did not start: {below}"
        store_has(home, "SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
        below = descendants(proc.pid)
        os.kill(proc.pid, sig)
        proc.wait(60)
        # Before: every worker (and the forkserver) lived on, re-parented to init.
        left = {pid for pid in below if not gone(pid, timeout=15)}
        assert not left, f"still running after the run was killed: {sorted(left)}"
    finally:
        for pid in [proc.pid, *below]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)


# -- SIGTERM and SIGHUP ----------------------------------------------------------------------


def _wait_for_submissions(home: Path, timeout: float = 60) -> None:
    store_has(home, "SELECT COUNT(*) FROM jobs WHERE backend_job_id IS NOT NULL", timeout)


@pytest.mark.parametrize(("detached", "sig"), [
    (False, signal.SIGTERM),
    (True, signal.SIGHUP),
    pytest.param(False, signal.SIGHUP, marks=pytest.mark.slow),
    pytest.param(True, signal.SIGTERM, marks=pytest.mark.slow),
], ids=["foreground-SIGTERM", "detached-SIGHUP", "foreground-SIGHUP", "detached-SIGTERM"])
def test_sigterm_and_sighup_leave_the_set_interrupted_and_say_so(
        tmp_path: Path, sig: signal.Signals, detached: bool) -> None:
    from qjm_tui.backends.emulator import EmulatorBackend
    from qjm_tui.core.store import Store
    from tests.conftest import executions_per_chunk

    home = tmp_path / "home"
    source = circuit_file(tmp_path)
    argv = [sys.executable, "-m", "qjm_tui.cli", "run", *[str(source)] * 6, "-b",
            slow_emulator(tmp_path, run=0.6), "--shots", "50"]
    if detached:
        started = qjm(home, *argv[3:], "--detach", "--json")
        assert started.returncode == 0, started.stderr
        report = json.loads(started.stdout)
        set_id, pid = report["id"], report["pid"]
        _wait_for_submissions(home)
        os.kill(pid, sig)
        assert gone(pid, timeout=60)
        stderr = ""
    else:
        proc = subprocess.Popen(argv, env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            _wait_for_submissions(home)
            os.kill(proc.pid, sig)
            out, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        set_id = out.split()[0]
        # Before: killed by the signal (exit -15 / -1 here, 143 / 129 in a shell), nothing said.
        assert proc.returncode == 128 + sig, (proc.returncode, stderr)
    said = f"{sig.name}: job set {set_id} is interrupted"
    assert said in stderr or detached, stderr
    log = (home / "qjm.log").read_text()
    assert said in log and f"`qjm resume {set_id}`" in log, log[-2000:]

    listed = json.loads(qjm(home, "ls", "--json").stdout)
    assert [s["state"] for s in listed] == ["interrupted"]
    resumed = qjm(home, "resume", set_id, "-q")
    assert resumed.returncode == 0, resumed.stderr
    store = Store(home / "qjm.sqlite", read_only=True)
    results, jobs = store.results(set_id), store.jobs(set_id)
    store.close()
    assert sorted(results) == list(range(6))
    assert all(parts[0]["data"]["counts"] == {"0x1": 50} for parts in results.values())
    emulator = EmulatorBackend(f"dir={tmp_path / 'service'}")
    runs = executions_per_chunk(emulator.jobs(), jobs)
    emulator.close()
    assert runs and max(runs.values()) == 1, "no chunk ran twice"
