"""Groups kept together and jobs sized by time, through the library and the command line.

The splitter's own properties are in tests/test_split.py; here the whole path: what the user
passes, what is refused before anything is stored, what the store and the reports say, and the
estimator checked against the fake devices' own instruction durations.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from qiskit import QuantumCircuit, qpy, transpile
from qiskit.circuit.random import random_circuit

from qjm_tui import JobManager
from qjm_tui.cli.entry import main
from qjm_tui.config import Config, ConfigError, load_config
from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import Store
from qjm_tui.core.timing import JOB_OVERHEAD_SECONDS, DeviceTiming, device_timing
from tests.conftest import basis_state, bell


def _spans(job_set) -> list[tuple[int, int]]:
    return [(j.start_index, j.end_index) for j in job_set.managed_jobs()]


def _circuits(n: int, prefix: str = "c") -> list[QuantumCircuit]:
    return [basis_state(format(i % 4, "02b"), f"{prefix}{i}") for i in range(n)]


# -- groups kept together -------------------------------------------------------------------


def test_groups_as_ranges_names_and_a_mapping_land_whole_in_one_job(manager: JobManager) -> None:
    circuits = _circuits(20)
    # calibration pair + the circuits they calibrate, as index ranges
    job_set = manager.run(circuits, backend="aer", shots=32, max_experiments_per_job=6,
                          keep_together=[range(4, 9), [12, 13, 14, 15]])
    assert _spans(job_set) == [(0, 3), (4, 9), (10, 15), (16, 19)]
    results = job_set.results(timeout=60)
    # the flat global index reads as before
    assert [results.get_counts(i) for i in (0, 5, 13, 19)] == [{"00": 32}, {"01": 32}, {"01": 32},
                                                             {"11": 32}]
    # names and a mapping: the group spans its first to its last member
    job_set = manager.run(circuits, backend="aer", shots=8, max_experiments_per_job=5,
                          keep_together={"cal+sweep": ["c2", "c6"]})
    assert _spans(job_set) == [(0, 1), (2, 6), (7, 11), (12, 16), (17, 19)]
    job_set.wait(timeout=60)


def test_a_group_no_job_can_hold_is_refused_before_anything_is_stored(manager: JobManager) -> None:
    circuits = _circuits(30)
    with pytest.raises(JobManagerInputError, match=r"group 'sweep' \(experiments 3-14\) holds 12 "
                       r"experiments.*max_experiments_per_job=10 allows at most 10"):
        manager.run(circuits, backend="aer", max_experiments_per_job=10,
                    keep_together={"cal": [0, 1, 2], "sweep": range(3, 15)})
    with pytest.raises(JobManagerInputError, match="group 1 names experiment 30, but the set has "
                       "experiments 0 to 29"):
        manager.run(circuits, backend="aer", keep_together=[[0], [29, 30]])
    twins = [bell("same"), bell("same"), bell("other")]
    with pytest.raises(JobManagerInputError, match="'same', which 2 experiments are called"):
        manager.run(twins, backend="aer", keep_together=[["same", "other"]])
    with pytest.raises(JobManagerInputError, match="'nope', which is no experiment's name"):
        manager.run(twins, backend="aer", keep_together=[["nope"]])
    with pytest.raises(JobManagerInputError, match="keep_together must be 'files', a list of groups"):
        manager.run(twins, backend="aer", keep_together=5)
    with pytest.raises(JobManagerInputError, match="no circuit files were given"):
        manager.run(twins, backend="aer", keep_together="files")
    assert manager.store.list_job_sets() == []


def test_one_group_per_file_from_the_library_and_the_command_line(
        tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QJM_EXECUTOR", "threads")
    paths = []
    for k, size in enumerate((3, 5, 2)):
        path = tmp_path / f"batch{k}.qpy"
        with open(path, "wb") as fh:
            qpy.dump(_circuits(size, f"b{k}_"), fh)
        paths.append(path)
    (tmp_path / "bell.qasm").write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
                                        "h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n")
    with JobManager(config=Config(executor="threads")) as jm:
        job_set = jm.run([paths[0], tmp_path / "bell.qasm", paths[1], paths[2]], backend="aer",
                         shots=16, max_experiments_per_job=6, keep_together="files")
        # files of 3, 1, 5 and 2 circuits: 3+1 fit one job of 6, then 5, then 2
        assert _spans(job_set) == [(0, 3), (4, 8), (9, 10)]
        assert job_set.results(timeout=60).get_counts("b1_4") == {"00": 16}
    code = main(["run", *map(str, paths), "--group-by-file", "--max-per-job", "6", "--shots", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    with JobManager(config=Config(executor="threads")) as jm:
        assert _spans(jm.retrieve_job_set(out.strip())) == [(0, 2), (3, 7), (8, 9)]
    code = main(["run", str(paths[1]), "--group", "1-3", "--max-per-job", "3", "--shots", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    with JobManager(config=Config(executor="threads")) as jm:
        assert _spans(jm.retrieve_job_set(out.strip())) == [(0, 0), (1, 3), (4, 4)]
    code = main(["run", str(paths[1]), "--group", "0-4", "--max-per-job", "2"])
    _, err = capsys.readouterr()
    assert code == 2 and "group 0 (experiments 0-4) holds 5 experiments" in err
    code = main(["run", str(paths[1]), "--group", "4-1"])
    _, err = capsys.readouterr()
    assert code == 2 and "expected I-J with 0 <= I <= J" in err


# -- jobs sized by time ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def manila() -> object:
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    return FakeManilaV2()


def _scheduled_seconds(circuit: QuantumCircuit, device: object) -> float:
    """The duration Qiskit's scheduler gives the circuit on the device (ALAP), in seconds."""
    scheduled = transpile(circuit, device, scheduling_method="alap", optimization_level=0)
    assert scheduled.unit == "dt"
    return scheduled.duration * device.dt


@pytest.mark.parametrize("device_name", ["FakeManilaV2", "FakeSherbrooke", "FakeTorino"])
def test_the_estimate_matches_the_devices_own_durations(device_name: str) -> None:
    from qiskit_ibm_runtime import fake_provider

    device = getattr(fake_provider, device_name)()
    timing = device_timing(device, device_name)
    assert isinstance(timing, DeviceTiming) and timing.rep_delay == device.default_rep_delay
    rng = random.Random(7)
    for seed in range(6):
        circuit = transpile(random_circuit(3, rng.randint(1, 6), measure=True, seed=seed), device,
                            optimization_level=1, seed_transpiler=seed)
        expected = _scheduled_seconds(circuit, device)
        assert timing.circuit_seconds(circuit) == pytest.approx(expected, rel=1e-9)
        assert timing.shot_seconds(circuit) == pytest.approx(expected + device.default_rep_delay, rel=1e-9)
    delayed = QuantumCircuit(1, 1)
    delayed.delay(2, 0, unit="us")  # not in dt: converted with the device's dt
    delayed.measure(0, 0)
    # the device's schedule starts the measurement on its acquire alignment (16 dt); the estimate
    # does not align, so it may be short by less than that
    gap = _scheduled_seconds(delayed, device) - timing.circuit_seconds(delayed)
    assert -1e-12 < gap < device.target.acquire_alignment * device.dt


def test_jobs_sized_by_time_on_a_device_simulator(tmp_path: Path, manila: object) -> None:
    circuits = transpile([random_circuit(3, 3, measure=True, seed=s) for s in range(24)], manila,
                         seed_transpiler=1)
    per_shot = [_scheduled_seconds(c, manila) + manila.default_rep_delay for c in circuits]
    shots = 2000
    limit = JOB_OVERHEAD_SECONDS + shots * sum(per_shot[:5]) + 1e-6  # about five circuits a job
    with JobManager(tmp_path / "s.sqlite", config=Config(executor="threads")) as jm:
        job_set = jm.run(circuits, backend="aer:fake_manila", shots=shots, max_job_seconds=limit)
        rows = jm.store.jobs(job_set.job_set_id())
        assert len(rows) > 1 and rows[0].stop - rows[0].start == 5
        for row in rows:
            expected = JOB_OVERHEAD_SECONDS + shots * sum(per_shot[row.start:row.stop])
            assert row.estimated_seconds == pytest.approx(expected, rel=1e-9)
            assert row.estimated_seconds <= limit
        summary = jm.store.summaries([job_set.job_set_id()])[0]
        assert summary.estimated_seconds == pytest.approx(sum(r.estimated_seconds for r in rows))
        assert job_set.results(timeout=120).get_counts(0)
        report = job_set.report()
        assert "Estimated time:" in report and "estimated time:" in report
        # a circuit alone longer than the limit is named, and nothing is stored
        with pytest.raises(JobManagerInputError, match=r"experiment \d+ is estimated at .* longer "
                           r"than max_job_seconds=3.1"):
            jm.run(circuits, backend="aer:fake_manila", shots=shots, max_job_seconds=3.1)
        assert len(jm.store.list_job_sets()) == 1
        # without max_job_seconds a backend with durations still gets its estimates
        plain = jm.run(circuits[:4], backend="aer:fake_manila", shots=100, max_experiments_per_job=2)
        assert all(r.estimated_seconds for r in jm.store.jobs(plain.job_set_id()))
        plain.wait(timeout=60)


def test_max_job_seconds_is_refused_where_no_durations_are_published(manager: JobManager,
                                                                      tmp_path: Path) -> None:
    with pytest.raises(JobManagerInputError, match="max_job_seconds cannot be used with backend aer: "
                       "it publishes no instruction durations"):
        manager.run([bell()], backend="aer", max_job_seconds=60)
    with pytest.raises(JobManagerInputError, match="max_job_seconds must be a positive number"):
        manager.run([bell()], backend="aer", max_job_seconds=-1)
    # the configured default applies only where jobs can be timed
    with JobManager(tmp_path / "c.sqlite", config=Config(executor="threads", max_job_seconds=60)) as jm:
        job_set = jm.run([bell()], backend="aer", shots=10)
        assert job_set.wait(timeout=60) == "done"
        assert jm.store.jobs(job_set.job_set_id())[0].estimated_seconds is None
    assert manager.store.list_job_sets() == []


def test_control_flow_has_no_estimate_and_is_refused_only_with_max_job_seconds(
        tmp_path: Path, manila: object) -> None:
    circuit = QuantumCircuit(1, 1, name="feedback")
    circuit.x(0)
    circuit.measure(0, 0)
    with circuit.if_test((circuit.clbits[0], 1)):
        circuit.x(0)
    circuit.measure(0, 0)
    with JobManager(tmp_path / "s.sqlite", config=Config(executor="threads")) as jm:
        with pytest.raises(JobManagerInputError, match=r"experiment 0 \('feedback'\): its duration "
                           r"on aer:fake_manila cannot be estimated \(.*if_else.*\), so max_job_seconds"):
            jm.run([circuit], backend="aer:fake_manila", shots=10, max_job_seconds=100)
        job_set = jm.run([circuit], backend="aer:fake_manila", shots=10)
        assert jm.store.jobs(job_set.job_set_id())[0].estimated_seconds is None
        job_set.wait(timeout=60)


def test_max_job_seconds_from_the_command_line_and_the_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        manila: object) -> None:
    monkeypatch.setenv("QJM_EXECUTOR", "threads")
    circuits = transpile([random_circuit(2, 2, measure=True, seed=s) for s in range(6)], manila,
                         seed_transpiler=1)
    path = tmp_path / "isa.qpy"
    with open(path, "wb") as fh:
        qpy.dump(circuits, fh)
    code = main(["run", str(path), "-b", "aer:fake_manila", "--shots", "4000",
                 "--max-job-seconds", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    job_set_id = out.strip()
    code = main(["show", job_set_id, "--json"])
    data = json.loads(capsys.readouterr()[0])
    estimates = [job["estimated_time"] for job in data["job_list"]]
    assert len(estimates) > 1 and all(3 < e <= 5 for e in estimates)
    assert data["estimated_time"] == pytest.approx(sum(estimates))
    main(["show", job_set_id])
    text = capsys.readouterr()[0]
    assert "Estimated time:" in text and text.count("estimated time:") == len(estimates)
    code = main(["run", str(path), "-b", "aer", "--max-job-seconds", "5"])
    assert code == 2 and "publishes no instruction durations" in capsys.readouterr()[1]
    code = main(["run", str(path), "--max-job-seconds", "0"])
    assert code == 2 and "expected a positive number of seconds" in capsys.readouterr()[1]
    config = tmp_path / "config.toml"
    config.write_text("max_job_seconds = 240\n")
    assert load_config(config).max_job_seconds == 240.0
    config.write_text("max_job_seconds = 'soon'\n")
    with pytest.raises(ConfigError, match="max_job_seconds must be a positive number"):
        load_config(config)


def test_estimates_are_kept_and_shown_beside_the_usage_the_service_reports(tmp_path: Path) -> None:
    from qjm_tui.views import job_cost_text, job_set_summary

    store = Store(tmp_path / "s.sqlite")
    store.create_job_set(job_set_id="x", name="x", tags=[], backend="b", shots=10, run_options={},
                         experiment_names=["a", "b", "c"],
                         jobs=[(0, 0, 2, 10, 0, 4.5), (1, 2, 3, 10, 0, 63.25)], circuit_blocks=[])
    store.set_job_status("x", 0, JobStatus.DONE)
    store.set_job_details("x", 0, usage=4.0)
    again = Store(tmp_path / "s.sqlite")
    jobs = again.jobs("x")
    assert [j.estimated_seconds for j in jobs] == [4.5, 63.25]
    summary = again.summaries(["x"])[0]
    assert summary.estimated_seconds == 67.75
    assert job_cost_text(jobs[0]) == "QPU 4.0 s · estimated 4.5 s from durations"
    data = job_set_summary(summary, 0.0, {}, jobs)
    assert data["estimated_time"] == 67.75 and data["usage"]["quantum_seconds"] == 4.0
    assert [j["estimated_time"] for j in data["job_list"]] == [4.5, 63.25]
    with JobManager(again, config=Config(executor="threads")) as jm:
        report = jm.retrieve_job_set("x").report()
    assert "QPU usage: 4.0 s" in report
    assert "Estimated time: 67.8 s (1m08s) on the backend" in report
    assert "estimated time: 4.5 s" in report and "estimated time: 63.2 s (1m03s)" in report
