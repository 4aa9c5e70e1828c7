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
import os
import subprocess
import sys
from collections.abc import Iterator
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


async def open_app(chromium: Chromium, served: Served, size: tuple[int, int], *, mobile: bool = False,
                   words: tuple[str, ...] = ("Job sets", "demo")) -> Page:
    page = await chromium.new_page(*size, mobile=mobile)
    await page.navigate(served.url)
    await page.wait_for_text(*words)
    await asyncio.sleep(0.5)  # let the canvas paint what arrived
    await page.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
    return page


def test_the_page_draws_the_job_sets_of_the_store(browser, served: Served, tmp_path: Path) -> None:  # noqa: ANN001
    loop, chromium = browser

    async def desktop() -> None:
        page = await open_app(chromium, served, DESKTOP, words=("Job sets", "demo", "Jobs", "Results"))
        assert await page.evaluate("document.title") == f"qjm · {served.store}"
        assert await page.evaluate("location.search") == "", "the token left the address bar"
        assert all(url.startswith(served.base) for url in page.requests), page.requests
        assert any(url.endswith("RobotoMono-VariableFont_wght.ttf") for url in page.requests)
        assert await page.evaluate("document.fonts.check('16px \"Roboto Mono\"')") is True
        columns = int(next(iter(page.sockets.values()))["url"].split("width=")[1].split("&")[0])
        assert columns >= 120, "at a desktop's size the three panes are in view"
        save(await page.screenshot(tmp_path / "shot.png"), "browser-desktop-1280x800.png", tmp_path)
        await page.close()

    loop.run_until_complete(desktop())
    wait_until(lambda: not served.apps(), 15, "the closed tab's app process to end")


def test_on_a_phone_one_pane_shows_and_keys_move_between_panes_and_open_help(
        browser, served: Served, tmp_path: Path) -> None:  # noqa: ANN001
    loop, chromium = browser

    async def phone() -> None:
        page = await open_app(chromium, served, PHONE, mobile=True)
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
        await page.wait_for_text("Keys", "Everywhere", "Next pane", since=since)
        await asyncio.sleep(0.3)
        save(await page.screenshot(tmp_path / "help.png"), "browser-phone-help-390x844.png", tmp_path)
        since = len(page.received)
        await page.press("escape")
        await page.wait_for_text("Job sets", since=since)
        await page.close()

    loop.run_until_complete(phone())
    wait_until(lambda: not served.apps(), 15, "the closed tab's app process to end")


def test_a_tab_closed_before_the_app_drew_leaves_no_process(browser, served: Served) -> None:  # noqa: ANN001
    loop, chromium = browser

    async def close_early() -> None:
        page = await chromium.new_page(*DESKTOP)
        await page.navigate(served.url)
        while not page.sockets:  # the page has asked for its app
            await asyncio.sleep(0.01)
        assert b"Job sets" not in page.received
        await page.close()

    for _ in range(2):
        loop.run_until_complete(close_early())
    wait_until(lambda: served.said().count("closed (app process") >= 2, 20, "the views to close")
    wait_until(lambda: not served.apps(), 15, "the app processes to end")
