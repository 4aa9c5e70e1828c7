"""A full disk under a real `qjm run`: while the circuits are stored, and while results are.

The store lives on a small tmpfs mounted for the test (see ``tests/fulldisk.py``; skipped
where mounting is not allowed); the emulated service keeps its jobs on the ordinary disk, so
its record of what it accepted and ran is what the checks count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qiskit import QuantumCircuit, qpy

from qjm_tui.backends.emulator import EmulatorBackend
from qjm_tui.core.store import Store
from tests.conftest import executions_per_chunk
from tests.fulldisk import small_disk
from tests.test_dead_runners import store_has

REPO = Path(__file__).resolve().parents[1]


def env_for(home: Path) -> dict[str, str]:
    env = dict(os.environ, QJM_HOME=str(home), QJM_CONFIG=str(home.parent / "no-config.toml"),
               PYTHONPATH=str(REPO), QJM_EXECUTOR="threads")
    for var in ("QJM_BACKEND", "QJM_SHOTS"):
        env.pop(var, None)
    return env


def basis_file(path: Path, n: int, gates: int = 0) -> Path:
    """``n`` circuits that each measure one known bitstring (``gates`` cancelling pairs pad them)."""
    circuits = []
    for i in range(n):
        qc = QuantumCircuit(3, 3, name=f"c{i}")
        for _ in range(gates):
            qc.cx(0, 1)
            qc.cx(0, 1)
        for q in range(3):
            if (i % 8) >> q & 1:
                qc.x(q)
        qc.measure(range(3), range(3))
        circuits.append(qc)
    with open(path, "wb") as fh:
        qpy.dump(circuits, fh)
    return path


def test_a_full_disk_while_circuits_are_stored_submits_nothing_and_says_so(tmp_path: Path) -> None:
    service = tmp_path / "service"
    source = basis_file(tmp_path / "many.qpy", 2000, gates=20)
    with small_disk(tmp_path / "disk", size_mb=2) as disk:
        home = disk.path / "home"
        proc = subprocess.run([sys.executable, "-m", "qjm_tui.cli", "run", str(source), "-b",
                               f"emulator:dir={service},latency=0.01,queue=0.1,run=0.1",
                               "--max-per-job", "10"], env=env_for(home), capture_output=True,
                              text=True, timeout=300)
        # Before: exit 2 with a message about permissions, no set id, and 2 jobs already
        # accepted by the service, which a later resume could not finish.
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if "log file" not in line]
        assert len(lines) == 1 and lines[0].startswith("qjm: error: disk full: job set "), proc.stderr
        assert "nothing was stored or submitted" in lines[0]
        set_id = lines[0].split("job set ", 1)[1].split()[0]
        disk.free()
        store = Store(home / "qjm.sqlite", read_only=True)
        assert [row.id for row in store.list_job_sets()] == [], f"{set_id} was kept"
        store.close()
    submitted = EmulatorBackend(f"dir={service}").submissions() if (service / "emulator.sqlite").exists() \
        else []
    assert submitted == [], f"the service saw {len(submitted)} submissions"


def test_a_full_disk_while_results_are_stored_leaves_the_set_resumable(tmp_path: Path) -> None:
    service = tmp_path / "service"
    source = basis_file(tmp_path / "forty.qpy", 40)
    spec = f"emulator:dir={service},latency=0.01,queue=0.3,run=1.5,max_jobs=4,max_per_job=2"
    with small_disk(tmp_path / "disk", size_mb=3) as disk:
        home = disk.path / "home"
        env = env_for(home)
        proc = subprocess.Popen([sys.executable, "-m", "qjm_tui.cli", "run", str(source), "-b", spec,
                                 "--shots", "100"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            store_has(home, "SELECT COUNT(*) FROM jobs WHERE backend_job_id IS NOT NULL", 120)
            disk.fill()  # jobs are with the service; their results have nowhere to go
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        set_id = out.split()[0]
        # Before: the set was marked failed, with jobs still running, and no hint.
        assert proc.returncode == 1, err
        assert f"job set {set_id} is interrupted" in err and "disk holding the store is full" in err, err
        assert f"`qjm resume {set_id}`" in err and "once there is space" in err
        disk.free()
        listed = json.loads(subprocess.run([sys.executable, "-m", "qjm_tui.cli", "ls", "--json"], env=env,
                                           capture_output=True, text=True, timeout=120).stdout)
        assert [s["state"] for s in listed] == ["interrupted"]
        resumed = subprocess.run([sys.executable, "-m", "qjm_tui.cli", "resume", set_id, "-q"], env=env,
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        store = Store(home / "qjm.sqlite", read_only=True)
        results = store.results(set_id)
        jobs = store.jobs(set_id)
        store.close()
    assert sorted(results) == list(range(40))
    assert all(parts[0]["data"]["counts"] == {hex(i % 8): 100} for i, parts in results.items())
    emulator = EmulatorBackend(f"dir={service}")
    runs = executions_per_chunk(emulator.jobs(), jobs)
    emulator.close()
    assert max(runs.values()) == 1, "no chunk ran twice"
