"""A headless Chromium driven over the Chrome DevTools Protocol, with ``websockets`` alone.

Enough of the protocol for the browser tests of ``qjm serve``: open a page at a given window
size (a phone's too), type keys into it, read what the page's websocket receives (the app
draws on a canvas, so the terminal output it is sent is what can be checked as text), run a
line of JavaScript, and take a screenshot. No chromedriver, selenium or playwright.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

#: the flags the browser runs with: headless, and nothing that reaches out to the network
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-port=0")

#: key name -> (key, code, Windows virtual key code, text typed) for Input.dispatchKeyEvent
KEYS: dict[str, tuple[str, str, int, str]] = {
    "tab": ("Tab", "Tab", 9, "\t"),
    "escape": ("Escape", "Escape", 27, ""),
    "enter": ("Enter", "Enter", 13, "\r"),
    "?": ("?", "Slash", 191, "?"),
}


def chromium_path() -> str | None:
    """The Chromium executable on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def png_colours(data: bytes) -> int:
    """How many distinct colours a PNG screenshot has (8-bit RGB or RGBA, not interlaced, as
    Chromium writes them): about one for a blank page, dozens for a drawn app."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and not interlace, "an unexpected PNG layout"
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * bpp
    previous, colours = bytearray(stride), set()
    for y in range(height):
        kind, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + left) & 255
            elif kind == 2:
                row[i] = (row[i] + up) & 255
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                row[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        colours.update(bytes(row[i:i + 3]) for i in range(0, stride, bpp * 7))  # every 7th pixel
        previous = row
    return len(colours)


class Page:
    """One tab, attached in flat mode: commands carry its session id."""

    def __init__(self, browser: Chromium, target_id: str, session_id: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id
        #: the bytes of every binary websocket frame the page received (what the app drew)
        self.received = bytearray()
        #: every websocket the page opened: its URL, whether the server took it (``open``:
        #: the handshake's answer arrived) and whether it has closed
        self.sockets: dict[str, dict[str, Any]] = {}
        #: the URL of every request the page made
        self.requests: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, session_id=self.session_id, **params)

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.webSocketFrameReceived":
            response = params["response"]
            if response.get("opcode") == 2:
                self.received += base64.b64decode(response["payloadData"])
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            self.sockets[params["requestId"]] = {"url": params["url"], "open": False, "closed": False}
        elif method == "Network.webSocketHandshakeResponseReceived":
            self.sockets.setdefault(params["requestId"], {})["open"] = params["response"]["status"] == 101
        elif method == "Network.webSocketClosed":
            self.sockets.setdefault(params["requestId"], {})["closed"] = True

    def text(self, since: int = 0) -> str:
        """What the page was sent since byte ``since``, as text (escape codes included)."""
        return self.received[since:].decode("utf-8", "replace")

    async def wait_for_text(self, *words: str, since: int = 0, timeout: float = 30.0) -> str:
        """Wait until every word has been sent to the page (after byte ``since``)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text(since)
            if all(word in text for word in words):
                return text
            if time.monotonic() > deadline:
                missing = [w for w in words if w not in text]
                raise AssertionError(f"the page was never sent {missing}; it got {len(text)} "
                                     f"characters ending {text[-400:]!r}")
            await asyncio.sleep(0.05)

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                                awaitPromise=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def press(self, name: str) -> None:
        """Type one key into the page (a name in :data:`KEYS`, or a single character)."""
        key, code, vk, text = KEYS.get(name) or (name, f"Key{name.upper()}" if name.isalpha()
                                                 else f"Digit{name}" if name.isdigit() else "",
                                                 ord(name.upper()), name)
        modifiers = 8 if (name.isupper() or name == "?") else 0
        common = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers}
        await self.send("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    async def screenshot(self, path: Path) -> bytes:
        reply = await self.send("Page.captureScreenshot", format="png")
        data = base64.b64decode(reply["data"])
        path.write_bytes(data)
        return data

    async def close(self) -> None:
        await self.browser.send("Target.closeTarget", targetId=self.target_id)


class Chromium:
    """A headless Chromium with a fresh profile, and its DevTools connection."""

    def __init__(self, process: subprocess.Popen[bytes], socket: ClientConnection, profile: Path) -> None:
        self.process = process
        self.socket = socket
        self.profile = profile
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, profile: Path, executable: str | None = None) -> AsyncIterator[Chromium]:
        """Start the browser (``profile``: a fresh user-data folder); stop it on the way out."""
        executable = executable or chromium_path()
        assert executable, "no Chromium on PATH"
        profile.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Chromium did not start (exit code {process.poll()})")
                await asyncio.sleep(0.05)
            port, path = port_file.read_text().splitlines()[:2]
            socket = await connect(f"ws://127.0.0.1:{port}{path}", max_size=None)
            browser = cls(process, socket, profile)
            try:
                yield browser
            finally:
                await browser.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            if "id" in message:
                future = self._waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                page = self._pages.get(message.get("sessionId", ""))
                if page is not None:
                    page.on_event(message["method"], message.get("params", {}))

    async def send(self, method: str, session_id: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command; its result, or an AssertionError with the browser's error."""
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session_id:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        await self.socket.send(json.dumps(message))
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    async def new_page(self, width: int, height: int, *, mobile: bool = False) -> Page:
        """A blank tab of ``width`` x ``height`` CSS pixels (a phone's screen with ``mobile``),
        reporting its websocket traffic."""
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        page = Page(self, target["targetId"], attached["sessionId"])
        self._pages[page.session_id] = page
        await page.send("Network.enable")
        await page.send("Page.enable")
        await page.send("Emulation.setFocusEmulationEnabled", enabled=True)
        # Scale 1: under an emulated scale of 2, the terminal's canvas is sized for 1 and draws
        # for 2, showing only the left half (a browser started at scale 2 draws it right).
        await page.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=mobile)
        if mobile:
            await page.send("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=5)
        return page

    async def close(self) -> None:
        """Drop the DevTools connection (the browser process is killed by :meth:`launch`)."""
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self.socket.close()
