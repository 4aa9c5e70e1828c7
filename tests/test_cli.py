"""The ``qjm`` command line: output, ``--json`` shapes and exit codes of every subcommand.

Most tests drive ``main(argv)`` in this process with the threads executor (no worker pool to
start); a few run ``python -m qjm_tui.cli`` as real processes, including a detached run that
another process waits for. Every test has its own QJM_HOME (see conftest.py).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, qpy
from qiskit.result import Result

from qjm_tui import JobManager
from qjm_tui.cli import build_parser, histogram_lines, main, to_json
from qjm_tui.config import Config
from qjm_tui.core.ports import BackendLimits, ExecutionBackend, JobPayload, JobStatusInfo
from qjm_tui.core.status import JobStatus, SetState
from qjm_tui.core.store import Store
from tests.forge import forge_set

COMMANDS = ("run", "demo", "ls", "show", "report", "wait", "cancel", "retry", "resume", "rename",
            "tag", "results", "export", "backends", "config", "doctor", "tui", "serve")

BELL_QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q -> c;
"""

BAD_QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2]
h q[0];
"""


@pytest.fixture(autouse=True)
def threads_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs use threads: no process pool to start for a handful of circuits."""
    monkeypatch.setenv("QJM_EXECUTOR", "threads")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Circuit files, good and bad."""
    folder = tmp_path / "circuits"
    folder.mkdir()
    (folder / "bell.qasm").write_text(BELL_QASM)
    (folder / "bad.qasm").write_text(BAD_QASM)
    (folder / "empty.qasm").write_text("")
    many = []
    for i in range(12):
        qc = QuantumCircuit(3, 3, name=f"basis_{i}")
        for bit in range(3):
            if (i >> bit) & 1:
                qc.x(bit)
        if i % 2:
            qc.h(2)  # odd experiments measure qubit 2 at random
        qc.measure(range(3), range(3))
        many.append(qc)
    with open(folder / "many.qpy", "wb") as fh:
        qpy.dump(many, fh)
    wide = QuantumCircuit(6, name="wide")
    wide.h(0)
    wide.measure_all()
    with open(folder / "six.qpy", "wb") as fh:
        qpy.dump(wide, fh)
    data = (folder / "many.qpy").read_bytes()
    (folder / "trunc.qpy").write_bytes(data[: len(data) // 2])
    return {p.stem: p for p in folder.iterdir()}


def qjm(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    """Run ``qjm argv`` in this process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_set(capsys: pytest.CaptureFixture[str], *argv: Any) -> str:
    """Run a job set to the end and return its id."""
    code, out, err = qjm(capsys, "run", *argv)
    assert code == 0, err
    return out.strip()


def store_dump(home: Path) -> list[str] | None:
    """Every row of the store, as SQL text (None if there is no store yet)."""
    path = home / "qjm.sqlite"
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def job_set_count(home: Path) -> int:
    return len(Store(home / "qjm.sqlite").list_job_sets())


def api_counts(job_set_id: str) -> list[dict[str, int]]:
    """Counts of every experiment as the library returns them."""
    jm = JobManager()
    try:
        results = jm.retrieve_job_set(job_set_id).results(timeout=60)
        return [results.get_counts(i) for i in range(len(results))]
    finally:
        jm.close()


def one_error_line(err: str) -> str:
    """The single ``qjm: error:`` line of stderr, checking there is no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("qjm: error: ")]
    assert len(errors) == 1, err
    return errors[0]


def cli_process(*argv: Any, timeout: float = 120, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qjm_tui.cli", *map(str, argv)], capture_output=True,
                          text=True, timeout=timeout, env=env)


# -- help, usage -----------------------------------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = qjm(capsys, "--help")
    assert code == 0
    assert out.startswith("usage: qjm")
    for command in COMMANDS:
        assert f"    {command} " in out
    assert "exit codes" in out


def test_no_arguments_and_tui_open_the_app(capsys: pytest.CaptureFixture[str], isolated_home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[Path | None, bool]] = []

    def run_app(store_path: Path | None = None, *, read_only: bool = False) -> int:
        opened.append((store_path, read_only))
        return 0

    monkeypatch.setitem(sys.modules, "qjm_tui.tui.app", SimpleNamespace(run_app=run_app))
    assert qjm(capsys)[0] == 0
    assert qjm(capsys, "tui")[0] == 0
    assert qjm(capsys, "tui", "--store", str(isolated_home / "other.sqlite"))[0] == 0
    assert qjm(capsys, "--read-only")[0] == 0
    assert qjm(capsys, "tui", "--read-only")[0] == 0
    assert opened == [(None, False), (None, False), (isolated_home / "other.sqlite", False),
                      (None, True), (None, True)]


def test_tui_without_the_app_is_one_clear_error(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "qjm_tui.tui.app", None)  # the import fails
    for argv in ([], ["tui"]):
        code, out, err = qjm(capsys, *argv)
        assert code == 1 and out == ""
        assert "the terminal app cannot start" in one_error_line(err)


def test_tui_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = qjm(capsys, "tui", "--help")
    assert code == 0 and "usage: qjm tui" in out and "--store PATH" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_help_has_examples(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = qjm(capsys, command, "--help")
    assert code == 0
    assert f"usage: qjm {command}" in out
    assert "examples:\n  qjm " in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = qjm(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err
    code, _, err = qjm(capsys, "run")
    assert code == 2 and "FILE" in err
    code, _, err = qjm(capsys, "run", "x.qasm", "--shots", "many")
    assert code == 2 and "invalid int value" in err
    code, _, err = qjm(capsys, "run", "x.qasm", "--wait", "--detach")
    assert code == 2 and "not allowed with" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from qjm_tui import __version__

    code, out, _ = qjm(capsys, "--version")
    assert code == 0 and out.strip() == f"qjm {__version__}"


# -- run -------------------------------------------------------------------------------------


def test_run_prints_the_id_and_waits(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                                     isolated_home: Path) -> None:
    code, out, err = qjm(capsys, "run", files["bell"], "--shots", "200")
    assert code == 0
    job_set_id = out.strip()
    assert out == job_set_id + "\n"  # stdout carries only the id
    assert f"job set {job_set_id} done" in err
    assert "1/1 jobs done" in err  # plain progress lines: stderr is not a terminal here
    rows = Store(isolated_home / "qjm.sqlite").list_job_sets()
    assert [(r.id, r.state, r.shots) for r in rows] == [(job_set_id, "done", 200)]
    assert sum(api_counts(job_set_id)[0].values()) == 200


def test_run_options_and_json(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, err = qjm(capsys, "run", files["many"], files["bell"], "--name", "sweep", "--tag", "a",
                         "--tag", "b", "--max-per-job", "4", "--shots", "100", "--json",
                         "--option", "seed_simulator=7", "-q")
    assert code == 0, err
    data = json.loads(out)
    assert data["name"] == "sweep" and data["tags"] == ["a", "b"] and data["shots"] == 100
    assert data["state"] == "done" and data["backend"] == "aer"
    assert data["experiments"] == data["experiments_done"] == 13
    assert data["jobs"] == {"total": 4, "done": 4, "failed": 0, "cancelled": 0, "running": 0,
                            "pending": 0}
    assert data["run_options"] == {"seed_simulator": 7}
    assert err == ""  # -q: no progress, and --json puts everything on stdout


def test_run_with_a_progress_bar_on_a_terminal(capsys: pytest.CaptureFixture[str],
                                               files: dict[str, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from qjm_tui.cli import output

    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    code, out, err = qjm(capsys, "run", files["many"], "--max-per-job", "3")
    assert code == 0
    assert "4/4 jobs" in err and "12/12 exp" in err and "done" in err


def test_run_that_fails_exits_1_and_says_why(capsys: pytest.CaptureFixture[str],
                                             files: dict[str, Path]) -> None:
    code, out, err = qjm(capsys, "run", files["bell"], "--option", 'method="bogus"')
    assert code == 1
    job_set_id = out.strip()
    assert f"job set {job_set_id} failed" in err
    assert "Invalid simulation method (bogus)" in err
    assert f"qjm retry {job_set_id}" in err


def test_transpile_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    qc = QuantumCircuit(2, 2, name="swap")
    qc.iswap(0, 1)
    qc.measure([0, 1], [0, 1])
    path = tmp_path / "iswap.qpy"
    with open(path, "wb") as fh:
        qpy.dump(qc, fh)
    code, _, err = qjm(capsys, "run", path, "--backend", "aer:fake_manila")
    assert code == 2 and "--transpile" in one_error_line(err)
    code, out, err = qjm(capsys, "run", path, "--backend", "aer:fake_manila", "--transpile", "-q")
    assert code == 0, err
    assert len(api_counts(out.strip())) == 1


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (lambda f: ["run", f["bad"]], "bad.qasm:4:1: needed ';'"),
        (lambda f: ["run", f["trunc"]], "trunc.qpy: not a readable QPY file (truncated"),
        (lambda f: ["run", f["empty"]], "empty.qasm: the file is empty"),
        (lambda f: ["run", f["missing"]], "missing.qasm: no such file"),
        (lambda f: ["run", f["bell"], f["bad"]], "bad.qasm:4:1"),
        (lambda f: ["run", f["six"], "--backend", "aer:fake_manila"],
         "experiment 0 ('wide'): uses 6 qubits but backend aer:fake_manila has 5"),
        (lambda f: ["run", f["six"], "--backend", "aer:fake_manila", "--transpile"],
         "uses 6 qubits but backend aer:fake_manila has 5"),
        (lambda f: ["run", f["bell"], "--shots", "0"], "shots must be a positive integer, got 0"),
        (lambda f: ["run", f["bell"], "--shots", "-5"], "shots must be a positive integer, got -5"),
        (lambda f: ["run", f["bell"], "--backend", "nope"], "unknown backend 'nope'"),
        (lambda f: ["run", f["bell"], "--backend", "aer:fake_nowhere"], "unknown device 'fake_nowhere'"),
        (lambda f: ["run", f["bell"], "--max-per-job", "0"], "max_experiments_per_job must be a positive"),
        (lambda f: ["run", f["bell"], "--option", "memory"], "--option expects KEY=VALUE"),
        (lambda f: ["run", f["bell"], "--detach", "--shots", "0"], "shots must be a positive integer"),
        (lambda f: ["run", f["bad"], "--detach"], "bad.qasm:4:1: needed ';'"),
        (lambda f: ["show", "nope"], "no job set id starts with 'nope'"),
        (lambda f: ["show", "2"], "job-set id prefix '2' is ambiguous"),
        (lambda f: ["results", "nope"], "no job set id starts with 'nope'"),
        (lambda f: ["wait", "2"], "is ambiguous"),
        (lambda f: ["cancel", "nope"], "no job set id starts with"),
        (lambda f: ["retry", "nope"], "no job set id starts with"),
        (lambda f: ["resume", "nope"], "no job set id starts with"),
        (lambda f: ["rename", "nope", "x"], "no job set id starts with"),
        (lambda f: ["tag", "nope", "--add", "x"], "no job set id starts with"),
        (lambda f: ["export", "nope", "-o", "x.json"], "no job set id starts with"),
        (lambda f: ["backends", "nope"], "unknown backend 'nope'"),
    ],
    ids=["malformed-qasm", "truncated-qpy", "empty-file", "missing-file", "one-bad-of-two",
         "too-wide", "too-wide-transpile", "shots-0", "shots-negative", "unknown-backend",
         "unknown-device", "max-per-job-0", "bad-option", "detach-bad-shots", "detach-bad-file",
         "unknown-id", "ambiguous-id", "results-unknown-id", "wait-ambiguous-id", "cancel-unknown-id",
         "retry-unknown-id", "resume-unknown-id", "rename-unknown-id", "tag-unknown-id",
         "export-unknown-id", "backends-unknown"],
)
def test_bad_input_exits_2_and_leaves_the_store_untouched(
        capsys: pytest.CaptureFixture[str], files: dict[str, Path], isolated_home: Path,
        case: Any, expected: str) -> None:
    # Two job sets made today: their ids share the prefix "2" (ids start with the date).
    run_set(capsys, files["bell"], "-q")
    run_set(capsys, files["bell"], "-q", "--name", "second")
    files = {**files, "missing": files["bell"].with_name("missing.qasm")}
    before = store_dump(isolated_home)
    code, out, err = qjm(capsys, *case(files))
    assert code == 2
    assert expected in one_error_line(err)
    assert store_dump(isolated_home) == before
    assert job_set_count(isolated_home) == 2


def test_bad_input_on_a_fresh_machine_creates_no_job_set(capsys: pytest.CaptureFixture[str],
                                                        files: dict[str, Path],
                                                        isolated_home: Path) -> None:
    code, _, err = qjm(capsys, "run", files["bad"])
    assert code == 2 and "bad.qasm:4:1" in one_error_line(err)
    assert not (isolated_home / "qjm.sqlite").exists() or job_set_count(isolated_home) == 0


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, _, err = qjm(capsys, "--debug", "run", files["bad"])
    assert code == 2
    assert "Traceback" in err and "JobManagerInputError" in err
    assert err.rstrip().splitlines()[-1].startswith("qjm: error: ")
    code, _, err = qjm(capsys, "show", "nope", "--debug")  # also accepted after the command
    assert code == 2 and "Traceback" in err


# -- reading ---------------------------------------------------------------------------------


def test_ls_lists_and_filters(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, err = qjm(capsys, "ls")
    assert code == 0 and out == "" and "no job sets" in err
    assert qjm(capsys, "ls", "--json")[1].strip() == "[]"
    first = run_set(capsys, files["bell"], "-q", "--name", "alpha", "--tag", "x")
    second = run_set(capsys, files["many"], "-q", "--name", "beta", "--tag", "x", "--tag", "y",
                     "--backend", "basic", "--max-per-job", "5")
    code, out, _ = qjm(capsys, "run", files["bell"], "-q", "--name", "gamma", "--option", 'method="bogus"')
    failed = out.strip()

    code, out, _ = qjm(capsys, "ls")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "JOBS", "EXPS", "BACKEND", "TAGS"]
    assert [line.split()[0] for line in lines[1:]] == [failed, second, first]  # newest first
    assert "3/3" in lines[2] and "12/12" in lines[2] and "basic" in lines[2] and "x,y" in lines[2]
    assert "(1 failed)" in lines[1]

    def ids(*argv: str) -> list[str]:
        code, out, _ = qjm(capsys, "ls", "--json", *argv)
        assert code == 0
        return [s["id"] for s in json.loads(out)]

    assert ids("--name", "alpha") == [first]
    assert ids("--name", "*a") == [failed, second, first]
    assert ids("--tag", "x") == [second, first]
    assert ids("--tag", "x", "--tag", "y") == [second]
    assert ids("--backend", "basic") == [second]
    assert ids("--state", "failed") == [failed]
    assert ids("--state", "done", "--state", "failed") == [failed, second, first]
    assert ids("--limit", "1") == [failed]
    summary = json.loads(qjm(capsys, "ls", "--json", "--name", "beta")[1])[0]
    assert set(summary) == {"id", "name", "tags", "backend", "state", "shots", "run_options", "created",
                            "finished", "elapsed", "eta", "experiments", "experiments_done", "jobs",
                            "retries", "usage", "stopped", "estimated_time"}
    assert summary["usage"] == {"quantum_seconds": None, "estimated_seconds": None}
    assert summary["jobs"]["total"] == 3 and summary["experiments"] == 12


def test_show_report_by_prefix(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    job_set_id = run_set(capsys, files["many"], "-q", "--name", "shown", "--max-per-job", "5")
    code, out, _ = qjm(capsys, "show", job_set_id[:-3])
    assert code == 0
    assert "Job set name: shown" in out and f"ID: {job_set_id}" in out
    assert "Detail report:" in out and "experiments: 10-11" in out
    code, out, _ = qjm(capsys, "show", job_set_id, "--brief")
    assert code == 0 and "Summary report:" in out and "Detail report:" not in out
    code, out, _ = qjm(capsys, "show", job_set_id, "--json")
    data = json.loads(out)
    assert data["id"] == job_set_id and data["state"] == "done"
    assert [(j["first_experiment"], j["last_experiment"], j["status"]) for j in data["job_list"]] == [
        (0, 4, "done"), (5, 9, "done"), (10, 11, "done")]
    assert set(data["job_list"][0]) == {"index", "first_experiment", "last_experiment", "shots_round",
                                        "status", "backend_job_id", "attempts", "retries", "error",
                                        "session", "usage", "estimated_time"}


def test_report(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, _ = qjm(capsys, "report")
    assert code == 0 and "No job sets" in out
    run_set(capsys, files["bell"], "-q", "--name", "one")
    run_set(capsys, files["many"], "-q", "--name", "two", "--max-per-job", "6")
    code, out, _ = qjm(capsys, "report")
    assert code == 0
    assert "Job set name: one" in out and "Job set name: two" in out and "Detail report" not in out
    code, out, _ = qjm(capsys, "report", "--detailed")
    assert out.count("Detail report:") == 2
    code, out, _ = qjm(capsys, "report", "--json")
    data = json.loads(out)
    assert [s["name"] for s in data] == ["two", "one"] and "job_list" not in data[0]
    code, out, _ = qjm(capsys, "report", "--json", "--detailed")
    assert len(json.loads(out)[0]["job_list"]) == 2


def test_results_match_the_api(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    job_set_id = run_set(capsys, files["many"], "-q", "--max-per-job", "5", "--shots", "300")
    expected = api_counts(job_set_id)

    code, out, err = qjm(capsys, "results", job_set_id[:-2], "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["id"] == job_set_id and data["state"] == "done" and data["backend"] == "aer"
    assert [e["index"] for e in data["experiments"]] == list(range(12))
    assert [e["counts"] for e in data["experiments"]] == expected
    assert data["experiments"][3] == {"index": 3, "name": "basis_3", "shots": 300,
                                      "counts": expected[3], "error": None}

    code, out, _ = qjm(capsys, "results", job_set_id, "--json", "--experiment", "basis_7", "-e", "2")
    assert [(e["index"], e["counts"]) for e in json.loads(out)["experiments"]] == [
        (7, expected[7]), (2, expected[2])]

    code, out, _ = qjm(capsys, "results", job_set_id, "--csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["experiment", "name", "outcome", "count"]
    from_csv: dict[int, dict[str, int]] = {}
    for index, _name, outcome, count in rows[1:]:
        from_csv.setdefault(int(index), {})[outcome] = int(count)
    assert [from_csv[i] for i in range(12)] == expected

    code, out, _ = qjm(capsys, "results", job_set_id)
    lines = out.splitlines()
    assert len(lines) == 12
    assert lines[2].split("\t")[:3] == ["2", "basis_2", "300"]
    assert lines[2].split("\t")[3] == "010:300"

    code, out, _ = qjm(capsys, "results", job_set_id, "--experiment", "1")
    assert code == 0 and out.startswith("Experiment 1 (basis_1): 300 shots")

    code, _, err = qjm(capsys, "results", job_set_id, "--experiment", "99")
    assert code == 2 and "no experiment 99" in one_error_line(err)
    code, _, err = qjm(capsys, "results", job_set_id, "--json", "--csv")
    assert code == 2


def test_results_of_a_failed_set_exit_1(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, _ = qjm(capsys, "run", files["bell"], "-q", "--option", 'method="bogus"')
    job_set_id = out.strip()
    code, out, err = qjm(capsys, "results", job_set_id, "--json")
    assert code == 1
    item = json.loads(out)["experiments"][0]
    assert item["counts"] is None and "Invalid simulation method" in item["error"]
    assert "1 of 1 experiments have no counts" in err


def test_export_formats(capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path) -> None:
    job_set_id = run_set(capsys, files["many"], "-q", "--max-per-job", "5", "--option", "memory=true")
    expected = api_counts(job_set_id)

    target = tmp_path / "result.json"
    code, _, err = qjm(capsys, "export", job_set_id, "--format", "qiskit", "-o", target)
    assert code == 0 and f"wrote 12 experiments of job set {job_set_id}" in err
    with open(target) as fh:
        result = Result.from_dict(json.load(fh))
    assert [result.get_counts(i) for i in range(12)] == expected
    assert len(result.get_memory(0)) == 1024

    code, _, _ = qjm(capsys, "export", job_set_id, "--format", "json", "-o", tmp_path / "c.json")
    assert code == 0
    assert [e["counts"] for e in json.loads((tmp_path / "c.json").read_text())["experiments"]] == expected

    code, _, _ = qjm(capsys, "export", job_set_id, "--format", "csv", "-o", tmp_path / "c.csv")
    assert code == 0
    assert (tmp_path / "c.csv").read_text().startswith("experiment,name,outcome,count\n0,basis_0,")

    code, out, err = qjm(capsys, "export", job_set_id, "-f", "qiskit")  # stdout by default
    assert code == 0 and err == ""
    assert Result.from_dict(json.loads(out)).get_counts(5) == expected[5]

    code, _, err = qjm(capsys, "export", job_set_id, "-o", tmp_path)
    assert code == 2 and "is a directory" in one_error_line(err)
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_of_an_incomplete_set(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                                     tmp_path: Path) -> None:
    code, out, _ = qjm(capsys, "run", files["bell"], "-q", "--option", 'method="bogus"')
    job_set_id = out.strip()
    target = tmp_path / "r.json"
    code, _, err = qjm(capsys, "export", job_set_id, "--format", "qiskit", "-o", target)
    assert code == 1 and "cannot be combined" in one_error_line(err)
    assert not target.exists()
    code, _, err = qjm(capsys, "export", job_set_id, "--format", "qiskit", "--partial", "-o", target)
    assert code == 1 and "only 0 of 1 experiments have results" in err
    assert json.loads(target.read_text())["results"] == []


def test_to_json_handles_complex_and_numpy() -> None:
    data = {"a": 1 + 2j, "b": np.array([1j, 2]), "c": np.int64(3), "d": np.float32(0.5)}
    assert json.loads(to_json(data, indent=None)) == {"a": [1.0, 2.0], "b": [[0.0, 1.0], [2.0, 0.0]],
                                                       "c": 3, "d": 0.5}


def test_histogram_lines() -> None:
    lines = histogram_lines({"00": 30, "11": 60, "01": 1}, width=20, unicode=True)
    assert lines[0].split()[:3] == ["11", "60", "65.9%"] and lines[1].split()[:2] == ["00", "30"]
    assert len(lines[0].split()[3]) == 20
    many = histogram_lines({format(i, "06b"): i + 1 for i in range(40)}, max_rows=5)
    # the four most frequent, then one bar for the other 36, so the rows add up to every shot
    assert len(many) == 5 and many[-1].split()[:3] == ["other", "(36)", str(sum(range(1, 37)))]


# -- waiting and control ---------------------------------------------------------------------


def test_wait_on_finished_sets(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    done = run_set(capsys, files["bell"], "-q")
    code, out, err = qjm(capsys, "wait", done[:-1], "--json")
    assert code == 0
    assert json.loads(out)["state"] == "done" and json.loads(out)["id"] == done
    code, out, err = qjm(capsys, "wait", done)
    assert code == 0 and out == "" and f"job set {done} done" in err
    _, out, _ = qjm(capsys, "run", files["bell"], "-q", "--option", 'method="bogus"')
    code, out, err = qjm(capsys, "wait", out.strip(), "--json")
    assert code == 1 and json.loads(out)["state"] == "failed"
    code, _, err = qjm(capsys, "wait", done, "--timeout", "-1")
    assert code == 2


class HangingBackend(ExecutionBackend):
    """A backend whose jobs run until they are cancelled."""

    spec = "test-hanging"
    poll_interval = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.cancelled: list[str] = []
        self._n = 0

    def limits(self) -> BackendLimits:
        return BackendLimits(max_experiments_per_job=1)

    def submit(self, payload: JobPayload) -> str:
        self._n += 1
        return f"hang-{self._n}"

    def status(self, job_id: str) -> JobStatusInfo:
        return JobStatusInfo("cancelled" if job_id in self.cancelled else "running")

    def result(self, job_id: str) -> list[dict[str, Any]]:
        raise AssertionError("a hanging job has no result")

    def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        return True


def test_cancel_a_set_another_manager_runs(capsys: pytest.CaptureFixture[str], isolated_home: Path) -> None:
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    backend = HangingBackend()
    jm = JobManager(config=Config(executor="threads"))
    try:
        job_set = jm.run([qc, qc, qc], backend=backend)
        job_set_id = job_set.job_set_id()
        code, _, err = qjm(capsys, "wait", job_set_id, "--timeout", "0.3")
        assert code == 1 and "did not finish within 0.3 seconds" in one_error_line(err)
        code, out, err = qjm(capsys, "ls", "--state", "running", "--json")
        assert [s["id"] for s in json.loads(out)] == [job_set_id]
        code, _, err = qjm(capsys, "cancel", job_set_id, "--wait", "--timeout", "20")
        assert code == 0 and f"job set {job_set_id} cancelled" in err
        assert job_set.state() == "cancelled" and len(backend.cancelled) == 3
        code, _, err = qjm(capsys, "cancel", job_set_id)
        assert code == 1 and "already cancelled; nothing to cancel" in err
        code, out, _ = qjm(capsys, "wait", job_set_id, "--json")
        assert code == 1 and json.loads(out)["jobs"]["cancelled"] == 3
    finally:
        jm.close(cancel=True)


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_interrupted_set_then_resume(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                                     isolated_home: Path) -> None:
    job_set_id = run_set(capsys, files["many"], "-q", "--max-per-job", "3")
    expected = api_counts(job_set_id)
    # What a crash leaves behind: "running", its owner gone, some jobs never finished.
    store = Store(isolated_home / "qjm.sqlite")
    forge_set(store, job_set_id, state="running", owner_pid=dead_pid(), finished=None)
    store.set_jobs_status(job_set_id, [2, 3], JobStatus.PENDING, backend_job_id=None)
    store.close()
    code, out, _ = qjm(capsys, "ls", "--json", "--state", "interrupted")
    assert [s["id"] for s in json.loads(out)] == [job_set_id]
    code, _, err = qjm(capsys, "wait", job_set_id)
    assert code == 1 and f"run `qjm resume {job_set_id}`" in one_error_line(err)
    code, out, err = qjm(capsys, "resume", job_set_id, "-q")
    assert code == 0, err
    assert out.strip() == job_set_id
    data = json.loads(qjm(capsys, "show", job_set_id, "--json")[1])
    assert data["state"] == "done"
    assert [j["attempts"] for j in data["job_list"]] == [1, 1, 2, 2]  # done jobs were not re-run...
    assert [j["backend_job_id"] is not None for j in data["job_list"]] == [True] * 4
    assert len(api_counts(job_set_id)) == len(expected)  # ...and every experiment has its result


def test_retry_failed_jobs(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                           isolated_home: Path) -> None:
    job_set_id = run_set(capsys, files["many"], "-q", "--max-per-job", "6")
    store = Store(isolated_home / "qjm.sqlite")
    store.set_jobs_status(job_set_id, [1], JobStatus.FAILED, last_error="injected failure")
    store.set_job_set_state(job_set_id, SetState.PARTIAL)
    store.close()
    code, out, _ = qjm(capsys, "show", job_set_id)
    assert "state: partial" in out and "error: injected failure" in out
    code, out, err = qjm(capsys, "retry", job_set_id, "--json", "-q")
    assert code == 0, err
    data = json.loads(out)
    assert data["state"] == "done" and data["jobs"]["done"] == 2
    code, out, err = qjm(capsys, "retry", job_set_id, "-q")  # nothing left to retry
    assert code == 0 and out.strip() == job_set_id


def test_rename_and_tag(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    job_set_id = run_set(capsys, files["bell"], "-q", "--name", "old", "--tag", "keep", "--tag", "drop")
    code, _, err = qjm(capsys, "rename", job_set_id[:-4], "new name")
    assert code == 0 and "'old' -> 'new name'" in err
    code, _, err = qjm(capsys, "rename", job_set_id, " ")
    assert code == 2 and "non-empty" in one_error_line(err)
    code, out, _ = qjm(capsys, "tag", job_set_id, "--add", "a", "--add", "b", "--remove", "drop")
    assert code == 0 and out.splitlines() == ["keep", "a", "b"]
    code, out, _ = qjm(capsys, "tag", job_set_id, "--json")
    assert json.loads(out) == {"id": job_set_id, "tags": ["keep", "a", "b"]}
    summary = json.loads(qjm(capsys, "ls", "--json")[1])[0]
    assert summary["name"] == "new name" and summary["tags"] == ["keep", "a", "b"]


# -- backends, config, demo ------------------------------------------------------------------


def test_backends(capsys: pytest.CaptureFixture[str]) -> None:
    from qjm_tui.backends.registry import KNOWN_SPECS

    code, out, _ = qjm(capsys, "backends")
    assert code == 0
    assert out.splitlines()[0].split() == ["SPEC", "AVAILABLE", "QUBITS", "LIMITS", "DETAIL"]
    assert "aer (default)" in out
    code, out, _ = qjm(capsys, "backends", "--json")
    entries = json.loads(out)
    assert [e["spec"] for e in entries] == list(KNOWN_SPECS)
    aer = entries[0]
    assert aer["available"] is True and aer["default"] is True and aer["num_qubits"] == 30
    assert set(aer["limits"]) == {"max_experiments_per_job", "max_shots", "max_concurrent_jobs",
                                  "max_executions"}
    code, out, _ = qjm(capsys, "backends", "aer:fake_manila", "--json")
    assert code == 0 and json.loads(out)[0]["num_qubits"] == 5


def test_config_masks_secrets(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    code, out, _ = qjm(capsys, "config")
    assert code == 0 and "not found; built-in defaults in use" in out
    assert f"store:       {isolated_home / 'qjm.sqlite'}" in out
    config = tmp_path / "config.toml"
    config.write_text('default_shots = 77\n[ibm]\ntoken = "TOPSECRET-123"\ninstance = "h/g/p"\n')
    config.chmod(0o600)
    monkeypatch.setenv("QJM_CONFIG", str(config))
    code, out, err = qjm(capsys, "config")
    assert code == 0 and "TOPSECRET" not in out + err
    assert 'token = "***"' in out and "default_shots = 77" in out
    code, out, err = qjm(capsys, "config", "--json")
    assert "TOPSECRET" not in out + err
    data = json.loads(out)
    assert data["ibm"]["token"] == "***" and data["config_path"] == str(config)
    assert data["config_file_exists"] is True
    assert data["store"] == str(isolated_home / "qjm.sqlite")
    assert data["log"] == str(isolated_home / "qjm.log")
    config.write_text("default_shots = 0\n")
    code, _, err = qjm(capsys, "config")
    assert code == 2 and "default_shots must be a positive integer" in one_error_line(err)


def test_demo_small(capsys: pytest.CaptureFixture[str], isolated_home: Path) -> None:
    code, out, err = qjm(capsys, "demo", "--circuits", "24", "--max-per-job", "5", "--shots", "256")
    assert code == 0, err
    assert "Job set name: demo" in out and "Total jobs: 5" in out and "Experiments: 24/24 done" in out
    assert "Experiment 5 (random_5): 256 shots" in out
    assert "█" in out or "#" in out
    rows = Store(isolated_home / "qjm.sqlite").list_job_sets()
    assert [(r.name, r.state, r.tags, r.n_experiments) for r in rows] == [("demo", "done", ["demo"], 24)]
    code, _, err = qjm(capsys, "demo", "--circuits", "0")
    assert code == 2 and "--circuits" in one_error_line(err)


# -- real processes --------------------------------------------------------------------------


def test_python_m_entry_points(files: dict[str, Path], isolated_home: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "qjm_tui", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: qjm")
    bad = cli_process("run", files["bad"])
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == f"qjm: error: {files['bad']}:4:1: needed ';', but instead saw an identifier"
    assert not (isolated_home / "qjm.sqlite").exists() or job_set_count(isolated_home) == 0


def test_detach_then_wait_in_another_process(files: dict[str, Path], isolated_home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QJM_EXECUTOR")  # the real default: a process pool in the background run
    started = time.monotonic()
    run = cli_process("run", files["many"], "--max-per-job", "3", "--name", "bg", "--detach")
    assert run.returncode == 0, run.stderr
    job_set_id = run.stdout.strip()
    assert "runs in the background" in run.stderr and f"qjm wait {job_set_id}" in run.stderr
    # The set is in the store before --detach returns.
    assert [r.id for r in Store(isolated_home / "qjm.sqlite").list_job_sets()] == [job_set_id]

    waited = cli_process("wait", job_set_id[:-2])
    assert waited.returncode == 0, waited.stderr
    assert f"job set {job_set_id} done" in waited.stderr

    shown = cli_process("results", job_set_id, "--json")
    assert shown.returncode == 0
    from_cli = [e["counts"] for e in json.loads(shown.stdout)["experiments"]]
    assert from_cli == api_counts(job_set_id)
    log = (isolated_home / "qjm.log").read_text()
    assert f"job set {job_set_id} finished: done" in log
    assert time.monotonic() - started < 60


def test_detach_json_and_failed_background_run(capsys: pytest.CaptureFixture[str],
                                               files: dict[str, Path], isolated_home: Path) -> None:
    code, out, err = qjm(capsys, "run", files["bell"], "--detach", "--json", "--option", 'method="bogus"')
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"id", "pid", "log", "state"} and data["log"] == str(isolated_home / "qjm.log")
    code, out, err = qjm(capsys, "wait", data["id"], "--timeout", "60", "--json")
    assert code == 1 and json.loads(out)["state"] == "failed"


@pytest.mark.slow
def test_demo_1000_circuits_well_under_a_minute(isolated_home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QJM_EXECUTOR")
    started = time.monotonic()
    demo = cli_process("demo", timeout=120)
    elapsed = time.monotonic() - started
    assert demo.returncode == 0, demo.stderr
    assert "Experiments: 1000/1000 done" in demo.stdout and "Experiment 5 (random_5)" in demo.stdout
    assert elapsed < 50, f"qjm demo took {elapsed:.1f}s"


def test_parser_builds_every_command() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    assert tuple(commands.choices or ()) == COMMANDS
