"""What the app sends to its terminal: the bytes its driver is given to write, counted over a
window, on the busy store, at 120x40. A live set may cost a few changed lines a couple of
times a second, not the screen over and over (over SSH this is what makes the app usable)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import textual.drivers.headless_driver as headless

from tests.conftest import bell
from tests.snapshots.busy import BusyStore

#: the most the app may send, in bytes a second: with a set running, and with nothing changing
RUNNING_LIMIT = 3000
IDLE_LIMIT = 1000


class CountingDriver(headless.HeadlessDriver):
    """A headless driver the app writes to as to a terminal: everything it would send is
    counted (as UTF-8 bytes), with the time of each write."""

    writes: list[tuple[float, int]] = []

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        CountingDriver.writes.append((time.monotonic(), len(data.encode("utf-8"))))

    def flush(self) -> None:
        pass


def bytes_per_second(start: float, end: float) -> float:
    """The rate of the writes between two moments."""
    return sum(n for t, n in CountingDriver.writes if start <= t < end) / (end - start)


def test_bytes_to_the_terminal_idle_and_with_a_set_running(busy_store: BusyStore, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, "HeadlessDriver", CountingDriver)
    CountingDriver.writes = []
    copy = busy_store.copy(tmp_path / "store")
    emulator = f"emulator:dir={tmp_path / 'emu'},latency=0.02,queue=0.4,run=0.4,max_jobs=4,seed=3"
    figures: dict[str, float] = {}

    async def go() -> None:
        app = busy_store.app(copy, clock=time.time)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(2.0)  # the first screen and the first reads
            app.go_to_set(busy_store.big)  # a set shown running whose jobs do not change now
            await pilot.pause(1.0)
            assert app.set_pane.summary is not None and app.set_pane.summary.state == "running"
            start = time.monotonic()
            await asyncio.sleep(5.0)
            figures["idle"] = bytes_per_second(start, time.monotonic())
            job_set = app.manager.run([bell()] * 400, backend=emulator, name="live", shots=32,
                                      max_experiments_per_job=1)
            app.follow_set(job_set.job_set_id())
            await pilot.pause(2.0)
            assert app.browser.selected is not None and app.browser.selected.name == "live"
            start = time.monotonic()
            await asyncio.sleep(10.0)
            figures["running"] = bytes_per_second(start, time.monotonic())
            frames = [t for t, _ in CountingDriver.writes if start <= t]
            figures["frames"] = len(frames) / 10.0
            done = app.manager.store.status_counts(job_set.job_set_id()).get("done", 0)
            assert app.manager.store.summaries([job_set.job_set_id()])[0].state == "running"
            assert done >= 20, "the set ran during the window"
            app.manager.cancel_job_set(job_set.job_set_id())
            app.manager.wait_all(timeout=30)
        app.manager.close()

    asyncio.run(go())
    print(f"bytes to the terminal at 120x40: idle {figures['idle']:.0f} B/s, "
          f"with a set running {figures['running']:.0f} B/s in {figures['frames']:.1f} writes/s")
    assert figures["idle"] <= IDLE_LIMIT, figures
    assert figures["running"] <= RUNNING_LIMIT, figures
