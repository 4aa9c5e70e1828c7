"""Stores filled by the real core for the app's snapshot tests and screenshots, with times and
ids frozen so every run draws the same screen.

One store holds a little history: a finished set with results (seeded), a set whose jobs
failed on the emulator (seeded faults, so the same jobs fail each time), a cancelled set, and a
set still running on a stalled emulator (the first jobs finish, the rest run forever), so the
running screen is the same on every run. ``Scene.close()`` cancels what still runs.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.tui.app import QjmApp, make_app

#: 2026-11-25 09:30:00 UTC, when every scene "happens"
T0 = 1795599000.0
#: where scenes are built: a folder of this process's own (runs side by side must not share
#: one), which nothing on screen names (emulator specs are shown by their kind alone)
SCENE_ROOT = Path(tempfile.gettempdir()) / f"qjm-scene-{os.getpid()}"
#: what the header shows instead of the (temporary) store path
STORE_LABEL = "~/.local/share/qjm/qjm.sqlite"


class FrozenClock:
    """A wall clock that only moves when told to."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _ids() -> itertools.count:
    return itertools.count(1)


def ghz(n: int, name: str) -> QuantumCircuit:
    """An n-qubit GHZ circuit: half 0...0, half 1...1."""
    qc = QuantumCircuit(n, n, name=name)
    qc.h(0)
    for q in range(1, n):
        qc.cx(0, q)
    qc.measure(range(n), range(n))
    return qc


def noisy(n: int, name: str, angle: float) -> QuantumCircuit:
    """Rotations on n qubits: many outcomes, skewed by ``angle``, so bars differ in length."""
    qc = QuantumCircuit(n, n, name=name)
    for q in range(n):
        qc.ry(angle * (q + 1), q)
    qc.measure(range(n), range(n))
    return qc


def basis(bits: str, name: str) -> QuantumCircuit:
    """A circuit that always measures ``bits``."""
    qc = QuantumCircuit(len(bits), len(bits), name=name)
    for i, bit in enumerate(reversed(bits)):
        if bit == "1":
            qc.x(i)
    qc.measure(range(len(bits)), range(len(bits)))
    return qc


@dataclass
class Scene:
    """A store with the scenes' job sets, the manager still running one of them, and the ids."""

    path: Path
    manager: JobManager
    clock: FrozenClock
    ids: dict[str, str] = field(default_factory=dict)

    def app(self, **kwargs: object) -> QjmApp:
        """The app on this store, its clock ten minutes after the sets were made."""
        return make_app(self.path, config=Config(executor="threads"), clock=lambda: T0 + 600,
                        store_label=STORE_LABEL, watch_interval=0.2, **kwargs)

    def close(self) -> None:
        """Cancel the set that still runs, close the store and remove the scene's folder."""
        self.manager.close(cancel=True, timeout=30)
        if self.path.parent.name.startswith("qjm-scene-"):
            shutil.rmtree(self.path.parent, ignore_errors=True)


def build(directory: Path = SCENE_ROOT, *, running: bool = True) -> Scene:
    """Fill a store under ``directory`` (emptied first) with the scenes' job sets (see the
    module docstring). Every emulator takes one job at a time, so jobs are accepted in index
    order and the same jobs fail, finish or stall on every run."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    clock = FrozenClock()
    counter = _ids()
    manager = JobManager(
        directory / "qjm.sqlite", config=Config(executor="threads"), now=clock,
        new_id=lambda: f"20261125-0930{next(counter):02d}-{next(counter) * 1111:08x}",
        retry_policy=RetryPolicy(max_attempts=1, base_delay=0.0, jitter=0.0))
    scene = Scene(directory / "qjm.sqlite", manager, clock)

    circuits = [ghz(3, "ghz_3"), noisy(4, "rot_4", 0.45), noisy(5, "rot_5", 0.3),
                ghz(5, "ghz_5"), basis("1011", "basis_1011"), noisy(3, "rot_3", 0.8)] * 4
    farm = f"emulator:dir={directory / 'emu-farm'},latency=0,queue=0,run=0,seed=21,max_jobs=1,advertise=1"
    done = manager.run(circuits, backend=farm, name="bellfarm", shots=1024,
                       max_experiments_per_job=3, job_tags=["nightly"], seed_simulator=1234)
    done.results()
    scene.ids["done"] = done.job_set_id()

    clock.t += 60
    faulty = (f"emulator:dir={directory / 'emu-faulty'},latency=0,queue=0,run=0,seed=11,"
              f"fail=0.35,max_jobs=1,advertise=1")
    failed = manager.run([basis(f"{i:03b}", f"basis_{i:03b}") for i in range(8)] * 3, backend=faulty,
                         name="calib-faulty", shots=256, max_experiments_per_job=2, seed_simulator=1)
    failed.results(partial=True)
    scene.ids["failed"] = failed.job_set_id()

    clock.t += 60
    stalling = (f"emulator:dir={directory / 'emu-cancel'},latency=0,queue=0,run=0,seed=3,stall=2,"
                f"max_jobs=1,advertise=1")
    cancelled = manager.run([basis("01", "c")] * 6, backend=stalling, name="calib-cancelled",
                            shots=128, max_experiments_per_job=1)
    _wait(lambda: manager.store.status_counts(cancelled.job_set_id()).get("done", 0) == 2)
    cancelled.cancel()
    cancelled.results(partial=True)
    scene.ids["cancelled"] = cancelled.job_set_id()

    if running:
        clock.t += 60
        stalled = (f"emulator:dir={directory / 'emu-stalled'},latency=0,queue=0,run=0,seed=5,"
                   f"stall=26,max_jobs=1,advertise=1")
        sweep = manager.run([noisy(3, f"sweep_{i}", 0.1 * (i % 10)) for i in range(40)],
                            backend=stalled, name="sweep-0412", shots=512, max_experiments_per_job=1,
                            seed_simulator=99)
        _wait(lambda: manager.store.status_counts(sweep.job_set_id()) == {
            "done": 26, "running": 1, "pending": 13})
        scene.ids["running"] = sweep.job_set_id()
    return scene


def _wait(condition, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the scene's job set did not reach its state in time")
        time.sleep(0.02)


@dataclass(frozen=True)
class Shot:
    """One screen to snapshot: which scene set is selected and which keys are pressed then."""

    name: str
    select: str | None = None
    keys: tuple[str, ...] = ()
    empty: bool = False


#: the screens the snapshot tests check and the screenshots show, each at 80x24 and 120x40
SHOTS = [
    Shot("empty", empty=True),
    Shot("running", select="running", keys=("enter",)),
    Shot("finished-histogram", select="done", keys=("3",)),
    Shot("failed-error", select="failed", keys=("enter", "right")),
    Shot("help", keys=("question_mark",)),
    Shot("new-set-form", keys=("n",)),
    Shot("cancel-question", select="running", keys=("x",)),
]

SIZES = [(80, 24), (120, 40)]


async def settle(pilot) -> None:  # noqa: ANN001
    """Wait until the app has read the store and every pane has drawn what it read."""
    app = pilot.app

    def quiet() -> bool:
        return app.bridge.idle and all(w.is_finished for w in app.workers)

    for _ in range(3):  # quiet three times in a row: reads that start more reads are done too
        for _ in range(200):
            await pilot.pause(0.05)
            if quiet():
                break
    await pilot.pause(0.1)


async def stage(pilot, scene: Scene | None, shot: Shot) -> None:  # noqa: ANN001
    """Bring the app to the shot's screen: select its set, press its keys, let it settle."""
    await settle(pilot)
    if shot.select is not None and scene is not None:
        assert pilot.app.query_one("SetBrowser").select(scene.ids[shot.select])
        await settle(pilot)
    for key in shot.keys:
        await pilot.press(key)
        await settle(pilot)
    steady_cursors(pilot.app)
    await pilot.pause()


def steady_cursors(app) -> None:  # noqa: ANN001
    """Stop text boxes blinking, the focused one's cursor shown: a blink is half a second, and
    how long a scene takes to settle is not (a loaded machine would catch either phase)."""
    for box in app.screen.query("Input"):
        box.cursor_blink = False
        box._cursor_visible = box.has_focus


#: the busy store's screens (tests/snapshots/busy.py): the list at its narrowest, and everything
#: at once on a wide screen, with the set of 10,000 experiments selected
BUSY_SIZES = [(80, 24), (200, 60)]


async def stage_busy(pilot, busy) -> None:  # noqa: ANN001
    """Bring the app on (a copy of) the busy store to its screen: every set read, the big set
    under the cursor, the list in focus."""
    await settle(pilot)
    assert pilot.app.browser.select(busy.big)
    pilot.app.action_pane(0)
    await settle(pilot)
