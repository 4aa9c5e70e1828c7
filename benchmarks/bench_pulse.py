"""Benchmark: pulse schedules on the local pulse simulator (not a test).

Scenarios (each run ``--repeats`` times in turn, medians printed):

* ``solver``  — one schedule at a time on the ``dynamics`` transmon in this process: the default
  (``scipy_expm``, one matrix exponential per sample) against an adaptive solve to a tight
  tolerance (``DOP853``, atol = rtol = 1e-10), and jax's ``jax_odeint`` when jax is installed;
  seconds per schedule, and the largest difference in the excited population from the tight solve;
* ``sweep``   — ``--schedules`` amplitude-sweep schedules through ``JobManager.run`` on
  ``dynamics`` (process pool, then threads) against the same schedules in one raw
  ``DynamicsBackend.run``: wall time per schedule, everything a user waits for included;
* ``device``  — ``dynamics:fake_7q_pulse``: a one-qubit and a two-qubit (cross-resonance)
  schedule, seconds per schedule in this process;
* ``store``   — ``--large`` schedules checked and stored by ``JobManager.run`` (the set is then
  cancelled): qjm's own cost per schedule before any simulation.

    python -m benchmarks.bench_pulse                      # every scenario
    python -m benchmarks.bench_pulse --only solver --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

warnings.simplefilter("ignore", DeprecationWarning)


def gaussian_then_acquire(amp: float, qubit: int = 0) -> Any:
    from qiskit import pulse

    with pulse.build(name=f"amp={amp:.3f}") as block, pulse.align_sequential():
        pulse.play(pulse.Gaussian(duration=160, sigma=40, amp=amp), pulse.DriveChannel(qubit))
        pulse.acquire(1, pulse.AcquireChannel(qubit), pulse.MemorySlot(qubit))
    return block


def sweep(n: int) -> list[Any]:
    return [gaussian_then_acquire(round(i / n, 4)) for i in range(n)]


@contextlib.contextmanager
def timed(into: list[float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    into.append(time.perf_counter() - start)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def excited(backend: Any, schedule: Any, options: dict[str, Any]) -> float:
    """The population outside the ground state after the pulse (no sampling)."""
    import numpy as np
    from qiskit import pulse
    from qiskit.quantum_info import Statevector

    played = pulse.transforms.block_to_schedule(schedule).filter(instruction_types=[pulse.Play])
    solver = backend.options.solver
    y0 = Statevector(backend._dressed_states[:, 0])
    end = max(played.duration, 1) * solver._dt
    state = np.asarray(solver.solve(t_span=[0, end], y0=y0, signals=played, **options).y[-1])
    # The frame is the undriven Hamiltonian, diagonal in the dressed basis: populations there
    # are the same in and out of the frame.
    return float(1 - abs((backend._dressed_states_adjoint @ state)[0]) ** 2)


def bench_solver(repeats: int) -> list[str]:
    from qjm_tui.backends.dynamics import TRANSMON_DT, _one_blas_thread, importable, simulator

    sim = simulator("dynamics")
    backend = sim.backend((0,))
    schedules = [gaussian_then_acquire(a) for a in (0.1, 0.25, 0.5, 0.75, 0.95)]
    methods: dict[str, dict[str, Any]] = {
        "scipy_expm (default)": {"method": "scipy_expm", "max_dt": TRANSMON_DT},
        "DOP853 1e-10": {"method": "DOP853", "atol": 1e-10, "rtol": 1e-10},
    }
    if importable("jax"):
        import jax

        jax.config.update("jax_enable_x64", True)
        methods["jax_odeint 1e-8"] = {"method": "jax_odeint", "atol": 1e-8, "rtol": 1e-8,
                                      "hmax": TRANSMON_DT}
    with _one_blas_thread():
        reference = [excited(backend, s, methods["DOP853 1e-10"]) for s in schedules]
    lines = []
    for label, options in methods.items():
        with _one_blas_thread():
            error = max(abs(excited(backend, s, options) - ref)
                        for s, ref in zip(schedules, reference, strict=True))
        # Timed as a job runs them: the five schedules in one DynamicsBackend.run.
        sim.run(schedules, 1024, {"solver_options": options})  # warm (jax compiles here)
        times: list[float] = []
        for _ in range(repeats):
            with timed(times):
                sim.run(schedules, 1024, {"solver_options": options})
        lines.append(f"solver  {label:22s} {median(times) / len(schedules) * 1e3:8.1f} ms/schedule"
                     f"   max |dP1| from DOP853 1e-10: {error:.1e}")
    return lines


def bench_sweep(n: int, repeats: int) -> list[str]:
    from qjm_tui import JobManager
    from qjm_tui.backends.dynamics import simulator
    from qjm_tui.config import Config

    schedules = sweep(n)
    raw_backend = simulator("dynamics")
    variants: dict[str, Callable[[], None]] = {}

    def raw() -> None:
        raw_backend.run(schedules, 1024, {"seed_simulator": 1})

    def managed(executor: str) -> Callable[[], None]:
        def go() -> None:
            with tempfile.TemporaryDirectory() as home, \
                    JobManager(Path(home) / "qjm.sqlite", config=Config(executor=executor)) as jm:
                jm.run(schedules, backend="dynamics", seed_simulator=1).results(timeout=3600)
        return go

    variants = {"raw DynamicsBackend.run (1 core)": raw, "qjm processes": managed("processes"),
                "qjm threads": managed("threads")}
    for go in variants.values():  # warm: imports, the pool, the simulators
        go()
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(repeats):
        for label, go in variants.items():
            with timed(times[label]):
                go()
    raw_median = median(times["raw DynamicsBackend.run (1 core)"])
    return [f"sweep   {label:32s} {median(t) / n * 1e3:7.1f} ms/schedule  ({median(t):.2f} s for {n}; "
            f"x{median(t) / raw_median:.2f} of raw)" for label, t in times.items()]


def bench_device(repeats: int) -> list[str]:
    from qiskit import pulse

    from qjm_tui.backends.dynamics import simulator

    sim = simulator("dynamics:fake_7q_pulse")
    one = gaussian_then_acquire(0.1, qubit=1)
    with pulse.build(name="cr") as cr, pulse.align_sequential():
        pulse.play(pulse.GaussianSquare(duration=640, amp=0.3, sigma=64, width=384), pulse.ControlChannel(0))
        with pulse.align_left():
            pulse.acquire(1, pulse.AcquireChannel(0), pulse.MemorySlot(0))
            pulse.acquire(1, pulse.AcquireChannel(1), pulse.MemorySlot(1))
    lines = []
    for label, schedule in (("1 qubit, 160 samples", one), ("2 qubits (u0), 640 samples", cr)):
        sim.run([schedule], 1024, {})  # builds this qubit set's model
        times: list[float] = []
        for _ in range(repeats):
            with timed(times):
                sim.run([schedule], 1024, {})
        lines.append(f"device  fake_7q_pulse {label:28s} {median(times) * 1e3:8.1f} ms/schedule")
    return lines


def bench_store(n: int, repeats: int) -> list[str]:
    from qjm_tui import JobManager
    from qjm_tui.config import Config

    schedules = sweep(n)
    times: list[float] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as home, \
                JobManager(Path(home) / "qjm.sqlite", config=Config(executor="threads")) as jm:
            with timed(times):
                job_set = jm.run(schedules, backend="dynamics", max_experiments_per_job=100)
            job_set.cancel()
            job_set.wait()
    return [f"store   {n} schedules checked and stored by run(): {median(times):.2f} s "
            f"({median(times) / n * 1e3:.2f} ms/schedule)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--only", choices=("solver", "sweep", "device", "store"), action="append")
    args = parser.parse_args(argv)
    chosen = args.only or ["solver", "sweep", "device", "store"]
    for name in chosen:
        if name == "solver":
            lines = bench_solver(args.repeats)
        elif name == "sweep":
            lines = bench_sweep(args.schedules, args.repeats)
        elif name == "device":
            lines = bench_device(args.repeats)
        else:
            lines = bench_store(args.large, args.repeats)
        print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
