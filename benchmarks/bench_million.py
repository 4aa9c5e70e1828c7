"""A million experiments on ``aer``: memory, store size, retrieval, streaming reads and the app.

Run (takes minutes; the 1,000,000 set about half an hour on 2 cores):

    nice -n 10 python -m benchmarks.bench_million [--sizes 100000,1000000] [--per-job 1000]
                                                   [--shots 64] [--cache DIR] [--json PATH]

For each size N, a QPY file of N small distinct circuits (2 qubits: an rz by an angle of its
own, h, cx, measure both; named ``e0`` .. ``e{N-1}``) is written (once; ``--cache`` keeps it), then
every step runs in a fresh process, with ``QJM_HOME`` in a temporary folder:

* **run**: ``JobManager().run([file], backend="aer", shots=S, max_experiments_per_job=P)``
  and ``wait()`` on the default process pool (N / P jobs). The process's resident memory is
  sampled every half second; the peak is the kernel's high-water mark (``VmHWM``), and the pool
  workers' own peaks are read the same way before the process ends.
* **store**: the store file's size (with its write-ahead log) per experiment.
* **retrieve**: a new process imports qjm, ``retrieve_job_set(id)`` and reads every job's status.
* **get_counts**: a new process retrieves the set, takes ``results()`` and then ``get_counts(i)``
  for 200 random ``i`` (each timed; the first read of a page of experiments included).
* **commands**: ``qjm results ID --json`` (to /dev/null) and ``qjm export ID`` in csv and qiskit
  formats (to files): wall time and peak memory of each process.
* **app**: the app headless at 120x40 opens the set (from selecting it to its grid and the first
  job's details shown) and ``l`` is pressed every 50-150 ms for 5 s: the time from each key to
  the first frame showing the moved cursor.

Comparing the sizes side by side shows what grows with the set: a step whose memory is the
same at 100,000 and 1,000,000 experiments does not grow with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.scenarios import _peak_mb, _run_command

#: QPY header bytes before the program count (magic, QPY version, Qiskit version)
_COUNT_AT = 10


def _rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(resident, peak resident) MB of a process, from /proc."""
    rss = peak = 0.0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return rss, peak


# -- the circuits -----------------------------------------------------------------------------


def _circuit(i: int) -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2, name=f"e{i}")
    qc.rz((i % 997) * 0.0063, 0)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def _write_programs(start: int, stop: int, path: str) -> bytes:
    """Write circuits start..stop-1 as bare QPY programs to ``path``; return a QPY header."""
    from qiskit import qpy

    head = b""
    with open(path, "wb") as out:
        for i in range(start, stop):
            buffer = io.BytesIO()
            qpy.dump(_circuit(i), buffer)
            data = buffer.getvalue()
            size = struct.calcsize("!6sBBBBQc" if data[6] >= 10 else "!6sBBBBQ") + (data[6] >= 5)
            head = data[:size]
            out.write(data[size:])
    return head


def make_circuit_file(path: Path, n: int, parts: int = 2) -> None:
    """A QPY file of ``n`` circuits, written by ``parts`` processes and joined (never held)."""
    from concurrent.futures import ProcessPoolExecutor

    bounds = [n * k // parts for k in range(parts + 1)]
    names = [f"{path}.part{k}" for k in range(parts)]
    with ProcessPoolExecutor(parts) as pool:
        heads = list(pool.map(_write_programs, bounds[:-1], bounds[1:], names))
    head = bytearray(heads[0])
    struct.pack_into("!Q", head, _COUNT_AT, n)
    with open(f"{path}.tmp", "wb") as out:
        out.write(head)
        for name in names:
            with open(name, "rb") as part:
                while chunk := part.read(1 << 22):
                    out.write(chunk)
            os.unlink(name)
    os.replace(f"{path}.tmp", path)


# -- the measured children --------------------------------------------------------------------


def child_run(args: dict[str, Any]) -> dict[str, Any]:
    from qjm_tui import JobManager

    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    start = time.perf_counter()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append((time.perf_counter() - start, _rss_mb()[0]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    manager = JobManager(Path(args["home"]) / "qjm.sqlite")
    job_set = manager.run([args["circuits"]], backend="aer", shots=args["shots"],
                          max_experiments_per_job=args["per_job"], name=f"million-{args['n']}")
    stored = time.perf_counter() - start
    state = job_set.wait()
    done = time.perf_counter() - start
    from qjm_tui.backends import local

    workers = [_rss_mb(pid)[1] for pid in list(getattr(local._PROCESS_POOL, "_processes", {}) or {})]
    stop.set()
    sampler.join()
    jobs = len(manager.store.jobs(job_set.job_set_id()))
    manager.close()
    rss = [mb for _, mb in samples]
    quarter = max(1, len(rss) // 4)
    return {"id": job_set.job_set_id(), "state": state, "jobs": jobs, "stored_seconds": stored,
            "seconds": done, "worker_peaks_mb": workers,
            "rss_quarters_mb": [max(rss[k:k + quarter]) for k in range(0, len(rss), quarter)][:4]
            if rss else []}


def child_retrieve(args: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    from qiskit.providers import JobStatus  # noqa: F401 - what statuses() gives, imported first

    from qjm_tui import JobManager

    imported = time.perf_counter()
    manager = JobManager(Path(args["home"]) / "qjm.sqlite")
    job_set = manager.retrieve_job_set(args["id"])
    statuses = job_set.statuses()
    end = time.perf_counter()
    return {"seconds": end - start, "after_imports": end - imported, "jobs": len(statuses)}


def child_counts(args: dict[str, Any]) -> dict[str, Any]:
    from qjm_tui import JobManager

    start = time.perf_counter()
    manager = JobManager(Path(args["home"]) / "qjm.sqlite")
    results = manager.retrieve_job_set(args["id"]).results()
    ready = time.perf_counter() - start
    rng = random.Random(5)
    times = []
    for _ in range(200):
        i = rng.randrange(args["n"])
        t = time.perf_counter()
        counts = results.get_counts(i)
        times.append((time.perf_counter() - t) * 1000)
        assert sum(counts.values()) == args["shots"]
    return {"results_seconds": ready, "median_ms": statistics.median(times), "worst_ms": max(times),
            "first_ms": times[0]}


def child_app(args: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.bench_app import SIZE, FrameProbe, _until, press_keys
    from qjm_tui.config import Config
    from qjm_tui.tui.app import make_app

    async def measure() -> dict[str, Any]:
        app = make_app(Path(args["home"]) / "qjm.sqlite", config=Config(executor="threads"))
        probe = FrameProbe(app)
        async with app.run_test(size=SIZE) as pilot:
            await _until(lambda: args["id"] in app.browser.rows)
            start = time.perf_counter()
            app.go_to_set(args["id"])
            pane = app.set_pane
            await _until(lambda: pane.current_job is not None and pane.summary is not None
                         and pane.summary.id == args["id"])
            opened = time.perf_counter() - start
            probe.grid = pane.grid
            pane.grid.focus()
            await pilot.pause()
            await asyncio.sleep(1.0)
            with probe.installed():
                probe.recording = True
                unseen = await press_keys(probe, time.perf_counter() + args["seconds"], random.Random(11))
                probe.recording = False
        app.manager.close()
        keys = probe.key_latencies
        return {"open_seconds": opened, "keys": len(keys), "unseen": unseen,
                "key_median_ms": statistics.median(keys) if keys else None,
                "key_worst_ms": max(keys) if keys else None}

    return asyncio.run(measure())


CHILDREN = {"run": child_run, "retrieve": child_retrieve, "counts": child_counts, "app": child_app}


def _child(name: str, args: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_million", "--child", name,
                           json.dumps(args)], capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"step {name} failed (exit {proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- one size ----------------------------------------------------------------------------------


def measure(n: int, per_job: int, shots: int, cache: Path, say: Any, keep: Path | None = None
            ) -> dict[str, Any]:
    circuits = cache / f"circuits-{n}.qpy"
    if not circuits.exists():
        say(f"{n:,}: writing the circuit file")
        started = time.perf_counter()
        make_circuit_file(circuits, n)
        say(f"{n:,}: {circuits.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s")
    with contextlib.ExitStack() as stack:
        if keep is not None:
            home = keep / f"home-{n}"
            home.mkdir(parents=True, exist_ok=False)
        else:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qjm-million-")))
        env = dict(os.environ, QJM_HOME=str(home), QJM_CONFIG=str(home / "none.toml"))
        env.pop("QJM_EXECUTOR", None)
        say(f"{n:,}: running the set")
        run = _child("run", {"home": str(home), "circuits": str(circuits), "shots": shots,
                             "per_job": per_job, "n": n}, env, 6 * 3600)
        store = sum(p.stat().st_size for p in home.glob("qjm.sqlite*"))
        say(f"{n:,}: {run['state']} in {run['seconds']:.0f} s; reading it back")
        retrieve = [_child("retrieve", {"home": str(home), "id": run["id"]}, env, 600) for _ in range(3)]
        counts = _child("counts", {"home": str(home), "id": run["id"], "n": n, "shots": shots}, env, 600)
        commands = {}
        for label, argv in (("results --json", ["results", run["id"], "--json"]),
                            ("export csv", ["export", run["id"], "--format", "csv", "-o",
                                            str(home / "out.csv")]),
                            ("export qiskit", ["export", run["id"], "--format", "qiskit", "-o",
                                               str(home / "out.json")])):
            seconds, peak = _run_command(argv, env, 3 * 3600)
            size = (home / ("out.csv" if "csv" in label else "out.json")).stat().st_size \
                if label.startswith("export") else None
            commands[label] = {"seconds": seconds, "peak_mb": peak, "bytes": size}
            with contextlib.suppress(OSError):
                (home / "out.csv").unlink()
                (home / "out.json").unlink()
        say(f"{n:,}: the app")
        app = _child("app", {"home": str(home), "id": run["id"], "seconds": 5.0}, env, 600)
    return {"n": n, "per_job": per_job, "shots": shots, "run": run, "store_bytes": store,
            "store_bytes_per_experiment": store / n,
            "retrieve_seconds": statistics.median(r["seconds"] for r in retrieve),
            "retrieve_after_imports": statistics.median(r["after_imports"] for r in retrieve),
            "retrieve_peak_mb": max(r["peak_mb"] for r in retrieve), "counts": counts,
            "commands": commands, "app": app}


def report(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], what: str) -> str:
        run, counts, app, cmd = row["run"], row["counts"], row["app"], row["commands"]
        return {
            "jobs": f"{run['jobs']:,}",
            "run + wait": f"{run['seconds']:.0f} s (stored after {run['stored_seconds']:.0f} s)",
            "run: peak memory": f"{run['peak_mb']:.0f} MB",
            "run: memory by quarter": " / ".join(f"{mb:.0f}" for mb in run["rss_quarters_mb"]) + " MB",
            "pool workers' peak": f"{max(run['worker_peaks_mb'] or [0]):.0f} MB",
            "store per experiment": f"{row['store_bytes_per_experiment']:.0f} B "
                                    f"({row['store_bytes'] / 1e6:,.0f} MB)",
            "retrieve (new process)": f"{row['retrieve_seconds']:.3f} s "
                                      f"({row['retrieve_after_imports'] * 1000:.1f} ms after imports), "
                                      f"peak {row['retrieve_peak_mb']:.0f} MB",
            "results() (new process)": f"{counts['results_seconds']:.3f} s, peak {counts['peak_mb']:.0f} MB",
            "get_counts(random i)": f"median {counts['median_ms']:.2f} ms, worst {counts['worst_ms']:.2f} ms",
            **{f"qjm {k}": f"{v['seconds']:.0f} s, peak {v['peak_mb']:.0f} MB" for k, v in cmd.items()},
            "app: open the set": f"{app['open_seconds']:.3f} s",
            "app: key to frame": f"median {app['key_median_ms']:.1f} ms, worst {app['key_worst_ms']:.1f} ms"
                                 f" ({app['keys']} keys, {app['unseen']} unseen)",
        }[what]

    whats = ["jobs", "run + wait", "run: peak memory", "run: memory by quarter", "pool workers' peak",
             "store per experiment", "retrieve (new process)", "results() (new process)",
             "get_counts(random i)", *[f"qjm {k}" for k in rows[0]["commands"]], "app: open the set",
             "app: key to frame"]
    head = ["", *[f"{row['n']:,} experiments" for row in rows]]
    table = [head] + [[what, *[cell(row, what) for row in rows]] for what in whats]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in table)


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        answer = CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))
        answer["peak_mb"] = _peak_mb()
        print(json.dumps(answer))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated set sizes")
    parser.add_argument("--per-job", type=int, default=1000, help="experiments per job (default 1000)")
    parser.add_argument("--shots", type=int, default=64, help="shots per experiment (default 64)")
    parser.add_argument("--cache", type=Path, help="keep the circuit files here between runs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="keep each size's store in DIR/home-N (for a look after)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        cache = args.cache or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qjm-circ-")))
        cache.mkdir(parents=True, exist_ok=True)
        rows = [measure(n, args.per_job, args.shots, cache, say, args.keep) for n in sizes]
    text = report(rows)
    print(f"aer, {args.shots} shots, {args.per_job} experiments per job, 2-qubit circuits; "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "table": text}, indent=2))


if __name__ == "__main__":
    main()
