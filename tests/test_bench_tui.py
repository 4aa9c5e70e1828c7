"""``python -m benchmarks bench_app`` (the app scenario of the scenarios benchmark) in a tiny mode runs every
scenario and reports every figure.

A smoke test: it checks the report's structure and that each scenario did its work, never a
speed (figures belong to the benchmark's own output).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_tiny_tui_bench_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "bench_app", "--jobs", "300", "--seconds", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["jobs"] == 300 and report["setup_seconds"] > 0
    rows = {r["scenario"]: r for r in report["rows"]}
    assert set(rows) == {"idle", "thread", "process"}
    for row in rows.values():
        assert row["repaints_per_s"] > 0 and row["repaint_median_ms"] is not None
        assert row["repaint_worst_ms"] >= row["repaint_median_ms"]
        assert row["key_presses"] >= 1 and row["key_worst_ms"] >= row["key_median_ms"]
        assert row["app_cpu_cores"] > 0
    assert rows["idle"]["changes"] == 0 and rows["idle"]["writer_cpu_cores"] == 0
    for loaded in ("thread", "process"):
        assert rows[loaded]["changes"] > 0 and rows[loaded]["changes_per_s"] > 0
        assert rows[loaded]["writer_cpu_cores"] > 0
    assert report["table"] in proc.stdout
