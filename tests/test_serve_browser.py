"""``qjm serve`` in a real browser: headless Chromium, driven over the DevTools Protocol.

A store filled by ``qjm demo`` is served by the real command; Chromium opens the printed URL at
a desktop's size and at a phone's. The page draws on a canvas, so what is checked is what the
app sends over the page's websocket (the terminal output the canvas is drawn from), plus
screenshots. They are written to the test's folder, and also to ``$QJM_SCREENSHOT_DIR`` when it
is set (``QJM_SCREENSHOT_DIR=screenshots`` draws the README's).

Skipped, saying why, where Chromium is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("textual_serve", reason="qjm serve needs the web extra (pip install 'qjm-tui[web]')")
pytest.importorskip("websockets", reason="the browser is driven with the websockets package")

from tests.chromium import Chromium, Page, chromium_path, png_colours  # noqa: E402
from tests.serving import Served, serving, wait_until  # noqa: E402

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="Chromium is not installed (apt-get install chromium; .ci/run "
                                       "installs it)")

DESKTOP = (1280, 800)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``qjm serve`` on a store filled by ``qjm demo``."""
    folder = tmp_path_factory.mktemp("served")
    env = {**os.environ, "QJM_HOME": str(folder / "home"), "QJM_CONFIG": str(folder / "none.toml")}
    demo = subprocess.run([sys.executable, "-m", "qjm_tui.cli", "demo", "--circuits", "40", "-q"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert demo.returncode == 0, demo.stderr
    with serving(folder, "--max-sessions", "3", store=folder / "home" / "qjm.sqlite", env=env) as served:
        yield served


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, Chromium]]:
    """One Chromium (with a fresh profile) for the module, and the event loop it is driven from."""
    loop = asyncio.new_event_loop()
    launcher = Chromium.launch(tmp_path_factory.mktemp("chromium-profile"))
    chromium = loop.run_until_complete(launcher.__aenter__())
    try:
        yield loop, chromium
    finally:
        loop.run_until_complete(launcher.__aexit__(None, None, None))
        loop.close()


def save(data: bytes, name: str, tmp_path: Path) -> None:
    """Keep a screenshot: in the test's folder, and in $QJM_SCREENSHOT_DIR if set."""
    assert png_colours(data) > 20, "a blank screenshot"
    (tmp_path / name).write_bytes(data)
    folder = os.environ.get("QJM_SCREENSHOT_DIR")
    if folder:
        (Path(folder) / name).write_bytes(data)


@contextlib.asynccontextmanager
async def tab(chromium: Chromium, size: tuple[int, int], *, mobile: bool = False) -> AsyncIterator[Page]:
    """A new tab, closed on the way out whatever happened (so its app process ends, and a
    failed test leaves no view open for the next one to find)."""
    page = await chromium.new_page(*size, mobile=mobile)
    try:
        yield page
    finally:
        await page.close()


async def open_app(page: Page, served: Served, words: tuple[str, ...] = ("Job sets", "demo")) -> None:
    await page.navigate(served.url)
    await page.wait_for_text(*words)
    await asyncio.sleep(0.5)  # let the canvas paint what arrived
    await page.evaluate("document.querySelector('.xterm-helper-textarea').focus()")


def test_the_page_draws_the_job_sets_of_the_store(browser, served: Served, tmp_path: Path) -> None:  # noqa: ANN001
    loop, chromium = browser

    async def desktop() -> None:
        async with tab(chromium, DESKTOP) as page:
            await open_app(page, served, words=("Job sets", "demo", "Jobs", "Results"))
            assert await page.evaluate("document.title") == f"qjm · {served.store}"
            assert await page.evaluate("location.search") == "", "the token left the address bar"
            assert all(url.startswith(served.base) for url in page.requests), page.requests
            assert any(url.endswith("RobotoMono-VariableFont_wght.ttf") for url in page.requests)
            assert await page.evaluate("document.fonts.check('16px \"Roboto Mono\"')") is True
            columns = int(next(iter(page.sockets.values()))["url"].split("width=")[1].split("&")[0])
            assert columns >= 120, "at a desktop's size the three panes are in view"
            save(await page.screenshot(tmp_path / "shot.png"), "browser-desktop-1280x800.png", tmp_path)

    loop.run_until_complete(desktop())
    wait_until(lambda: not served.apps(), 15, "the closed tab's app process to end")


def test_on_a_phone_one_pane_shows_and_keys_move_between_panes_and_open_help(
        browser, served: Served, tmp_path: Path) -> None:  # noqa: ANN001
    loop, chromium = browser

    async def phone() -> None:
        async with tab(chromium, PHONE, mobile=True) as page:
            await open_app(page, served)
            assert await page.evaluate("window.innerWidth") == PHONE[0], "the viewport tag is honoured"
            first = page.text()
            assert "2 Jobs" not in first and "3 Results" not in first, "one pane at a time"
            save(await page.screenshot(tmp_path / "sets.png"), "browser-phone-sets-390x844.png", tmp_path)

            for key, shown in (("tab", "2 Jobs"), ("3", "3 Results"), ("1", "1 Job sets"), ("2", "2 Jobs")):
                since = len(page.received)
                await page.press(key)
                await page.wait_for_text(shown, since=since)
            await asyncio.sleep(0.3)
            save(await page.screenshot(tmp_path / "jobs.png"), "browser-phone-390x844.png", tmp_path)
            since = len(page.received)
            await page.press("?")
            await page.wait_for_text("Keys", "Everywhere", "move to the next pane", since=since)
            await asyncio.sleep(0.3)
            save(await page.screenshot(tmp_path / "help.png"), "browser-phone-help-390x844.png", tmp_path)
            since = len(page.received)
            await page.press("escape")
            # The help closes onto the pane it was opened from, the jobs (the help's own last
            # frames may still arrive after the key, and they name every pane, "Job sets" too).
            await page.wait_for_text("2 Jobs", since=since)

    loop.run_until_complete(phone())
    wait_until(lambda: not served.apps(), 15, "the closed tab's app process to end")


def test_a_tab_closed_before_the_app_drew_leaves_no_process(browser, served: Served) -> None:  # noqa: ANN001
    loop, chromium = browser

    async def close_early() -> None:
        async with tab(chromium, DESKTOP) as page:
            await page.navigate(served.url)
            # The server has taken the page's websocket (it answered the handshake), so it is
            # starting an app process for it; the tab closes before the app drew anything.
            deadline = time.monotonic() + 60
            while not any(socket.get("open") for socket in page.sockets.values()):
                assert time.monotonic() < deadline, f"the server never took the websocket: {page.sockets}"
                await asyncio.sleep(0.01)
            assert b"Job sets" not in page.received

    opened, closed = served.said().count(" opened from "), served.said().count("closed (app process")
    for _ in range(2):
        loop.run_until_complete(close_early())
    # Each view's process is asked to quit, then terminated, then killed: bounded by the
    # server's grace periods, plus the time a loaded machine takes to start the process.
    wait_until(lambda: served.said().count("closed (app process") - closed >= 2, 60, "the views to close")
    assert served.said().count(" opened from ") - opened == 2, served.said()
    wait_until(lambda: not served.apps(), 15, "the app processes to end")
