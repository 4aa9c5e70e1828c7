"""Text stored before names were checked, or sent by a service, never reaches the terminal raw.

A store written by an older qjm can hold a name, tags, circuit names and job errors with escape
sequences, bells and carriage returns; they are written into the file directly with sqlite3, as
such a store would have them. Every command that shows them must show them escaped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qjm_tui import JobManager
from qjm_tui.config import Config
from tests.conftest import basis_state

HOSTILE = "evil\x1b]0;PWNED\x07\x1b[2J\rover\nline\x9b31m\u202eright[bold red]markup[/]"
RAW = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


@pytest.fixture
def old_store(tmp_path: Path) -> tuple[Path, str]:
    """A home whose store holds a finished set with hostile text in every shown field."""
    home = tmp_path / "home"
    with JobManager(home / "qjm.sqlite", config=Config(executor="threads")) as jm:
        job_set = jm.run([basis_state("1"), basis_state("0")], backend="aer", shots=16,
                         max_experiments_per_job=1)
        job_set.results(timeout=60)
    job_set_id = job_set.job_set_id()
    conn = sqlite3.connect(home / "qjm.sqlite")
    with conn:
        conn.execute("UPDATE job_sets SET name=?, tags=?, state='partial' WHERE id=?",
                     (HOSTILE, json.dumps([HOSTILE, "plain"]), job_set_id))
        conn.execute("UPDATE experiment_names SET names=? WHERE job_set_id=?",
                     (json.dumps([HOSTILE, "ok"]), job_set_id))
        conn.execute("UPDATE jobs SET status='failed', last_error=?, backend_job_id=? "
                     "WHERE job_set_id=? AND idx=1", (HOSTILE, HOSTILE, job_set_id))
        conn.execute("DELETE FROM results WHERE job_set_id=? AND experiment=1", (job_set_id,))
    conn.close()
    return home, job_set_id


@pytest.mark.parametrize("argv", [
    ["ls"], ["ls", "--json"], ["show", "$id"], ["show", "$id", "--json"], ["tag", "$id"], ["report"],
    ["report", "--detailed"], ["results", "$id"], ["results", "$id", "--csv"], ["results", "$id", "--json"],
    ["results", "$id", "--experiment", "0"], ["results", "$id", "--experiment", "1"],
    ["export", "$id", "-o", "-"], ["wait", "$id"],
])
def test_stored_control_characters_are_shown_escaped(argv: list[str], old_store: tuple[Path, str],
                                                     tmp_path: Path) -> None:
    home, job_set_id = old_store
    env = dict(os.environ, QJM_HOME=str(home), QJM_EXECUTOR="threads",
               QJM_CONFIG=str(tmp_path / "no-config.toml"))
    args = [job_set_id if a == "$id" else a for a in argv]
    proc = subprocess.run([sys.executable, "-m", "qjm_tui.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert not any(ch in stream for ch in RAW), f"raw control characters in {stream!r}"
    shown = proc.stdout + proc.stderr
    assert "PWNED" in shown or "plain" in shown or "ok" in shown, shown


def test_printable_escapes_what_acts_and_keeps_what_reads() -> None:
    from qjm_tui.core.text import printable
    from qjm_tui.views import printable as views_printable

    assert printable("a\x1b[2Jb\x07\r") == "a\\x1b[2Jb\\x07\\r"
    assert printable("two\nlines\tok") == "two\\nlines\\tok"
    assert printable("two\nlines\tok", keep_newlines=True) == "two\nlines\tok"
    assert printable("\u202eabc") == "\\u202eabc"
    assert printable("é ü 日本 [red]") == "é ü 日本 [red]"
    assert views_printable is printable
