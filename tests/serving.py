"""Running ``qjm serve`` in tests: the real command on a port of its own, and the app processes
it starts, found in /proc by their command line (which names the test's own store)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SESSION_MODULE = "qjm_tui.tui.web_session"


def app_processes(marker: str) -> list[int]:
    """The ids of live processes whose command line contains ``marker`` (a store path, a
    script's name) and is an app process (``qjm_tui.tui.web_session``) or a script of the test."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(SESSION_MODULE in a or a.endswith(".py") for a in argv) and any(
                marker in a for a in argv):
            found.append(int(entry.name))
    return found


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


@dataclass
class Served:
    """A running ``qjm serve``: its process, the URL it printed and where its stderr goes."""

    process: subprocess.Popen[str]
    url: str
    store: Path
    log: Path

    @property
    def base(self) -> str:
        return self.url.split("?")[0].rstrip("/")

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def token(self) -> str:
        return self.url.split("token=")[1]

    def said(self) -> str:
        return self.log.read_text()

    def apps(self) -> list[int]:
        return app_processes(str(self.store))


@contextmanager
def serving(folder: Path, *args: str, store: Path | None = None,
            env: dict[str, str] | None = None) -> Iterator[Served]:
    """``qjm serve --port 0`` on ``store`` (default: a new one in ``folder``), stopped with
    Ctrl+C at the end (unless the test ended it), and then no app process of it may be left."""
    store = store or folder / "store.sqlite"
    log = folder / f"serve-{time.monotonic_ns()}.err"
    with open(log, "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "qjm_tui.cli", "serve", "--port", "0",
                                    "--store", str(store), *args],
                                   stdout=subprocess.PIPE, stderr=err, text=True,
                                   env=env or dict(os.environ))
    stopped_here = True
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        url = process.stdout.readline().strip() if ready else ""
        assert url.startswith("http://"), f"no URL printed; stderr: {log.read_text()}"
        yield Served(process, url, store, log)
    finally:
        stopped_here = process.poll() is None
        if stopped_here:
            process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        wait_until(lambda: not app_processes(str(store)), 10, "the app processes to end")
    if stopped_here:  # (a test that ended the server itself checks how it ended)
        assert code == 0, log.read_text()
