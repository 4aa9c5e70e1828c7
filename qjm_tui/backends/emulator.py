"""A local stand-in for a remote quantum service: latency, queues, a job limit and faults.

The emulator behaves like a cloud backend seen from a client, so the engine's pacing, retries
and reattachment can be exercised without a network:

* ``submit`` takes ``latency`` seconds, then the service accepts the job (or refuses it with
  :class:`~qjm_tui.core.errors.BackendLimitReached` when ``max_jobs`` jobs are already in flight,
  the way a real service answers "too many jobs").
* An accepted job is queued for ``queue`` seconds, then runs for ``run`` seconds, by the wall
  clock. Its circuits are stored as QPY at submit time; its result is computed (by simulating
  those circuits with Aer) the first time it is fetched after its finish time, and then kept.
* Jobs live on disk, in a small SQLite file under ``dir`` (default ``$QJM_HOME/emulator``,
  else the platform's user data folder for qjm), so they outlive the client process: a new
  process can reattach by job id (:meth:`EmulatorBackend.can_reattach` is True) or find them by
  tag, exactly as with a real service.
* Faults are injected with a seeded random generator, so a run is repeatable: a submission may
  fail with a transient error, a job may end in a retryable failure, its result may be lost,
  and a status query may fail transiently.

Spec syntax: ``emulator`` or ``emulator:key=value,key=value,...`` with these keys:

==============  =========  ==================================================================
key             default    meaning
==============  =========  ==================================================================
latency         0.05       seconds a ``submit`` call takes
queue           0.2        seconds a job waits in the queue
run             0.1        seconds a job runs
max_jobs        5          jobs in flight (queued or running) at once; 0 = no limit
advertise       0          1: declare ``max_jobs`` in ``limits()``; 0: only refuse, like a
                           service that does not publish its limit
max_per_job     100        circuits per job (declared in ``limits()``)
max_shots       100000     shots per circuit (declared in ``limits()``)
fault_rate      0          chance that one submission attempt meets a fault: a refused
                           submission, a failed job or a lost result (one of the three, evenly);
                           also the default chance of a transient status error
submit_error    -          chance of a transient submit error (overrides fault_rate's share)
fail            -          chance that an accepted job fails (retryable)
lose            -          chance that a done job's result is lost (fetching it fails)
status_error    -          chance that one status query fails transiently
seed            none       seed for fault injection and for the simulator; with a seed, job ids
                           repeat too (the n-th job accepted in a fresh ``dir`` has one id)
stall           0          a stalled device: jobs accepted after the first ``stall`` (counted
                           over the whole ``dir``) start and never finish; 0 = never
device          none       a fake IBM device (``fake_manila``): noisy model and its qubit count
dir             see above  the folder holding the emulator's job file
==============  =========  ==================================================================

Example: ``emulator:latency=0.05,queue=0.2,run=0.1,max_jobs=5,fault_rate=0.2,seed=7``.

The keys above describe the service; a job's run options (``run(..., memory=True,
seed_simulator=7)``) travel with the job and reach the Aer simulator that computes its result,
so the emulator takes exactly that simulator's options (``qjm backends emulator`` lists them).

The emulator keeps its own record of every submission, refusal and job interval
(:meth:`EmulatorBackend.submissions`, :meth:`EmulatorBackend.max_concurrency`), so tests can
check what the "service" saw rather than what the client believes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qjm_tui.core.errors import (
    BackendLimitReached,
    PermanentBackendError,
    TransientBackendError,
    UnknownBackendError,
)
from qjm_tui.core.ports import BackendLimits, ExecutionBackend, JobPayload, JobStatusInfo, RunOptions
from qjm_tui.core.sqlite import immediate_transaction
from qjm_tui.core.status import JobStatus

_FLOAT_KEYS = ("latency", "queue", "run", "fault_rate", "submit_error", "fail", "lose", "status_error")
_INT_KEYS = ("max_jobs", "advertise", "max_per_job", "max_shots", "seed", "stall")
_STR_KEYS = ("device", "dir")
_RATE_KEYS = ("fault_rate", "submit_error", "fail", "lose", "status_error")
DEFAULTS: dict[str, Any] = {
    "latency": 0.05, "queue": 0.2, "run": 0.1, "max_jobs": 5, "advertise": 0,
    "max_per_job": 100, "max_shots": 100_000, "fault_rate": 0.0, "seed": None,
    "device": None, "dir": None, "stall": 0,
}

#: how long a stalled job runs (seconds): longer than anyone waits
_FOREVER = 10.0 ** 9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    accepted REAL NOT NULL,
    start_at REAL NOT NULL,
    finish_at REAL NOT NULL,
    cancelled_at REAL,
    fate TEXT NOT NULL,
    tags TEXT NOT NULL,
    shots INTEGER,
    run_options TEXT NOT NULL,
    sim TEXT NOT NULL,
    qpy BLOB NOT NULL,
    result TEXT,
    client_pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    job_id TEXT,
    tags TEXT NOT NULL,
    in_flight INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def parse_options(text: str) -> dict[str, Any]:
    """The options of an ``emulator:...`` spec, with defaults filled in.

    Raises :class:`UnknownBackendError` naming the bad key or value.
    """
    options = dict(DEFAULTS)
    where = f"backend spec 'emulator:{text}'"
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            raise UnknownBackendError(f"option {part!r} is not key=value", where)
        try:
            if key in _FLOAT_KEYS:
                number = float(value)
                if number < 0 or (key in _RATE_KEYS and number > 1):
                    raise ValueError
                options[key] = number
            elif key in _INT_KEYS:
                whole = int(value)
                if whole < 0:
                    raise ValueError
                options[key] = whole
            elif key in _STR_KEYS:
                if not value:
                    raise ValueError
                options[key] = value
            else:
                known = ", ".join(sorted((*_FLOAT_KEYS, *_INT_KEYS, *_STR_KEYS)))
                raise UnknownBackendError(f"unknown option {key!r} (known: {known})", where)
        except ValueError:
            kind = "a rate between 0 and 1" if key in _RATE_KEYS else \
                "a non-negative number" if key in _FLOAT_KEYS else \
                "a non-negative integer" if key in _INT_KEYS else "a non-empty value"
            raise UnknownBackendError(f"option {key} must be {kind}, got {value!r}", where) from None
    rate = options["fault_rate"]
    for key in ("submit_error", "fail", "lose"):
        options.setdefault(key, rate / 3)
    options.setdefault("status_error", rate)
    if options["max_per_job"] == 0 or options["max_shots"] == 0:
        raise UnknownBackendError("max_per_job and max_shots must be at least 1", where)
    return options


def default_dir() -> Path:
    """``$QJM_HOME/emulator``, else ``emulator`` in the platform's user data folder for qjm."""
    home = os.environ.get("QJM_HOME")
    if home:
        return Path(home).expanduser() / "emulator"
    import platformdirs

    return Path(platformdirs.user_data_dir("qjm", appauthor=False)) / "emulator"


class EmulatorBackend(ExecutionBackend):
    """The emulated remote service; see the module docstring for the options."""

    inline_submit = False
    poll_interval = 0.05

    def __init__(self, options: str = "", spec: str | None = None) -> None:
        super().__init__()
        self.options = parse_options(options)
        self.spec = spec or (f"emulator:{options}" if options else "emulator")
        self.directory = Path(self.options["dir"]).expanduser() if self.options["dir"] else default_dir()
        self.path = self.directory / "emulator.sqlite"
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        self._sim_kind = "aer"
        if self.options["device"]:
            from qjm_tui.backends.devices import fake_device

            fake_device(self.options["device"])  # a clear error for an unknown device
            self._sim_kind = f"aer:{self.options['device']}"
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise UnknownBackendError("the emulator's job file is not an SQLite file", str(self.path))

    # -- storage -----------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection to the job file. The folder and the file are made on first
        use, not when the adapter is built, so a request refused before it is submitted leaves
        the emulator's folder as it was."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UnknownBackendError(f"cannot create the emulator folder: {exc.strerror}",
                                          str(self.directory)) from None
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            with self._schema_lock:
                if not self._schema_ready:
                    try:
                        conn.executescript(_SCHEMA)
                    except sqlite3.DatabaseError as exc:
                        conn.close()
                        raise UnknownBackendError(f"the emulator's job file cannot be used: {exc}",
                                                  str(self.path)) from None
                    self._schema_ready = True
            self._local.conn = conn
        return conn

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._conn())

    @staticmethod
    def _in_flight(tx: sqlite3.Connection, now: float) -> int:
        row = tx.execute("SELECT COUNT(*) FROM jobs WHERE finish_at > ? AND cancelled_at IS NULL",
                         (now,)).fetchone()
        return int(row[0])

    def _next(self, tx: sqlite3.Connection, name: str) -> int:
        row = tx.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        value = (row[0] + 1) if row else 0
        tx.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value))
        return value

    def _rng(self, *salt: Any) -> random.Random:
        # One generator per decision, keyed by a service-side counter: the same seed and the
        # same sequence of calls give the same faults whatever thread makes the call.
        return random.Random(f"{self.options['seed']}:" + ":".join(map(str, salt)))

    # -- the interface -----------------------------------------------------------------------

    def limits(self) -> BackendLimits:
        max_jobs = self.options["max_jobs"] if self.options["advertise"] else None
        return BackendLimits(max_experiments_per_job=self.options["max_per_job"],
                             max_shots=self.options["max_shots"],
                             max_concurrent_jobs=max_jobs or None)

    def target(self) -> Any:
        from qjm_tui.backends.local import make_simulator

        return make_simulator(self._sim_kind)

    def run_options(self) -> RunOptions:
        """The run options of the Aer simulator that computes the results (see the module
        docstring): a job's options travel with it and reach that simulator as they are."""
        from qjm_tui.backends.options import backend_run_options

        return backend_run_options(self.target(), f"the simulator it runs ({self._sim_kind}): "
                                   "AerSimulator options and AerSimulator.run")

    def can_reattach(self) -> bool:
        return True

    def submit(self, payload: JobPayload) -> str:
        if len(payload.circuits) > self.options["max_per_job"]:
            raise PermanentBackendError(
                f"the job has {len(payload.circuits)} circuits; this emulator takes at most "
                f"{self.options['max_per_job']}")
        if payload.shots is not None and payload.shots > self.options["max_shots"]:
            raise PermanentBackendError(
                f"{payload.shots} shots requested; this emulator allows {self.options['max_shots']}")
        qpy = payload.qpy_bytes()
        time.sleep(self.options["latency"])
        tags = json.dumps(list(payload.tags))
        with self._tx() as tx:
            now = time.time()
            seq = self._next(tx, "submit_calls")
            rng = self._rng("submit", seq)
            fault = rng.random()
            in_flight = self._in_flight(tx, now)
            limit = self.options["max_jobs"]
            raise_after: Exception | None
            if fault < self.options["submit_error"]:
                tx.execute("INSERT INTO events (time, kind, job_id, tags, in_flight) VALUES "
                           "(?, 'submit_error', NULL, ?, ?)", (now, tags, in_flight))
                raise_after = TransientBackendError("emulated service error: submission failed (HTTP 503)")
            elif limit and in_flight >= limit:
                tx.execute("INSERT INTO events (time, kind, job_id, tags, in_flight) VALUES "
                           "(?, 'refused', NULL, ?, ?)", (now, tags, in_flight))
                raise_after = BackendLimitReached(
                    f"emulated service: {in_flight} jobs in flight, the limit is {limit}")
            else:
                raise_after = None
                fate = "ok"
                draw = rng.random()
                if draw < self.options["fail"]:
                    fate = "fail"
                elif draw < self.options["fail"] + self.options["lose"]:
                    fate = "lose"
                job_id = (f"emu-{rng.getrandbits(48):012x}" if self.options["seed"] is not None
                          else f"emu-{uuid.uuid4().hex[:12]}")
                start_at = now + self.options["queue"]
                run = self.options["run"]
                stall = self.options["stall"]
                if stall and tx.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] >= stall:
                    run = _FOREVER
                tx.execute(
                    "INSERT INTO jobs (id, seq, accepted, start_at, finish_at, cancelled_at, fate, tags,"
                    " shots, run_options, sim, qpy, result, client_pid)"
                    " VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, NULL, ?)",
                    (job_id, seq, now, start_at, start_at + run, fate, tags,
                     payload.shots, json.dumps(payload.run_options), self._sim_kind, qpy, os.getpid()),
                )
                tx.execute("INSERT INTO events (time, kind, job_id, tags, in_flight) VALUES "
                           "(?, 'accepted', ?, ?, ?)", (now, job_id, tags, in_flight + 1))
        if raise_after is not None:
            raise raise_after
        return job_id

    def _row(self, job_id: str) -> tuple[Any, ...]:
        row = self._conn().execute(
            "SELECT start_at, finish_at, cancelled_at, fate, shots, run_options, sim, qpy, result, seq"
            " FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise PermanentBackendError(f"the emulator has no job {job_id!r} (in {self.path})")
        return row

    def status(self, job_id: str) -> JobStatusInfo:
        if self.options["status_error"]:
            with self._tx() as tx:
                call = self._next(tx, "status_calls")
                fails = self._rng("status", call).random() < self.options["status_error"]
                if fails:
                    self._next(tx, "status_errors")
            if fails:
                raise TransientBackendError("emulated service error: status query timed out")
        start_at, finish_at, cancelled_at, fate, *_ = self._row(job_id)
        now = time.time()
        if cancelled_at is not None:
            return JobStatusInfo(JobStatus.CANCELLED)
        if now < start_at:
            return JobStatusInfo(JobStatus.QUEUED)
        if now < finish_at:
            return JobStatusInfo(JobStatus.RUNNING)
        if fate == "fail":
            return JobStatusInfo(JobStatus.FAILED, "emulated job failure: the device was recalibrated "
                                         "while the job ran", retryable=True)
        return JobStatusInfo(JobStatus.DONE)

    def result(self, job_id: str) -> list[dict[str, Any]]:
        _start, finish_at, cancelled_at, fate, shots, run_options, sim, qpy, result, seq = self._row(job_id)
        if cancelled_at is not None:
            raise PermanentBackendError(f"job {job_id} was cancelled; it has no result")
        wait = finish_at - time.time()
        if wait > 0:  # like Qiskit's job.result(): block until the job is done
            time.sleep(wait)
        if fate == "fail":
            raise PermanentBackendError(f"job {job_id} failed; it has no result")
        if fate == "lose":
            raise TransientBackendError(f"emulated service error: the result of job {job_id} "
                                        "was not found")
        if result is not None:
            return json.loads(result)
        from qjm_tui.backends.local import run_local_job

        options = json.loads(run_options)
        if self.options["seed"] is not None:
            options.setdefault("seed_simulator", (int(self.options["seed"]) * 1_000_003 + seq) % 2**31)
        experiments = run_local_job(sim, bytes(qpy), shots, options)
        text = json.dumps(experiments)
        with self._tx() as tx:
            tx.execute("UPDATE jobs SET result=? WHERE id=? AND result IS NULL", (text, job_id))
        return experiments

    def cancel(self, job_id: str) -> bool:
        with self._tx() as tx:
            row = tx.execute("SELECT finish_at, cancelled_at FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return False
            finish_at, cancelled_at = row
            now = time.time()
            if cancelled_at is not None:
                return True
            if finish_at <= now:
                return False
            tx.execute("UPDATE jobs SET cancelled_at=? WHERE id=?", (now, job_id))
            tx.execute("INSERT INTO events (time, kind, job_id, tags, in_flight) VALUES "
                       "(?, 'cancelled', ?, '[]', ?)", (now, job_id, self._in_flight(tx, now)))
        return True

    def find(self, tags: Sequence[str]) -> list[str]:
        wanted = set(tags)
        rows = self._conn().execute("SELECT id, tags FROM jobs ORDER BY seq").fetchall()
        return [job_id for job_id, text in rows if wanted <= set(json.loads(text))]

    # -- the service's own record ------------------------------------------------------------

    def submissions(self) -> list[dict[str, Any]]:
        """Every submit call the service saw: accepted, refused (limit) or failed (fault)."""
        rows = self._conn().execute(
            "SELECT time, kind, job_id, tags, in_flight FROM events ORDER BY seq").fetchall()
        return [{"time": t, "kind": k, "job_id": j, "tags": json.loads(g), "in_flight": n}
                for t, k, j, g, n in rows]

    def jobs(self) -> list[dict[str, Any]]:
        """Every accepted job with its timeline and planned fate (for tests and diagnostics)."""
        rows = self._conn().execute(
            "SELECT id, accepted, start_at, finish_at, cancelled_at, fate, tags, client_pid"
            " FROM jobs ORDER BY seq").fetchall()
        return [{"id": r[0], "accepted": r[1], "start_at": r[2], "finish_at": r[3],
                 "cancelled_at": r[4], "fate": r[5], "tags": json.loads(r[6]), "client_pid": r[7]}
                for r in rows]

    def faults(self) -> dict[str, int]:
        """How many faults the service injected, by kind: failed submissions, status queries
        that failed, and accepted jobs planned to fail or to lose their result."""
        conn = self._conn()
        submit = conn.execute("SELECT COUNT(*) FROM events WHERE kind='submit_error'").fetchone()[0]
        status = conn.execute("SELECT value + 1 FROM counters WHERE name='status_errors'").fetchone()
        fates = dict(conn.execute("SELECT fate, COUNT(*) FROM jobs GROUP BY fate").fetchall())
        return {"submit_error": submit, "status_error": status[0] if status else 0,
                "fail": fates.get("fail", 0), "lose": fates.get("lose", 0)}

    def max_concurrency(self) -> int:
        """The most jobs that were ever in flight at once, from the jobs' own intervals."""
        points: list[tuple[float, int]] = []
        for job in self.jobs():
            end = job["cancelled_at"] if job["cancelled_at"] is not None else job["finish_at"]
            points += [(job["accepted"], 1), (end, -1)]
        best = current = 0
        for _t, step in sorted(points, key=lambda p: (p[0], p[1])):  # ends before starts at a tie
            current += step
            best = max(best, current)
        return best

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "dir": str(self.directory), "limits": self.limits().__dict__}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
