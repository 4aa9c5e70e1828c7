"""The command line against its environment: moving a set to another backend, IBM settings that
cannot work, and library log lines kept off the terminal.

The commands run in this process through ``main(argv)`` on the threads executor (see
tests/test_cli.py); each test has its own QJM_HOME (see conftest.py).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qjm_tui.backends.registry import resolve_spec
from qjm_tui.cli import main
from qjm_tui.config import Config, ConfigError
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import Store
from tests.forge import forge_set

ONE_QASM = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nx q[0];\nmeasure q -> c;\n'
#: a service whose every job fails, and one run attempt per job
FAILING = "emulator:latency=0,queue=0,run=0,fail=1"


@pytest.fixture(autouse=True)
def threads_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QJM_EXECUTOR", "threads")


def qjm(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    """Run ``qjm argv`` in this process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def one_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration that runs every job once: a failed job stays failed."""
    config = tmp_path / "config.toml"
    config.write_text("[retry]\nmax_attempts = 1\nbase_delay = 0\n")
    monkeypatch.setenv("QJM_CONFIG", str(config))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "one.qasm"
    path.write_text(ONE_QASM)
    return path


@pytest.mark.usefixtures("one_retry")
@pytest.mark.parametrize("command", ["retry", "resume"])
def test_the_rest_of_a_set_moves_to_another_backend(
        command: str, capsys: pytest.CaptureFixture[str], source: Path, isolated_home: Path) -> None:
    code, out, err = qjm(capsys, "run", source, source, source, "-b", FAILING, "--max-per-job", "1",
                         "--shots", "64", "-q")
    assert code == 1, err
    job_set_id = out.strip()
    if command == "resume":
        # what a crash leaves: the set still running, its owner gone, a job never submitted
        store = Store(isolated_home / "qjm.sqlite")
        forge_set(store, job_set_id, state="running", owner_pid=2**22 + 12345, finished=None)
        store.set_jobs_status(job_set_id, [0, 1, 2], JobStatus.PENDING, backend_job_id=None)
        store.close()
    code, out, err = qjm(capsys, command, job_set_id, "--backend", "aer", "-q", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["state"] == "done" and data["backend"] == "aer"
    code, out, _ = qjm(capsys, "results", job_set_id, "--json")
    assert [item["counts"] for item in json.loads(out)["experiments"]] == [{"1": 64}] * 3


@pytest.mark.parametrize("instance", ["nonsense", "a/b", "a//c"])
def test_a_malformed_provider_instance_is_a_clear_error(instance: str) -> None:
    config = Config(executor="threads", ibm={"token": "tok", "instance": instance})
    with pytest.raises(ConfigError, match="hub/group/project") as info:
        resolve_spec("ibm-provider:ibm_x", config)
    assert repr(instance) in str(info.value) and "[ibm]" in str(info.value)


def test_a_malformed_provider_instance_exits_2_from_the_cli(
        capsys: pytest.CaptureFixture[str], source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "tok")
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "nonsense")
    code, _, err = qjm(capsys, "run", source, "-b", "ibm-provider:ibm_x")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "QISKIT_IBM_INSTANCE" in lines[0] and "hub/group/project" in lines[0]


RUNTIME_LOGS = """
import logging, sys
from qjm_tui.cli import main
code = main(["backends", "aer:fake_manila"])  # loads qiskit-ibm-runtime for the fake device
logging.getLogger("qiskit_ibm_runtime.qiskit_runtime_service").warning("Loading account")
sys.exit(code)
"""


def test_runtime_log_lines_go_to_the_log_file_not_the_terminal(isolated_home: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", RUNTIME_LOGS], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Loading account" not in proc.stderr + proc.stdout
    assert "WARNING: Loading account" in (isolated_home / "qjm.log").read_text()


def test_the_runtime_logger_prints_nothing_itself() -> None:
    from qjm_tui.backends.base import import_runtime

    import_runtime()
    logger = logging.getLogger("qiskit_ibm_runtime")
    assert logger.propagate
    assert not [h for h in logger.handlers if type(h) is logging.StreamHandler]
