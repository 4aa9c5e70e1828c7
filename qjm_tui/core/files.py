"""The files qjm writes and reads outside the store: one safe write, private places, bounded reads.

Every file qjm writes for a user (an export, the histogram SVG, a benchmark report) goes through
:func:`write_file`, which treats the target for what it is:

* ``-`` is standard output;
* a character device (``/dev/null``, ``/dev/full``, a terminal) or a FIFO is written through, as
  a shell's ``>`` would, and never replaced by a plain file;
* a symlink is followed, so the file it points to gets the new content and the link stays;
* a regular file (or a name not taken yet) is written to a temporary file next to it and
  renamed into place, so a reader never sees half a file; the rename never lands on anything
  that is not a regular file;
* a folder, a block device or a socket is refused.

What is written may be text, bytes, or a function that writes text to the open file (an export
of a million experiments, streamed instead of held); the function's answer is returned.

A write that fails (``ENOSPC`` from a full disk or ``/dev/full``) raises :class:`OSError` with
the path, and leaves no temporary file behind. :func:`describe_os_error` turns such an error
into the words a user reads.

The log is appended to through :func:`open_append` (the same rules; created ``0600``), the
store's folder and files are made private by :func:`private_folder` and
:func:`create_private_file`, and :func:`read_bounded` reads a file the user names without letting
a device or a FIFO take all memory or hang.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import stat
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

#: what :func:`write_file` writes: text, bytes, or a function that writes text to the open file
Content = str | bytes | Callable[[TextIO], Any]

#: ``-`` as a target: standard output
STDOUT = "-"


def kind_of(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words (``a FIFO``, ``a character device``...)."""
    for test, words in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                        (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return words
    return "a special file"


def write_file(target: str | os.PathLike[str], data: Content, *, private: bool = False) -> Any:
    """Write ``data`` (text is written as UTF-8) to ``target`` by the rules of this module.

    ``data`` may be a function given the open file (text, UTF-8) to write into; what it
    returns is returned (None otherwise). A regular file is replaced only once it has returned;
    if it raises, the temporary file is removed and the target left as it was.

    ``private`` makes a new file ``0600`` (else the usual ``0666`` less the umask); a regular
    file that is replaced keeps its permissions. Raises :class:`OSError` naming the path.
    """
    payload: bytes | Callable[[TextIO], Any] = data if callable(data) else (
        data.encode("utf-8") if isinstance(data, str) else bytes(data))
    if str(target) == STDOUT:
        return _write_stdout(payload)
    path = Path(target)
    try:
        info: os.stat_result | None = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        info = None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory; give a file name", str(path))
        if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
            return _write_through(path, payload)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"is {kind_of(info.st_mode)}; qjm writes to regular files, "
                          "character devices, FIFOs and - (standard output)", str(path))
    # A symlink (or a chain of them) is followed: its target gets the content, the link stays.
    real = Path(os.path.realpath(path))
    return _replace(real, payload, info.st_mode & 0o7777 if info is not None else None, private)


def _write_stdout(payload: bytes | Callable[[TextIO], Any]) -> Any:
    sys.stdout.flush()
    if callable(payload):
        answer = payload(sys.stdout)
        sys.stdout.flush()
        return answer
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (a test's capture)
        sys.stdout.write(payload.decode("utf-8", errors="replace"))
    else:
        buffer.write(payload)
    sys.stdout.flush()


def _write_all(fd: int, payload: bytes | Callable[[TextIO], Any]) -> Any:
    """Write ``payload`` to ``fd``, or let it write itself there through a text file (the
    descriptor stays open); returns what the function returned."""
    if callable(payload):
        fh = os.fdopen(fd, "w", encoding="utf-8", closefd=False)
        try:
            answer = payload(fh)
            fh.flush()
        finally:
            with contextlib.suppress(OSError, ValueError):
                fh.close()  # after a failure its buffer is dropped with the file
        return answer
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    return None


def _write_through(path: Path, payload: bytes | Callable[[TextIO], Any]) -> Any:
    """Write into a device or a FIFO as it is (a FIFO waits for its reader, as ``>`` does)."""
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        return _write_all(fd, payload)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


def _replace(real: Path, payload: bytes | Callable[[TextIO], Any], keep_mode: int | None,
             private: bool) -> Any:
    """Write a temporary file next to ``real``, flush it to disk and rename it over ``real``."""
    tmp = real.with_name(f".{real.name}.{uuid.uuid4().hex[:12]}.tmp")
    mode = 0o600 if private else 0o666
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        try:
            if keep_mode is not None:
                os.fchmod(fd, keep_mode)
            answer = _write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        # Between the check in write_file and here something else may have taken the name.
        try:
            now = os.lstat(real)
        except FileNotFoundError:
            now = None
        if now is not None and not stat.S_ISREG(now.st_mode):
            raise OSError(errno.EEXIST, f"became {kind_of(now.st_mode)} while it was written; "
                          "nothing was replaced", str(real))
        os.replace(tmp, real)
    except BaseException as exc:  # a failed write, or a writer function that raised
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):
            raise OSError(exc.errno, exc.strerror, str(real)) from None
        raise
    return answer


def describe_os_error(exc: OSError) -> str:
    """What went wrong writing or reading a file, in words, with the fix where there is one."""
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "the disk is full (no space left on device); free some space and try again"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied; choose a place you may write"
    if code == errno.EROFS:
        return "the file system is read-only; choose another place"
    if code == errno.ENOENT:
        return "no such file or folder; check the path (its folder must exist)"
    return exc.strerror or str(exc)


def open_append(path: Path) -> int:
    """Open a log file for appending: created ``0600`` (with a private folder) if missing,
    followed through a symlink, written through a device; a FIFO is opened without waiting
    (with no reader it fails with ``ENXIO`` instead of hanging); a folder, block device or
    socket is refused. Returns the descriptor."""
    try:
        info: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        info = None
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    if info is None:
        private_folder(path.parent)
        return os.open(path, flags | os.O_CREAT, 0o600)
    if stat.S_ISFIFO(info.st_mode):
        fd = os.open(path, flags | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        return fd
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISCHR(info.st_mode)):
        raise OSError(errno.EINVAL, f"is {kind_of(info.st_mode)}, not a file qjm can append its log to",
                      str(path))
    return os.open(path, flags)


def private_folder(folder: Path) -> None:
    """Make ``folder`` (and missing parents) if it does not exist; the folders made here are
    ``0700``: they hold users' unpublished circuits and results. An existing folder is left
    as it is."""
    if folder.is_dir():
        return
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for made in reversed(missing):
        try:
            made.mkdir(mode=0o700)
        except FileExistsError:
            continue


def create_private_file(path: Path) -> bool:
    """Create an empty ``0600`` file at ``path`` unless something is there; True if made."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def readable_by_others(path: Path) -> str | None:
    """``"other users"`` or ``"its group"`` if someone besides the owner can read ``path``
    (its mode allows it and every folder above it can be passed through), else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    for read_bit, pass_bit, who in ((stat.S_IROTH, stat.S_IXOTH, "other users"),
                                    (stat.S_IRGRP, stat.S_IXGRP, "its group")):
        if not mode & read_bit:
            continue
        folder = path.absolute().parent
        reachable = True
        while True:
            try:
                if not folder.stat().st_mode & pass_bit:
                    reachable = False
                    break
            except OSError:
                reachable = False
                break
            if folder == folder.parent:
                break
            folder = folder.parent
        if reachable:
            return who
    return None


class TooLarge(ValueError):
    """A file is larger than the most qjm reads from it."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(f"{path}: larger than {limit} bytes")
        self.path = path
        self.limit = limit


def read_bounded(path: Path, limit: int, *, regular_only: bool = True) -> bytes:
    """Read at most ``limit`` bytes of ``path``; :class:`TooLarge` if it holds more.

    The file is opened without waiting (a FIFO with no writer cannot hang the caller) and
    checked before anything is read: with ``regular_only`` anything but a regular file is an
    :class:`OSError` saying what it is (``/dev/zero`` would fill memory, a FIFO could wait for
    ever); otherwise devices and pipes are read too, up to the limit.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(info.st_mode):
            if regular_only:
                raise OSError(errno.EINVAL, f"is {kind_of(info.st_mode)}, not a regular file", str(path))
        elif info.st_size > limit:
            raise TooLarge(path, limit)
        os.set_blocking(fd, True)
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise TooLarge(path, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


class LogFileHandler(logging.FileHandler):
    """Appends log records to qjm's log file, made (``0600``, in a private folder) only when a
    record comes, through :func:`open_append`: a symlink is followed, a device or a FIFO with
    a reader is written through.

    A command that logs nothing leaves nothing on disk. A log file that cannot be written (a
    full disk, a FIFO nobody reads) drops its records and says so once on stderr, instead of
    printing a logging traceback over the command's output.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self._failed = False

    def _open(self) -> io.TextIOWrapper:
        fd = open_append(Path(self.baseFilename))
        # Line-buffered: a record is written (or fails) while it is handled, not at exit.
        return os.fdopen(fd, "a", buffering=1, encoding="utf-8", errors=self.errors)

    def close(self) -> None:
        """Close the file; what could not be written is dropped (said already)."""
        try:
            super().close()
        except OSError:
            self.stream = None

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Drop the record; the first time, say on stderr that the log cannot be written."""
        if self._failed:
            return
        self._failed = True
        exc = sys.exc_info()[1]
        why = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        with contextlib.suppress(Exception):
            sys.stderr.write(f"qjm: warning: cannot write the log file {self.baseFilename}: {why}; "
                             "its lines are dropped\n")
            sys.stderr.flush()
