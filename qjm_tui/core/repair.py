"""Checking a store and recovering what can be read from a damaged one (``qjm doctor``).

The damaged file is never written: it is copied (with its write-ahead log) into a private
folder beside it, and the copy is checked with SQLite's ``PRAGMA integrity_check``. When the
check finds damage, every row that can still be read is copied, table by table, into a new
store; a stretch of rows that cannot be read is stepped over, and what it cost is counted.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qjm_tui.core.errors import StoreError
from qjm_tui.core.lifecycle import final_state
from qjm_tui.core.status import JobStatus, SetState

#: the store's tables in the order rows are copied (a job set before its jobs)
TABLES = ("job_sets", "experiment_names", "jobs", "circuit_blocks", "results", "deleted_sets",
          "learned_limits", "job_history")
_BATCH = 256
_LOWEST = -(2 ** 63)
_HIGHEST = 2 ** 63 - 1


@dataclass
class Recovery:
    """What a recovery copied, table by table, and what it could not."""

    output: Path
    copied: dict[str, int] = field(default_factory=dict)
    #: stretches of unreadable rows stepped over, by table
    gaps: dict[str, int] = field(default_factory=dict)
    #: tables whose rows could not be read at all
    unreadable: list[str] = field(default_factory=list)
    #: job sets some of whose jobs were lost, and rows dropped because their job set was lost
    incomplete_sets: list[str] = field(default_factory=list)
    orphans: int = 0
    #: done jobs whose results were lost, now failed (``qjm retry`` runs them again)
    results_lost: int = 0


@dataclass
class Checkup:
    """The outcome of checking a store: ``problems`` is empty when it is sound."""

    path: Path
    problems: list[str]
    job_sets: int | None = None
    recovery: Recovery | None = None


@contextlib.contextmanager
def snapshot(path: Path) -> Iterator[Path]:
    """A copy of the store (and its write-ahead log) in a private folder beside it, removed
    afterwards: whatever is done to the copy, the file itself is only read."""
    work = Path(tempfile.mkdtemp(prefix=".qjm-doctor-", dir=path.parent))
    try:
        copy = work / path.name
        shutil.copyfile(path, copy)
        wal = Path(f"{path}-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(f"{copy}-wal"))
        yield copy
    finally:
        shutil.rmtree(work, ignore_errors=True)


def integrity_problems(conn: sqlite3.Connection, limit: int = 20) -> list[str]:
    """What ``PRAGMA integrity_check`` finds (up to ``limit`` lines); empty when it says ok."""
    try:
        found = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    if found == ["ok"]:
        return []
    return [line for text in found for line in text.splitlines()
            if line.strip() and not line.startswith("*** in database")]


def check_store(path: Path, recover_to: Path | None = None) -> Checkup:
    """Check the store at ``path``; if it is damaged and ``recover_to`` is given, copy what can
    be read into a new store there. The file at ``path`` is left exactly as it was."""
    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise StoreError(f"{path}: not an SQLite file, so not a qjm store; nothing to check")
    with snapshot(path) as copy:
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            problems = integrity_problems(conn)
            sets = None
            with contextlib.suppress(sqlite3.DatabaseError):
                sets = conn.execute("SELECT COUNT(*) FROM job_sets").fetchone()[0]
            checkup = Checkup(path, problems, sets)
            if problems and recover_to is not None:
                checkup.recovery = recover(conn, recover_to)
            return checkup
        finally:
            conn.close()


def default_recovery_path(path: Path) -> Path:
    """Where a recovered store goes unless told: beside the damaged one, named by the time."""
    return path.with_name(f"{path.stem}-recovered-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")


def readable_rows(conn: sqlite3.Connection, table: str, columns: list[str]
                  ) -> Iterator[tuple[Any, ...] | None]:
    """Every row of ``table`` that can be read, in rowid order; a ``None`` marks a stretch of
    rows that could not be read and was stepped over."""
    select = f"SELECT rowid, {', '.join(columns)} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    after = _LOWEST
    while True:
        batch = _try(conn, select, (after, _BATCH)) or _try(conn, select, (after, 1))
        if batch is None:
            past = _step_over(conn, table, after)
            if past is None:
                return
            after = past
            yield None
            continue
        if not batch:
            return
        for row in batch:
            yield row[1:]
        after = batch[-1][0]


#: tables without rowids, by their primary key: read in key order instead of rowid order
KEYED = {"job_history": ("job_set_id", "idx", "seq")}


def keyed_rows(conn: sqlite3.Connection, table: str, columns: list[str], key: tuple[str, ...]
               ) -> Iterator[tuple[Any, ...] | None]:
    """Every row of a table without rowids that can be read, in key order; a ``None`` marks
    the damaged stretch where reading stopped (such a table holds nothing the store needs to
    run: what is read before it is kept)."""
    keys = ", ".join(key)
    fields = f"SELECT {keys}, {', '.join(columns)} FROM {table}"
    after: tuple[Any, ...] | None = None
    while True:
        if after is None:
            batch = _try(conn, f"{fields} ORDER BY {keys} LIMIT ?", (_BATCH,))
        else:
            batch = _try(conn, f"{fields} WHERE ({keys}) > ({', '.join('?' * len(key))}) ORDER BY {keys}"
                         " LIMIT ?", (*after, _BATCH))
        if batch is None:
            yield None
            return
        if not batch:
            return
        for row in batch:
            yield row[len(key):]
        after = batch[-1][:len(key)]


def _try(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]] | None:
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.DatabaseError:
        return None


def _step_over(conn: sqlite3.Connection, table: str, after: int) -> int | None:
    """The rowid to read on from, past an unreadable stretch after ``after``; None when
    nothing readable follows. Probes ever further ahead until a read works."""
    step = 1
    while after + step < _HIGHEST:
        found = _try(conn, f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1",
                     (after + step,))
        if found is not None:
            return found[0][0] - 1 if found else None
        step *= 2
    return None


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    try:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()]
    except sqlite3.DatabaseError:
        return []


def recover(source: sqlite3.Connection, output: Path) -> Recovery:
    """Copy every readable row of ``source`` into a new store at ``output`` (refused if
    something is there already); rows whose job set was lost are dropped."""
    from qjm_tui.core.store import Store

    if output.exists():
        raise StoreError(f"{output}: already exists; give doctor another --output")
    Store(output).close()  # a new, empty store of this qjm's schema (0600, private folder)
    report = Recovery(output)
    target = sqlite3.connect(output, isolation_level=None)
    try:
        target.execute("BEGIN IMMEDIATE")
        highest_seq = 0
        for table in TABLES:
            wanted = _columns(target, table)
            have = set(_columns(source, table))
            columns = [c for c in wanted if c in have] if have else []
            if not wanted or not have:
                if have or table in ("job_sets", "jobs", "results"):
                    report.unreadable.append(table)
                continue
            insert = (f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
                      f"VALUES ({', '.join('?' * len(columns))})")
            copied = gaps = 0
            seq_at = columns.index("seq") if "seq" in columns else None
            rows = (keyed_rows(source, table, columns, KEYED[table]) if table in KEYED
                    else readable_rows(source, table, columns))
            for row in rows:
                if row is None:
                    gaps += 1
                    continue
                try:
                    target.execute(insert, row)
                except sqlite3.Error:
                    gaps += 1
                    continue
                copied += 1
                if seq_at is not None and isinstance(row[seq_at], int):
                    highest_seq = max(highest_seq, row[seq_at])
            report.copied[table] = copied
            if gaps:
                report.gaps[table] = gaps
        for table in ("experiment_names", "jobs", "circuit_blocks", "results", "job_history"):
            report.orphans += target.execute(
                f"DELETE FROM {table} WHERE job_set_id NOT IN (SELECT id FROM job_sets)").rowcount
        report.results_lost = _fail_jobs_without_results(target)
        _names_in_chunks(target)
        target.execute("UPDATE changes SET seq = ?", (highest_seq + 1,))
        # A set whose first-round jobs no longer cover all its experiments lost some jobs.
        report.incomplete_sets = [r[0] for r in target.execute(
            "SELECT s.id FROM job_sets s WHERE s.n_experiments != (SELECT COALESCE(SUM(j.stop - j.start), 0)"
            " FROM jobs j WHERE j.job_set_id = s.id AND j.round = 0)").fetchall()]
        target.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            target.execute("ROLLBACK")
        raise
    finally:
        target.close()
    return report


def _names_in_chunks(target: sqlite3.Connection) -> None:
    """Give every recovered set its experiment names in chunks: names copied from an older
    store's single list are moved into chunks, and a stretch whose chunk was lost is named ""
    (its experiments keep their indices, so results and retries still find them)."""
    import json

    from qjm_tui.core.store import NAME_CHUNK

    sets = target.execute("SELECT id, n_experiments, experiment_names FROM job_sets").fetchall()
    for set_id, n, legacy in sets:
        chunks = target.execute("SELECT start, stop FROM experiment_names WHERE job_set_id = ?"
                                " ORDER BY start", (set_id,)).fetchall()
        if not chunks and legacy not in (None, "", "[]"):
            with contextlib.suppress(ValueError, TypeError):
                names = [str(name) for name in json.loads(legacy)][:n]
                target.executemany(
                    "INSERT INTO experiment_names (job_set_id, start, stop, names) VALUES (?,?,?,?)",
                    [(set_id, a, min(a + NAME_CHUNK, n), json.dumps(names[a:a + NAME_CHUNK]))
                     for a in range(0, n, NAME_CHUNK)])
                chunks = [(a, min(a + NAME_CHUNK, n)) for a in range(0, n, NAME_CHUNK)]
        missing: list[tuple[int, int]] = []
        covered = 0
        for start, stop in [*chunks, (n, n)]:
            missing.extend((a, min(a + NAME_CHUNK, start)) for a in range(covered, start, NAME_CHUNK))
            covered = max(covered, stop)
        target.executemany(
            "INSERT INTO experiment_names (job_set_id, start, stop, names) VALUES (?,?,?,?)",
            [(set_id, a, b, json.dumps([""] * (b - a))) for a, b in missing])
    target.execute("UPDATE job_sets SET experiment_names = '[]' WHERE experiment_names != '[]'")


#: what a done job whose results were lost with the damaged store says
RESULTS_LOST = ("its results were lost with the damaged store it was recovered from; "
                "`qjm retry` runs it again")


_STATUSES = frozenset(JobStatus)


def _fail_jobs_without_results(target: sqlite3.Connection) -> int:
    """Mark failed every done job some of whose results were not recovered, and mark its set
    partial (or failed), so the set says what is missing and ``qjm retry`` can run it again."""
    lost = target.execute(
        "SELECT j.job_set_id, j.idx FROM jobs j WHERE j.status = ? AND j.stop - j.start >"
        " (SELECT COUNT(*) FROM results r WHERE r.job_set_id = j.job_set_id AND r.round = j.round"
        " AND r.experiment >= j.start AND r.experiment < j.stop)", (JobStatus.DONE,)).fetchall()
    now = time.time()
    # Not a move (a done job never moves): the copy is made to say what the damage cost,
    # before any process uses it as a store.
    target.executemany("UPDATE jobs SET status = ?, last_error = ?, finished = ? "
                       "WHERE job_set_id = ? AND idx = ?",
                       [(JobStatus.FAILED, RESULTS_LOST, now, s, i) for s, i in lost])
    for set_id in {s for s, _ in lost}:
        counts = {JobStatus(status): n for status, n in target.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE job_set_id = ? GROUP BY status", (set_id,))
            if status in _STATUSES}
        target.execute("UPDATE job_sets SET state = ? WHERE id = ? AND state IN (?, ?)",
                       (final_state(counts), set_id, SetState.DONE, SetState.PARTIAL))
    return len(lost)
