"""The app's one link to the core: it listens to the engine, watches the store, reads it, and
tells the app what changed in typed messages (:mod:`qjm_tui.tui.messages`). No widget holds a
store.

The store is the truth: a set run by another process changes it without an event here. So the
engine's events (which arrive on engine threads) only make the next look come sooner, and every
look, in a thread worker, reads what changed since the last one: the sets created, changed or
deleted, the sets shown running (whose owner may have died without a word, every few seconds),
and the changed jobs of the set the jobs pane shows. What a look read is merged with what the
app has not applied yet, newest per set and per job (a job row by its change number), and
posted as one :class:`~qjm_tui.tui.messages.SetsChanged`; a newer one therefore replaces an
older one still waiting, and the app applies it inside one ``batch_update()``.

The reads a widget asks for run here too: all the jobs of the set the jobs pane shows (which
also makes it the set whose changed jobs the looks read), the counts the histogram shows, one
job in full for the job view. Each answers with a message; the functions that read are in
:mod:`qjm_tui.tui.readmodel`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App
from textual.message_pump import MessagePump
from textual.worker import get_current_worker

from qjm_tui import JobManager, views
from qjm_tui.core.events import Event
from qjm_tui.core.store import JobRow, JobSetSummary
from qjm_tui.core.text import error_text
from qjm_tui.tui.messages import CountsRead, JobRead, JobStatusesChanged, SetsChanged
from qjm_tui.tui.readmodel import JobReading, Reading, read_combined, read_experiment, read_job

log = logging.getLogger("qjm_tui.tui")

#: how often the sets shown running are read again whatever the change number says (seconds)
LIVENESS_INTERVAL = 2.0


class Unapplied:
    """What the looks read and posted that the app has not applied yet: the newest summary of
    each set (or that it was deleted) and the newest row of each changed job of the watched set,
    each marked with the generation of the message that last carried it.

    Every message carries all of it, so any one of them, applied, leaves nothing behind; and
    applying generation ``g`` forgets only what no newer read has changed since."""

    def __init__(self) -> None:
        self.generation = 0
        #: set id -> (generation, summary, or None for deleted)
        self.sets: dict[str, tuple[int, JobSetSummary | None]] = {}
        self.jobs_of: str | None = None
        #: job index -> (generation, row) for the set ``jobs_of``
        self.jobs: dict[int, tuple[int, JobRow]] = {}
        self.jobs_seq = 0

    def watch(self, set_id: str | None) -> None:
        """The jobs pane shows another set: the changed jobs held for the old one are moot."""
        self.jobs_of, self.jobs, self.jobs_seq = set_id, {}, 0

    def add(self, summaries: Sequence[JobSetSummary], deleted: Sequence[str],
            rows: Sequence[JobRow] = (), seq: int = 0) -> SetsChanged | None:
        """Merge one look's reads (``rows``: changed jobs of the watched set, read at change
        number ``seq``) and make the message that carries everything unapplied; None if the look
        found nothing."""
        if not (summaries or deleted or rows):
            return None
        self.generation += 1
        generation = self.generation
        for summary in summaries:
            self.sets[summary.id] = (generation, summary)
        for set_id in deleted:
            self.sets[set_id] = (generation, None)
        for row in rows:
            held = self.jobs.get(row.index)
            if held is None or held[1].seq < row.seq:
                self.jobs[row.index] = (generation, row)
        if rows:
            self.jobs_seq = max(self.jobs_seq, seq)
        jobs = None
        if self.jobs_of is not None and self.jobs:
            jobs = JobStatusesChanged(self.jobs_of, [self.jobs[i][1] for i in sorted(self.jobs)],
                                      self.jobs_seq, full=False)
        return SetsChanged(generation, [s for _, s in self.sets.values() if s is not None],
                           [i for i, (_, s) in self.sets.items() if s is None], jobs)

    def applied(self, generation: int) -> None:
        """The app applied message ``generation``: forget what it carried, unless newer."""
        self.sets = {k: v for k, v in self.sets.items() if v[0] > generation}
        self.jobs = {k: v for k, v in self.jobs.items() if v[0] > generation}


class Bridge:
    """Watches ``manager``'s store and engine for ``app`` (see the module's documentation).

    ``watch_interval``: seconds between looks at the store when nothing is heard (changes made
    by other processes); ``flush_interval``: how soon after an engine event the store is read.
    """

    def __init__(self, app: App[Any], manager: JobManager, *, watch_interval: float = 1.0,
                 flush_interval: float = 0.5) -> None:
        self.app = app
        self.manager = manager
        self.store = manager.store
        self.watch_interval = watch_interval
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None
        #: the store's change number read up to
        self._seq = -1
        #: each listed set's state, as last read: those running are read again for liveness
        self._states: dict[str, str] = {}
        self._checked_liveness = 0.0
        #: a look is under way; another was asked for meanwhile
        self._looking = False
        self._look_again = False
        #: the set the jobs pane shows, and the change number its jobs were read up to (None
        #: while the read of all of them is under way)
        self._watched: str | None = None
        self._watched_seq: int | None = None
        self._watched_load = 0
        #: a look saw the watched set change while its jobs were being read: read its changed
        #: jobs at the next look, whether or not the set changes again
        self._catch_up = False
        self._unapplied = Unapplied()

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Listen to the engine, look at the store now and then every ``watch_interval``."""
        self._unsubscribe = self.manager.subscribe(self._on_engine_event)
        self.app.set_interval(self.watch_interval, self.look)
        self.app.set_interval(self.flush_interval, self._flush)
        self.look()

    def stop(self) -> None:
        """Stop listening to the engine (the app's timers and workers end with the app)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_engine_event(self, event: Event) -> None:
        """Called on engine threads: only note that something changed (no UI work here)."""
        self._dirty.set()

    def _flush(self) -> None:
        """A few times a second: if the engine said something changed, look."""
        if self._dirty.is_set():
            self._dirty.clear()
            self.look()

    def look(self) -> None:
        """Read what changed in the store, in a worker; one look at a time (one asked for while
        another is under way runs when it ends)."""
        with self._lock:
            if self._looking:
                self._look_again = True
                return
            self._looking, self._look_again = True, False
        running: list[str] = []
        now = time.monotonic()
        if now - self._checked_liveness >= LIVENESS_INTERVAL:
            self._checked_liveness = now
            running = [set_id for set_id, state in self._states.items() if state == "running"]
        self.app.run_worker(partial(self._look, running), thread=True, group="bridge-look",
                            exit_on_error=False)

    def _look(self, running: list[str]) -> None:
        store = self.store
        try:
            self._read_changes(running)
        except Exception as exc:  # noqa: BLE001 - shown to the user, not raised into the UI
            log.exception("reading the store failed")
            self.app.call_from_thread(self.app.notify, f"Reading the store failed: "
                                      f"{views.printable(str(exc))}. The app keeps trying; see the "
                                      "log for details.", severity="error")
        finally:
            store.release_thread_connection()
            with self._lock:
                self._looking = False
                if self._look_again:
                    self._dirty.set()  # looked for at the next flush

    def _read_changes(self, running: list[str]) -> None:
        """One look (see :meth:`look`), posting what it found."""
        store = self.store
        with self._lock:
            since = self._seq
            watched, watched_seq, catch_up = self._watched, self._watched_seq, self._catch_up
        seq = store.change_seq()
        changed: list[str] = []
        deleted: list[str] = []
        if seq != since:
            changes = store.sets_changed_since(max(since, 0))
            changed, deleted, seq = list(changes.changed), list(changes.deleted), changes.seq
        again = [set_id for set_id in running if set_id not in changed]
        summaries = store.summaries(changed + again) if changed or again else []
        rows: list[JobRow] = []
        rows_seq = 0
        read_jobs = watched is not None and (watched in changed or catch_up)
        if read_jobs and watched is not None and watched_seq is not None:
            rows, rows_seq = store.jobs_changed_since(watched, watched_seq)
        fresh = set(changed)
        # a set read only to check its owner is news only if its state changed
        summaries = [s for s in summaries if s.id in fresh or s.state != "running"]
        with self._lock:
            self._seq = max(self._seq, seq)
            for summary in summaries:
                self._states[summary.id] = summary.state
            for set_id in deleted:
                self._states.pop(set_id, None)
            if self._watched != watched or self._watched_seq != watched_seq:
                # the pane moved on to another set, or all the set's jobs were read meanwhile
                rows = []
                if read_jobs and self._watched == watched:
                    self._catch_up = True
                    if self._watched_seq is not None:
                        self._dirty.set()
            elif read_jobs and watched_seq is None:
                self._catch_up = True  # its jobs are being read: read the changes after that
            elif read_jobs:
                self._catch_up = False
                self._watched_seq = max(watched_seq or 0, rows_seq)
            message = self._unapplied.add(summaries, deleted, rows, rows_seq)
            if message is not None:
                # posted under the lock, so it queues after a read of all the jobs it follows
                self.app.post_message(message)

    @property
    def idle(self) -> bool:
        """Whether the bridge has looked at the store at least once and has nothing to look at
        now: no look under way, nothing heard since the last one."""
        with self._lock:
            return self._seq >= 0 and not self._looking and not self._dirty.is_set()

    def applied(self, message: SetsChanged) -> None:
        """The app applied ``message``: what it carried need not be carried again."""
        with self._lock:
            self._unapplied.applied(message.generation)

    # -- what the widgets ask for ------------------------------------------------------------

    def load_jobs(self, set_id: str | None, load: int) -> None:
        """Read every job of ``set_id`` (the read numbered ``load``) and from then on the changed
        ones at each look; None: the jobs pane shows no set."""
        with self._lock:
            self._watched, self._watched_seq, self._catch_up = set_id, None, False
            self._watched_load = load
            self._unapplied.watch(set_id)
        if set_id is not None:
            self.app.run_worker(partial(self._load_jobs, set_id, load), thread=True, exclusive=True,
                                group="bridge-jobs", exit_on_error=False)

    def _load_jobs(self, set_id: str, load: int) -> None:
        store = self.store
        try:
            # the change number first, so that nothing written after it is missed
            seq = store.change_seq()
            rows = store.jobs(set_id)
            message = JobStatusesChanged(set_id, rows, seq, full=True, load=load)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never raised into the UI
            log.exception("reading the jobs of %s failed", set_id)
            seq, message = -1, JobStatusesChanged(set_id, [], 0, full=True, load=load,
                                                  error=error_text(exc))
        finally:
            store.release_thread_connection()
        if get_current_worker().is_cancelled:
            return
        with self._lock:
            if self._watched != set_id or self._watched_load != load:
                return  # the pane moved on
            if message.error is None:
                self._watched_seq = seq
                if self._catch_up:
                    self._dirty.set()
            else:
                self._watched = None
            self.app.post_message(message)

    def read_counts(self, reply_to: MessagePump, request: int, set_id: str,
                    experiment: int | None) -> None:
        """Read the counts of one experiment, or of all summed (``experiment`` None), and answer
        ``reply_to`` with :class:`CountsRead`; a newer read cancels an older one under way."""
        self.app.run_worker(partial(self._read_counts, reply_to, request, set_id, experiment),
                            thread=True, exclusive=True, group="bridge-counts", exit_on_error=False)

    def _read_counts(self, reply_to: MessagePump, request: int, set_id: str,
                     experiment: int | None) -> None:
        worker = get_current_worker()
        reading: Reading | None
        try:
            if experiment is None:
                reading = read_combined(self.store, set_id, lambda: worker.is_cancelled)
            else:
                reading = read_experiment(self.store, set_id, experiment)
        except Exception as exc:  # noqa: BLE001 - shown in the pane, not raised into the UI
            log.exception("reading the results of job set %s failed", set_id)
            reading = Reading(set_id, experiment, None, None,
                              f"Reading the store failed: {error_text(exc)}", failed=True)
        finally:
            self.store.release_thread_connection()
        if reading is not None and not worker.is_cancelled:
            reply_to.post_message(CountsRead(request, reading))

    def read_job(self, reply_to: MessagePump, set_id: str, index: int, since: int,
                 log_files: Sequence[Path]) -> None:
        """Read one job in full unless the store is unchanged since ``since`` (-1: read it), and
        answer ``reply_to`` with :class:`JobRead`."""
        self.app.run_worker(partial(self._read_job, reply_to, set_id, index, since, list(log_files)),
                            thread=True, exclusive=True, group="bridge-job", exit_on_error=False)

    def _read_job(self, reply_to: MessagePump, set_id: str, index: int, since: int,
                  log_files: list[Path]) -> None:
        reading: JobReading | None
        try:
            reading = read_job(self.store, set_id, index, since, log_files)
        except Exception as exc:  # noqa: BLE001 - said on the screen, never raised into the UI
            log.exception("reading job %s of %s failed", index, set_id)
            reading = JobReading(None, [], [], since, error_text(exc))
        finally:
            self.store.release_thread_connection()
        if reading is not None:
            reply_to.post_message(JobRead(reading))
