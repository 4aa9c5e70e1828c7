"""Special files where qjm expects plain ones: devices, FIFOs, symlinks, files too large to read.

Every file qjm writes (an export, the histogram SVG, a benchmark report, the log) goes through
one write (``qjm_tui.core.files``): devices and FIFOs are written through, symlinks followed,
only regular files are replaced, and a failed write is an error. Circuit files are read only
when they are regular files within the size limit, so ``/dev/zero`` and a FIFO are refused at
once, on the command line and in the app's new-set form.

The devices these tests write to are nodes made here (``mknod``), never the machine's own
``/dev/full``: a write that replaced its target would replace only the test's node. Each test
that uses them also checks that ``/dev/full`` and ``/dev/null`` are still character devices.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qiskit import qasm2
from textual.widgets import Input, Static

from qjm_tui.cli import main
from qjm_tui.core.files import LogFileHandler, read_bounded, write_file
from qjm_tui.tui.app import make_app
from qjm_tui.tui.dialogs import TextPrompt
from qjm_tui.tui.forms import NewJobSetForm
from tests.test_tui_actions import THREADS, bell, done_set, until, wait_selected

REPO = Path(__file__).resolve().parents[1]


def device(folder: Path, name: str, major: int, minor: int) -> Path:
    """A character device node of our own (``1,7`` is full, ``1,3`` null, ``1,5`` zero)."""
    path = folder / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        fd = os.open(path, os.O_RDONLY)
        os.close(fd)
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here ({exc.strerror}); needs root on a file system "
                    "without nodev")
    return path


@pytest.fixture(autouse=True)
def machine_devices_untouched() -> Iterator[None]:
    yield
    for name in ("/dev/full", "/dev/null", "/dev/zero"):
        assert stat.S_ISCHR(os.stat(name).st_mode), f"{name} is no longer a character device"


class FifoReader(threading.Thread):
    """Reads a FIFO to its end in the background."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.data = b""

    def run(self) -> None:
        with open(self.path, "rb") as fifo:
            self.data = fifo.read()


def fifo(folder: Path, name: str = "pipe") -> Path:
    path = folder / name
    os.mkfifo(path)
    return path


# -- the one write ---------------------------------------------------------------------------


def test_write_file_treats_each_kind_of_target_for_what_it_is(tmp_path: Path) -> None:
    full = device(tmp_path, "full", 1, 7)
    null = device(tmp_path, "null", 1, 3)
    with pytest.raises(OSError) as info:
        write_file(full, "x" * 10_000)
    assert info.value.errno == 28 and info.value.filename == str(full)
    write_file(null, "gone")
    assert stat.S_ISCHR(full.stat().st_mode) and stat.S_ISCHR(null.stat().st_mode)

    pipe = fifo(tmp_path)
    reader = FifoReader(pipe)
    reader.start()
    write_file(pipe, "through the pipe")
    reader.join(10)
    assert reader.data == b"through the pipe" and stat.S_ISFIFO(pipe.stat().st_mode)

    target = tmp_path / "real.txt"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_file(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640, "a replaced file keeps its permissions"

    write_file(tmp_path / "private.txt", "secret", private=True)
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    with pytest.raises(IsADirectoryError):
        write_file(tmp_path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["full", "link.txt", "null", "pipe", "private.txt", "real.txt"], "no temporary file is left"


def test_read_bounded_refuses_devices_and_fifos_and_stops_at_the_limit(tmp_path: Path) -> None:
    zero = device(tmp_path, "zero", 1, 5)
    with pytest.raises(OSError, match="character device"):
        read_bounded(zero, 1000)
    pipe = fifo(tmp_path)
    started = time.monotonic()
    with pytest.raises(OSError, match="FIFO"):
        read_bounded(pipe, 1000)  # no writer: refused at once, not waited on
    assert time.monotonic() - started < 5
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2001)
    with pytest.raises(ValueError, match="larger than 2000"):
        read_bounded(big, 2000)
    with pytest.raises(ValueError):
        read_bounded(zero, 1000, regular_only=False)  # a device may be read, never past the limit


# -- qjm export ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("home")
    return home, done_set(home / "qjm.sqlite")


def test_export_writes_through_devices_and_fifos_and_follows_symlinks(
        finished_home: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, set_id = finished_home
    monkeypatch.setenv("QJM_HOME", str(home))

    full = device(tmp_path, "full", 1, 7)
    assert main(["export", set_id, "-o", str(full)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk is full" in err and str(full) in err, err
    assert stat.S_ISCHR(full.stat().st_mode)

    null = device(tmp_path, "null", 1, 3)
    assert main(["export", set_id, "-o", str(null)]) == 0
    assert stat.S_ISCHR(null.stat().st_mode)

    pipe = fifo(tmp_path)
    reader = FifoReader(pipe)
    reader.start()
    assert main(["export", set_id, "-o", str(pipe)]) == 0
    reader.join(10)
    assert json.loads(reader.data)["id"] == set_id and stat.S_ISFIFO(pipe.stat().st_mode)

    target = tmp_path / "results.json"
    target.write_text("stale")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    assert main(["export", set_id, "-o", str(link)]) == 0
    assert link.is_symlink() and json.loads(target.read_text())["id"] == set_id

    assert main(["export", set_id, "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == set_id


def test_export_to_a_symlink_to_standard_output(finished_home: tuple[Path, str], tmp_path: Path) -> None:
    home, set_id = finished_home
    link = tmp_path / "out"
    link.symlink_to("/proc/self/fd/1")
    env = dict(os.environ, QJM_HOME=str(home), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "qjm_tui.cli", "export", set_id, "-o", str(link)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == set_id, "the export went to the process's stdout"
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


# -- the log ---------------------------------------------------------------------------------


def test_the_log_follows_a_symlink_writes_through_a_fifo_and_says_once_when_full(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    def log_to(path: Path, *lines: str) -> None:
        handler = LogFileHandler(path)
        record_logger = logging.getLogger(f"qjm_tui.test.{path.name}")
        record_logger.propagate = False
        record_logger.addHandler(handler)
        try:
            for line in lines:
                record_logger.warning(line)
        finally:
            record_logger.removeHandler(handler)
            handler.close()

    fresh = tmp_path / "new-home" / "qjm.log"
    log_to(fresh, "first")
    assert fresh.read_text() == "first\n"
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700

    target = tmp_path / "elsewhere.log"
    target.write_text("before\n")
    link = tmp_path / "qjm.log"
    link.symlink_to(target)
    log_to(link, "appended")
    assert link.is_symlink() and target.read_text() == "before\nappended\n"

    pipe = fifo(tmp_path, "log-pipe")
    reader = FifoReader(pipe)
    reader.start()
    time.sleep(0.2)  # the reader opens its end first
    log_to(pipe, "through")
    reader.join(10)
    assert reader.data == b"through\n"

    full = device(tmp_path, "full", 1, 7)
    capsys.readouterr()
    log_to(full, "one", "two", "three")
    err = capsys.readouterr().err
    assert err.count("cannot write the log file") == 1 and "disk is full" in err, err
    assert stat.S_ISCHR(full.stat().st_mode)


# -- the app's histogram SVG -----------------------------------------------------------------


def test_the_histogram_svg_goes_through_a_symlink_and_into_a_fifo(tmp_path: Path) -> None:
    asyncio.run(_svg_targets(tmp_path))


async def _svg_targets(tmp_path: Path) -> None:
    store = tmp_path / "qjm.sqlite"
    done_set(store)
    target = tmp_path / "picture.svg"
    target.write_text("stale")
    link = tmp_path / "latest.svg"
    link.symlink_to(target)
    pipe = fifo(tmp_path)
    reader = FifoReader(pipe)
    reader.start()
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_selected(app, pilot)
        await until(pilot, lambda: app.histogram_counts() is not None)
        for where in (link, pipe):
            await pilot.press("H")
            await until(pilot, lambda: isinstance(app.screen, TextPrompt))
            app.screen.query_one(Input).value = str(where)
            await pilot.press("enter")
            said = f"saved the histogram to {where}"
            await until(pilot, lambda said=said: any(said in n.message for n in app._notifications))
    reader.join(10)
    assert link.is_symlink() and target.read_text().startswith("<svg")
    assert reader.data.startswith(b"<svg") and stat.S_ISFIFO(pipe.stat().st_mode)


# -- circuit files in the app's new-set form -------------------------------------------------

#: released when the test ends, so the slow backend's thread ends too
RELEASE = threading.Event()


def slow_backend() -> object:
    """A backend factory that takes long to answer (a slow sign-in): the form's check waits."""
    RELEASE.wait(30)
    from qiskit_aer import AerSimulator

    return AerSimulator()


def test_the_form_refuses_a_fifo_at_once_and_a_slow_check_can_be_left_and_q_quits(tmp_path: Path) -> None:
    timing: dict[str, float] = {}
    RELEASE.clear()
    try:
        asyncio.run(_form_special_files(tmp_path, timing))
        quit_took = time.monotonic() - timing["q"]
    finally:
        RELEASE.set()
    # Before: the app waited for the check's thread at exit (here 30 s; with a FIFO, for ever).
    assert quit_took < 10, f"q took {quit_took:.1f} s to end the app"


async def _form_special_files(tmp_path: Path, timing: dict[str, float]) -> None:
    store = tmp_path / "qjm.sqlite"
    pipe = fifo(tmp_path, "circuits.qasm")
    zero = device(tmp_path, "zero.qasm", 1, 5)
    good = tmp_path / "good.qasm"
    good.write_text(qasm2.dumps(bell("good")))
    app = make_app(store, config=THREADS, watch_interval=0.1)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewJobSetForm))
        form = app.screen
        for path, kind in ((pipe, "a FIFO"), (zero, "a character device")):
            form.query_one("#files", Input).value = str(path)
            await pilot.press("enter")
            await until(pilot, lambda: form.query_one("#files-error", Static).display, timeout=10)
            message = str(form.query_one("#files-error", Static).render())
            assert f"is {kind}, not a regular file" in message, message
        form.query_one("#files", Input).value = str(good)
        form.query_one("#backend-spec", Input).value = "tests.test_special_files:slow_backend"
        await pilot.press("enter")
        await until(pilot, lambda: "checking" in str(form.query_one("#status", Static).render()))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, NewJobSetForm))
        timing["q"] = time.monotonic()
        await pilot.press("q")
    assert not store.exists() or not app.manager.store.list_job_sets(), "nothing was started"
