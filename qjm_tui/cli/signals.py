"""SIGTERM and SIGHUP stop a command the way Ctrl-C does, and leave its job sets resumable.

A terminal that closes (an SSH connection dropping) sends SIGHUP; a system shutting down, a
scheduler or ``kill`` send SIGTERM. By default either ended qjm at once and said nothing. While
a command runs, both are turned into :class:`Stopped` in the main thread; the command then
gives up the job sets it runs (they read ``interrupted``, and ``qjm resume ID`` finishes them:
jobs a remote service holds go on there and are picked up again), says so on stderr and in
the log, and exits with 128 + the signal's number, as a shell reports a signal.

A signal the process was told to ignore (``nohup`` ignores SIGHUP) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: the signals that stop a command as Ctrl-C does
STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(BaseException):
    """The command was asked to stop by a signal (SIGTERM or SIGHUP).

    A BaseException, as KeyboardInterrupt is, so no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (143 for SIGTERM, 129 for SIGHUP)."""
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Stopped` in the main thread (once: a
    second signal does not cut the wind-down short). Elsewhere than the main thread, nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, object] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signum)

    for sig in STOPPING:
        if signal.getsignal(sig) == signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
