"""What the app costs while a big job set changes fast, measured headless.

Run:  python -m benchmarks bench_app [--quick] [--jobs 10000] [--rate 1000] [--seconds 10]
                                      [--json PATH]   (the scenarios benchmark runs it as its app scenario)

A ``--jobs``-job set (one experiment per job, on aer) is run by the real core, then claimed as
running by this process. The app (``make_app``, its default intervals) is run headless at
120x40 with that set selected and its status grid focused, in three scenarios:

* idle: nothing changes (the baseline: timers, ticking figures);
* thread: a thread in the app's process changes ``--rate`` job statuses a second the way the
  engine does, each one an ``update_job`` in the store followed by a ``JobStatusChanged`` on the
  app's manager bus (a set run by this process: the app hears the events);
* process: another process writes the same changes to the store, with no events (a set run by
  ``qjm run`` elsewhere: the app sees them only by polling the store's change number).

Changes are paced in batches of ``rate / 50`` every 20 ms. During each ``--seconds`` window:

* repaints: every frame Textual composes and hands to the terminal. Headless Textual skips the
  write, so the probe encodes each update into terminal output as the real driver would; the
  time of a repaint is the screen's update (layout if needed, composing the changed regions, so
  the widgets' lines, and that encoding);
* key latency: ``l`` (next job) is sent through the driver, 50-150 ms after the previous press
  was shown; the latency is from sending it to the end of the first repaint after the grid's
  cursor moved;
* CPU: the process's CPU time over the window minus the writer thread's own (``thread_time``
  inside it), as a fraction of one core.

Prints a table (medians and worst cases, achieved change rates); ``--json`` also writes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qiskit import QuantumCircuit
from textual import events
from textual._compositor import CompositorUpdate
from textual.screen import Screen

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.events import JobStatusChanged
from qjm_tui.core.manager import JobManager as CoreManager
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import Store
from qjm_tui.tui.app import QjmApp, make_app
from qjm_tui.tui.grid import StatusGrid

#: the statuses changed jobs move between (a changed job always gets a different one)
STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE)
#: time between two batches of changes
TICK = 0.02
#: the key pressed, and the bounds of the random pause before each press
KEY = "l"
KEY_PAUSE = (0.05, 0.15)
#: a press not shown within this long is counted as unseen (and not timed)
KEY_PATIENCE = 2.0
SIZE = (120, 40)
SCENARIOS = ("idle", "thread", "process")


@dataclass
class Figures:
    """What one scenario measured over its window."""

    scenario: str
    seconds: float
    changes: int = 0
    rate: float = 0.0
    frames: int = 0
    repaint_ms: list[float] = field(default_factory=list)
    key_ms: list[float] = field(default_factory=list)
    keys_unseen: int = 0
    app_cpu: float = 0.0
    writer_cpu: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The figures as reported: rates, medians and worst cases (no raw samples)."""
        return {
            "scenario": self.scenario, "seconds": round(self.seconds, 3), "changes": self.changes,
            "changes_per_s": round(self.rate, 1), "repaints_per_s": round(self.frames / self.seconds, 2),
            "repaint_median_ms": _median(self.repaint_ms), "repaint_worst_ms": _worst(self.repaint_ms),
            "key_presses": len(self.key_ms), "keys_unseen": self.keys_unseen,
            "key_median_ms": _median(self.key_ms), "key_worst_ms": _worst(self.key_ms),
            "app_cpu_cores": round(self.app_cpu, 3), "writer_cpu_cores": round(self.writer_cpu, 3),
        }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _worst(values: list[float]) -> float | None:
    return round(max(values), 2) if values else None


# -- the job set ----------------------------------------------------------------------------------


def fill(path: Path, jobs: int) -> str:
    """Run a ``jobs``-job set (one 1-qubit experiment each) on aer through the real core, then
    claim it as running, as a live set is; returns its id."""
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with JobManager(path, config=Config(executor="threads")) as manager:
        job_set = manager.run([qc] * jobs, backend="aer", name="bench", shots=4, max_experiments_per_job=1)
        job_set.results()
        set_id = job_set.job_set_id()
    store = Store(path)
    store.claim(set_id)
    store.close()
    return set_id


# -- the writers ----------------------------------------------------------------------------------


class ChangeWriter:
    """Changes ``rate`` job statuses a second, in batches every TICK, until stopped; each change
    is one ``update_job`` (one transaction, as the engine writes it) and, given a ``manager``,
    a ``JobStatusChanged`` on its bus."""

    def __init__(self, store: Store, set_id: str, rate: int, manager: CoreManager | None = None,
                 seed: int = 7) -> None:
        self.store = store
        self.set_id = set_id
        self.rate = rate
        self.manager = manager
        self.rng = random.Random(seed)
        self.statuses = {job.index: job.status for job in store.jobs(set_id)}
        self.changes = 0
        self.elapsed = 0.0
        self.cpu = 0.0

    def run(self, stop: Callable[[], bool]) -> None:
        """Write until ``stop()`` says so; records the changes made, the time taken and this
        thread's CPU time."""
        batch = max(1, round(self.rate * TICK))
        tick = batch / self.rate
        indices = list(self.statuses)
        cpu, start = time.thread_time(), time.perf_counter()
        next_tick, next_beat = start, start + 1.0
        while not stop():
            for index in self.rng.sample(indices, min(batch, len(indices))):
                old = self.statuses[index]
                new = self.rng.choice([s for s in STATUSES if s != old])
                self.store.set_job_status(self.set_id, index, new)
                self.statuses[index] = new
                if self.manager is not None:
                    self.manager.bus.publish(JobStatusChanged(self.set_id, index, old, new))
            self.changes += batch
            now = time.perf_counter()
            if now >= next_beat:
                self.store.heartbeat(self.set_id)
                next_beat += 1.0
            next_tick += tick
            if next_tick > now:
                time.sleep(next_tick - now)
        self.elapsed = time.perf_counter() - start
        self.cpu = time.thread_time() - cpu
        self.store.release_thread_connection()


def write_from_process(path: str, set_id: str, rate: int) -> None:
    """The other process (run by :func:`start_writer_process`): opens the store, says ``ready``
    on stdout, writes from a ``go`` line on stdin until the next line, then prints
    ``changes seconds cpu_seconds``."""
    store = Store(path)
    writer = ChangeWriter(store, set_id, rate)
    print("ready", flush=True)
    sys.stdin.readline()
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop.is_set,))
    thread.start()
    sys.stdin.readline()
    stop.set()
    thread.join()
    print(writer.changes, writer.elapsed, writer.cpu, flush=True)
    store.close()


async def start_writer_process(path: Path, set_id: str, rate: int) -> asyncio.subprocess.Process:
    """Start :func:`write_from_process` in a new Python and wait until it is ready to write."""
    code = (f"from benchmarks.bench_app import write_from_process; "
            f"write_from_process({str(path)!r}, {set_id!r}, {rate})")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE,
                                                 stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    line = await child.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"the writer process did not start (it said {line!r})")
    return child


# -- the probe ------------------------------------------------------------------------------------


class FrameProbe:
    """Counts and times the app's repaints, and the latency of key presses to the screen.

    It wraps ``Screen._on_timer_update`` and ``Screen._compositor_refresh`` (where Textual
    lays out, composes and displays a frame), timing the outermost call that displayed
    something, and the app's ``_display``, which in a headless app returns before writing: the
    probe encodes the update into terminal output there, as a terminal app does.
    """

    def __init__(self, app: QjmApp) -> None:
        self.app = app
        self.recording = False
        self.repaints: list[float] = []
        self.key_latencies: list[float] = []
        #: a key sent and not yet seen: (when it was sent, the cursor before it, set when seen)
        self.pending: tuple[float, int, asyncio.Event] | None = None
        self.grid: StatusGrid | None = None
        self._depth = 0
        self._shown = False

    @contextmanager
    def installed(self) -> Iterator[FrameProbe]:
        """Wrap Textual's repaint path for the duration of the block."""
        originals = {name: getattr(Screen, name) for name in ("_on_timer_update", "_compositor_refresh")}
        display = self.app._display

        def timed(original: Callable[[Screen[Any]], None]) -> Callable[[Screen[Any]], None]:
            def wrapper(screen: Screen[Any]) -> None:
                self._enter()
                try:
                    original(screen)
                finally:
                    self._leave()
            return wrapper

        def encoding_display(screen: Screen[Any], renderable: Any) -> None:
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(self.app.console)
                self._shown = True
            display(screen, renderable)

        for name, original in originals.items():
            setattr(Screen, name, timed(original))
        self.app._display = encoding_display  # type: ignore[method-assign]
        try:
            yield self
        finally:
            for name, original in originals.items():
                setattr(Screen, name, original)
            del self.app._display

    def _enter(self) -> None:
        if self._depth == 0:
            self._shown = False
            self._start = time.perf_counter()
        self._depth += 1

    def _leave(self) -> None:
        self._depth -= 1
        if self._depth or not self._shown or not self.recording:
            return
        end = time.perf_counter()
        self.repaints.append((end - self._start) * 1000)
        if self.pending is not None and self.grid is not None and self.grid.cursor != self.pending[1]:
            self.key_latencies.append((end - self.pending[0]) * 1000)
            self.pending[2].set()
            self.pending = None

    def press(self, key: str) -> asyncio.Event:
        """Send ``key`` through the driver, as a terminal would, and start timing it; the event
        returned is set when a repaint shows the cursor moved."""
        assert self.grid is not None and self.app._driver is not None
        event = events.Key(key, key)
        event.set_sender(self.app)
        seen = asyncio.Event()
        self.pending = (time.perf_counter(), self.grid.cursor, seen)
        self.app._driver.send_message(event)
        return seen


# -- one scenario ---------------------------------------------------------------------------------


async def _until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(0.01)


async def press_keys(probe: FrameProbe, until: float, rng: random.Random) -> int:
    """Press :data:`KEY` every :data:`KEY_PAUSE` seconds until ``until`` (a ``perf_counter``
    time), each timed by ``probe``; returns how many presses were never seen."""
    unseen = 0
    while time.perf_counter() < until:
        await asyncio.sleep(rng.uniform(*KEY_PAUSE))
        seen = probe.press(KEY)
        try:
            await asyncio.wait_for(seen.wait(), KEY_PATIENCE)
        except TimeoutError:
            unseen += 1
            probe.pending = None
    return unseen


async def run_scenario(path: Path, set_id: str, scenario: str, rate: int, seconds: float) -> Figures:
    """Run the app on the set, apply the scenario's load for ``seconds`` while pressing keys,
    and return what was measured."""
    before = set(threading.enumerate())
    app = make_app(path, config=Config(executor="threads"))
    probe = FrameProbe(app)
    figures = Figures(scenario, seconds)
    async with app.run_test(size=SIZE) as pilot:
        await _until(lambda: set_id in app.browser.rows)
        app.go_to_set(set_id)
        pane = app.set_pane
        await _until(lambda: pane.current_job is not None and pane.summary is not None
                     and pane.summary.id == set_id)
        probe.grid = pane.grid
        pane.grid.focus()
        await pilot.pause()
        await asyncio.sleep(1.0)  # let start-up reads and repaints settle

        stop = threading.Event()
        writer: ChangeWriter | None = None
        thread: threading.Thread | None = None
        child: asyncio.subprocess.Process | None = None
        if scenario == "thread":
            writer = ChangeWriter(app.manager.store, set_id, rate, manager=app.manager)
            thread = threading.Thread(target=writer.run, args=(stop.is_set,), name="bench-writer")
        elif scenario == "process":
            child = await start_writer_process(path, set_id, rate)
            assert child.stdin is not None and child.stdout is not None

        rng = random.Random(11)
        with probe.installed():
            probe.recording = True
            cpu, start = time.process_time(), time.perf_counter()
            if thread is not None:
                thread.start()
            if child is not None:
                assert child.stdin is not None
                child.stdin.write(b"go\n")
            figures.keys_unseen = await press_keys(probe, start + seconds, rng)
            stop.set()
            if child is not None:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write(b"stop\n")
                await child.stdin.drain()
                reply = await child.stdout.readline()
            if thread is not None:
                thread.join()
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
            probe.recording = False
    # no read may outlive the store it reads (idle pool threads never end: bounded wait)
    deadline = time.monotonic() + 3.0
    for straggler in set(threading.enumerate()) - before:
        straggler.join(timeout=max(0.0, deadline - time.monotonic()))

    figures.seconds = wall
    figures.frames = len(probe.repaints)
    figures.repaint_ms = probe.repaints
    figures.key_ms = probe.key_latencies
    if writer is not None:
        figures.changes, figures.rate = writer.changes, writer.changes / writer.elapsed
        figures.writer_cpu = writer.cpu / wall
        cpu -= writer.cpu
    if child is not None:
        await child.wait()
        changes, elapsed, child_cpu = (float(word) for word in reply.split())
        figures.changes, figures.rate = int(changes), changes / elapsed
        figures.writer_cpu = child_cpu / wall
    figures.app_cpu = cpu / wall
    app.manager.close()
    return figures


# -- the report -----------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    """The figures as a plain-text table, one line per scenario run."""

    def num(value: float | None, fmt: str = ".1f") -> str:
        return "-" if value is None else format(value, fmt)

    head = (f"{'scenario':<9} {'changes/s':>9} {'repaints/s':>10} {'repaint med':>11} {'worst':>7}"
            f" {'keys':>5} {'key med':>8} {'worst':>7} {'app CPU':>8} {'writer CPU':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['scenario']:<9} {r['changes_per_s']:>9.0f} {r['repaints_per_s']:>10.1f}"
            f" {num(r['repaint_median_ms']):>8} ms {num(r['repaint_worst_ms']):>7}"
            f" {r['key_presses']:>5} {num(r['key_median_ms']):>5} ms {num(r['key_worst_ms']):>7}"
            f" {r['app_cpu_cores']:>8.2f} {r['writer_cpu_cores']:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, build the set, run every scenario, print (and maybe save) the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the set (default 10,000)")
    parser.add_argument("--rate", type=int, default=1_000, help="status changes a second (default 1,000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each window (default 10)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each scenario (default 1)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, of {', '.join(SCENARIOS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 3 s windows")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.seconds = 1_000, 3.0
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "qjm.sqlite"
        start = time.perf_counter()
        set_id = fill(path, args.jobs)
        setup = time.perf_counter() - start
        print(f"set-up: ran a {args.jobs:,}-job set on aer in {setup:.1f} s")
        rows = []
        for _ in range(args.repeats):
            for scenario in scenarios:
                figures = asyncio.run(run_scenario(path, set_id, scenario, args.rate, args.seconds))
                rows.append(figures.summary())
    text = table(rows)
    print(f"{args.jobs:,} jobs, {SIZE[0]}x{SIZE[1]}, {args.seconds:g} s windows, target {args.rate:,} "
          "changes/s; times in ms, CPU in cores")
    print(text)
    report = {"jobs": args.jobs, "rate": args.rate, "seconds": args.seconds, "setup_seconds": round(setup, 2),
              "size": list(SIZE), "rows": rows, "table": text}
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
