"""``qjm serve``: the app in web browsers, on textual-serve, with its own door and process care.

textual-serve (``Server``) serves a page that draws a terminal on a canvas and, per websocket,
runs the app in a process of its own (``AppService``). It has no security of its own, so
:class:`QjmServer` puts a guard in front of every request (an aiohttp middleware):

- **Host.** A request must be addressed to this machine: an IP address, ``localhost``, the
  machine's host name, or a name given with ``--allow-host``. A web page whose name was made to
  point at 127.0.0.1 (DNS rebinding) is refused.
- **Token, then cookie.** The URL the server prints carries a random token. Opening it sets a
  session cookie (HttpOnly, SameSite=Strict, named after the port, since cookies do not tell
  ports apart); every later request, the page's own files included, needs that cookie.
- **Origin.** The websocket that drives the app also needs an ``Origin`` header naming this
  very server, so no other site's page can open it through the user's browser.

Everything else gets 403 and one line on the server's stderr.

Process care (:class:`AppSession`): each app process is the leader of a process group of its
own; when its websocket closes, for whatever reason and at whatever point of the app's start,
the app is asked to quit, then terminated, then killed, with everything it started. Stopping
the server (Ctrl+C, SIGTERM, SIGHUP) does the same for every session; the app processes also
watch for the server's death on their own (:mod:`qjm_tui.tui.web_session`). ``--max-sessions``
caps the number of app processes (each holds its own copy of the app: about 114 MiB resident).

Nothing in qjm imports this module but the ``qjm serve`` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
import secrets
import shlex
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

TEMPLATES = Path(__file__).parent / "templates"

#: the module each app process runs, and the Textual driver it runs the app with (named, not
#: imported: Textual lives under qjm_tui.tui, and the server has no use for it)
SESSION_MODULE = "qjm_tui.tui.web_session"
DRIVER = f"{SESSION_MODULE}:SessionDriver"

#: how long an app gets to quit when asked, and then to end after SIGTERM, before SIGKILL
QUIT_GRACE = 3.0
TERM_GRACE = 2.0

#: the terminal sizes a browser may ask for (anything else is brought into this range)
COLUMNS = (10, 1000)
ROWS = (5, 500)

#: headers on every page and file the server sends
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'",
}

WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class ServeError(Exception):
    """The server cannot start (the address is taken, the host is unknown...)."""


def say(message: str) -> None:
    """One line for the person running the server (stderr; stdout carries only the URL)."""
    print(f"qjm serve: {message}", file=sys.stderr, flush=True)


def shown(text: str | None, limit: int = 80) -> str:
    """A header value from the network, safe to print on one line."""
    return repr((text or "")[:limit])


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], value))


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or "")
    except ValueError:
        return default


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to listen on) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host(host: str) -> tuple[str, int | None]:
    """``name:port`` (or ``[v6]:port``, or a name alone) as (lowercase name, port or None);
    port -1 when it is not a port, and no name for anything but a host (``a@b``, a path)."""
    if any(c in host for c in "@/?#\\ "):
        return "", None
    parsed = urlsplit(f"//{host}")
    try:
        port = parsed.port
    except ValueError:
        port = -1
    return (parsed.hostname or "").lower(), port


class AppSession(AppService):
    """One browser tab's app process, which never outlives its websocket.

    textual-serve's ``AppService`` runs the app through a shell and, to stop it, asks it to
    quit and waits for as long as it takes. Here the app runs without a shell, as the leader
    of a process group of its own, and stopping it is bounded: asked to quit, terminated
    ``QUIT_GRACE`` seconds later, killed ``TERM_GRACE`` seconds after that, together with any
    process it started.
    """

    quit_grace = QUIT_GRACE
    term_grace = TERM_GRACE

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv
        self._starting: asyncio.Future[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        #: how the process ended: "had ended", "quit when asked", "terminated" or "killed"
        self.ended = ""

    @property
    def pid(self) -> int | None:
        """The app process's id, once started."""
        return self._process.pid if self._process is not None else None

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width=width, height=height)
        environment["TEXTUAL_DRIVER"] = DRIVER
        return environment

    async def _open_app_process(self, width: int = 80, height: int = 24) -> asyncio.subprocess.Process:
        pipe = asyncio.subprocess.PIPE
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=pipe, stdout=pipe, stderr=pipe,
            env=self._build_environment(width=width, height=height), start_new_session=True)
        self._stdin = process.stdin
        return process

    async def start(self, width: int, height: int) -> None:
        """Start the app process, unless the session was stopped first. A stop that comes while
        the process is being started waits for it, so it is never left running."""
        if self._stopping is not None:
            return
        self._starting = asyncio.ensure_future(super().start(_clamp(width, COLUMNS), _clamp(height, ROWS)))
        await asyncio.shield(self._starting)

    async def set_terminal_size(self, width: int, height: int) -> None:
        await super().set_terminal_size(_clamp(int(width), COLUMNS), _clamp(int(height), ROWS))

    async def stop(self) -> None:
        """End the app process (at most about QUIT_GRACE + TERM_GRACE seconds). Safe to call
        more than once and from several tasks; a caller being cancelled does not stop it."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        process = self._process
        if process is None:
            return
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        self.ended = "had ended"
        if process.returncode is None:
            self.ended = "quit when asked"
            await self.send_meta({"type": "quit"})
        steps = ((None, self.quit_grace, self.ended), (signal.SIGTERM, self.term_grace, "terminated"),
                 (signal.SIGKILL, 5.0, "killed"))
        for signum, grace, ended in steps:
            if signum is not None:
                self.ended = ended
                self._signal_group(process.pid, signum)
            try:
                await asyncio.wait_for(process.wait(), grace)
                break
            except TimeoutError:
                continue
        # whatever the app started and left behind in its group goes with it
        self._signal_group(process.pid, signal.SIGKILL)
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 2.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
            self._task = None

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)


class QjmServer(Server):
    """textual-serve's server with qjm's guard, sessions and page (see the module's text)."""

    def __init__(self, store: Path, *, title: str, host: str = "127.0.0.1", port: int = 8000,
                 read_only: bool = False, max_sessions: int = 4,
                 allow_hosts: Iterable[str] = ()) -> None:
        argv = [sys.executable, "-m", SESSION_MODULE, "--store", str(store)]
        if read_only:
            argv.append("--read-only")
        super().__init__(shlex.join(argv), host=host, port=port, title=title,
                         templates_path=TEMPLATES)
        self.argv = argv
        self.read_only = read_only
        self.max_sessions = max_sessions
        self.token = secrets.token_urlsafe(24)
        self.cookie_name = f"qjm_session_{port}"
        self.names = {"localhost", socket.gethostname().lower(),
                      *(name.lower() for name in allow_hosts)}
        if host not in WILDCARD_HOSTS:
            self.names.add(split_host(host)[0] or host.lower())
        self._cookies: set[str] = set()
        #: the live sessions (counted until their process has ended) and their websockets
        self.sessions: dict[AppSession, web.WebSocketResponse] = {}
        #: the sessions whose websocket has closed and whose process is being ended
        self._closing: set[AppSession] = set()
        self._slots = asyncio.Condition()
        self._viewers = 0
        #: set once the server is stopping: no new view is started
        self._closing_down = False
        self._runner: web.AppRunner | None = None

    # -- the guard ---------------------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """(textual-serve prints a banner here; :meth:`run` says what qjm has to say.)"""

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request's Host header names this machine (see the module's text)."""
        name, port = split_host(host or "")
        if not name or port == -1:
            return False
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return False
        return True

    @staticmethod
    def same_origin(request: web.Request) -> bool:
        """Whether the request's Origin header is this server as the browser reached it."""
        origin = request.headers.get("Origin")
        if not origin:
            return False
        parsed = urlsplit(origin)
        if parsed.scheme not in ("http", "https") or parsed.path not in ("", "/"):
            return False
        default = 443 if parsed.scheme == "https" else 80
        try:
            origin_at = ((parsed.hostname or "").lower(), parsed.port or default)
        except ValueError:
            return False
        name, port = split_host(request.host)
        return origin_at == (name, port or default)

    def _has_session(self, request: web.Request) -> bool:
        cookie = request.cookies.get(self.cookie_name, "")
        return any(hmac.compare_digest(cookie, known) for known in self._cookies)

    def _token_given(self, request: web.Request) -> bool:
        return hmac.compare_digest(request.query.get("token", ""), self.token)

    def _refuse(self, request: web.Request, why: str, advice: str) -> web.Response:
        peer = request.remote or "?"
        say(f"refused {request.method} {shown(request.path, 40)} from {peer}: {why}")
        response = web.Response(status=403, text=f"403 Forbidden: {why}.\n{advice}\n")
        response.headers.update(SECURITY_HEADERS)
        return response

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if not self.host_allowed(request.host):
            return self._refuse(request, f"the request is addressed to {shown(request.host)}, "
                                "not to this machine",
                                "Open the URL qjm serve printed; behind a proxy, start qjm serve with "
                                "--allow-host NAME for the name the proxy passes on.")
        fresh: str | None = None
        if not self._has_session(request):
            if request.path == "/" and self._token_given(request):
                fresh = secrets.token_urlsafe(32)
            else:
                return self._refuse(request, "no valid session",
                                    "Open the URL qjm serve printed when it started (it carries a "
                                    "token); it stays valid until the server stops.")
        if request.path == "/ws" and not self.same_origin(request):
            return self._refuse(request, f"the websocket comes from {shown(request.headers.get('Origin'))}, "
                                "not from this server's page", "Open the app from the URL qjm serve printed.")
        response = await handler(request)
        if not isinstance(response, web.WebSocketResponse):
            response.headers.update(SECURITY_HEADERS)
        if fresh is not None:
            self._cookies.add(fresh)
            response.set_cookie(self.cookie_name, fresh, httponly=True, samesite="Strict", path="/",
                                secure=request.scheme == "https")
        return response

    # -- the page and the sessions -------------------------------------------------------------

    async def handle_index(self, request: web.Request) -> web.Response:
        """The page: local files only, sized for phones too, titled with the store."""
        size = _int(request.query.get("fontsize"), 0)
        return aiohttp_jinja2.render_template("app_index.html", request, {
            "title": self.title, "font_size": _clamp(size, (6, 48)) if size else None})

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One app process for this websocket, for as long as it is open (and no longer)."""
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        await self._wait_for_a_closing_session()
        if self._closing_down:
            await websocket.close(code=1001, message=b"the server is stopping")
            return websocket
        if len(self.sessions) >= self.max_sessions:
            say(f"refused a viewer from {request.remote}: {len(self.sessions)} sessions open, the "
                f"limit (--max-sessions {self.max_sessions})")
            await websocket.send_bytes(
                f"\r\n  qjm serve: {len(self.sessions)} views of this server are open, its limit. "
                "Close one, then open this one again.\r\n".encode())
            await websocket.close(code=1013, message=b"session limit reached")
            return websocket
        session = AppSession(self.argv, write_bytes=websocket.send_bytes,
                             write_str=websocket.send_str, close=websocket.close,
                             download_manager=self.download_manager)
        self.sessions[session] = websocket
        self._viewers += 1
        viewer = self._viewers
        try:
            await session.start(_int(request.query.get("width"), 80), _int(request.query.get("height"), 24))
            say(f"view {viewer} opened from {request.remote} (app process {session.pid}; "
                f"{len(self.sessions)} of {self.max_sessions})")
            await self._process_messages(websocket, session)
        except Exception as exc:  # noqa: BLE001 - a malformed message ends this view alone
            say(f"view {viewer}: closing it on a message it cannot read ({type(exc).__name__}: "
                f"{shown(str(exc))})")
        finally:
            self._closing.add(session)
            await session.stop()
            with contextlib.suppress(Exception):
                await websocket.close()
            self.sessions.pop(session, None)
            self._closing.discard(session)
            async with self._slots:
                self._slots.notify_all()
            say(f"view {viewer} closed (app process {session.pid} {session.ended})")
        return websocket

    async def _wait_for_a_closing_session(self) -> None:
        """At the cap while views are closing (a page reloaded: its old view closes as the new
        one opens), wait for their processes to end rather than refuse the new view."""
        def room() -> bool:
            return len(self.sessions) < self.max_sessions or not self._closing

        async with self._slots:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slots.wait_for(room),
                                       AppSession.quit_grace + AppSession.term_grace + 5.0)

    async def stop_sessions(self) -> None:
        """End every session: close its websocket and end its app process."""
        while self.sessions:
            sessions = list(self.sessions.items())
            await asyncio.gather(*(session.stop() for session, _ in sessions), return_exceptions=True)
            for session, websocket in sessions:
                with contextlib.suppress(Exception):
                    await websocket.close()
                self.sessions.pop(session, None)

    # -- running -------------------------------------------------------------------------------

    def url(self, port: int) -> str:
        """The URL to open, token included."""
        host = socket.gethostname() if self.host in WILDCARD_HOSTS else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{port}/?token={self.token}"

    async def start(self) -> int:
        """Listen; returns the port (the one asked for, or the free one found for port 0)."""
        app = await self._make_app()
        self._runner = runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                              shutdown_timeout=3.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host or None, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ServeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        port = int(runner.addresses[0][1])
        if port != self.port:
            self.port = port
            self.cookie_name = f"qjm_session_{port}"
        return port

    async def stop(self) -> None:
        """End every session, then stop listening."""
        self._closing_down = True
        await self.stop_sessions()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def run(self) -> None:
        """Serve until SIGINT (Ctrl+C), SIGTERM or SIGHUP, then stop everything."""
        port = await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        try:
            if not is_loopback(self.host):
                say(f"warning: listening on {self.host or 'every address'}, port {port}, in plain "
                    "HTTP: anyone who can watch this network can read the URL's token and drive the "
                    f"app. Prefer `qjm serve` on 127.0.0.1 reached through SSH forwarding "
                    f"(ssh -L {port}:127.0.0.1:{port} this-machine), or a TLS reverse proxy.")
            say(f"{self.title}: at most {self.max_sessions} views at once; Ctrl+C stops")
            print(self.url(port), flush=True)
            await stop.wait()
            if self.sessions:
                say(f"stopping: ending {len(self.sessions)} app processes")
        finally:
            await self.stop()


def serve(*, store: Path | None = None, host: str = "127.0.0.1", port: int = 8000,
          read_only: bool = False, max_sessions: int = 4, allow_hosts: Iterable[str] = ()) -> int:
    """Serve the app on ``store`` (None: the configured store) until stopped; the exit code."""
    from qjm_tui.config import load_config
    from qjm_tui.core.store import Store
    from qjm_tui.tui.app import display_path

    path = store if store is not None else load_config().store_path()
    if not path.exists():
        say(f"no store at {path} yet; the app shows job sets once one is started there")
    else:
        Store(path, read_only=True).close()  # a file that is not a store is refused here, by name
    title = f"qjm{' (read-only)' if read_only else ''} · {display_path(path)}"
    server = QjmServer(path.absolute(), title=title, host=host, port=port, read_only=read_only,
                       max_sessions=max_sessions, allow_hosts=allow_hosts)
    asyncio.run(server.run())
    return 0
