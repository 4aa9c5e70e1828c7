"""The SQLite store: the single source of truth for job sets.

One file, WAL mode, every state change one short transaction. Everything a user sees can be
rebuilt from this file alone, which is what makes retrieval after a restart, and watching a job
set run by another process, work. Each thread gets its own connection.

Tables:
- ``meta``: ``app`` and ``schema_version``; a file without them is refused, never overwritten.
- ``job_sets``: one row per job set (name, tags, backend spec, options, state, owner process).
- ``jobs``: one row per backend job (experiment range, shots round, backend id, status, attempts).
- ``circuit_blocks``: the circuits as QPY, one block per first-round job, for resuming.
- ``results``: one row per experiment and shots round, the result dict as JSON.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sqlite3
import stat
import sys
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

from qjm_tui.core.errors import (
    IllegalMove,
    JobManagerInvalidStateError,
    JobManagerUnknownJobSet,
    StoreDamagedError,
    StoreError,
    StoreFullError,
)
from qjm_tui.core.files import create_private_file, private_folder, readable_by_others
from qjm_tui.core.sqlite import immediate_transaction
from qjm_tui.core.status import JOB_FINAL, JobStatus, SetState
from qjm_tui.core.text import printable

APP_ID = "qjm"
SCHEMA_VERSION = 6

#: experiment names are kept in chunks of this many (one JSON list per chunk), so reading one
#: name of a million-experiment set parses a thousand, not a million
NAME_CHUNK = 1024

#: the name of the empty store in memory that stands in for a store file not made yet
_EMPTY_PREFIX = "file:qjm-empty-"

#: a running job set whose owner has not written a heartbeat for this long is interrupted
HEARTBEAT_STALE_SECONDS = 60.0
#: the longest :meth:`Store.close` waits for writes under way in other threads (seconds)
CLOSE_WAIT = 30.0

log = logging.getLogger(__name__)

_MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE job_sets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        backend TEXT NOT NULL,
        shots INTEGER,
        run_options TEXT NOT NULL DEFAULT '{}',
        n_experiments INTEGER NOT NULL,
        experiment_names TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        finished REAL,
        owner_host TEXT,
        owner_pid INTEGER,
        heartbeat REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE jobs (
        job_set_id TEXT NOT NULL REFERENCES job_sets(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        start INTEGER NOT NULL,
        stop INTEGER NOT NULL,
        shots INTEGER,
        round INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        backend_job_id TEXT,
        client_tag TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        submitted REAL,
        finished REAL,
        updated REAL NOT NULL,
        PRIMARY KEY (job_set_id, idx)
    );
    CREATE TABLE circuit_blocks (
        job_set_id TEXT NOT NULL REFERENCES job_sets(id) ON DELETE CASCADE,
        start INTEGER NOT NULL,
        stop INTEGER NOT NULL,
        qpy BLOB NOT NULL,
        PRIMARY KEY (job_set_id, start)
    );
    CREATE TABLE results (
        job_set_id TEXT NOT NULL REFERENCES job_sets(id) ON DELETE CASCADE,
        experiment INTEGER NOT NULL,
        round INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (job_set_id, experiment, round)
    );
    CREATE INDEX job_sets_created ON job_sets(created);
    """,
    # version 2: the change feed. Every state-changing transaction takes the next number from
    # ``changes`` and stamps it on the rows it writes (a job's number is also stamped on its
    # set), so "what changed since N" is an index range, not a scan or a clock comparison.
    """
    CREATE TABLE changes (seq INTEGER NOT NULL);
    INSERT INTO changes VALUES (0);
    ALTER TABLE job_sets ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE deleted_sets (id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
    CREATE INDEX jobs_changes ON jobs(job_set_id, seq);
    CREATE INDEX job_sets_changes ON job_sets(seq);
    CREATE INDEX deleted_sets_changes ON deleted_sets(seq);
    """,
    # version 3: what a job costs and where it ran, as the service reports it (quantum seconds
    # used, the estimate before it ran, the batch or session it ran in), and why a set stopped
    # short of its end (a quota used up, credentials refused) while it stays resumable.
    """
    ALTER TABLE jobs ADD COLUMN session_id TEXT;
    ALTER TABLE jobs ADD COLUMN session_mode TEXT;
    ALTER TABLE jobs ADD COLUMN usage REAL;
    ALTER TABLE jobs ADD COLUMN usage_estimate REAL;
    ALTER TABLE job_sets ADD COLUMN stop_reason TEXT;
    """,
    # version 4: what runners learned about a backend's job limit, shared by every process on
    # the store: the jobs this store's sets had in flight there when it last refused one
    """
    CREATE TABLE learned_limits (backend TEXT PRIMARY KEY, max_jobs INTEGER NOT NULL,
                                 learned REAL NOT NULL);
    """,
    # version 5: experiment names in chunks beside the set (one JSON list of a million names on
    # the set's row was parsed on every read of the row), and each job's estimated time.
    """
    CREATE TABLE experiment_names (
        job_set_id TEXT NOT NULL REFERENCES job_sets(id) ON DELETE CASCADE,
        start INTEGER NOT NULL,
        stop INTEGER NOT NULL,
        names TEXT NOT NULL,
        PRIMARY KEY (job_set_id, start)
    );
    INSERT INTO experiment_names (job_set_id, start, stop, names)
        SELECT id, 0, n_experiments, experiment_names FROM job_sets WHERE n_experiments > 0;
    UPDATE job_sets SET experiment_names = '[]';
    ALTER TABLE jobs ADD COLUMN estimated_seconds REAL;
    """,
    # version 6: every status a job has had, with the attempt it belonged to, its backend job
    # id and its error then, so a job's attempts can be told one by one after the fact (kept
    # by job, without rowids: one tree to write per change, and a job's history read in one range).
    """
    CREATE TABLE job_history (
        job_set_id TEXT NOT NULL REFERENCES job_sets(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        time REAL NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        backend_job_id TEXT,
        error TEXT,
        PRIMARY KEY (job_set_id, idx, seq)
    ) WITHOUT ROWID;
    """,
]


@dataclass(frozen=True)
class JobSetRow:
    """A job set as stored."""

    id: str
    name: str
    tags: list[str]
    backend: str
    shots: int | None
    run_options: dict[str, Any]
    n_experiments: int
    #: the circuits' names in experiment order, read from the store as they are asked for
    experiment_names: Sequence[str]
    state: SetState
    created: float
    updated: float
    finished: float | None
    owner_host: str | None
    owner_pid: int | None
    heartbeat: float | None
    cancel_requested: bool = False
    #: the store's change number of the last write to this set or any of its jobs
    seq: int = 0
    #: why the set stopped short of its end and waits to be resumed (the service refused the
    #: account: a quota used up, credentials refused); None otherwise
    stop_reason: str | None = None


@dataclass(frozen=True)
class JobRow:
    """A backend job as stored."""

    job_set_id: str
    index: int
    start: int
    stop: int
    shots: int | None
    round: int
    status: JobStatus
    backend_job_id: str | None
    client_tag: str
    attempts: int
    retries: int
    last_error: str | None
    submitted: float | None
    finished: float | None
    updated: float
    #: the store's change number of the last write to this job
    seq: int = 0
    #: the batch or session the service runs the job in, and which of the two it is
    session_id: str | None = None
    session_mode: str | None = None
    #: quantum seconds the job used, as the service reports them once it ran
    usage: float | None = None
    #: the service's estimate of the quantum seconds, before the job runs
    usage_estimate: float | None = None
    #: the job's estimated time on the backend, in seconds (None: the backend publishes no
    #: instruction durations)
    estimated_seconds: float | None = None

    @property
    def size(self) -> int:
        """How many experiments the job holds."""
        return self.stop - self.start


@dataclass(frozen=True)
class JobEvent:
    """One status a job had: when, in which attempt (0 before its first submission), and its
    backend job id and error at that moment."""

    time: float
    status: str
    attempt: int
    backend_job_id: str | None
    error: str | None


@dataclass(frozen=True)
class JobSetSummary:
    """What a listing shows of one job set, read for every set in one query.

    ``counts`` maps job status to how many jobs have it; ``state`` is the effective state
    (``interrupted`` derived, as :meth:`Store.effective_state` does).
    """

    id: str
    name: str
    tags: list[str]
    backend: str
    shots: int | None
    n_experiments: int
    state: SetState
    created: float
    updated: float
    finished: float | None
    counts: dict[JobStatus, int]
    total_jobs: int
    experiments_done: int
    retries: int
    seq: int
    #: experiments x shots rounds held by the jobs in each status (what progress is measured in)
    units: dict[JobStatus, int] = field(default_factory=dict)
    #: how many shots rounds the set's experiments run in
    rounds: int = 1
    #: quantum seconds the set's jobs used, as the service reported them (None: none reported)
    usage: float | None = None
    #: the service's estimates for the jobs that have not reported their usage yet
    usage_estimate: float | None = None
    #: why the set stopped short of its end (see :attr:`JobSetRow.stop_reason`)
    stop_reason: str | None = None
    #: the sum of its jobs' estimated times on the backend, in seconds (None: no estimate)
    estimated_seconds: float | None = None

    @property
    def fraction(self) -> float:
        """Experiments done as a fraction of all (1.0 for an empty set)."""
        return self.experiments_done / self.n_experiments if self.n_experiments else 1.0


@dataclass(frozen=True)
class SetChanges:
    """The answer to "which job sets changed since N": ids to re-read, ids gone, and the
    change number to ask from next time."""

    changed: list[str]
    deleted: list[str]
    seq: int


class Keep(Enum):
    """The value of a setter's argument that leaves its column as it is."""

    KEEP = "keep"


#: leave this column as it is (the default of every optional column of a typed setter)
KEEP: Final = Keep.KEEP

_JOB_STATUS = {s.value: s for s in JobStatus}
_SET_STATE = {s.value: s for s in SetState}

#: the columns of a job as :class:`JobRow` holds them, in its order
_JOB_FIELDS = ("job_set_id, idx, start, stop, shots, round, status, backend_job_id, client_tag, attempts,"
               " retries, last_error, submitted, finished, updated, seq, session_id, session_mode, usage,"
               " usage_estimate, estimated_seconds")


def _job_row(row: Sequence[Any]) -> JobRow:
    """A stored job row as a :class:`JobRow` (its status as the enum member)."""
    values = list(row)
    values[6] = _JOB_STATUS[values[6]]
    return JobRow(*values)


def _given(**columns: Any) -> dict[str, Any]:
    """The columns a setter was given a value for (those not :data:`KEEP`)."""
    return {name: value for name, value in columns.items() if value is not KEEP}


class ChunkedNames:
    """Experiment names gathered for a new job set, kept as JSON chunks of :data:`NAME_CHUNK`
    (what the store writes), so a million names cost a few MB of text, not a million objects.

    :meth:`Store.create_job_set` takes one of these, or any sequence of names.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._chunks: list[tuple[int, int, str]] = []
        self._open: list[str] = []
        self._count = 0
        for name in names:
            self.append(name)

    def append(self, name: str) -> None:
        """Add the next experiment's name."""
        self._open.append(name)
        self._count += 1
        if len(self._open) >= NAME_CHUNK:
            self._close()

    def _close(self) -> None:
        if self._open:
            start = self._count - len(self._open)
            self._chunks.append((start, self._count, json.dumps(self._open)))
            self._open = []

    def __len__(self) -> int:
        return self._count

    def chunks(self) -> list[tuple[int, int, str]]:
        """``(start, stop, JSON list)`` for every chunk, in order."""
        self._close()
        return list(self._chunks)

    def names(self, start: int, stop: int) -> list[str]:
        """The names of experiments ``start`` to ``stop - 1`` (decoding only their chunks)."""
        self._close()
        out: list[str] = []
        for a, b, text in self._chunks:
            if a < stop and b > start:
                out.extend(json.loads(text)[max(start - a, 0):stop - a])
        return out

    def find(self, name: str) -> list[int]:
        """Every index whose name is ``name``, in order."""
        self._close()
        quoted = json.dumps(name)
        found: list[int] = []
        for a, _b, text in self._chunks:
            if quoted in text:
                found.extend(a + i for i, known in enumerate(json.loads(text)) if known == name)
        return found


class ExperimentNames(Sequence[str]):
    """A job set's experiment names, read from the store a chunk at a time as they are asked for
    (a few chunks are kept). Indexing, slicing, ``len``, iteration, ``in`` and ``index`` work as
    on a list; looking a name up reads only the chunks whose text holds it."""

    _KEEP = 8

    def __init__(self, store: Store, job_set_id: str, count: int) -> None:
        self._store = store
        self._id = job_set_id
        self._count = count
        self._chunks: OrderedDict[int, tuple[int, list[str]]] = OrderedDict()

    def __len__(self) -> int:
        return self._count

    def _chunk(self, index: int) -> tuple[int, int, list[str]]:
        for start, (stop, names) in self._chunks.items():
            if start <= index < stop:
                self._chunks.move_to_end(start)
                return start, stop, names
        row = self._store._connect().execute(
            "SELECT start, stop, names FROM experiment_names WHERE job_set_id=? AND start <= ?"
            " ORDER BY start DESC LIMIT 1", (self._id, index)).fetchone()
        if row is None or not row[0] <= index < row[1]:
            raise JobManagerUnknownJobSet(
                f"job set {self._id!r} has no name stored for experiment {index} in {self._store.path}")
        start, stop, text = row
        names = json.loads(text)
        self._chunks[start] = (stop, names)
        if len(self._chunks) > self._KEEP:
            self._chunks.popitem(last=False)
        return start, stop, names

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"experiment {index} is out of range (0 to {self._count - 1})")
        start, _stop, names = self._chunk(index)
        # a chunk carried over from an older store may hold fewer names than experiments
        return names[index - start] if index - start < len(names) else ""

    def __iter__(self) -> Iterator[str]:
        for start in range(0, self._count, NAME_CHUNK):
            # Read in pages, not through the cache: a pass over every name keeps one chunk.
            rows = self._store._connect().execute(
                "SELECT names FROM experiment_names WHERE job_set_id=? AND start >= ? AND start < ?"
                " ORDER BY start", (self._id, start, start + NAME_CHUNK)).fetchall()
            for (text,) in rows:
                yield from json.loads(text)

    def find(self, name: str) -> list[int]:
        """Every index whose name is ``name``, in order (reading only chunks that hold it)."""
        rows = self._store._connect().execute(
            "SELECT start, names FROM experiment_names WHERE job_set_id=? AND instr(names, ?) > 0"
            " ORDER BY start", (self._id, json.dumps(name))).fetchall()
        return [start + i for start, text in rows for i, known in enumerate(json.loads(text))
                if known == name]

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """The first index of the name ``value`` (between ``start`` and ``stop``)."""
        stop = self._count if stop is None else stop
        for found in self.find(value) if isinstance(value, str) else ():
            if start <= found < stop:
                return found
        raise ValueError(f"{value!r} is not an experiment name of job set {self._id}")

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and bool(self.find(value))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (ExperimentNames, list, tuple)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ExperimentNames({self._id!r}, {self._count} names)"


def default_store_path() -> Path:
    """``$QJM_HOME/qjm.sqlite``, else the platform's user data directory for qjm."""
    home = os.environ.get("QJM_HOME")
    if home:
        return Path(home).expanduser() / "qjm.sqlite"
    import platformdirs

    return Path(platformdirs.user_data_dir("qjm", appauthor=False)) / "qjm.sqlite"


def new_job_set_id() -> str:
    """A fresh job-set id: time-ordered, so listings sort naturally, and unique."""
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


def id_tail(job_set_id: str) -> str:
    """A job-set id's random tail (``8c1e4f2a`` of ``20261125-093012-8c1e4f2a``): what tells
    sets apart, since ids start with their creation time. Listings show it as the short id, and
    :meth:`Store.resolve_id` takes it (or its start) as well as the id (or its start)."""
    return job_set_id.rsplit("-", 1)[-1]


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _ThreadConnection:
    """Holds one thread's connection; when the thread ends its thread-local data goes, this
    holder with it, and a finalizer closes the connection (no handle outlives its thread)."""

    __slots__ = ("conn", "generation", "__weakref__")

    def __init__(self, conn: sqlite3.Connection, generation: int = 0) -> None:
        self.conn = conn
        self.generation = generation


def _close_connection(lock: threading.Lock, connections: list[sqlite3.Connection],
                      conn: sqlite3.Connection) -> None:
    with lock:
        if conn in connections:
            connections.remove(conn)
    try:
        conn.close()
    except sqlite3.Error:
        pass


class Store:
    """Access to one store file. Safe to share between threads; each gets a connection, closed
    when the thread ends (or earlier by :meth:`release_thread_connection`).

    ``now`` gives the wall-clock time written as a row's created, updated, submitted and
    finished times (injectable, so screens can be snapshotted). Owners' heartbeats always use
    the real time, since other processes judge liveness by them.

    ``read_only`` is for commands that only look: nothing is created on disk (a missing file
    reads as an empty store), and a file or folder that is not writable is read without being
    touched. A writing store refuses, up front and by name, a file or folder it cannot write.
    With ``create_on_write`` a writing store that finds no file creates it (and its folder)
    only when something is first written, so a request refused before then leaves nothing on
    disk. ``check`` runs SQLite's ``quick_check`` over an existing file first, so a damaged
    store is refused (:class:`StoreDamagedError`) before anything is written to it.

    A new store's folder is made ``0700`` and the file ``0600`` (it holds unpublished
    circuits and results); an existing one that others can read gets a warning on stderr.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 now: Callable[[], float] | None = None, read_only: bool = False,
                 create_on_write: bool = False, check: bool = False) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.now = now or time.time
        self.read_only = read_only
        #: what connections open: the file itself, or a URI (read-only file, empty stand-in)
        self._target: str | Path = self.path
        self._uri = False
        #: keeps the empty in-memory stand-in of a missing store alive while the store is open
        self._keeper: sqlite3.Connection | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        #: write transactions under way (any thread): close() waits for them, since closing a
        #: connection in the middle of its COMMIT crashes SQLite
        self._writes = 0
        self._no_writes = threading.Condition(self._lock)
        #: a writing store standing in for a file not made yet (see ``create_on_write``)
        self._unmade = False
        self._make_lock = threading.RLock()
        #: bumped when the target changes, so each thread's connection is made again
        self._generation = 0
        self.host = socket.gethostname()
        self._open_and_migrate(create_on_write, check)

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._unmade and self.path.exists():
            self._make_file(create=False)  # another process made it meanwhile
        if self._keeper is None and str(self._target).startswith(_EMPTY_PREFIX):
            # Closed while standing in for a missing file: the empty store in memory went with
            # its last connection, so a read after close() gets a new one (still no job sets).
            with self._make_lock:
                if self._keeper is None:
                    self._open_empty()
        holder = getattr(self._local, "holder", None)
        if holder is not None and holder.generation != self._generation:
            self.release_thread_connection()
            holder = None
        if holder is None:
            conn = sqlite3.connect(self._target, timeout=30.0, isolation_level=None,
                                   check_same_thread=False, uri=self._uri)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            holder = _ThreadConnection(conn, self._generation)
            weakref.finalize(holder, _close_connection, self._lock, self._connections, conn)
            self._local.holder = holder
            with self._lock:
                self._connections.append(conn)
        return holder.conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only; this change needs a writable store")
        if self._unmade:
            self._make_file(create=True)
        conn = self._connect()
        with self._lock:
            self._writes += 1
        try:
            with immediate_transaction(conn) as tx:
                yield tx
        finally:
            with self._lock:
                self._writes -= 1
                if not self._writes:
                    self._no_writes.notify_all()

    @contextmanager
    def _change(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """A write transaction that is a change readers should see: yields the connection and
        the change number to stamp on every row it writes."""
        with self._tx() as tx:
            seq = tx.execute("UPDATE changes SET seq = seq + 1 RETURNING seq").fetchone()[0]
            yield tx, seq

    def close(self) -> None:
        """Close every connection this store opened, once the writes under way in other
        threads have ended (waiting at most :data:`CLOSE_WAIT` seconds)."""
        with self._lock:
            if not self._no_writes.wait_for(lambda: not self._writes, timeout=CLOSE_WAIT):
                log.warning("closing %s with %d writes still under way", self.path, self._writes)
            for conn in self._connections:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._connections.clear()
            if self._keeper is not None:
                self._keeper.close()
                self._keeper = None
        self._local = threading.local()

    def release_thread_connection(self) -> None:
        """Close the calling thread's connection now (it is closed anyway when the thread ends)."""
        holder = getattr(self._local, "holder", None)
        if holder is None:
            return
        self._local.holder = None
        _close_connection(self._lock, self._connections, holder.conn)

    def _open_and_migrate(self, create_on_write: bool = False, check: bool = False) -> None:
        if self.path.exists() and self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not a qjm store")
        if not self.path.exists() and (self.read_only or create_on_write):
            if not self.read_only:
                unwritable = _unwritable(self.path)
                if unwritable is not None:
                    raise StoreError(unwritable)
                self._unmade = True
            self._open_empty()
            return
        if not self.read_only and not self.path.exists():
            self._make_folder()
            unwritable = _unwritable(self.path)
            if unwritable is not None:
                raise StoreError(unwritable)
            create_private_file(self.path)
        self._open_file(check)

    def _open_file(self, check: bool = False) -> None:
        """Open the store file that is there (or was just made): refuse one that is not a qjm
        store, or is damaged, before anything is written to it; then WAL and the schema."""
        if self.path.stat().st_size > 0:
            with open(self.path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise StoreError(
                        f"{self.path}: not a qjm store (not an SQLite file); "
                        "move it away or set QJM_HOME to another folder"
                    )
            _warn_if_others_read(self.path)
        unwritable = _unwritable(self.path)
        if unwritable is not None and not self.read_only:
            raise StoreError(unwritable)
        if unwritable is not None:
            # Read as it is: no journal, lock or shared-memory file is made next to it. A
            # write-ahead log a writer left behind is read too (that needs its index file).
            wal = Path(f"{self.path}-wal")
            mode = "mode=ro" if wal.exists() and wal.stat().st_size else "immutable=1"
            self._target, self._uri = f"{self.path.absolute().as_uri()}?{mode}", True
        try:
            conn = self._connect()
            # The schema is read before anything is changed: another program's database is
            # refused as it was found (not switched to WAL first).
            version = self._schema_version(conn)
            if check and version:
                self.check_quick(conn)
            if self.read_only:
                self.journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if version == 0:  # an empty file: nothing to read
                    self.close()
                    self._open_empty()
                elif version < SCHEMA_VERSION:
                    raise StoreError(f"{self.path}: written by an older qjm (schema {version}); a "
                                     "command that changes the store upgrades it")
                return
            self.journal_mode = _set_wal(conn)
            if version < SCHEMA_VERSION:
                self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            problem = store_problem(exc, self.path)
            if problem is not None:
                raise problem from exc
            raise StoreError(f"{self.path}: cannot be read as a qjm store ({exc})") from exc

    def _make_file(self, create: bool) -> None:
        """Turn a store standing in for a missing file into the file (made ``0600`` in a
        ``0700`` folder when ``create``; else another process has made it)."""
        with self._make_lock:
            if not self._unmade:
                return
            if create:
                self._make_folder()
                unwritable = _unwritable(self.path)
                if unwritable is not None:
                    raise StoreError(unwritable)
                create_private_file(self.path)
            keeper = self._keeper
            self._keeper = None
            self._target, self._uri = self.path, False
            self._generation += 1
            self._unmade = False
            self._open_file()
            if keeper is not None:
                keeper.close()

    def check_quick(self, conn: sqlite3.Connection | None = None) -> None:
        """Run SQLite's ``quick_check`` over the whole file; :class:`StoreDamagedError` if it
        finds damage (it reads every page: about 0.1 s per 100 MB)."""
        conn = conn or self._connect()
        try:
            found = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
        except sqlite3.DatabaseError as exc:
            found = [str(exc)]
        if found != ["ok"]:
            lines = [line for text in found for line in text.splitlines()
                     if line.strip() and not line.startswith("*** in database")]
            raise StoreDamagedError(damaged_message(self.path, lines[0] if lines else found[0]))

    def _make_folder(self) -> None:
        """Create the store's folder (``0700``, as are parents made with it); an error names
        the first folder that cannot be made."""
        try:
            private_folder(self.path.parent)
        except OSError as exc:
            place = Path(exc.filename) if exc.filename else self.path.parent
            raise StoreError(f"{place}: cannot create the store's folder ({exc.strerror}); make "
                             "its parent writable or set QJM_HOME to a writable folder") from None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema up to date. Reading the version again and migrating is one write
        transaction, so processes opening a fresh file at once wait for each other, and the
        later ones find the work done."""
        with immediate_transaction(conn) as tx:
            for target in range(self._schema_version(tx) + 1, SCHEMA_VERSION + 1):
                for statement in _split_sql(_MIGRATIONS[target - 1]):
                    tx.execute(statement)
                tx.execute("INSERT OR REPLACE INTO meta VALUES ('app', ?)", (APP_ID,))
                tx.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(target),))

    def _open_empty(self) -> None:
        """Stand in for a store file that does not exist yet with an empty one in memory, so a
        command that only looks finds no job sets and leaves nothing on disk."""
        self._target, self._uri = f"{_EMPTY_PREFIX}{uuid.uuid4().hex}?mode=memory&cache=shared", True
        self._keeper = sqlite3.connect(self._target, uri=True, isolation_level=None,
                                       check_same_thread=False)
        self.journal_mode = "memory"
        self._migrate(self._keeper)

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """The file's schema version (0 for an empty file); refuses files that are not ours."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(
                f"{self.path}: an SQLite file that is not a qjm store; "
                "move it away or set QJM_HOME to another folder"
            )
        version = 0
        if tables:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("app") != APP_ID:
                raise StoreError(f"{self.path}: belongs to {meta.get('app')!r}, not qjm")
            version = int(meta.get("schema_version", 0))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer qjm (schema {version}, this qjm knows "
                    f"{SCHEMA_VERSION}); upgrade qjm"
                )
        return version

    # -- job sets ----------------------------------------------------------------------------

    def create_job_set(
        self,
        *,
        job_set_id: str,
        name: str,
        tags: Sequence[str],
        backend: str,
        shots: int | None,
        run_options: dict[str, Any],
        experiment_names: Sequence[str] | ChunkedNames,
        jobs: Sequence[tuple[Any, ...]],
        circuit_blocks: Iterable[tuple[int, int, bytes]],
    ) -> None:
        """Write a whole new job set, its jobs and its circuits in one transaction.

        ``experiment_names`` is a sequence of names or a :class:`ChunkedNames`; ``jobs`` holds
        ``(index, start, stop, shots, round)``, optionally with the job's estimated seconds
        last; ``circuit_blocks`` holds ``(start, stop, qpy)`` and may be an iterator, consumed
        inside the transaction (one block in memory at a time). Either everything is stored or
        nothing is.
        """
        names = experiment_names if isinstance(experiment_names, ChunkedNames) \
            else ChunkedNames(experiment_names)
        now = self.now()
        with self._change() as (tx, seq):
            if tx.execute("SELECT 1 FROM job_sets WHERE id=?", (job_set_id,)).fetchone():
                raise StoreError(f"{self.path}: a job set with id {job_set_id!r} already exists")
            tx.execute(
                "INSERT INTO job_sets (id, name, tags, backend, shots, run_options, n_experiments,"
                " experiment_names, state, created, updated, owner_host, owner_pid, heartbeat, seq)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job_set_id, name, json.dumps(list(tags)), backend, shots,
                 json.dumps(run_options), len(names), "[]",
                 SetState.RUNNING, now, now, self.host, os.getpid(), time.time(), seq),
            )
            tx.execute("DELETE FROM deleted_sets WHERE id=?", (job_set_id,))
            tx.executemany(
                "INSERT INTO experiment_names (job_set_id, start, stop, names) VALUES (?,?,?,?)",
                [(job_set_id, a, b, text) for a, b, text in names.chunks()],
            )
            tx.executemany(
                "INSERT INTO jobs (job_set_id, idx, start, stop, shots, round, status, client_tag,"
                " updated, seq, estimated_seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(job_set_id, job[0], job[1], job[2], job[3], job[4], JobStatus.PENDING,
                  f"qjm:{job_set_id}:{job[0]}", now, seq, job[5] if len(job) > 5 else None)
                 for job in jobs],
            )
            tx.executemany(
                "INSERT INTO circuit_blocks (job_set_id, start, stop, qpy) VALUES (?,?,?,?)",
                ((job_set_id, a, b, sqlite3.Binary(q)) for (a, b, q) in circuit_blocks),
            )

    def add_circuit_block(self, job_set_id: str, start: int, stop: int, qpy: bytes) -> None:
        """Store one block of circuits (used while a large set is written in a pipeline)."""
        with self._tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO circuit_blocks (job_set_id, start, stop, qpy) VALUES (?,?,?,?)",
                (job_set_id, start, stop, sqlite3.Binary(qpy)),
            )

    def stored_ranges(self, job_set_id: str) -> list[tuple[int, int]]:
        """The experiment ranges ``(start, stop)`` whose circuits are in the store, in order."""
        rows = self._connect().execute(
            "SELECT start, stop FROM circuit_blocks WHERE job_set_id=? ORDER BY start", (job_set_id,)
        ).fetchall()
        return [(a, b) for a, b in rows]

    def circuit_blocks(self, job_set_id: str, start: int, stop: int) -> list[tuple[int, int, bytes]]:
        """The stored blocks overlapping experiments ``start`` to ``stop - 1``, in order."""
        rows = self._connect().execute(
            "SELECT start, stop, qpy FROM circuit_blocks WHERE job_set_id=? AND start < ? AND stop > ?"
            " ORDER BY start",
            (job_set_id, stop, start),
        ).fetchall()
        return [(a, b, bytes(q)) for a, b, q in rows]

    def get_job_set(self, job_set_id: str) -> JobSetRow:
        """The job set with exactly this id; raises JobManagerUnknownJobSet."""
        row = self._connect().execute("SELECT * FROM job_sets WHERE id=?", (job_set_id,)).fetchone()
        if row is None:
            raise JobManagerUnknownJobSet(f"no job set with id {job_set_id!r} in {self.path}")
        return self._job_set_row(row)

    def resolve_id(self, prefix: str) -> str:
        """The one job-set id that starts with ``prefix``, or whose random tail (the short id
        the app and listings show, :func:`id_tail`) does; clear errors for none or several."""
        if not prefix:
            raise JobManagerUnknownJobSet("an empty job-set id matches nothing")
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conn = self._connect()
        rows = conn.execute(
            "SELECT id FROM job_sets WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 6", (escaped + "%",)
        ).fetchall()
        ids = [r[0] for r in rows]
        if prefix in ids:
            return prefix
        tails = conn.execute(
            "SELECT id FROM job_sets WHERE id LIKE ? ESCAPE '\\' ORDER BY id", ("%-" + escaped + "%",)
        ).fetchall()
        ids += [r[0] for r in tails if id_tail(r[0]).startswith(prefix) and r[0] not in ids]
        if not ids:
            raise JobManagerUnknownJobSet(
                f"no job set id starts with {prefix!r} in {self.path} (nor does any short id)")
        if len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise JobManagerUnknownJobSet(
                f"job-set id prefix {prefix!r} is ambiguous: it matches {shown}; give more characters"
            )
        return str(ids[0])

    def list_job_sets(self, name: str | None = None) -> list[JobSetRow]:
        """All job sets, newest first, optionally only those with this exact name."""
        sql = "SELECT * FROM job_sets"
        args: tuple[Any, ...] = ()
        if name is not None:
            sql += " WHERE name=?"
            args = (name,)
        rows = self._connect().execute(sql + " ORDER BY created DESC, id DESC", args).fetchall()
        return [self._job_set_row(r) for r in rows]

    def effective_state(self, row: JobSetRow, now: float | None = None) -> SetState:
        """The row's state, with "interrupted" for a running set whose owner is gone."""
        return self._effective(row.state, row.owner_host, row.owner_pid, row.heartbeat, now)

    def _effective(self, state: str, host: str | None, pid: int | None, heartbeat: float | None,
                   now: float | None = None) -> SetState:
        if state != SetState.RUNNING:
            return SetState(state)
        if pid is None:  # released by its owner (JobManager.detach)
            return SetState.INTERRUPTED
        now = time.time() if now is None else now
        if host == self.host and pid is not None:
            if pid != os.getpid() and not process_alive(pid):
                return SetState.INTERRUPTED
        if heartbeat is not None and now - heartbeat > HEARTBEAT_STALE_SECONDS:
            return SetState.INTERRUPTED
        return SetState.RUNNING

    def _effective_here(self, state: str, host: str | None, pid: int | None,
                        heartbeat: float | None) -> SetState:
        """The effective state as this process sees it: a set it owns is running, however
        late its heartbeat (a runner blocked in a long submit call is still alive)."""
        if state == SetState.RUNNING and host == self.host and pid == os.getpid():
            return SetState.RUNNING
        return self._effective(state, host, pid, heartbeat)

    def _set_state(self, tx: sqlite3.Connection, job_set_id: str) -> tuple[SetState, str | None, int | None]:
        """The set's effective state (as this process sees it) and its owner's host and pid;
        raises JobManagerUnknownJobSet."""
        row = tx.execute("SELECT state, owner_host, owner_pid, heartbeat FROM job_sets WHERE id=?",
                         (job_set_id,)).fetchone()
        if row is None:
            raise JobManagerUnknownJobSet(f"no job set with id {job_set_id!r} in {self.path}")
        state, host, pid, heartbeat = row
        return self._effective_here(state, host, pid, heartbeat), host, pid

    @staticmethod
    def _check_set(job_set_id: str, old: SetState, new: SetState,
                   allowed_from: Collection[SetState] | None) -> None:
        if allowed_from is not None and old not in allowed_from:
            raise IllegalMove(f"job set {job_set_id} is {old}: it cannot become {new}")

    # A set's state changes only through set_job_set_state, claim and release, called by
    # core/lifecycle.py; ``allowed_from`` is checked against the state as this process sees it
    # (interrupted derived), in the same transaction.

    def set_job_set_state(self, job_set_id: str, state: SetState, *,
                          allowed_from: Collection[SetState] | None = None,
                          finished: float | None | Keep = KEEP, take_over: bool = False) -> SetState:
        """Write the set's state in one transaction; returns its state before.

        ``take_over``: only if no other live process runs the set (else
        JobManagerInvalidStateError naming it), and the set is left without an owner.
        """
        fields: dict[str, Any] = {"state": state, **_given(finished=finished)}
        with self._change() as (tx, seq):
            old, host, pid = self._set_state(tx, job_set_id)
            if take_over:
                self._refuse_other_owner(job_set_id, old, host, pid)
                fields.update(owner_pid=None, heartbeat=None)
            self._check_set(job_set_id, old, state, allowed_from)
            fields["updated"] = self.now()
            tx.execute(f"UPDATE job_sets SET {', '.join(f'{k}=?' for k in fields)}, seq=? WHERE id=?",
                       (*fields.values(), seq, job_set_id))
        return old

    def request_cancel(self, job_set_id: str) -> None:
        """Ask the process running the set to cancel it (its runner reads this with its
        heartbeat)."""
        self._write_set(job_set_id, cancel_requested=1)

    def set_stop_reason(self, job_set_id: str, reason: str | None) -> None:
        """Record why the set stops short of its end (see :attr:`JobSetRow.stop_reason`)."""
        self._write_set(job_set_id, stop_reason=reason)

    def rename_job_set(self, job_set_id: str, name: str) -> None:
        """Give the set a new name."""
        self._write_set(job_set_id, name=name)

    def set_job_set_tags(self, job_set_id: str, tags: Sequence[str]) -> None:
        """Replace the set's tags."""
        self._write_set(job_set_id, tags=json.dumps(list(tags)))

    def _write_set(self, job_set_id: str, **fields: Any) -> None:
        fields["updated"] = self.now()
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._change() as (tx, seq):
            cur = tx.execute(f"UPDATE job_sets SET {cols}, seq=? WHERE id=?",
                             (*fields.values(), seq, job_set_id))
            if cur.rowcount == 0:
                raise JobManagerUnknownJobSet(f"no job set with id {job_set_id!r} in {self.path}")

    def _live_owner(self, tx: sqlite3.Connection, job_set_id: str) -> tuple[str | None, int | None]:
        """The (host, pid) of the process running the set, or ``(None, None)`` if nobody
        runs it (finished, interrupted, released); raises JobManagerUnknownJobSet."""
        row = tx.execute("SELECT state, owner_host, owner_pid, heartbeat FROM job_sets WHERE id=?",
                         (job_set_id,)).fetchone()
        if row is None:
            raise JobManagerUnknownJobSet(f"no job set with id {job_set_id!r} in {self.path}")
        state, host, pid, heartbeat = row
        if self._effective(state, host, pid, heartbeat) == SetState.RUNNING:
            return host, pid
        return None, None

    def _refuse_other_owner(self, job_set_id: str, state: SetState, host: str | None,
                            pid: int | None) -> None:
        if state == SetState.RUNNING and pid is not None and not (host == self.host and pid == os.getpid()):
            raise JobManagerInvalidStateError(
                f"job set {job_set_id} is being run by process {pid} on {host}; "
                "wait for it or cancel it first"
            )

    def claim(self, job_set_id: str, *, allowed_from: Collection[SetState] | None = None,
              backend: str | None = None, reset: Collection[JobStatus] = (),
              keep: Collection[int] = (), fresh: bool = True,
              reset_from: Collection[JobStatus] | None = None) -> tuple[SetState, dict[int, JobStatus]]:
        """Make this process the job set's owner and its state running, if nobody else runs it.

        A compare-and-set in one write transaction: it succeeds if the set is not running
        under a live owner, or is owned by this process (the caller makes sure it does not
        run it already). Otherwise it raises JobManagerInvalidStateError naming the owner and
        changes nothing, so of two processes claiming one set at once exactly one wins.

        In the same transaction: the set moves to ``backend`` if given, and its jobs in a
        status of ``reset`` (but those in ``keep``) go back to pending, without a backend id
        (``fresh``: as if never tried: no attempts, error or finish time); a job to reset whose
        status is not in ``reset_from`` raises IllegalMove, and nothing is written. Returns the
        set's state before, and the status before of each job reset.
        """
        reset = list(reset)
        with self._change() as (tx, seq):
            old, host, pid = self._set_state(tx, job_set_id)
            self._refuse_other_owner(job_set_id, old, host, pid)
            self._check_set(job_set_id, old, SetState.RUNNING, allowed_from)
            tx.execute(
                "UPDATE job_sets SET state=?, owner_host=?, owner_pid=?, heartbeat=?, finished=NULL,"
                " cancel_requested=0, stop_reason=NULL, updated=?, seq=? WHERE id=?",
                (SetState.RUNNING, self.host, os.getpid(), time.time(), self.now(), seq, job_set_id),
            )
            if backend is not None:
                tx.execute("UPDATE job_sets SET backend=? WHERE id=?", (backend, job_set_id))
            moved: dict[int, JobStatus] = {}
            if reset:
                skip = set(keep)
                marks = ",".join("?" * len(reset))
                moved = {idx: _JOB_STATUS[status] for idx, status in tx.execute(
                    f"SELECT idx, status FROM jobs WHERE job_set_id=? AND status IN ({marks}) ORDER BY idx",
                    (job_set_id, *reset)) if idx not in skip}
                for idx, status in moved.items():
                    if reset_from is not None and status not in reset_from:
                        raise IllegalMove(f"job {idx} of job set {job_set_id} is {status}: it cannot "
                                          f"become {JobStatus.PENDING}")
                fields: dict[str, Any] = {"status": JobStatus.PENDING, "backend_job_id": None}
                if fresh:
                    fields.update(attempts=0, last_error=None, finished=None)
                self._write_jobs(tx, seq, job_set_id, list(moved), fields)
        return old, moved

    def release(self, job_set_id: str, stop_reason: str | None = None, *,
                allowed_from: Collection[SetState] | None = None) -> SetState:
        """Give up ownership of a running set without finishing it: it reads ``interrupted``
        (resumable) to everyone from now on; ``stop_reason`` says why it stopped, when it did
        not stop because its process went away. Returns its state before. A set this process
        does not own is left as it is."""
        with self._change() as (tx, seq):
            old = self._set_state(tx, job_set_id)[0]
            self._check_set(job_set_id, old, SetState.INTERRUPTED, allowed_from)
            tx.execute("UPDATE job_sets SET owner_pid=NULL, heartbeat=NULL, updated=?, seq=?,"
                       " stop_reason=? WHERE id=? AND owner_host=? AND owner_pid=?",
                       (self.now(), seq, stop_reason, job_set_id, self.host, os.getpid()))
        return old

    def heartbeat(self, job_set_id: str) -> bool:
        """Record that the owner is alive; returns whether a cancel was requested."""
        with self._tx() as tx:
            tx.execute("UPDATE job_sets SET heartbeat=? WHERE id=?", (time.time(), job_set_id))
            row = tx.execute("SELECT cancel_requested FROM job_sets WHERE id=?",
                             (job_set_id,)).fetchone()
        return bool(row and row[0])

    def delete_job_set(self, job_set_id: str, *, if_idle: bool = False) -> None:
        """Remove a job set and everything it holds, in one transaction.

        With ``if_idle``, refuses (JobManagerInvalidStateError naming the owner) a set running
        under a live owner, checked in the same transaction.
        """
        with self._change() as (tx, seq):
            if if_idle:
                host, pid = self._live_owner(tx, job_set_id)
                if pid is not None:
                    raise JobManagerInvalidStateError(
                        f"job set {job_set_id} is running (process {pid} on {host}); "
                        "cancel it and wait for it to stop before deleting it"
                    )
            tx.execute("DELETE FROM job_sets WHERE id=?", (job_set_id,))
            tx.execute("INSERT OR REPLACE INTO deleted_sets (id, seq) VALUES (?, ?)", (job_set_id, seq))

    # -- what runners learned about backends --------------------------------------------------

    def learned_limit(self, backend: str) -> int | None:
        """The most jobs this store's sets may have in flight at ``backend`` at once, as a
        runner learned it from the service's refusals; None if none has."""
        row = self._connect().execute("SELECT max_jobs FROM learned_limits WHERE backend=?",
                                      (backend,)).fetchone()
        return None if row is None else int(row[0])

    def learn_limit(self, backend: str, max_jobs: int) -> None:
        """Record ``backend``'s job limit as a runner learned it (replacing what was known)."""
        with self._tx() as tx:
            tx.execute("INSERT OR REPLACE INTO learned_limits (backend, max_jobs, learned) VALUES (?,?,?)",
                       (backend, max_jobs, time.time()))

    def jobs_in_flight(self, backend: str, besides: str, accepted_only: bool = False) -> int:
        """How many jobs of the running sets on ``backend`` other than ``besides`` are queued
        or running there, or being submitted unless ``accepted_only`` (what they hold, or may
        soon hold, of the backend's limit)."""
        statuses = [JobStatus.QUEUED, JobStatus.RUNNING] + ([] if accepted_only else [JobStatus.SUBMITTING])
        marks = ",".join("?" * len(statuses))
        return int(self._connect().execute(
            "SELECT COUNT(*) FROM jobs j JOIN job_sets s ON s.id = j.job_set_id"
            f" WHERE s.backend = ? AND s.state = ? AND s.id != ? AND j.status IN ({marks})",
            (backend, SetState.RUNNING, besides, *statuses)).fetchone()[0])

    # -- jobs --------------------------------------------------------------------------------

    _JOB_COLUMNS = f"SELECT {_JOB_FIELDS} FROM jobs WHERE job_set_id=?"

    def jobs(self, job_set_id: str) -> list[JobRow]:
        """The job set's jobs in index order."""
        rows = self._connect().execute(self._JOB_COLUMNS + " ORDER BY idx", (job_set_id,)).fetchall()
        return [_job_row(r) for r in rows]

    def job_history(self, job_set_id: str, index: int) -> list[JobEvent]:
        """Every status job ``index`` of the set has had, oldest first (empty for a job that
        has not changed since it was made, or made before the store kept histories)."""
        rows = self._connect().execute(
            "SELECT time, status, attempt, backend_job_id, error FROM job_history"
            " WHERE job_set_id=? AND idx=? ORDER BY seq", (job_set_id, index)).fetchall()
        return [JobEvent(*row) for row in rows]

    def jobs_holding(self, job_set_id: str, experiment: int) -> list[JobRow]:
        """The jobs that hold one experiment (one per shots round), read without building
        every job of the set: what a view of a single experiment needs."""
        rows = self._connect().execute(self._JOB_COLUMNS + " AND start <= ? AND stop > ? ORDER BY idx",
                                       (job_set_id, experiment, experiment)).fetchall()
        return [_job_row(r) for r in rows]

    def rounds(self, job_set_id: str) -> int:
        """How many shots rounds the set's jobs are split into (1 unless shots exceed a
        backend's limit)."""
        row = self._connect().execute("SELECT MAX(round) FROM jobs WHERE job_set_id=?",
                                      (job_set_id,)).fetchone()
        return 1 + (row[0] or 0)

    def job(self, job_set_id: str, index: int) -> JobRow:
        """One job of a job set."""
        row = self._connect().execute(self._JOB_COLUMNS + " AND idx=?", (job_set_id, index)).fetchone()
        if row is None:
            raise JobManagerUnknownJobSet(f"job set {job_set_id!r} has no job {index} in {self.path}")
        return _job_row(row)

    def job_indices(self, job_set_id: str, statuses: Iterable[JobStatus]) -> list[int]:
        """The indices of the set's jobs in any of these statuses, in order."""
        wanted = list(statuses)
        rows = self._connect().execute(
            f"SELECT idx FROM jobs WHERE job_set_id=? AND status IN ({','.join('?' * len(wanted))})"
            " ORDER BY idx", (job_set_id, *wanted)).fetchall()
        return [r[0] for r in rows]

    def status_counts(self, job_set_id: str) -> dict[JobStatus, int]:
        """How many jobs are in each status."""
        rows = self._connect().execute(
            "SELECT status, COUNT(*) FROM jobs WHERE job_set_id=? GROUP BY status", (job_set_id,)
        ).fetchall()
        return {_JOB_STATUS[status]: n for status, n in rows}

    #: records a job's status as it is now in the job's history (the change number and time
    #: as parameters, then the job's set and index)
    _HISTORY = ("INSERT OR REPLACE INTO job_history (job_set_id, idx, seq, time, status, attempt,"
                " backend_job_id, error) SELECT job_set_id, idx, ?, ?, status, attempts, backend_job_id,"
                " last_error FROM jobs WHERE job_set_id=? AND idx=?")

    # Jobs change status only through these setters, and only core/lifecycle.py calls them
    # (tests set up stores with them too). With ``allowed_from``, the job's status as stored
    # is checked in the same transaction: a job in any other status is left as it is and
    # IllegalMove raised. Columns left at KEEP are not written.

    def set_job_status(self, job_set_id: str, index: int, status: JobStatus, *,
                       allowed_from: Collection[JobStatus] | None = None,
                       backend_job_id: str | None | Keep = KEEP, attempts: int | Keep = KEEP,
                       retries: int | Keep = KEEP, last_error: str | None | Keep = KEEP,
                       submitted: float | None | Keep = KEEP, finished: float | None | Keep = KEEP,
                       ) -> tuple[JobStatus, JobRow]:
        """Move one job to ``status`` in one transaction; returns its status before and its
        row after."""
        fields = _given(backend_job_id=backend_job_id, attempts=attempts, retries=retries,
                        last_error=last_error, submitted=submitted, finished=finished)
        with self._change() as (tx, seq):
            old = self._check_jobs(tx, job_set_id, [index], status, allowed_from)[index][0]
            row = self._write_job(tx, seq, job_set_id, index, {"status": status, **fields})
        return old, row

    def set_jobs_status(self, job_set_id: str, indices: Sequence[int], status: JobStatus, *,
                        allowed_from: Collection[JobStatus] | None = None,
                        backend_job_id: str | None | Keep = KEEP, attempts: int | Keep = KEEP,
                        last_error: str | None | Keep = KEEP, finished: float | None | Keep = KEEP,
                        ) -> dict[int, tuple[JobStatus, str | None]]:
        """Move several jobs to ``status`` in one transaction; returns each one's status and
        backend id before, in index order."""
        fields = {"status": status, **_given(backend_job_id=backend_job_id, attempts=attempts,
                                             last_error=last_error, finished=finished)}
        with self._change() as (tx, seq):
            old = self._check_jobs(tx, job_set_id, indices, status, allowed_from)
            self._write_jobs(tx, seq, job_set_id, list(old), fields)
        return old

    def set_job_details(self, job_set_id: str, index: int, *, usage: float | None | Keep = KEEP,
                        usage_estimate: float | None | Keep = KEEP, session_id: str | None | Keep = KEEP,
                        session_mode: str | None | Keep = KEEP) -> JobRow:
        """Record what the service says a job costs and where it runs; returns the job's row."""
        fields = _given(usage=usage, usage_estimate=usage_estimate, session_id=session_id,
                        session_mode=session_mode)
        with self._change() as (tx, seq):
            self._check_jobs(tx, job_set_id, [index], None, None)
            return self._write_job(tx, seq, job_set_id, index, fields)

    def _check_jobs(self, tx: sqlite3.Connection, job_set_id: str, indices: Sequence[int],
                    status: JobStatus | None, allowed_from: Collection[JobStatus] | None,
                    ) -> dict[int, tuple[JobStatus, str | None]]:
        """The jobs' statuses and backend ids as stored, in index order; raises
        JobManagerUnknownJobSet for a job the set does not have, and IllegalMove for one whose
        status is not in ``allowed_from``."""
        wanted = sorted(set(indices))
        old: dict[int, tuple[JobStatus, str | None]] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            for idx, current, backend_job_id in tx.execute(
                    f"SELECT idx, status, backend_job_id FROM jobs WHERE job_set_id=? AND idx IN"
                    f" ({','.join('?' * len(part))}) ORDER BY idx", (job_set_id, *part)):
                old[idx] = (_JOB_STATUS[current], backend_job_id)
        missing = [i for i in wanted if i not in old]
        if missing:
            raise JobManagerUnknownJobSet(f"job set {job_set_id!r} has no job {missing[0]} in {self.path}")
        if allowed_from is not None and status is not None:
            for idx, (current, _id) in old.items():
                if current not in allowed_from:
                    raise IllegalMove(f"job {idx} of job set {job_set_id} is {current}: it cannot "
                                      f"become {status}")
        return old

    def _write_job(self, tx: sqlite3.Connection, seq: int, job_set_id: str, index: int,
                   fields: dict[str, Any]) -> JobRow:
        fields = {**fields, "updated": self.now()}
        cols = ", ".join(f"{k}=?" for k in fields)
        row = tx.execute(f"UPDATE jobs SET {cols}, seq=? WHERE job_set_id=? AND idx=?"
                         f" RETURNING {_JOB_FIELDS}", (*fields.values(), seq, job_set_id, index)).fetchone()
        if "status" in fields:
            tx.execute(self._HISTORY, (seq, fields["updated"], job_set_id, index))
        tx.execute("UPDATE job_sets SET seq=? WHERE id=?", (seq, job_set_id))
        return _job_row(row)

    def _write_jobs(self, tx: sqlite3.Connection, seq: int, job_set_id: str, indices: Sequence[int],
                    fields: dict[str, Any]) -> None:
        fields = {**fields, "updated": self.now()}
        cols = ", ".join(f"{k}=?" for k in fields)
        tx.executemany(f"UPDATE jobs SET {cols}, seq=? WHERE job_set_id=? AND idx=?",
                       [(*fields.values(), seq, job_set_id, i) for i in indices])
        if "status" in fields:
            tx.executemany(self._HISTORY, [(seq, fields["updated"], job_set_id, i) for i in indices])
        tx.execute("UPDATE job_sets SET seq=? WHERE id=?", (seq, job_set_id))

    def finish_job(self, job_set_id: str, job: JobRow,
                   experiments: Sequence[dict[str, Any] | str], error: str | None = None, *,
                   allowed_from: Collection[JobStatus] | None = None,
                   finished: float | None = None) -> tuple[JobStatus, JobRow]:
        """Store a done job's per-experiment results and mark it done, atomically; with
        ``error`` (some of its experiments failed on the backend) it is marked failed with that
        message instead, its results still kept; ``finished`` is its finish time (default:
        now). Returns its status before and its row after.

        Each result is a dict or its JSON text (adapters that run elsewhere send text, so it
        is serialised once, where it was made).

        Results are keyed by (experiment, round), so storing the same job twice (a resumed
        run racing a late result) replaces rather than double-counts.
        """
        status = JobStatus.FAILED if error else JobStatus.DONE
        with self._change() as (tx, seq):
            old = self._check_jobs(tx, job_set_id, [job.index], status, allowed_from)[job.index][0]
            tx.executemany(
                "INSERT OR REPLACE INTO results (job_set_id, experiment, round, data) VALUES (?,?,?,?)",
                [(job_set_id, job.start + offset, job.round,
                  exp if isinstance(exp, str) else json.dumps(exp, separators=(",", ":")))
                 for offset, exp in enumerate(experiments)],
            )
            row = self._write_job(tx, seq, job_set_id, job.index,
                                  {"status": status, "last_error": error,
                                   "finished": self.now() if finished is None else finished})
        return old, row

    # -- results -----------------------------------------------------------------------------

    def results(self, job_set_id: str, experiments: Sequence[int] | None = None
                ) -> dict[int, list[dict[str, Any]]]:
        """Stored result dicts by experiment, each a list ordered by shots round."""
        raw = self.raw_results(job_set_id, experiments)
        return {i: [json.loads(part) for part in parts] for i, parts in raw.items()}

    def raw_results(self, job_set_id: str, experiments: Sequence[int] | None = None
                    ) -> dict[int, list[str]]:
        """Stored results as JSON text by experiment, each a list ordered by shots round."""
        conn = self._connect()
        if experiments is None:
            rows = conn.execute(
                "SELECT experiment, round, data FROM results WHERE job_set_id=?"
                " ORDER BY experiment, round", (job_set_id,)
            ).fetchall()
        else:
            rows = []
            wanted = sorted(set(experiments))
            for i in range(0, len(wanted), 500):
                part = wanted[i:i + 500]
                marks = ",".join("?" * len(part))
                rows += conn.execute(
                    f"SELECT experiment, round, data FROM results WHERE job_set_id=?"
                    f" AND experiment IN ({marks}) ORDER BY experiment, round",
                    (job_set_id, *part),
                ).fetchall()
        out: dict[int, list[str]] = {}
        for experiment, _round, data in rows:
            out.setdefault(experiment, []).append(data)
        return out

    def raw_results_between(self, job_set_id: str, start: int, stop: int) -> dict[int, list[str]]:
        """Stored results as JSON text of experiments ``start`` to ``stop - 1``, by experiment,
        each a list ordered by shots round (one range read of the results' key)."""
        out: dict[int, list[str]] = {}
        for experiment, _round, data in self._connect().execute(
                "SELECT experiment, round, data FROM results WHERE job_set_id=? AND experiment >= ?"
                " AND experiment < ? ORDER BY experiment, round", (job_set_id, start, stop)):
            out.setdefault(experiment, []).append(data)
        return out

    def complete_experiments(self, job_set_id: str, start: int, stop: int, rounds: int = 1) -> list[int]:
        """The experiments between ``start`` and ``stop - 1`` with a result for every one of
        ``rounds`` shots rounds, in order (read from the results' key, not their data)."""
        if rounds == 1:
            sql = ("SELECT experiment FROM results WHERE job_set_id=? AND experiment >= ? AND"
                   " experiment < ? AND round = 0 ORDER BY experiment")
            args: tuple[Any, ...] = (job_set_id, start, stop)
        else:
            sql = ("SELECT experiment FROM results WHERE job_set_id=? AND experiment >= ? AND"
                   " experiment < ? GROUP BY experiment HAVING COUNT(*) = ? ORDER BY experiment")
            args = (job_set_id, start, stop, rounds)
        return [r[0] for r in self._connect().execute(sql, args)]

    def count_complete(self, job_set_id: str, start: int, stop: int, rounds: int = 1) -> int:
        """How many experiments between ``start`` and ``stop - 1`` have a result for every
        one of ``rounds`` shots rounds (counted in the results' key)."""
        if rounds == 1:
            return int(self._connect().execute(
                "SELECT COUNT(*) FROM results WHERE job_set_id=? AND experiment >= ? AND"
                " experiment < ? AND round = 0", (job_set_id, start, stop)).fetchone()[0])
        return len(self.complete_experiments(job_set_id, start, stop, rounds))

    def result_count(self, job_set_id: str) -> int:
        """How many (experiment, round) results are stored."""
        return int(self._connect().execute(
            "SELECT COUNT(*) FROM results WHERE job_set_id=?", (job_set_id,)
        ).fetchone()[0])

    # -- the change feed ---------------------------------------------------------------------

    def change_seq(self) -> int:
        """The store's current change number: it grows with every state-changing write, from
        any process, so a watcher that sees it unchanged knows nothing changed."""
        return int(self._connect().execute("SELECT seq FROM changes").fetchone()[0])

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on this thread's connection: it changes when any
        other connection (another thread or process) commits. The cheapest "anything new?"."""
        return int(self._connect().execute("PRAGMA data_version").fetchone()[0])

    def sets_changed_since(self, seq: int) -> SetChanges:
        """Which job sets were created or changed (their row or any job) and which were
        deleted after change number ``seq``; pass the returned ``seq`` next time."""
        conn = self._connect()
        # The number is read first: a change committed after it is reported now or next time,
        # never lost (at worst it is reported twice, which re-reading makes harmless).
        current = conn.execute("SELECT seq FROM changes").fetchone()[0]
        changed = [r[0] for r in conn.execute("SELECT id FROM job_sets WHERE seq > ?", (seq,))]
        deleted = [r[0] for r in conn.execute("SELECT id FROM deleted_sets WHERE seq > ?", (seq,))]
        return SetChanges(changed, deleted, current)

    def jobs_changed_since(self, job_set_id: str, seq: int) -> tuple[list[JobRow], int]:
        """The set's jobs written after change number ``seq``, in index order, and the number
        to pass next time. Reading a 10,000-job set's few changes costs an index range."""
        conn = self._connect()
        current = conn.execute("SELECT seq FROM changes").fetchone()[0]
        rows = conn.execute(self._JOB_COLUMNS + " AND seq > ? ORDER BY idx", (job_set_id, seq)).fetchall()
        return [_job_row(r) for r in rows], current

    def summaries(self, ids: Sequence[str] | None = None) -> list[JobSetSummary]:
        """Every job set (or those with these ids) as a listing shows it, newest first.

        One grouped query over the sets and their jobs, however many sets there are.
        """
        sql = (
            "SELECT s.id, s.name, s.tags, s.backend, s.shots, s.n_experiments, s.state, s.created,"
            " s.updated, s.finished, s.owner_host, s.owner_pid, s.heartbeat, s.seq,"
            " j.status, COUNT(j.idx), COALESCE(SUM(j.stop - j.start), 0),"
            " COALESCE(SUM(j.retries), 0), COALESCE(MAX(j.round), 0),"
            " SUM(j.usage), SUM(CASE WHEN j.usage IS NULL THEN j.usage_estimate END), s.stop_reason,"
            " SUM(j.estimated_seconds)"
            " FROM job_sets s LEFT JOIN jobs j ON j.job_set_id = s.id"
        )
        args: list[Any] = []
        if ids is not None:
            ids = list(ids)
            if not ids:
                return []
            sql += f" WHERE s.id IN ({','.join('?' * len(ids))})"
            args = ids
        sql += " GROUP BY s.id, j.status ORDER BY s.created DESC, s.id DESC"
        now = time.time()
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for row in self._connect().execute(sql, args):
            grouped.setdefault(row[0], []).append(row)
        out = []
        for set_id, parts in grouped.items():
            (_, name, tags, backend, shots, n, state, created, updated, finished, host, pid,
             heartbeat, seq) = parts[0][:14]
            counts = {_JOB_STATUS[p[14]]: p[15] for p in parts if p[14] is not None}
            rounds = 1 + max(p[18] for p in parts)
            done_units = sum(p[16] for p in parts if p[14] == JobStatus.DONE)
            used = [p[19] for p in parts if p[19] is not None]
            estimated = [p[20] for p in parts if p[20] is not None and p[14] not in JOB_FINAL]
            estimates = [p[22] for p in parts if p[22] is not None]
            out.append(JobSetSummary(
                id=set_id, name=name, tags=json.loads(tags), backend=backend, shots=shots,
                n_experiments=n, state=self._effective(state, host, pid, heartbeat, now),
                created=created, updated=updated, finished=finished, counts=counts,
                total_jobs=sum(counts.values()), experiments_done=done_units // rounds,
                retries=sum(p[17] for p in parts), seq=seq,
                units={_JOB_STATUS[p[14]]: p[16] for p in parts if p[14] is not None}, rounds=rounds,
                usage=sum(used) if used else None, usage_estimate=sum(estimated) if estimated else None,
                stop_reason=parts[0][21], estimated_seconds=sum(estimates) if estimates else None,
            ))
        return out

    def _job_set_row(self, row: tuple[Any, ...]) -> JobSetRow:
        (id_, name, tags, backend, shots, run_options, n, _names, state, created, updated,
         finished, host, pid, heartbeat, cancel_requested, seq, stop_reason) = row[:18]
        return JobSetRow(id_, name, json.loads(tags), backend, shots, json.loads(run_options), n,
                         ExperimentNames(self, id_, n), _SET_STATE[state], created, updated, finished, host,
                         pid, heartbeat, bool(cancel_requested), seq, stop_reason)


def damaged_message(path: Path, detail: str) -> str:
    """The one line a damaged store is reported with, and how to recover."""
    return (f"{path}: the store is damaged ({printable(detail)}); nothing was written to it. "
            "`qjm doctor` checks it and copies what can be read into a new store")


def store_problem(exc: BaseException, path: Path) -> StoreError | None:
    """The store error an SQLite or OS error stands for: a full disk (:class:`StoreFullError`)
    or a damaged file (:class:`StoreDamagedError`); None for anything else."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        primary = _SQLITE_FULL
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return StoreFullError(f"{path}: the disk holding the store is full")
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text \
            or "file is not a database" in text:
        return StoreDamagedError(damaged_message(path, str(exc)))
    return None


_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26

#: store files already warned about in this process
_warned_loose: set[Path] = set()


def _warn_if_others_read(path: Path) -> None:
    """Say on stderr (once per file and process) that others can read the store."""
    who = readable_by_others(path)
    key = path.absolute()
    if who is None or key in _warned_loose:
        return
    _warned_loose.add(key)
    mode = stat.S_IMODE(path.stat().st_mode)
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"qjm: warning: {path} can be read by {who} (mode {mode:04o}); it holds "
                         f"your circuits and results: run chmod 600 {path}\n")
        sys.stderr.flush()


def _unwritable(path: Path) -> str | None:
    """Why a store at ``path`` cannot be written (naming the file or folder and what to do),
    or None if it can. A file without any write permission counts as read-only even for root,
    who could write it anyway: someone made it read-only on purpose."""
    if path.exists():
        mode = path.stat().st_mode
        if not os.access(path, os.W_OK) or not mode & 0o222:
            return (f"{path}: the store file is read-only; make it writable (chmod u+w {path}) "
                    "or set QJM_HOME to another folder")
    folder = path.parent
    if folder.exists() and (not os.access(folder, os.W_OK) or not folder.stat().st_mode & 0o222):
        return (f"{folder}: the store's folder is not writable (SQLite keeps its journal next to "
                f"the store); make it writable (chmod u+w {folder}) or set QJM_HOME to another folder")
    return None


def _set_wal(conn: sqlite3.Connection, patience: float = 30.0) -> str:
    """Switch the file to WAL; the journal mode is returned. SQLite answers "locked" at once
    (no busy wait) while another process is creating the same file, so this retries."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
