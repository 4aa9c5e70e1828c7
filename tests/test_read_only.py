"""Read-only places: commands that only look work on a store nobody may write and create nothing
on disk; commands that write say which file or folder is not writable and what to do.

Each command runs as a real ``python -m qjm_tui.cli`` process. A file or folder counts as
read-only when it has no write permission at all, even for root (who could write it anyway), so
these tests mean the same whoever runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from qjm_tui import JobManager
from qjm_tui.config import Config
from tests.conftest import basis_state

LOOKING = (["ls"], ["show", "$id"], ["results", "$id"], ["report"], ["export", "$id", "-o", "$out"],
           ["wait", "$id"], ["tag", "$id"], ["show", "$id", "--json"])


def tree(path: Path) -> dict[str, str]:
    """Every file and folder under ``path``, with a hash of each file's bytes."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


def qjm(home: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QJM_HOME=str(home), QJM_EXECUTOR="threads",
               QJM_CONFIG=str(cwd / "no-config.toml"))
    return subprocess.run([sys.executable, "-m", "qjm_tui.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@contextmanager
def without_write(path: Path) -> Iterator[None]:
    """``path`` with every write permission taken away, restored afterwards."""
    mode = path.stat().st_mode
    path.chmod(mode & ~0o222)
    try:
        yield
    finally:
        path.chmod(mode)


@pytest.fixture
def home_with_a_set(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    with JobManager(home / "qjm.sqlite", config=Config(executor="threads")) as jm:
        job_set = jm.run([basis_state("10")], backend="aer", shots=32, name="kept")
        job_set.results(timeout=60)
    return home, job_set.job_set_id()


def _argv(argv: list[str], job_set_id: str, out: Path) -> list[str]:
    return [job_set_id if a == "$id" else str(out) if a == "$out" else a for a in argv]


@pytest.mark.parametrize("locked", ["store file", "home folder"])
def test_looking_commands_work_on_a_read_only_store_and_change_nothing(
        locked: str, home_with_a_set: tuple[Path, str], tmp_path: Path) -> None:
    home, job_set_id = home_with_a_set
    before = tree(home)
    target = home / "qjm.sqlite" if locked == "store file" else home
    with without_write(target):
        for argv in LOOKING:
            proc = qjm(home, *_argv(argv, job_set_id, tmp_path / "out.json"), cwd=tmp_path)
            assert proc.returncode == 0, (argv, proc.stderr)
            assert "error" not in proc.stderr, (argv, proc.stderr)
    assert tree(home) == before
    assert json.loads((tmp_path / "out.json").read_text())["experiments"][0]["counts"] == {"10": 32}


@pytest.mark.parametrize(("locked", "named", "argv"), [
    ("store file", "qjm.sqlite: the store file is read-only", ["rename", "$id", "new"]),
    ("store file", "qjm.sqlite: the store file is read-only", ["run", "$qasm"]),
    ("home folder", "home: the store's folder is not writable", ["rename", "$id", "new"]),
    ("home folder", "home: the store's folder is not writable", ["run", "$qasm"]),
])
def test_writing_commands_name_the_place_and_what_to_do(
        locked: str, named: str, argv: list[str], home_with_a_set: tuple[Path, str],
        tmp_path: Path) -> None:
    home, job_set_id = home_with_a_set
    qasm = tmp_path / "one.qasm"
    qasm.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nmeasure q -> c;\n')
    before = tree(home)
    target = home / "qjm.sqlite" if locked == "store file" else home
    with without_write(target):
        proc = qjm(home, *[str(qasm) if a == "$qasm" else a for a in _argv(argv, job_set_id, tmp_path)],
                   cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "chmod u+w" in proc.stderr and "QJM_HOME" in proc.stderr
    assert "internal error" not in proc.stderr and "cannot be read as a qjm store" not in proc.stderr
    assert tree(home) == before


def test_a_home_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    qasm = tmp_path / "one.qasm"
    qasm.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nmeasure q -> c;\n')
    with without_write(parent):
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: mkdir ignores the folder's permissions")
        proc = qjm(parent / "home", "run", str(qasm), cwd=tmp_path)
    assert proc.returncode == 2 and "cannot create the store's folder" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr


@pytest.mark.parametrize("argv", [["backends"], ["ls"], ["show", "20260101-000000-abcdef12"], ["report"],
                                  ["config"], ["ls", "--json"]])
def test_looking_commands_create_nothing_where_there_is_no_store(argv: list[str], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    before = tree(tmp_path)
    proc = qjm(tmp_path / "home", *argv, cwd=work)
    assert proc.returncode in (0, 2), proc.stderr
    assert "internal error" not in proc.stderr
    assert tree(tmp_path) == before


def test_looking_commands_leave_a_writable_store_as_it_was(home_with_a_set: tuple[Path, str],
                                                          tmp_path: Path) -> None:
    home, job_set_id = home_with_a_set
    before = tree(home)
    for argv in LOOKING:
        proc = qjm(home, *_argv(argv, job_set_id, tmp_path / "out.json"), cwd=tmp_path)
        assert proc.returncode == 0, (argv, proc.stderr)
    assert tree(home) == before
