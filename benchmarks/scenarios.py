"""qjm measured side by side with what it is meant to beat, on this machine.

Run ``python -m benchmarks scenarios [--quick] [--json FILE]`` from a checkout. Scenarios:

1. **Local throughput**: the seed's circuits (random, 5 qubits, depth 4, measured,
   pre-transpiled, 1,024 shots) through qjm end to end (split, store, run, results, every
   experiment's counts) on the default executor, against one raw ``AerSimulator().run`` of the
   same list; in a fresh process each (as a user's script runs, imports included) and warm (one
   process, after a warm-up round of each; the two sides alternate so machine noise falls on
   both).
2. **Remote pacing** on the ``emulator`` backend: J jobs of fixed time t under a concurrent limit
   L, advertised and not advertised, against the bound ceil(J/L) x t and against one job at a
   time (the original job manager's serialised submission). Refused submissions are counted by
   the emulated service itself.
3. **Store scale**: a finished set of many experiments made by the real core: retrieval by id
   in a new process, ``get_counts`` over every experiment, ``qjm ls`` over many sets; time and
   peak memory (the high-water mark of the process that did the work).
4. **App scale**: the app headless over a 10,000-job set taking 1,000 status changes a second,
   from a thread of its process and from another process: key latency, CPU and repaints
   (``python -m benchmarks.bench_app``).
5. **Start-up**: ``qjm --version``, ``qjm ls`` on an empty store and the app's first screen, in
   fresh processes (medians).

Every measured child runs with ``QJM_HOME`` in a temporary folder: the user's store, emulator
jobs and configuration are never touched. Figures are medians of the rounds run; a ratio is
qjm / reference (lower is better).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHOTS = 1024
#: the checkout this folder is in (the benchmarks are not installed with the package)
CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    """How much each scenario does: the full run, or the quick smoke run."""

    local_sizes: tuple[int, ...] = (2000, 10000)
    #: rounds of each side at each size (medians are quoted)
    local_rounds: tuple[int, ...] = (5, 3)
    pace_jobs: int = 60
    pace_limit: int = 5
    pace_time: float = 2.0
    store_experiments: int = 100_000
    store_sets: int = 1000
    startup_rounds: int = 5
    app_jobs: int = 10_000
    app_seconds: float = 10.0


FULL = Plan()
QUICK = Plan(local_sizes=(200,), local_rounds=(1,), pace_jobs=10, pace_limit=2, pace_time=0.2,
             store_experiments=2000, store_sets=20, startup_rounds=2, app_jobs=1000, app_seconds=2.0)


@dataclass
class Row:
    """One line of the table: a figure, what it is compared with, and the target."""

    scenario: str
    value: float | None
    unit: str
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""


# -- children: each measurement runs in a process of its own ----------------------------------


def _peak_mb() -> float:
    """This process's peak resident memory in MB.

    On Linux ``getrusage`` also counts the memory of the process that started this one (its
    copy before ``exec``), so the kernel's high-water mark for this program alone
    (``VmHWM``) is read where it exists.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _load_circuits(path: str, n: int) -> list[Any]:
    from qjm_tui.core.circuits import circuits_from_qpy

    return circuits_from_qpy(Path(path).read_bytes())[:n]


def _manager(home: str, executor: str = "processes") -> Any:
    from qjm_tui import JobManager
    from qjm_tui.config import Config

    return JobManager(Path(home) / "qjm.sqlite", config=Config(executor=executor))


def child_raw(args: dict[str, Any]) -> dict[str, Any]:
    """A fresh script's raw Aer run: import Aer, run the list once, take every counts."""
    circuits = _load_circuits(args["circuits"], args["n"])
    start = time.perf_counter()
    from qiskit_aer import AerSimulator

    result = AerSimulator().run(circuits, shots=SHOTS).result()
    for i in range(len(circuits)):
        result.get_counts(i)
    return {"seconds": time.perf_counter() - start}


def child_qjm(args: dict[str, Any]) -> dict[str, Any]:
    """A fresh script's qjm run: import qjm, make a manager, run, read every counts."""
    circuits = _load_circuits(args["circuits"], args["n"])
    start = time.perf_counter()
    manager = _manager(args["home"])
    job_set = manager.run(circuits, backend="aer", shots=SHOTS)
    results = job_set.results()
    for i in range(len(circuits)):
        results.get_counts(i)
    seconds = time.perf_counter() - start
    jobs = len(job_set.managed_jobs())
    manager.close()
    return {"seconds": seconds, "jobs": jobs}


def child_warm(args: dict[str, Any]) -> dict[str, Any]:
    """Both sides in one warm process, alternating, after one warm-up round of each."""
    from qiskit_aer import AerSimulator

    circuits = _load_circuits(args["circuits"], args["n"])
    simulator = AerSimulator()
    manager = _manager(args["home"])

    def raw() -> float:
        start = time.perf_counter()
        result = simulator.run(circuits, shots=SHOTS).result()
        for i in range(len(circuits)):
            result.get_counts(i)
        return time.perf_counter() - start

    def qjm() -> float:
        start = time.perf_counter()
        results = manager.run(circuits, backend="aer", shots=SHOTS).results()
        for i in range(len(circuits)):
            results.get_counts(i)
        return time.perf_counter() - start

    warm_n = min(len(circuits), 500)
    simulator.run(circuits[:warm_n], shots=SHOTS).result()
    manager.run(circuits[:warm_n], backend="aer", shots=SHOTS).results()
    raws, qjms = [], []
    for _ in range(args["rounds"]):
        raws.append(raw())
        qjms.append(qjm())
    manager.close()
    return {"raw": raws, "qjm": qjms}


def child_pacing(args: dict[str, Any]) -> dict[str, Any]:
    """J one-circuit jobs on the emulator; the service's own record counts refusals."""
    from qiskit import QuantumCircuit

    from qjm_tui import JobManager
    from qjm_tui.backends.emulator import EmulatorBackend
    from qjm_tui.config import Config

    circuit = QuantumCircuit(1, 1, name="pace")
    circuit.measure(0, 0)
    emulator_dir = Path(args["home"]) / "emulator"
    spec = (f"emulator:latency=0.05,queue=0,run={args['t']},max_jobs={args['limit']},"
            f"advertise={args['advertise']},max_per_job=1,dir={emulator_dir}")
    config = Config(executor="threads")
    if args.get("one_at_a_time"):
        config.backends[spec] = {"max_concurrent_jobs": 1}
    manager = JobManager(Path(args["home"]) / "qjm.sqlite", config=config)
    start = time.perf_counter()
    job_set = manager.run([circuit] * args["jobs"], backend=spec, shots=16)
    state = job_set.wait()
    seconds = time.perf_counter() - start
    manager.close()
    service = EmulatorBackend(f"dir={emulator_dir}")
    record = service.submissions()
    result = {"seconds": seconds, "state": state,
              "refused": sum(1 for s in record if s["kind"] == "refused"),
              "accepted": sum(1 for s in record if s["kind"] == "accepted"),
              "max_concurrency": service.max_concurrency()}
    service.close()
    return result


def child_fill_store(args: dict[str, Any]) -> dict[str, Any]:
    """A finished set of ``n`` experiments (run for real on Aer), then ``sets - 1`` small ones."""
    from qiskit import transpile
    from qiskit.circuit.random import random_circuit
    from qiskit_aer import AerSimulator

    base = transpile([random_circuit(3, 2, measure=True, seed=i) for i in range(100)],
                     backend=AerSimulator(), seed_transpiler=1)
    circuits = [base[i % len(base)] for i in range(args["n"])]
    manager = _manager(args["home"])
    start = time.perf_counter()
    big = manager.run(circuits, backend="aer", shots=64, name="bench-large")
    state = big.wait()
    seconds = time.perf_counter() - start
    manager.close()
    small = _manager(args["home"], executor="threads")
    for i in range(args["sets"] - 1):
        small.run(base[i % len(base)], backend="aer", shots=16, name=f"bench-small-{i}").wait()
    small.close()
    return {"id": big.job_set_id(), "state": state, "seconds": seconds}


def child_retrieve(args: dict[str, Any]) -> dict[str, Any]:
    """A new process finds the set by id and reads its jobs' states."""
    start = time.perf_counter()
    manager = _manager(args["home"])
    job_set = manager.retrieve_job_set(args["id"])
    statuses = job_set.statuses()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "jobs": len(statuses), "state": job_set.state()}


def child_counts(args: dict[str, Any]) -> dict[str, Any]:
    """A new process finds the set by id and takes every experiment's counts."""
    start = time.perf_counter()
    manager = _manager(args["home"])
    results = manager.retrieve_job_set(args["id"]).results()
    total = 0
    for i in range(args["n"]):
        total += sum(results.get_counts(i).values())
    return {"seconds": time.perf_counter() - start, "shots": total}


def child_seed(args: dict[str, Any]) -> dict[str, Any]:
    """The seed's circuits: random, 5 qubits, depth 4, measured, transpiled for Aer; as QPY,
    one file per size (the first N), so a measured process reads only what it runs."""
    from qiskit import transpile
    from qiskit.circuit.random import random_circuit
    from qiskit_aer import AerSimulator

    from qjm_tui.core.circuits import circuits_to_qpy

    circuits = [random_circuit(5, 4, measure=True, seed=i) for i in range(args["n"])]
    circuits = transpile(circuits, backend=AerSimulator(), seed_transpiler=1)
    for n, path in args["files"].items():
        Path(path).write_bytes(circuits_to_qpy(circuits[:int(n)]))
    return {"n": len(circuits)}


def child_first_screen(args: dict[str, Any]) -> dict[str, Any]:
    """Open the app (headless, 120x40) on the store in $QJM_HOME and say, as a wall-clock time,
    when its first screen listing the store's sets was drawn."""
    import asyncio

    from qjm_tui.tui.app import make_app

    app = make_app(None)
    shown: dict[str, float] = {}

    async def first_screen() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            while len(app.browser.rows) < args["sets"]:
                await pilot.pause(0.005)
            await pilot.pause(0)
            shown["at"] = time.time()

    asyncio.run(first_screen())
    return {"shown_at": shown["at"], "sets": len(app.browser.rows)}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "seed": child_seed, "raw": child_raw, "qjm": child_qjm, "warm": child_warm,
    "pacing": child_pacing, "fill-store": child_fill_store, "retrieve": child_retrieve,
    "counts": child_counts, "first-screen": child_first_screen,
}


def _run_child(name: str, args: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run one measurement in a new interpreter; its last stdout line is its JSON answer."""
    command = [sys.executable, "-m", "benchmarks.scenarios", "--child", name, json.dumps(args)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"benchmark step {name!r} failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_seconds": wall}


def _run_command(argv: Sequence[str], env: dict[str, str], timeout: float) -> tuple[float, float]:
    """Wall seconds and peak memory (MB) of one fresh ``python -m qjm_tui ARGV`` process.

    The memory is the kernel's account of the child, which includes this process's size when
    it started the child: so this process imports nothing heavy itself.
    """
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "qjm_tui", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            raise RuntimeError(f"`qjm {' '.join(argv)}` took more than {timeout:.0f} s")
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"`qjm {' '.join(argv)}` exited {proc.returncode}: {err.strip()}")
    if proc.stderr:
        proc.stderr.close()
    peak = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return seconds, peak


# -- the scenarios ----------------------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    # the measured children import this folder's modules wherever they are started from
    env["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), *filter(None, [env.get("PYTHONPATH")])])
    env["QJM_HOME"] = str(home)
    env["QJM_CONFIG"] = str(home / "no-config.toml")  # the defaults, whatever the user set
    for key in ("QJM_BACKEND", "QJM_SHOTS", "QJM_EXECUTOR"):
        env.pop(key, None)
    return env


def _ratio_row(scenario: str, qjm: list[float], raw: list[float], target: float | None,
               **detail: Any) -> Row:
    q, r = statistics.median(qjm), statistics.median(raw)
    ratio = q / r
    return Row(scenario, q, "s", f"raw Aer {r:.2f} s", ratio,
               f"<= {target:.2f}x" if target else "", (ratio <= target) if target else None,
               {"qjm_seconds": qjm, "raw_seconds": raw, **detail})


def local_throughput(plan: Plan, work: Path, say: Callable[[str], None]) -> list[Row]:
    """Scenario 1: qjm end to end against one raw AerSimulator().run, fresh and warm."""
    rows = []
    files = {n: str(work / f"seed-{n}.qpy") for n in plan.local_sizes}
    say(f"making {max(plan.local_sizes):,} seed circuits (random, 5 qubits, depth 4, transpiled)")
    _run_child("seed", {"n": max(plan.local_sizes), "files": files}, _env(work), 3600)
    for n, rounds in zip(plan.local_sizes, plan.local_rounds, strict=True):
        circuits = files[n]
        raws, qjms, jobs = [], [], 0
        for r in range(rounds):
            say(f"local throughput, fresh processes, N={n:,}: round {r + 1}/{rounds}")
            home = work / f"fresh-{n}-{r}"
            home.mkdir()
            env = _env(home)
            raws.append(_run_child("raw", {"circuits": circuits, "n": n}, env, 3600)["seconds"])
            answer = _run_child("qjm", {"circuits": circuits, "n": n, "home": str(home)},
                                env, 3600)
            qjms.append(answer["seconds"])
            jobs = answer["jobs"]
        target = 1.05 if n == 2000 else None
        rows.append(_ratio_row(f"local fresh N={n:,}", qjms, raws, target, jobs=jobs))
        say(f"local throughput, warm process, N={n:,}: {rounds} rounds each")
        home = work / f"warm-{n}"
        home.mkdir()
        answer = _run_child("warm", {"circuits": circuits, "n": n, "home": str(home),
                                     "rounds": rounds}, _env(home), 3600)
        target = 0.70 if n == 10000 else None
        rows.append(_ratio_row(f"local warm N={n:,}", answer["qjm"], answer["raw"], target))
    return rows


def remote_pacing(plan: Plan, work: Path, say: Callable[[str], None]) -> list[Row]:
    """Scenario 2: makespan on the emulator against ceil(J/L) x t and one job at a time."""
    j, limit, t = plan.pace_jobs, plan.pace_limit, plan.pace_time
    bound = math.ceil(j / limit) * t
    runs: dict[str, dict[str, Any]] = {}
    for label, advertise, one in (("advertised", 1, False), ("not advertised", 0, False),
                                  ("one at a time", 1, True)):
        say(f"remote pacing, J={j} L={limit} t={t:g}s: {label}")
        home = work / f"pace-{advertise}-{int(one)}"
        home.mkdir()
        runs[label] = _run_child("pacing", {"home": str(home), "jobs": j, "limit": limit, "t": t,
                                            "advertise": advertise, "one_at_a_time": one},
                                 _env(home), 3600)
    serial = runs["one at a time"]["seconds"]
    rows = []
    for label in ("advertised", "not advertised"):
        run = runs[label]
        ratio = run["seconds"] / bound
        rows.append(Row(f"pacing J={j} L={limit} t={t:g}s, limit {label}", run["seconds"], "s",
                        f"bound {bound:.1f} s", ratio, "<= 1.10x", ratio <= 1.10,
                        {**run, "bound_seconds": bound, "one_at_a_time_seconds": serial,
                         "speedup_over_one_at_a_time": serial / run["seconds"]},
                        f"{run['refused']} refused; {serial / run['seconds']:.1f}x faster than "
                        f"one at a time ({serial:.1f} s)"))
    return rows


def store_scale(plan: Plan, work: Path, say: Callable[[str], None]) -> list[Row]:
    """Scenario 3: a large finished set read back by new processes; ``qjm ls`` over many sets."""
    home = work / "store"
    home.mkdir()
    env = _env(home)
    n = plan.store_experiments
    say(f"store scale: running a set of {n:,} experiments and {plan.store_sets - 1:,} small ones")
    filled = _run_child("fill-store", {"home": str(home), "n": n, "sets": plan.store_sets}, env, 7200)
    size_mb = (home / "qjm.sqlite").stat().st_size / 1e6
    say("store scale: retrieval by id, get_counts over all, qjm ls")
    retrieve = _run_child("retrieve", {"home": str(home), "id": filled["id"]}, env, 600)
    counts = _run_child("counts", {"home": str(home), "id": filled["id"], "n": n}, env, 1800)
    ls_seconds, ls_peak = _run_command(["ls"], env, 600)
    common = {"store_mb": size_mb, "set_id": filled["id"], "made_in_seconds": filled["seconds"]}
    return [
        Row(f"retrieve a {n:,}-experiment set by id (new process)", retrieve["seconds"], "s",
            f"peak {retrieve['peak_mb']:.0f} MB", None, "< 1 s, < 500 MB",
            retrieve["seconds"] < 1 and retrieve["peak_mb"] < 500, {**retrieve, **common}),
        Row(f"get_counts over all {n:,} (new process)", counts["seconds"], "s",
            f"peak {counts['peak_mb']:.0f} MB", None, "< 500 MB", counts["peak_mb"] < 500,
            {**counts, **common}),
        Row(f"qjm ls over {plan.store_sets:,} sets", ls_seconds, "s", f"peak {ls_peak:.0f} MB",
            None, "", None, {"seconds": ls_seconds, "peak_mb": ls_peak, **common}),
    ]


def startup(plan: Plan, work: Path, say: Callable[[str], None]) -> list[Row]:
    """Scenario 5: fresh ``qjm --version`` and ``qjm ls`` on an empty store, medians."""
    rows = []
    for label, argv in (("qjm --version", ["--version"]), ("qjm ls, empty store", ["ls"])):
        say(f"start-up: {label}, {plan.startup_rounds} fresh processes")
        seconds, peaks = [], []
        for r in range(plan.startup_rounds):
            home = work / f"start-{argv[0].strip('-')}-{r}"
            home.mkdir()
            s, peak = _run_command(argv, _env(home), 120)
            seconds.append(s)
            peaks.append(peak)
        median = statistics.median(seconds)
        rows.append(Row(label, median, "s", f"peak {statistics.median(peaks):.0f} MB", None, "",
                        None, {"seconds": seconds, "peak_mb": peaks}))
    rows += first_screen(plan, work, say)
    return rows


def first_screen(plan: Plan, work: Path, say: Callable[[str], None]) -> list[Row]:
    """The app in fresh processes: from starting the interpreter to the first screen that
    lists the store's sets (imports, store, layout and the first read included), on an empty
    store and on one with a few sets; medians."""
    rows = []
    for sets in (0, 5):
        home = work / f"first-screen-{sets}"
        home.mkdir()
        env = _env(home)
        if sets:
            _run_child("fill-store", {"home": str(home), "n": 50, "sets": sets}, env, 600)
        say(f"start-up: the app's first screen over {sets} sets, {plan.startup_rounds} fresh processes")
        seconds = []
        for _ in range(plan.startup_rounds):
            started = time.time()
            answer = _run_child("first-screen", {"sets": sets}, env, 120)
            seconds.append(answer["shown_at"] - started)
        median = statistics.median(seconds)
        rows.append(Row(f"app: time to first screen, {sets} sets", median, "s", "", None, "< 1.5 s",
                        median < 1.5, {"seconds": seconds}))
    return rows


def app_scale(plan: Plan, work: Path, say: Callable[[str], None]) -> list[Row]:
    """Scenario 4: the app headless over a large set taking 1,000 status changes a second, from
    a thread of its own process (events) and from another process (polling): repaints, key
    latency and CPU (``python -m benchmarks.bench_app``, run in a process of its own)."""
    say(f"app scale: a {plan.app_jobs:,}-job set, 1,000 status changes/s, "
        f"{plan.app_seconds:g} s windows")
    out = work / "app.json"
    command = [sys.executable, "-m", "benchmarks.bench_app", "--jobs", str(plan.app_jobs),
               "--seconds", str(plan.app_seconds), "--json", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(work / "app-home"),
                          timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the app benchmark failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(out.read_text())
    rows = []
    for r in report["rows"]:
        if r["scenario"] == "idle":
            continue
        source = "this process" if r["scenario"] == "thread" else "another process"
        met = (r["key_worst_ms"] is not None and r["key_worst_ms"] < 100
               and r["app_cpu_cores"] < 0.5)
        rows.append(Row(f"app, {plan.app_jobs:,} jobs, {r['changes_per_s']:,.0f} changes/s from {source}",
                        r["key_median_ms"], "ms",
                        f"worst {r['key_worst_ms']:.0f} ms" if r["key_worst_ms"] is not None else "",
                        None,
                        "keys < 100 ms, < half a core", met, r,
                        f"{r['app_cpu_cores']:.2f} cores; {r['repaints_per_s']:.0f} repaints/s, "
                        f"median {r['repaint_median_ms']:.1f} ms"))
    return rows


SCENARIOS: dict[str, Callable[[Plan, Path, Callable[[str], None]], list[Row]]] = {
    "local": local_throughput, "pacing": remote_pacing, "store": store_scale, "app": app_scale,
    "startup": startup,
}


# -- output -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    packages: dict[str, str | None] = {}
    for name in ("qjm-tui", "qiskit", "qiskit-aer", "numpy", "textual"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    from qjm_tui import __version__

    packages["qjm-tui"] = __version__
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cores": os.cpu_count(), "usable_cores": usable, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "machine": platform.machine(), "packages": packages,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} {unit}" if value < 10 else f"{value:.1f} {unit}"


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table (a Markdown table, so the README can hold it as is)."""
    header = ["scenario", "qjm", "against", "ratio", "target", "met", "notes"]
    body = [[r.scenario, _figure(r.value, r.unit), r.reference,
             "" if r.ratio is None else f"{r.ratio:.2f}x", r.target,
             "" if r.met is None else ("yes" if r.met else "NO"), r.note] for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(b) for b in body)])


def run(quick: bool = False, json_path: str | None = None, only: Sequence[str] | None = None,
        say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the scenarios (all, or ``only`` these) and return the report that is printed."""
    plan = QUICK if quick else FULL
    say = say or (lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr,
                                     flush=True))
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qjm-bench-") as tmp:
        work = Path(tmp)
        for name, scenario in SCENARIOS.items():
            if only and name not in only:
                continue
            folder = work / name
            folder.mkdir()
            rows.extend(scenario(plan, folder, say))
    report = {"quick": quick, "plan": plan.__dict__, "machine": machine(),
              "seconds": time.perf_counter() - started,
              "rows": [r.__dict__ for r in rows], "table": table(rows)}
    if json_path:
        from qjm_tui.core.files import write_file

        write_file(json_path, json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks scenarios``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks scenarios",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small run of every scenario (a smoke test, under two minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    parser.add_argument("--only", action="append", choices=list(SCENARIOS),
                        help="run only this scenario (repeatable)")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "ARGS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.child:
        name, payload = args.child
        answer = CHILDREN[name](json.loads(payload))
        answer["peak_mb"] = _peak_mb()
        print(json.dumps(answer), flush=True)
        return 0
    report = run(args.quick, args.json, args.only)
    m = report["machine"]
    print(f"benchmarks scenarios{' --quick' if args.quick else ''}: {m['usable_cores']} cores, Python "
          f"{m['python']}, qiskit {m['packages']['qiskit']}, qiskit-aer {m['packages']['qiskit-aer']}"
          f"; {report['seconds']:.0f} s in all")
    print(report["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
