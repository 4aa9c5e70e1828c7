"""Pulse schedules through the whole path, on the local pulse simulator (qiskit-dynamics, numpy).

A 20-schedule amplitude sweep on ``dynamics`` is split into 4 jobs, the process running it is
killed after its first job's results are stored, and a new process resumes it and reads the
results back by index, by name and by schedule. Around it: schedules checked against the backend
before anything is stored, refused on circuit backends with the way to run them, stored exactly
(a ``Schedule`` as well as a ``ScheduleBlock``), retried, shown by the CLI, export, ``report()``
and the app; and qiskit-dynamics imported only where a schedule is simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from qjm_tui import JobManager
from qjm_tui.backends.dynamics import PI_AMPLITUDE, importable
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.errors import JobManagerInputError, UnknownBackendError
from qjm_tui.core.store import Store

needs_dynamics = pytest.mark.skipif(not importable("qiskit_dynamics"),
                                    reason="qiskit-dynamics is not installed: pip install -e '.[test]'")

#: the sweep, as the tests and their child processes build it: Gaussian(160, sigma=40, amp) on
#: DriveChannel(0), then an Acquire; even experiments as ScheduleBlocks, odd ones as Schedules
SWEEP = textwrap.dedent("""
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    from qiskit import pulse

    def gaussian_then_acquire(amp, block=True):
        gaussian = pulse.Gaussian(duration=160, sigma=40, amp=amp)
        name = f"amp={amp:.2f}"
        if block:
            with pulse.build(name=name) as made, pulse.align_sequential():
                pulse.play(gaussian, pulse.DriveChannel(0))
                pulse.acquire(1, pulse.AcquireChannel(0), pulse.MemorySlot(0))
            return made
        return pulse.Schedule((0, pulse.Play(gaussian, pulse.DriveChannel(0))),
                              (160, pulse.Acquire(1, pulse.AcquireChannel(0), pulse.MemorySlot(0))),
                              name=name, metadata={"amp": amp})

    def sweep(n=20, step=0.05):
        return [gaussian_then_acquire(round(step * i, 2), block=i % 2 == 0) for i in range(n)]
""")
_NS: dict[str, Any] = {}
exec(SWEEP, _NS)  # noqa: S102 - the same code the child processes run
sweep = _NS["sweep"]
gaussian_then_acquire = _NS["gaussian_then_acquire"]

THREADS = Config(executor="threads")
PI_INDEX = round(PI_AMPLITUDE / 0.05)
PI_NAME = f"amp={PI_AMPLITUDE:.2f}"


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args, **kwargs)


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, QJM_HOME=str(home), QJM_CONFIG=str(home.parent / "no-config.toml"))
    env.pop("QJM_EXECUTOR", None)
    return env


def _child(code: str, home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(home), capture_output=True,
                          text=True, timeout=timeout)


def _killed_child(code: str, home: Path, timeout: float = 300) -> tuple[int, str, str]:
    """Run ``code`` until it SIGKILLs itself; (exit code, stdout, stderr).

    The pool's workers outlive a killed process (they hold its pipes too), so once it is dead
    everything left in its session is killed as well, as a reboot would.
    """
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        code_ = proc.wait(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    return code_, out, err


# -- the sweep, killed and resumed in a new process ------------------------------------------

KILLED_AFTER_FIRST_JOB = SWEEP + textwrap.dedent("""
    import os, signal, threading
    from qjm_tui import JobManager
    from qjm_tui.core import store as st

    real_finish = st.Store.finish_job
    lock = threading.Lock()
    stored = []
    def finish_then_die(self, job_set_id, job, experiments, error=None, **moves):
        with lock:
            if stored:  # the first job's results are in the store; the kill comes with the second's
                os.kill(os.getpid(), signal.SIGKILL)
            finished = real_finish(self, job_set_id, job, experiments, error=error, **moves)
            stored.append(job.index)
            return finished
    st.Store.finish_job = finish_then_die

    job_set = JobManager().run(sweep(), backend="dynamics", name="rabi", max_experiments_per_job=5,
                               shots=1000, seed_simulator=11)
    print(job_set.job_set_id(), flush=True)
    job_set.wait()
""")

RESUMED = SWEEP + textwrap.dedent("""
    import json, sys
    from qjm_tui import JobManager

    job_set = JobManager().retrieve_job_set(sys.argv[1])
    job_set.resume()
    results = job_set.results(timeout=600)
    experiments = sweep()
    print(json.dumps({
        "state": str(job_set.state()),
        "by_index": [dict(results.get_counts(i)) for i in range(20)],
        "by_name": [dict(results.get_counts(e.name)) for e in experiments],
        "by_object": [dict(results.get_counts(e)) for e in experiments],
        "value_types": sorted({type(v).__name__ for i in range(20)
                               for v in results.get_counts(i).values()}),
        "report": job_set.report(detailed=True),
        "dynamics_imported_here": "qiskit_dynamics" in sys.modules,
    }))
""")


@needs_dynamics
def test_sweep_killed_after_a_job_resumes_in_a_new_process_and_reads_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out, err = _killed_child(KILLED_AFTER_FIRST_JOB, home)
    assert code == -9, err
    job_set_id = out.strip()
    store = Store(home / "qjm.sqlite")
    jobs = store.jobs(job_set_id)
    assert [(j.start, j.stop) for j in jobs] == [(0, 5), (5, 10), (10, 15), (15, 20)]
    assert sum(j.status == "done" for j in jobs) == 1, [j.status for j in jobs]
    assert store.effective_state(store.get_job_set(job_set_id)) == "interrupted"
    store.close()

    resumed = _child(RESUMED, home, job_set_id)
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["state"] == "done"
    counts = out["by_index"]
    assert all(sum(c.values()) == 1000 for c in counts)
    assert counts[0].get("0", 0) >= 950, f"amplitude 0 leaves the qubit in 0: {counts[0]}"
    assert counts[PI_INDEX].get("1", 0) >= 900, f"amplitude {PI_AMPLITUDE} is a pi pulse: {counts[PI_INDEX]}"
    assert counts[PI_INDEX // 2].get("1", 0) in range(350, 651), "half of pi leaves an equal mix"
    assert out["by_name"] == counts and out["by_object"] == counts
    assert out["value_types"] == ["int"], "numpy integers from the simulator are stored as plain ints"
    assert "Successful jobs: 4" in out["report"] and "Experiments: 20/20 done" in out["report"]
    assert not out["dynamics_imported_here"], "the simulation runs in the pool's workers"


# -- checked before anything is stored -------------------------------------------------------


def _bad_schedules() -> dict[str, tuple[Any, str, str]]:
    """name -> (experiments, backend, what the error must say)."""
    from qiskit import QuantumCircuit, pulse
    from qiskit.circuit import Parameter

    def block(name: str, *, channel: Any = None, acquire: bool = True, second_acquire: bool = False,
              amp: Any = 0.5) -> Any:
        with pulse.build(name=name) as made, pulse.align_sequential():
            pulse.play(pulse.Gaussian(duration=160, sigma=40, amp=amp), channel or pulse.DriveChannel(0))
            if acquire:
                pulse.acquire(1, pulse.AcquireChannel(0), pulse.MemorySlot(0))
            if second_acquire:
                pulse.delay(10, pulse.DriveChannel(0))
                pulse.acquire(1, pulse.AcquireChannel(0), pulse.MemorySlot(0))
        return made

    with pulse.build(name="calls") as calls:
        pulse.reference("x", "q0")
    wide = pulse.Schedule(*[pulse.Play(pulse.Constant(16, 0.1), pulse.DriveChannel(q)) for q in range(5)],
                          name="wide")
    wide = wide + pulse.Schedule((16, pulse.Acquire(1, pulse.AcquireChannel(0), pulse.MemorySlot(0))))
    early = pulse.Schedule(name="early")  # `+=` appends on shared channels only: acquires at 0
    early += pulse.Play(pulse.Gaussian(160, 0.5, 40), pulse.DriveChannel(0))
    early += pulse.Acquire(1, pulse.AcquireChannel(0), pulse.MemorySlot(0))
    circuit = QuantumCircuit(1, 1, name="c")
    circuit.measure(0, 0)
    good = block("good")
    return {
        "a channel the model lacks": ([good, block("d1", channel=pulse.DriveChannel(1))], "dynamics",
                                      "experiment 1 ('d1'): uses DriveChannel(1), which backend dynamics "
                                      "does not have (it has DriveChannel(0), MeasureChannel(0)"),
        "no acquire": ([block("blind", acquire=False)], "dynamics",
                       "experiment 0 ('blind'): measures nothing: it has no Acquire into a MemorySlot"),
        "acquires at two times": ([block("twice", second_acquire=True)], "dynamics",
                                  "acquires at 2 different times (160, 171 samples)"),
        "acquire while driving": ([early], "dynamics", "experiment 0 ('early'): drives DriveChannel(0) "
                                  "until sample 160, after its Acquire starts (sample 0)"),
        "unassigned parameter": ([block("p", amp=Parameter("A"))], "dynamics", "unassigned parameters (A)"),
        "unresolved reference": ([calls], "dynamics", "calls schedules it does not hold (x,q0)"),
        "too many qubits": ([wide], "dynamics:fake_7q_pulse",
                            "addresses qubits 0, 1, 2, 3, 4; backend dynamics:fake_7q_pulse simulates "
                            "at most 4 qubits per schedule"),
        "metadata not JSON": ([pulse.ScheduleBlock(name="m", metadata={"x": object()})], "dynamics",
                              "has metadata that cannot be stored"),
        "schedules then a circuit": ([good, circuit], "dynamics",
                                     "experiment 1 ('c'): is a circuit, but the experiments before it "
                                     "are pulse schedules"),
        "a circuit on dynamics": ([circuit], "dynamics", "backend dynamics runs pulse schedules only"),
        "on Aer": ([good], "aer", "backend aer cannot run pulse schedules; run them on the local pulse "
                                  "simulator: backend 'dynamics'"),
        "on Aer with a fake device": ([good], "aer:fake_manila", "pip install 'qjm-tui[pulse]'"),
        "on a remote service": ([good], "emulator", "backend emulator cannot run pulse schedules"),
    }


@needs_dynamics
def test_bad_schedules_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    with JobManager(tmp_path / "qjm.sqlite", config=THREADS) as jm:
        for case, (experiments, backend, message) in _quiet(_bad_schedules).items():
            with pytest.raises(JobManagerInputError) as err:
                _quiet(jm.run, experiments, backend=backend)
            assert message in str(err.value), case
        with pytest.raises(JobManagerInputError, match="transpile applies to circuits"):
            _quiet(jm.run, sweep(2), backend="dynamics", transpile=True)
        assert jm.store.list_job_sets() == []


@needs_dynamics
def test_run_options_are_dynamics_backends_own_and_checked_before_storing(tmp_path: Path) -> None:
    from qiskit_dynamics import DynamicsBackend

    from qjm_tui.backends.dynamics import model_of_spec, run_options_of

    declared = run_options_of(model_of_spec("dynamics"))
    own = set(DynamicsBackend._default_options(None)) | {"validate"}
    assert set(declared.names()) == own, "the declaration names exactly what DynamicsBackend takes"
    with JobManager(tmp_path / "qjm.sqlite", config=THREADS) as jm:
        for options, message in (({"seed_simulater": 3}, "seed_simulator"),
                                 ({"meas_level": 3}, "meas_level"),
                                 ({"solver": "fast"}, "the pulse model's own"),
                                 ({"iq_width": "wide"}, "iq_width")):
            with pytest.raises(JobManagerInputError, match=message):
                jm.run(sweep(2), backend="dynamics", **options)
        assert jm.store.list_job_sets() == []


def test_schedules_on_ibm_and_on_backend_objects_name_dynamics(tmp_path: Path) -> None:
    from qiskit_aer import AerSimulator

    with JobManager(tmp_path / "qjm.sqlite", config=THREADS) as jm:
        for backend in ("ibm-runtime:fake_manila", AerSimulator()):
            with pytest.raises(JobManagerInputError, match="cannot run pulse schedules; run them on "
                                                           "the local pulse simulator: backend 'dynamics'"):
                _quiet(jm.run, sweep(2), backend=backend)
        assert jm.store.list_job_sets() == []


def test_unknown_pulse_models_name_the_known_ones() -> None:
    from qjm_tui.backends.registry import resolve_spec

    with pytest.raises(UnknownBackendError, match="the dynamics backends are 'dynamics' .* and "
                                                  "'dynamics:fake_7q_pulse'"):
        resolve_spec("dynamics:fake_9q", THREADS)
    with pytest.raises(UnknownBackendError, match="names no model"):
        resolve_spec("dynamics:", THREADS)


# -- stored exactly --------------------------------------------------------------------------


def test_schedules_and_blocks_are_stored_exactly(tmp_path: Path) -> None:
    import numpy as np
    from qiskit import pulse, qpy

    from qjm_tui.core.circuits import SCHEDULE_TIMES, circuits_from_qpy, circuits_to_qpy
    from qjm_tui.core.inputs import load_circuit_file

    def build() -> list[Any]:
        d0, d1 = pulse.DriveChannel(0), pulse.DriveChannel(1)
        inner = pulse.Schedule(pulse.ShiftPhase(0.25, d1), name="inner")
        inner = inner.insert(4, pulse.Play(pulse.Waveform(np.array([0.1, 0.2j, 0.3, 0.0])), d1))
        schedule = pulse.Schedule(name="timed", metadata={"run": 7})
        schedule = schedule.insert(0, pulse.ShiftPhase(0.5, d0))
        schedule = schedule.insert(10, pulse.Play(pulse.Gaussian(160, 0.3, 40), d0))
        schedule = schedule.insert(0, pulse.Play(pulse.Constant(100, 0.1), pulse.MeasureChannel(0)))
        schedule = schedule.insert(37, inner)
        schedule = schedule.insert(170, pulse.Acquire(100, pulse.AcquireChannel(0), pulse.MemorySlot(0)))
        return [schedule, *sweep(2)]

    originals = _quiet(build)
    back = circuits_from_qpy(circuits_to_qpy(originals))
    flat = _quiet(lambda: pulse.Schedule(*originals[0].instructions, name="timed", metadata={"run": 7}))
    assert type(back[0]) is pulse.Schedule and back[0] == flat, "every instruction at its time"
    assert back[0].metadata == {"run": 7} and back[0].name == "timed"
    assert type(back[1]) is pulse.ScheduleBlock and back[1] == originals[1]
    assert type(back[2]) is pulse.Schedule and back[2] == originals[2]

    # A QPY file of blocks (what `qjm run` takes): unnamed blocks are named after the file.
    path = tmp_path / "rabi.qpy"
    unnamed = _quiet(lambda: [pulse.ScheduleBlock(), pulse.ScheduleBlock(name="mine")])
    with path.open("wb") as f:
        _quiet(qpy.dump, [originals[1], *unnamed], f)
    loaded = load_circuit_file(path)
    assert [b.name for b in loaded] == ["amp=0.00", "rabi[1]", "mine"]
    assert SCHEDULE_TIMES not in loaded[0].metadata


# -- runs, retries, and the rest of qjm sees the results -------------------------------------


@pytest.fixture(scope="module")
def finished_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Amplitudes 0, 0.25, 0.5 and 0.75, two per job, run to the end on threads."""
    if not importable("qiskit_dynamics"):
        pytest.skip("qiskit-dynamics is not installed")
    store = tmp_path_factory.mktemp("pulse") / "qjm.sqlite"
    with JobManager(store, config=THREADS) as jm:
        job_set = jm.run(sweep(4, step=0.25), backend="dynamics", name="rabi", shots=400,
                         max_experiments_per_job=2, seed_simulator=5)
        job_set.wait(timeout=300)
        return store, job_set.job_set_id()


def test_report_and_results_of_a_pulse_set(finished_set: tuple[Path, str]) -> None:
    store, job_set_id = finished_set
    with JobManager(store, config=THREADS) as jm:
        job_set = jm.retrieve_job_set(job_set_id)
        report = job_set.report()
        assert "backend: dynamics" in report and "Successful jobs: 2" in report
        assert "experiments: 0-1" in report and "experiments: 2-3" in report
        results = job_set.results()
        by_object = results.get_counts(sweep(4, 0.25)[2])
        assert results.get_counts(2) == results.get_counts("amp=0.50") == by_object
        assert results.get_counts(2)["1"] >= 360 and results.get_counts(0) == {"0": 400}
        combined = results.combine_results()
        assert [r.header.name for r in combined.results] == ["amp=0.00", "amp=0.25", "amp=0.50", "amp=0.75"]
        assert combined.results[1].header.metadata == {"amp": 0.25}, "a Schedule's metadata travels"
        assert jm.report(whole_store=True).startswith("Job set name: rabi")


def test_export_and_cli_read_a_pulse_set(finished_set: tuple[Path, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from qiskit.result import Result

    from qjm_tui.cli import main

    store, job_set_id = finished_set
    monkeypatch.setenv("QJM_HOME", str(store.parent))
    assert main(["results", job_set_id, "--json"]) == 0
    items = json.loads(capsys.readouterr().out)["experiments"]
    assert [i["name"] for i in items] == ["amp=0.00", "amp=0.25", "amp=0.50", "amp=0.75"]
    assert items[0]["counts"] == {"0": 400}
    for fmt in ("csv", "qiskit"):
        out = tmp_path / f"rabi.{fmt}"
        assert main(["export", job_set_id, "--format", fmt, "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "rabi.csv").read_text())))
    assert {"experiment": "0", "name": "amp=0.00", "outcome": "0", "count": "400"} in rows
    result = Result.from_dict(json.loads((tmp_path / "rabi.qiskit").read_text()))
    assert result.get_counts("amp=0.50") == items[2]["counts"]


def test_cli_runs_a_qpy_file_of_schedule_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from qiskit import qpy

    from qjm_tui.cli import main

    path = tmp_path / "sweep.qpy"
    with path.open("wb") as f:
        _quiet(qpy.dump, [gaussian_then_acquire(0), gaussian_then_acquire(PI_AMPLITUDE)], f)
    assert main(["run", str(path), "--name", "cli"]) == 2, "the default backend (aer) takes no schedules"
    err = capsys.readouterr().err
    assert "cannot run pulse schedules" in err and "'dynamics'" in err
    assert main(["ls", "--json"]) == 0 and json.loads(capsys.readouterr().out) == []
    if not importable("qiskit_dynamics"):
        pytest.skip("qiskit-dynamics is not installed")
    monkeypatch.setenv("QJM_EXECUTOR", "threads")
    assert main(["run", str(path), "--backend", "dynamics", "--name", "cli", "--shots", "100", "-q"]) == 0
    job_set_id = capsys.readouterr().out.strip()
    assert main(["results", job_set_id, "--json"]) == 0
    items = json.loads(capsys.readouterr().out)["experiments"]
    assert [i["name"] for i in items] == ["amp=0.00", PI_NAME]
    assert items[0]["counts"] == {"0": 100} and items[1]["counts"].get("1", 0) >= 90


@needs_dynamics
def test_a_pulse_job_that_fails_for_a_passing_reason_is_retried(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from qjm_tui.backends import dynamics

    real = dynamics.run_pulse_job
    calls: list[int] = []

    def flaky(*args: Any) -> list[Any]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the worker lost its pipe")
        return real(*args)

    monkeypatch.setattr(dynamics, "run_pulse_job", flaky)
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, jitter=0.0)
    with JobManager(tmp_path / "qjm.sqlite", config=THREADS, retry_policy=retry) as jm:
        job_set = jm.run(sweep(2, step=0.5), backend="dynamics", shots=200)
        results = job_set.results(timeout=300)
        assert results.get_counts(0) == {"0": 200} and results.get_counts(1).get("1", 0) >= 180
        assert sorted(j.attempts for j in jm.store.jobs(job_set.job_set_id())) == [1, 2], "one job ran twice"


@needs_dynamics
def test_a_failed_pulse_job_is_retried_here_and_never_moved_to_a_circuit_backend(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qjm_tui.backends import dynamics
    from qjm_tui.core.errors import PermanentBackendError

    real = dynamics.run_pulse_job

    def broken(*args: Any) -> list[Any]:
        raise PermanentBackendError("the simulator ran out of memory")

    monkeypatch.setattr(dynamics, "run_pulse_job", broken)
    with JobManager(tmp_path / "qjm.sqlite", config=THREADS) as jm:
        job_set = jm.run(sweep(2, step=0.5), backend="dynamics", shots=100, max_experiments_per_job=2)
        assert job_set.wait(timeout=300) == "failed"
        with pytest.raises(JobManagerInputError, match="cannot move to aer: backend aer cannot run pulse "
                                                       "schedules"):
            job_set.retry_failed(backend="aer")
        assert jm.store.get_job_set(job_set.job_set_id()).backend == "dynamics"
        monkeypatch.setattr(dynamics, "run_pulse_job", real)
        job_set.retry_failed()
        assert job_set.wait(timeout=300) == "done"
        assert job_set.results().get_counts("amp=0.50").get("1", 0) >= 90


@needs_dynamics
def test_the_7_qubit_device_flips_each_qubit_with_its_own_x_calibration(tmp_path: Path) -> None:
    from qiskit import pulse

    def device_calibrations() -> Any:
        from qiskit.providers.fake_provider import Fake7QPulseV1

        return Fake7QPulseV1().defaults().instruction_schedule_map

    calibrations = _quiet(device_calibrations)

    def x_then_measure(qubit: int) -> Any:
        x = calibrations.get("x", qubit)
        return pulse.Schedule(x, (x.duration, pulse.Acquire(1, pulse.AcquireChannel(qubit),
                                                             pulse.MemorySlot(qubit))), name=f"x{qubit}")

    experiments = _quiet(lambda: [x_then_measure(1), x_then_measure(4), pulse.Schedule(
        pulse.Acquire(1, pulse.AcquireChannel(6), pulse.MemorySlot(6)), name="idle")])
    with JobManager(tmp_path / "qjm.sqlite", config=THREADS) as jm:
        job_set = jm.run(experiments, backend="dynamics:fake_7q_pulse", shots=500, seed_simulator=3)
        results = job_set.results(timeout=300)
    assert results.get_counts("x1").get("10", 0) >= 450, results.get_counts("x1")
    assert results.get_counts("x4").get("10000", 0) >= 450, results.get_counts("x4")
    assert results.get_counts("idle") == {"0000000": 500}


def test_the_app_shows_a_pulse_set(finished_set: tuple[Path, str]) -> None:
    asyncio.run(_app_shows_a_pulse_set(*finished_set))


async def _app_shows_a_pulse_set(store: Path, job_set_id: str) -> None:
    from qjm_tui.tui.app import make_app
    from qjm_tui.tui.browser import SetBrowser

    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.query_one(SetBrowser).table.order and app.histogram.current_counts is not None:
                break
        assert app.selected_summary().id == job_set_id
        grid = app.set_pane.grid
        assert grid.cell_count == 2 and [grid.status(i) for i in range(2)] == ["done", "done"]
        assert app.histogram.experiment == 0 and app.histogram.current_counts == {"0": 400}
        await pilot.press("3", "g", *"amp=0.50", "enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.histogram.experiment == 2:
                break
        assert app.histogram.experiment == 2 and app.histogram.current_counts["1"] >= 360
        await pilot.press("q")


# -- qiskit-dynamics only where it is used, and a clear hint where it is missing -------------

NOT_INSTALLED = textwrap.dedent("""
    import importlib.abc, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "qiskit_dynamics":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
""")

WITHOUT_THE_EXTRA = NOT_INSTALLED + SWEEP + textwrap.dedent("""
    import contextlib, io, json, sys
    from qiskit import qpy
    from qjm_tui import JobManager
    from qjm_tui.cli import main

    out = {}
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        out["backends_code"] = main(["backends", "--json"])
    out["backends"] = {e["spec"]: e for e in json.loads(listing.getvalue())}
    try:
        JobManager().run(sweep(2), backend="dynamics")
    except Exception as exc:
        out["run_error"] = [type(exc).__name__, str(exc)]
    with open(sys.argv[1], "wb") as f:
        qpy.dump([gaussian_then_acquire(0)], f)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out["cli_code"] = main(["run", sys.argv[1], "--backend", "dynamics:fake_7q_pulse"])
    out["cli_error"] = err.getvalue()
    out["sets"] = len(JobManager().job_sets(whole_store=True))
    out["imported"] = "qiskit_dynamics" in sys.modules
    print(json.dumps(out))
""")


def test_without_the_extra_every_way_in_says_how_to_install_it(tmp_path: Path) -> None:
    proc = _child(WITHOUT_THE_EXTRA, tmp_path / "home", str(tmp_path / "sweep.qpy"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    hint = "pip install 'qjm-tui[pulse]'"
    assert out["backends_code"] == 0
    for spec in ("dynamics", "dynamics:fake_7q_pulse"):
        entry = out["backends"][spec]
        assert entry["available"] is False and hint in entry["detail"], entry
    assert out["backends"]["aer"]["available"] is True
    assert out["run_error"][0] == "BackendConfigurationError" and hint in out["run_error"][1]
    assert "qiskit-dynamics, which is not installed" in out["run_error"][1]
    assert out["cli_code"] != 0 and hint in out["cli_error"]
    assert out["sets"] == 0 and not out["imported"]


NOT_USED = SWEEP + textwrap.dedent("""
    import contextlib, io, json, sys
    from qiskit import QuantumCircuit, qpy
    from qjm_tui import JobManager
    from qjm_tui.cli import main
    from qjm_tui.config import Config

    seen = {}
    jm = JobManager(config=Config(executor="threads"))
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    jm.run([qc], backend="aer", shots=10).results()
    with open(sys.argv[1], "wb") as f:
        qpy.dump([gaussian_then_acquire(0), gaussian_then_acquire(0.5)], f)
    try:
        jm.run(sys.argv[1], backend="aer")
    except Exception as exc:
        seen["refused"] = str(exc)
    with contextlib.redirect_stdout(io.StringIO()):
        main(["backends"])
    try:  # checked against the model, refused, without the simulator
        jm.run(pulse.ScheduleBlock(name="empty"), backend="dynamics:fake_7q_pulse")
    except Exception as exc:
        seen["checked"] = str(exc)
    seen["before"] = "qiskit_dynamics" in sys.modules
    jm.run(sys.argv[1], backend="dynamics", shots=10).results()
    seen["after"] = "qiskit_dynamics" in sys.modules
    print(json.dumps(seen))
""")


@needs_dynamics
def test_nothing_imports_qiskit_dynamics_until_a_schedule_is_simulated(tmp_path: Path) -> None:
    proc = _child(NOT_USED, tmp_path / "home", str(tmp_path / "sweep.qpy"))
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert "cannot run pulse schedules" in seen["refused"] and "measures nothing" in seen["checked"]
    assert seen["before"] is False, "circuits, listing and checking schedules never import it"
    assert seen["after"] is True, "simulating on threads imports it in this process"
