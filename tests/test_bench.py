"""``python -m benchmarks scenarios --quick`` runs every scenario end to end and reports what it measured.

A smoke test: it checks the report's structure and that each scenario did its work, never a
speed (figures belong to the benchmark's own output, see the README's Performance section).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.scenarios import CHECKOUT, QUICK, Row, table


def test_quick_bench_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # run from elsewhere than the checkout, as the README's command may be
    path = os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "scenarios", "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    m = report["machine"]
    assert m["cores"] >= 1 and m["python"].count(".") == 2
    assert m["packages"]["qiskit"] and m["packages"]["qiskit-aer"] and m["packages"]["qjm-tui"]
    rows = {r["scenario"]: r for r in report["rows"]}
    n = QUICK.local_sizes[0]
    for kind in ("fresh", "warm"):
        row = rows[f"local {kind} N={n:,}"]
        assert row["value"] > 0 and row["ratio"] > 0
        assert len(row["detail"]["qjm_seconds"]) == len(row["detail"]["raw_seconds"]) == 1
    pacing = [r for r in report["rows"] if r["scenario"].startswith("pacing")]
    assert len(pacing) == 2
    for row in pacing:
        detail = row["detail"]
        # every job ran exactly once, and never more at once than the service allows
        assert detail["state"] == "done"
        assert detail["accepted"] == QUICK.pace_jobs
        assert detail["max_concurrency"] <= QUICK.pace_limit
        assert detail["one_at_a_time_seconds"] > 0
    retrieve = next(r for r in report["rows"] if r["scenario"].startswith("retrieve"))
    assert retrieve["detail"]["state"] == "done" and retrieve["detail"]["peak_mb"] > 0
    counts = next(r for r in report["rows"] if r["scenario"].startswith("get_counts"))
    assert counts["detail"]["shots"] == QUICK.store_experiments * 64
    assert any(r["scenario"] == "qjm --version" and r["value"] > 0 for r in report["rows"])
    # the table printed is the one in the report
    assert report["table"] in proc.stdout
    assert "local warm" in proc.stdout and "pacing" in proc.stdout


def test_table_marks_missed_targets_and_unmeasured_rows() -> None:
    text = table([Row("a", 1.5, "s", "raw 1.0 s", 1.5, "<= 1.05x", False),
                  Row("b", None, "s", target="< 1.5 s", note="not measured: the app was not there yet")])
    lines = text.splitlines()
    assert lines[0].startswith("| scenario")
    assert "| NO " in lines[2] and "1.50x" in lines[2]
    assert "not measured" in lines[3] and "| - " in lines[3]
