"""Requests that would run away are refused before anything is stored.

A trillion shots on a backend that takes a million per job would plan a million rounds; the
manager counts the jobs a set needs first and refuses more than ``max_jobs_per_set`` (default
10,000), naming the number and every way to allow it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from qjm_tui import JobManager
from qjm_tui.cli import main
from qjm_tui.config import Config
from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.ports import BackendLimits
from qjm_tui.core.split import count_jobs, plan_jobs
from qjm_tui.core.store import Store
from tests.conftest import basis_state

FAST_EMULATOR = "emulator:latency=0,queue=0,run=0,max_shots=10"


@pytest.mark.parametrize(("n", "max_per_job", "max_shots", "max_executions", "shots"), [
    (n, per, ms, me, shots)
    for n, per, ms, me, shots in itertools.product((1, 7, 100), (None, 3), (None, 10), (None, 60),
                                                   (None, 1, 10, 25, 60))
    if not (me and shots and shots > me)
])
def test_count_jobs_matches_the_plan(n: int, max_per_job: int | None, max_shots: int | None,
                                     max_executions: int | None, shots: int | None) -> None:
    limits = BackendLimits(max_shots=max_shots, max_executions=max_executions)
    assert count_jobs(n, limits, shots, max_per_job) == len(plan_jobs(n, limits, shots, max_per_job))


def test_trillion_shots_on_aer_are_refused_before_anything_is_stored(store_path: Path) -> None:
    with JobManager(store_path, config=Config(executor="threads")) as jm:
        with pytest.raises(JobManagerInputError) as info:
            jm.run([basis_state("1")], backend="aer", shots=10**12)
    message = str(info.value)
    assert "1,000,000 jobs" in message and "10,000" in message
    assert "--max-jobs-per-set" in message and "max_jobs_per_set" in message
    assert Store(store_path).list_job_sets() == []


def test_the_limit_comes_from_the_argument_or_the_config(store_path: Path) -> None:
    circuit = basis_state("1")
    with JobManager(store_path, config=Config(executor="threads", max_jobs_per_set=2)) as jm:
        with pytest.raises(JobManagerInputError, match="need 3 jobs"):
            jm.run([circuit], backend=FAST_EMULATOR, shots=25)
        js = jm.run([circuit], backend=FAST_EMULATOR, shots=25, max_jobs_per_set=3)
        assert js.results(timeout=60).get_counts(0) == {"1": 25}
        with pytest.raises(JobManagerInputError, match="max_jobs_per_set must be a positive integer"):
            jm.run([circuit], backend=FAST_EMULATOR, max_jobs_per_set=0)
    assert len(Store(store_path).list_job_sets()) == 1


def test_cli_refuses_with_exit_2_and_allows_with_the_option(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QJM_EXECUTOR", "threads")
    source = tmp_path / "one.qasm"
    source.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nx q[0];\n'
                      "measure q -> c;\n")
    assert main(["run", str(source), "-b", FAST_EMULATOR, "--shots", "200000", "-q"]) == 2
    err = capsys.readouterr().err
    assert "20,000 jobs" in err and "--max-jobs-per-set" in err
    assert main(["run", str(source), "-b", FAST_EMULATOR, "--shots", "30", "-q",
                 "--max-jobs-per-set", "3"]) == 0
