"""One rule for ids, shared by the app and the command line: listings show a set's short id
(the random tail of its id), and every command that takes an id accepts it, or its start, as
well as the id or its start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qjm_tui import views
from qjm_tui.core import store as st

IDS = ("20261125-093012-8c1e4f2a", "20261125-093012-8c1e9999", "20261126-101010-00aa00aa")


def _store(path: Path) -> st.Store:
    store = st.Store(path)
    for job_set_id in IDS:
        store.create_job_set(job_set_id=job_set_id, name=f"set {job_set_id[-4:]}", tags=[],
                             backend="aer", shots=1, run_options={}, experiment_names=["a"],
                             jobs=[(0, 0, 1, 1, 0)], circuit_blocks=[])
    return store


def test_the_store_resolves_a_short_id_its_start_and_still_an_id_prefix(tmp_path: Path) -> None:
    store = _store(tmp_path / "qjm.sqlite")
    assert views.short_id(IDS[0]) == "8c1e4f2a"
    assert store.resolve_id("8c1e4f2a") == IDS[0], "the short id the app shows"
    assert store.resolve_id("00aa") == IDS[2], "the start of a short id"
    assert store.resolve_id("20261126") == IDS[2], "an id prefix, as before"
    assert store.resolve_id(IDS[1]) == IDS[1]
    with pytest.raises(Exception, match="ambiguous"):
        store.resolve_id("8c1e")
    with pytest.raises(Exception, match="ambiguous"):
        store.resolve_id("2")
    with pytest.raises(Exception, match="no job set id starts with 'ffff'"):
        store.resolve_id("ffff")
    # the time in the middle of an id is not a short id
    with pytest.raises(Exception, match="no job set id starts with '093012'"):
        store.resolve_id("093012")


def test_the_filter_takes_short_ids_and_dates_but_a_lone_digit_is_no_id() -> None:
    assert views.id_matches(IDS[0], "8c1e")
    assert views.id_matches(IDS[0], "20261125")
    assert not views.id_matches(IDS[0], "2"), "a digit would match every id of the year"
    assert not views.id_matches(IDS[0], "2026")
    assert not views.id_matches(IDS[2], "8c1e")


def test_qjm_show_takes_the_short_id_the_app_shows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _store(home / "qjm.sqlite").close()
    env = {**os.environ, "QJM_HOME": str(home), "QJM_CONFIG": str(tmp_path / "none.toml"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    shown = views.short_id(IDS[2])
    proc = subprocess.run([sys.executable, "-m", "qjm_tui", "show", shown], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert IDS[2] in proc.stdout


def test_every_id_the_app_shows_is_one_the_cli_takes(tmp_path: Path) -> None:
    """The list, the jobs pane's title, the palette and the notices name a set by what
    ``qjm`` takes: its short id (or its whole id)."""
    import asyncio
    import re

    from qjm_tui.config import Config
    from qjm_tui.tui.app import make_app
    from tests.tui_screen import screen_lines

    store = _store(tmp_path / "qjm.sqlite")

    async def go() -> None:
        app = make_app(store.path, config=Config(executor="threads"), watch_interval=0.1)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(100):
                await pilot.pause(0.05)
                if len(app.browser.rows) == 3 and app.set_pane.summary is not None:
                    break
            await pilot.pause(0.3)
            shown = "\n".join(screen_lines(app))
            palette = " ".join(c.help or "" for c in app.get_system_commands(app.screen))
            await pilot.press("y")
            notices = " ".join(n.message for n in app._notifications)
            for text, where in ((shown, "screen"), (palette, "palette"), (notices, "notices")):
                words = set(re.findall(r"[0-9a-f]{8}\b|\d{8}-\d{6}-[0-9a-f]{8}", text))
                assert words, where
                for word in words:
                    assert store.resolve_id(word) in IDS, (where, word)
        app.manager.close()

    asyncio.run(go())
