"""The store's health and privacy: a damaged store is refused and recovered by `qjm doctor`,
the store and log are private, and a request refused up front leaves nothing on disk.

Each case runs the real command line in a fresh process.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qiskit import QuantumCircuit, qpy

from qjm_tui import JobManager
from qjm_tui.config import Config
from tests.conftest import basis_state

REPO = Path(__file__).resolve().parents[1]
GOOD_QASM = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nx q[0];\nmeasure q -> c;\n'


def qjm(home: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QJM_HOME=str(home), QJM_CONFIG=str(home.parent / "no-config.toml"),
               PYTHONPATH=str(REPO), QJM_EXECUTOR="threads")
    for var in ("QJM_BACKEND", "QJM_SHOTS"):
        env.pop(var, None)
    env.update(extra)
    return subprocess.run([sys.executable, "-m", "qjm_tui.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=180)


def digest(path: Path) -> dict[str, str]:
    """The SHA-256 of the store file and of its write-ahead log, if any."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (path, Path(f"{path}-wal")) if p.exists()}


# -- a damaged store -------------------------------------------------------------------------


def test_doctor_recovers_what_can_be_read_and_leaves_the_damaged_store_unchanged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = home / "qjm.sqlite"
    with JobManager(store, config=Config(executor="threads")) as manager:
        for k in range(4):
            manager.run([basis_state(format(i % 8, "03b"), f"c{i}") for i in range(120)], backend="aer",
                        shots=16, max_experiments_per_job=10, name=f"set{k}").wait(120)
    assert qjm(home, "doctor").returncode == 0, "a sound store is said to be sound"

    # Random bytes in the middle of the file, as a failing disk or a bad copy leaves them.
    size = store.stat().st_size
    with open(store, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(random.Random(7).randbytes(8192))
    before = digest(store)

    listed = qjm(home, "run", str(_qasm(tmp_path)), "-b", "aer")
    assert listed.returncode == 2 and "the store is damaged" in listed.stderr, listed.stderr
    assert listed.stderr.count("\n") == 1 and "qjm doctor" in listed.stderr
    assert digest(store) == before, "nothing was written to the damaged store"

    output = tmp_path / "recovered.sqlite"
    checked = qjm(home, "doctor", "--output", str(output), "--json")
    # Before: there was no doctor, and `show` on such a store was an internal error.
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert not report["sound"] and report["problems"]
    recovered = report["recovered"]
    assert recovered["copied"]["job_sets"] == 4 and recovered["copied"]["jobs"] > 0
    assert recovered["copied"].get("job_history", 0) > 0, "each job's past statuses are kept too"
    assert digest(store) == before, "the damaged store is left exactly as it was"
    assert sorted(p.name for p in home.iterdir()) == ["qjm.sqlite"], "no working copy is left behind"
    assert stat.S_IMODE(output.stat().st_mode) == 0o600

    new_home = tmp_path / "recovered-home"
    new_home.mkdir(mode=0o700)
    (new_home / "qjm.sqlite").write_bytes(output.read_bytes())
    assert qjm(new_home, "doctor").returncode == 0
    sets = json.loads(qjm(new_home, "ls", "--json").stdout)
    assert len(sets) == 4
    # A finished job whose results were lost is failed, so retry runs it again and the set
    # ends with every result.
    damaged = [s for s in sets if s["state"] != "done"]
    assert len(damaged) >= 1 and recovered["results_lost"] > 0, (sets, recovered)
    retried = qjm(new_home, "retry", damaged[0]["id"], "-q")
    assert retried.returncode == 0, retried.stderr
    results = json.loads(qjm(new_home, "results", damaged[0]["id"], "--json").stdout)
    assert all(item["counts"] == {format(item["index"] % 8, "03b"): 16} for item in results["experiments"])


def _qasm(folder: Path) -> Path:
    path = folder / "one.qasm"
    path.write_text(GOOD_QASM)
    return path


# -- private files ---------------------------------------------------------------------------


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder others may pass through (pytest's own are private, which would hide a loose
    store), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="qjm-open-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_the_store_and_log_are_private_and_a_loose_store_is_warned_about(open_folder: Path) -> None:
    home = open_folder / "home"
    source = _qasm(open_folder)
    ran = qjm(home, "run", str(source), "-b", "aer", "-q")
    assert ran.returncode == 0, ran.stderr
    detached = qjm(home, "run", str(source), "-b", "aer", "--detach")
    assert detached.returncode == 0, detached.stderr
    assert qjm(home, "wait", detached.stdout.strip(), "-q").returncode == 0
    # Before: QJM_HOME 0755, qjm.sqlite and qjm.log 0644.
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("qjm.sqlite", "qjm.log"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    assert qjm(home, "ls").stderr == "", "a private store is not warned about"

    home.chmod(0o755)
    (home / "qjm.sqlite").chmod(0o644)
    listed = qjm(home, "ls")
    assert listed.returncode == 0
    assert "can be read by other users (mode 0644)" in listed.stderr, listed.stderr
    assert f"chmod 600 {home / 'qjm.sqlite'}" in listed.stderr


# -- refused before touching the disk --------------------------------------------------------


def test_a_runaway_request_is_refused_before_anything_is_read_or_made(tmp_path: Path) -> None:
    circuit = QuantumCircuit(1, 1)
    circuit.measure(0, 0)
    many = tmp_path / "many.qpy"
    buffer = io.BytesIO()
    qpy.dump([circuit] * 20_000, buffer)
    many.write_bytes(buffer.getvalue())
    home = tmp_path / "home"
    started = time.monotonic()
    refused = qjm(home, "run", str(many), "-b", "aer", "--max-per-job", "1")
    took = time.monotonic() - started
    assert refused.returncode == 2 and "20,000 jobs" in refused.stderr, refused.stderr
    # Before: the store (and its folder) was made first and left behind, empty.
    assert not home.exists(), sorted(p.name for p in home.iterdir())
    print(f"refused in {took:.2f} s")
