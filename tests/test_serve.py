"""``qjm serve`` without a browser: who gets in, how many, and that no app process outlives its
connection or the server.

The server runs as the real command (``python -m qjm_tui.cli serve --port 0``) and is spoken to
over HTTP and websockets as a browser would (and as a hostile page or a stray client would).
App processes are found in /proc by their command line, which names the test's own store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("textual_serve", reason="qjm serve needs the web extra (pip install 'qjm-tui[web]')")
aiohttp = pytest.importorskip("aiohttp")

from textual_serve.download_manager import DownloadManager  # noqa: E402

from qjm_tui.cli import build_parser, main  # noqa: E402
from qjm_tui.web.server import AppSession, QjmServer, is_loopback, split_host  # noqa: E402
from tests.serving import Served, app_processes, serving, wait_until  # noqa: E402


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(
            url, headers=headers or {}, allow_redirects=False) as response:
        return response.status, dict(response.headers), (await response.read()).decode(errors="replace")


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    return asyncio.run(get(url, headers))


def login(served: Served) -> str:
    """Open the printed URL; the Cookie header the browser would send from then on."""
    status, headers, _ = fetch(served.url)
    assert status == 200
    return headers["Set-Cookie"].split(";")[0]


async def open_view(served: Served, cookie: str | None, origin: str | None, *,
                    host: str | None = None) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if host:
        headers["Host"] = host
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(f"ws://{served.host}/ws?width=100&height=30", origin=origin,
                                      headers=headers)
    except BaseException:
        await session.close()
        raise
    return session, ws


async def read_until(ws: aiohttp.ClientWebSocketResponse, *words: bytes, timeout: float = 60) -> bytes:
    """What the app sends until every word has shown up (the page's canvas is drawn from it)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not all(word in seen for word in words):
        try:
            message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            missing = [word for word in words if word not in seen]
            raise AssertionError(f"{missing} never came; got {seen[-300:]!r}") from None
        if message.type == aiohttp.WSMsgType.BINARY:
            seen += message.data
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise AssertionError(f"closed before {words!r} came; got {seen[-300:]!r}")
    return seen


def refused(served: Served, cookie: str | None, origin: str | None, host: str | None = None) -> int:
    async def attempt() -> int:
        try:
            session, ws = await open_view(served, cookie, origin, host=host)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        await session.close()
        return 101

    return asyncio.run(attempt())


# -- who gets in --------------------------------------------------------------------------------


def test_the_printed_url_gives_a_strict_http_only_cookie_and_nothing_else_gets_in(tmp_path: Path) -> None:
    with serving(tmp_path, "--read-only") as served:
        assert urlsplit(served.url).hostname == "127.0.0.1"
        assert len(served.token) >= 32

        for url in (served.base + "/", served.base + "/?token=" + served.token[:-1] + "x",
                    served.base + "/static/js/textual.js", served.base + "/download/x"):
            status, headers, body = fetch(url)
            assert status == 403, url
            assert "Set-Cookie" not in headers
            assert "URL qjm serve printed" in body

        status, headers, page = fetch(served.url)
        assert status == 200
        cookie = headers["Set-Cookie"]
        name = cookie.split("=")[0]
        assert name == f"qjm_session_{urlsplit(served.url).port}"
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]

        # the cookie alone now opens the page and its files
        session = cookie.split(";")[0]
        assert fetch(served.base + "/", Cookie=session)[0] == 200
        assert fetch(served.base + "/static/js/textual.js", Cookie=session)[0] == 200
        assert fetch(served.base + "/", Cookie=session.replace("=", "=x"))[0] == 403

        said = served.said()
        assert said.count("refused") == 5 and "no valid session" in said
        assert "warning" not in said  # on 127.0.0.1 there is nothing to warn about

        # the page: local files only, sized for phones, titled with the store
        assert '<meta name="viewport" content="width=device-width, initial-scale=1"' in page
        assert f"<title>qjm (read-only) · {served.store}</title>" in page
        assert "googleapis" not in page and "https://" not in page and "http://" not in page
        for path in ("/static/fonts/RobotoMono-VariableFont_wght.ttf", "/static/css/xterm.css"):
            assert f'"{path}"' in page
            assert fetch(served.base + path, Cookie=session)[0] == 200, path

        # and the app it serves is the read-only one
        async def view() -> bytes:
            client, ws = await open_view(served, session, f"http://{served.host}")
            try:
                return await read_until(ws, b"(read-only)", b"Job sets", b"Quit")
            finally:
                await ws.close()
                await client.close()

        assert b"New" not in asyncio.run(view())  # the footer offers no new set


def test_a_websocket_without_the_cookie_or_from_another_origin_is_refused(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        cookie = login(served)
        own = f"http://{served.host}"
        assert refused(served, None, own) == 403
        assert refused(served, "qjm_session_1=forged", own) == 403
        assert refused(served, cookie, "http://evil.example") == 403
        assert refused(served, cookie, f"https://{served.host}.evil.example") == 403
        assert refused(served, cookie, None) == 403
        assert refused(served, cookie, "null") == 403
        assert "opened from" not in served.said()  # not one app process was started
        assert served.apps() == []


def test_a_request_for_another_host_name_is_refused(tmp_path: Path) -> None:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 sends its own
    name as the Host; it gets nothing, not even with the token or the cookie."""
    with serving(tmp_path, "--allow-host", "qjm.lab.example") as served:
        port = urlsplit(served.url).port
        cookie = login(served)
        evil = f"evil.example:{port}"
        status, headers, body = fetch(served.url, Host=evil)
        assert status == 403 and "Set-Cookie" not in headers
        assert "not to this machine" in body
        assert fetch(served.base + "/", Host=evil, Cookie=cookie)[0] == 403
        assert refused(served, cookie, f"http://{evil}", host=evil) == 403
        # the names of this machine are fine
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"{socket.gethostname()}:{port}"):
            assert fetch(served.base + "/", Host=host, Cookie=cookie)[0] == 200, host
        # and a name given with --allow-host (a reverse proxy's)
        assert fetch(served.url, Host="qjm.lab.example")[0] == 200
        assert fetch(served.url, Host="other.lab.example")[0] == 403
        assert served.apps() == []


def test_hosts_and_origins_are_read_as_a_browser_writes_them() -> None:
    assert split_host("[::1]:8000") == ("::1", 8000)
    assert split_host("Example.ORG") == ("example.org", None)
    assert split_host("a:b")[1] == -1
    assert split_host("evil.example@127.0.0.1:8000") == ("", None)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("192.168.1.2")
    server = QjmServer(Path("/tmp/x.sqlite"), title="t", port=8123)
    assert server.host_allowed("127.0.0.1:8123") and server.host_allowed("[::1]:8123")
    assert server.host_allowed("10.1.2.3:8123")  # an address, not a name: nothing to rebind
    assert not server.host_allowed("127.0.0.1.nip.io:8123")
    assert not server.host_allowed("") and not server.host_allowed("localhost:notaport")


# -- how many, and for how long -----------------------------------------------------------------


def test_the_app_runs_per_view_up_to_the_cap_and_each_ends_with_its_connection(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-sessions", "2") as served:
        cookie = login(served)
        origin = f"http://{served.host}"

        async def scenario() -> None:
            first = await open_view(served, cookie, origin)
            second = await open_view(served, cookie, origin)
            await read_until(first[1], b"Job sets")
            await read_until(second[1], b"Job sets")
            assert len(served.apps()) == 2
            # a third view gets a line saying why, and no process
            session, ws = await open_view(served, cookie, origin)
            message = await ws.receive(timeout=10)
            assert b"Close one" in message.data
            closing = await ws.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1013
            await session.close()
            assert len(served.apps()) == 2
            # one view leaves (as a page being reloaded): the next one waits for its process
            # to end, rather than being refused
            await first[1].close()
            await first[0].close()
            await asyncio.sleep(0.2)
            third = await open_view(served, cookie, origin)
            await read_until(third[1], b"Job sets")
            assert len(served.apps()) == 2
            for session, ws in (second, third):
                await ws.close()
                await session.close()

        asyncio.run(scenario())
        wait_until(lambda: served.said().count("closed (app process") == 3, 20, "three closed views")
        assert served.apps() == []
        said = served.said()
        assert "refused a viewer" in said and "--max-sessions 2" in said


def test_a_view_dropped_before_the_app_drew_leaves_no_process(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        cookie = login(served)

        async def drop() -> None:
            session, ws = await open_view(served, cookie, f"http://{served.host}")
            await session.close()  # the connection goes away at once, no close handshake

        async def garble() -> None:
            session, ws = await open_view(served, cookie, f"http://{served.host}")
            await ws.send_str('["stdin"]')  # a message missing its data
            ending = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            while (await ws.receive(timeout=20)).type not in ending:
                pass  # what the app drew before the server closed this view
            await session.close()

        for _ in range(3):
            asyncio.run(drop())
        asyncio.run(garble())
        wait_until(lambda: served.said().count("closed (app process") == 4, 20, "four closed views")
        assert served.apps() == []
        assert "a message it cannot read (IndexError" in served.said()


def test_stopping_the_server_stops_every_app_process(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        cookie = login(served)
        origin = f"http://{served.host}"

        async def two_views() -> None:
            views = [await open_view(served, cookie, origin) for _ in range(2)]
            for _, ws in views:
                await read_until(ws, b"Job sets")
            assert len(served.apps()) == 2
            served.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(served.process.wait, 20)
            for session, _ in views:
                await session.close()

        asyncio.run(two_views())
        assert served.apps() == []
        assert "stopping: ending 2 app processes" in served.said()


def test_app_processes_end_on_their_own_when_the_server_is_killed(tmp_path: Path) -> None:
    """kill -9 leaves the server no time to clean up: the app processes notice by themselves."""
    with serving(tmp_path) as served:
        cookie = login(served)

        async def views_then_kill() -> list[int]:
            session, ws = await open_view(served, cookie, f"http://{served.host}")
            drawn = await open_view(served, cookie, f"http://{served.host}")
            await read_until(drawn[1], b"Job sets")  # one drawn, one perhaps still starting
            pids = served.apps()
            served.process.kill()
            await asyncio.to_thread(served.process.wait, 10)
            await session.close()
            await drawn[0].close()
            return pids

        pids = asyncio.run(views_then_kill())
        assert len(pids) == 2
        wait_until(lambda: not served.apps(), 15, "the orphaned app processes to end")


HOSTILE = """
import signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.stdout.write("__GANGLION__\\n")
sys.stdout.flush()
while True:  # at 100% CPU, deaf to the quit request and to SIGTERM
    pass
"""


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The path of an app script that never quits and ignores SIGTERM (short graces for it);
    whatever of it a failing test leaves running is killed at the end."""
    monkeypatch.setattr(AppSession, "quit_grace", 0.5)
    monkeypatch.setattr(AppSession, "term_grace", 0.5)
    script = tmp_path / "hostile_app.py"
    script.write_text(HOSTILE)
    yield str(script)
    for pid in app_processes(str(script)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_an_app_process_that_ignores_quit_and_sigterm_is_killed(tmp_path: Path, hostile: str) -> None:
    """The worst app process: it never quits and ignores SIGTERM. A dropped connection and a
    stopping server both end it anyway (SIGKILL to its process group)."""
    marker = hostile

    async def scenario() -> list[str]:
        server = QjmServer(tmp_path / "store.sqlite", title="t", port=0)
        server.argv = [sys.executable, marker]
        await server.start()
        base = f"http://127.0.0.1:{server.port}"
        ended = []
        try:
            async with aiohttp.ClientSession() as client:
                async with client.get(f"{base}/?token={server.token}") as response:
                    cookie = response.headers["Set-Cookie"].split(";")[0]
                for how in ("dropped", "server stopped"):
                    ws = await client.ws_connect(f"ws://127.0.0.1:{server.port}/ws", origin=base,
                                                 headers={"Cookie": cookie})
                    await asyncio.to_thread(wait_until, lambda: app_processes(marker), 10, "the app")
                    session = next(iter(server.sessions))
                    if how == "dropped":
                        await ws.close()
                        while server.sessions:
                            await asyncio.sleep(0.05)
                    else:
                        await server.stop()
                    ended.append(session.ended)
                    assert app_processes(marker) == [], how
        finally:
            await server.stop()
        return ended

    assert asyncio.run(scenario()) == ["killed", "killed"]


def test_a_view_stopped_while_its_app_starts_leaves_no_process(hostile: str) -> None:
    """A stop that comes while the app process is being started (the server stopping as a tab
    opens) waits for the process and ends it; a stop that comes first means no process at all."""
    marker = hostile

    async def ignore(*args: object) -> None:
        pass

    def session() -> AppSession:
        return AppSession([sys.executable, marker], write_bytes=ignore, write_str=ignore, close=ignore,
                          download_manager=DownloadManager())

    async def scenario() -> None:
        racing = session()
        starting = asyncio.create_task(racing.start(80, 24))
        await asyncio.sleep(0)  # the start has begun; its process is not known yet
        await racing.stop()
        await starting
        assert racing.pid is not None and racing.ended == "killed"
        assert app_processes(marker) == []
        late = session()
        await late.stop()
        await late.start(80, 24)
        assert late.pid is None and app_processes(marker) == []

    asyncio.run(scenario())


def test_an_app_process_whose_input_ends_unannounced_exits(tmp_path: Path) -> None:
    """The app process's own guard: its input closing without a quit request means the server is
    gone, and it exits (here its parent, the test, is alive: no parent-death signal is involved)."""
    store = tmp_path / "store.sqlite"
    env = {**os.environ, "TEXTUAL_DRIVER": "qjm_tui.tui.web_session:SessionDriver", "COLUMNS": "80",
           "ROWS": "24"}
    process = subprocess.Popen([sys.executable, "-m", "qjm_tui.tui.web_session", "--store", str(store)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=env)
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline() == b"__GANGLION__\n"
        process.stdin.close()
        assert process.wait(timeout=20) is not None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- the command --------------------------------------------------------------------------------


def test_listening_beyond_this_machine_warns_and_advises(tmp_path: Path) -> None:
    with serving(tmp_path, "--host", "0.0.0.0") as served:
        said = served.said()
        assert "warning: listening on 0.0.0.0" in said
        assert "SSH forwarding" in said and "TLS reverse proxy" in said
        assert urlsplit(served.url).hostname == socket.gethostname()


def test_a_port_in_use_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        assert main(["serve", "--port", str(port), "--store", str(tmp_path / "s.sqlite")]) == 2
    finally:
        taken.close()
    out, err = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}" in err and out == ""


def test_a_file_that_is_not_a_store_is_refused_before_serving(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a store")
    assert main(["serve", "--port", "0", "--store", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert "not a qjm store" in err and out == ""


def test_without_the_web_extra_serve_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    for name in [m for m in sys.modules if m == "textual_serve" or m.startswith("textual_serve.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "qjm_tui.web.server")
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'qjm-tui[web]'" in err and "textual_serve" in err


@pytest.mark.parametrize("argv", [["--port", "70000"], ["--max-sessions", "0"], ["--port", "x"]])
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", *argv]) == 2
    assert "qjm serve: error: argument" in capsys.readouterr().err


def test_read_only_is_refused_for_commands_that_are_not_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--read-only", "ls"]) == 2
    assert "--read-only is for the app" in capsys.readouterr().err
    parser = build_parser()
    for argv in (["--read-only", "tui"], ["tui", "--read-only"], ["--read-only", "serve"],
                 ["serve", "--read-only"]):
        assert parser.parse_args(argv).read_only is True, argv
    assert parser.parse_args(["tui"]).read_only is False
