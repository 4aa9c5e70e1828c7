"""The app on a busy store made by the real core (tests/snapshots/busy.py: about 150 sets in
every state, names up to 87 characters, wide characters, a set of 10,000 experiments, sets
running), at 80x24, 100x30, 120x40 and 200x60 and through resizes, filtering and live updates:
every listed set's state is whole on screen, no number is cut, and the title and the key bar
end on whole entries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.pilot import Pilot

from qjm_tui import views
from qjm_tui.core.status import JobStatus
from qjm_tui.core.store import Store
from qjm_tui.tui.app import QjmApp
from qjm_tui.tui.bars import DOT, KeyBar
from tests.snapshots.busy import BIG, BusyStore
from tests.tui_screen import cell_slice, screen_lines, whole_numbers

SIZES = [(80, 24), (100, 30), (120, 40), (200, 60)]


async def settle(pilot: Pilot, app: QjmApp) -> None:  # type: ignore[type-arg]
    """Until the app has listed every set and its workers are done."""
    for _ in range(200):
        await pilot.pause(0.05)
        if app.browser.rows and app.bridge.idle and all(w.is_finished for w in app.workers):
            break
    await pilot.pause(0.1)


def check_screen(app: QjmApp, where: str) -> None:
    """Everything a user must read whole: the state and the experiments of every set the list
    shows, the title bar's counts, and the key bar's entries."""
    lines = screen_lines(app)
    width, height = app.size
    assert len(lines) == height and all(views.cell_width(line) <= width for line in lines), where
    table = app.browser.table
    region = table.region
    if region.area:  # the list is on screen (on a narrow screen it may be another pane's turn)
        top = table.scroll_offset.y
        shown = table.order[top:top + region.height]
        assert shown, where
        for n, set_id in enumerate(shown):
            line = cell_slice(lines[region.y + n], region.x, region.x + region.width - 1)
            cells = table.cells[set_id]
            summary = app.browser.rows[set_id]
            assert cells["state"] in line, f"{where}: state {cells['state']!r} not whole in {line!r}"
            assert whole_numbers(line, [summary.n_experiments]), f"{where}: {line!r}"
            assert cells["id"] in line or "id" not in [c.key for c in table.columns], where
        # the columns are always the widest cells' width, whatever the order of events
        assert max(views.cell_width(table.cells[i]["state"]) for i in table.order) <= \
            next(c.width for c in table.columns if c.key == "state"), where
    # the shown set's title ends with its number of jobs, whole (the name gives way instead)
    pane = app.set_pane
    if pane.summary is not None and pane.region.area:
        part = pane.query_one("#set-title").region
        line = cell_slice(lines[part.y], part.x, part.right).rstrip()
        total = views.set_figures(pane.summary, app.clock()).total_jobs
        assert line.endswith(f"{total:,} job" + ("" if total == 1 else "s")), f"{where}: {line!r}"
    # the title bar: every per-state count, whole, in words or in short
    totals: dict[str, int] = {}
    for summary in app.browser.rows.values():
        totals[summary.state] = totals.get(summary.state, 0) + 1
    title = lines[0].rstrip()
    glyphs = views.SET_GLYPHS if app.unicode else views.SET_GLYPHS_ASCII
    words = DOT.join(f"{n:,} {state}" for state, n in totals.items())
    short = [f"{glyphs[state]}{n:,}" for state, n in totals.items()]
    in_words = all(f"{n:,} {state}" in title for state, n in totals.items())
    in_short = all(f" {s}" in title or title.endswith(s) for s in short)
    assert in_words or in_short, f"{where}: title {title!r} lacks counts of {words}"
    # the key bar: whole entries only, ending with help and quit
    bar = app.screen.query_one(KeyBar)
    known = {f"{keys} {what}" for keys, what, _ in bar.entries()}
    footer = lines[-1].strip()
    entries = footer.split("  ")
    assert entries and all(e in known for e in entries), f"{where}: footer {footer!r}"
    active = {b.binding.id for b in app.screen.active_bindings.values()}
    if {"app.help", "app.quit"} <= active:  # (a text box takes q and ? as letters)
        assert footer.endswith("? Help  q Quit"), f"{where}: {footer!r}"


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_a_fresh_start_shows_every_state_and_number_whole(busy_store: BusyStore, tmp_path: Path,
                                                           size: tuple[int, int]) -> None:
    copy = busy_store.copy(tmp_path / "store")

    async def go() -> None:
        app = busy_store.app(copy, watch_interval=0.2)
        async with app.run_test(size=size) as pilot:
            await settle(pilot, app)
            assert len(app.browser.rows) == sum(len(ids) for ids in busy_store.ids.values())
            check_screen(app, f"start at {size}")
            columns = [c.key for c in app.browser.table.columns]
            if size[0] >= 120:
                assert "id" in columns, "sets whose names differ only at the end are told apart"
            if size[0] >= 200:
                assert columns == ["name", "id", "backend", "created", "exps", "state"], columns
                assert app.browser.table.size.width >= 100, "the list uses a wide screen"
            # the longest names, the wide characters and the 10,000 experiments on screen
            assert app.browser.select(busy_store.big)
            app.action_pane(0)
            await pilot.pause(0.2)
            check_screen(app, f"the big set at {size}")
            table = app.browser.table
            row = table.order.index(busy_store.big) - table.scroll_offset.y
            line = screen_lines(app)[table.region.y + row]
            assert f"{BIG:,}" in line and whole_numbers(line, [BIG]), line
            # an interrupted set with a long name: its state is the longest word a title holds
            stopped = max(busy_store.ids["interrupted"], key=lambda i: len(busy_store.names[i] or ""))
            assert app.browser.select(stopped)
            await pilot.pause(0.3)
            check_screen(app, f"an interrupted set at {size}")
            await pilot.press("s")  # by state: running first
            await pilot.pause(0.2)
            check_screen(app, f"sorted by state at {size}")
            assert app.browser.rows[app.browser.table.order[0]].state == "running"
        app.manager.close()

    asyncio.run(go())


def test_resizes_filters_and_live_updates_keep_every_state_whole(busy_store: BusyStore,
                                                                 tmp_path: Path) -> None:
    copy = busy_store.copy(tmp_path / "store")
    running = busy_store.big  # a running set, with jobs still to run

    async def go() -> None:
        app = busy_store.app(copy, watch_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot, app)
            assert app.browser.select(busy_store.big)  # its 10,000 in view through every resize
            for size in [(80, 24), (200, 60), (100, 30), (120, 40), (80, 24), (200, 60)]:
                await pilot.resize_terminal(*size)
                await pilot.pause(0.3)
                check_screen(app, f"after a resize to {size}")
                if app.browser.table.region.area:
                    assert f"{BIG:,}" in "\n".join(screen_lines(app)), f"10,000 whole at {size}"
            app.action_pane(0)
            await pilot.press("slash", *"state:failed")
            await pilot.pause(0.3)
            assert {app.browser.rows[i].state for i in app.browser.table.order} == {"failed"}
            check_screen(app, "filtered")
            await pilot.press("escape")
            await pilot.pause(0.3)
            check_screen(app, "after clearing the filter")
            # a live update: a job of a running set finishes (as its runner would write it)
            store = Store(copy)
            job = next(j for j in store.jobs(running) if j.status == "pending")
            store.set_job_status(running, job.index, JobStatus.DONE)
            before = app.browser.rows[running].experiments_done
            for _ in range(100):
                await pilot.pause(0.05)
                if app.browser.rows[running].experiments_done > before:
                    break
            assert app.browser.rows[running].experiments_done > before
            check_screen(app, "after a live update")
            # its runner lets go of it: the title's longest state word, with its 100 jobs, whole
            await pilot.resize_terminal(120, 40)
            assert app.browser.select(running)
            store.release(running)
            for _ in range(100):
                await pilot.pause(0.1)
                if app.set_pane.summary is not None and app.set_pane.summary.state == "interrupted":
                    break
            assert app.set_pane.summary.id == running and app.set_pane.summary.state == "interrupted"
            check_screen(app, "an interrupted set of 100 jobs")
            await pilot.resize_terminal(80, 24)
            await pilot.pause(0.3)
            check_screen(app, "after the last resize")
            store.close()
        app.manager.close()

    asyncio.run(go())
