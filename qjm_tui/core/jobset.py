"""ManagedJobSet and ManagedJob: the user's handles on a job set and its jobs.

Both are thin views over the store (the source of truth) and the manager's engine (which runs
the jobs). A handle retrieved in a new process reads the same rows as the one that created the
set, so everything here works after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qjm_tui.core import store as st
from qjm_tui.core.engine import backend_job_status_text
from qjm_tui.core.errors import (
    JobManagerInputError,
    JobManagerInvalidStateError,
    JobManagerJobNotFound,
    JobManagerTimeoutError,
)
from qjm_tui.core.inputs import MAX_NAME_LENGTH, MAX_TAG_LENGTH, check_label
from qjm_tui.core.results import ManagedResults, not_found

if TYPE_CHECKING:
    from qjm_tui.core.manager import JobManager

_TO_QISKIT = {
    st.SUBMITTING: "INITIALIZING",
    st.QUEUED: "QUEUED",
    st.RUNNING: "RUNNING",
    st.DONE: "DONE",
    st.FAILED: "ERROR",
    st.CANCELLED: "CANCELLED",
}


def qiskit_status(status: str) -> Any:
    """The ``qiskit.providers.JobStatus`` for a store status (None: not submitted yet)."""
    from qiskit.providers import JobStatus

    name = _TO_QISKIT.get(status)
    return None if name is None else JobStatus[name]


@dataclass(frozen=True)
class Progress:
    """How far a job set has got."""

    total_jobs: int
    done: int
    failed: int
    cancelled: int
    running: int
    pending: int
    experiments: int
    experiments_done: int
    retries: int
    elapsed: float
    eta: float | None
    state: str

    @property
    def finished_jobs(self) -> int:
        return self.done + self.failed + self.cancelled

    @property
    def fraction(self) -> float:
        return self.finished_jobs / self.total_jobs if self.total_jobs else 1.0


class _ExperimentIndex:
    """Finds an experiment's global index by index, circuit name or circuit, in one job set."""

    def __init__(self, row: st.JobSetRow) -> None:
        self._n = row.n_experiments
        self._names = row.experiment_names
        self._by_name: dict[str, int] | None = None

    def __call__(self, experiment: Any) -> int:
        if isinstance(experiment, bool):
            raise not_found(experiment, self._n)
        if isinstance(experiment, int):
            if 0 <= experiment < self._n:
                return experiment
            raise not_found(experiment, self._n)
        name = experiment if isinstance(experiment, str) else getattr(experiment, "name", None)
        if self._by_name is None:
            self._by_name = {}
            for i, known in enumerate(self._names):
                self._by_name.setdefault(known, i)  # the first of equal names, as list.index
        if name is not None and name in self._by_name:
            return self._by_name[name]
        raise not_found(experiment, self._n)


class ManagedJob:
    """One backend job of a job set: experiments ``start_index`` to ``end_index``."""

    def __init__(self, job_set: ManagedJobSet, row: st.JobRow) -> None:
        self._job_set = job_set
        self._row = row

    @property
    def index(self) -> int:
        return self._row.index

    @property
    def start_index(self) -> int:
        return self._row.start

    @property
    def end_index(self) -> int:
        """The last experiment in this job (inclusive, as in the original API)."""
        return self._row.stop - 1

    @property
    def shots_round(self) -> int:
        return self._row.round

    @property
    def attempts(self) -> int:
        return self._row.attempts

    @property
    def retries(self) -> int:
        return self._row.retries

    def job_id(self) -> str | None:
        """The backend's job id (None until submitted)."""
        return self._row.backend_job_id

    def name(self) -> str:
        return f"{self._job_set.name()}_{self._row.index}"

    def refresh(self) -> ManagedJob:
        """Re-read this job from the store."""
        self._row = self._job_set._store.job(self._job_set.job_set_id(), self._row.index)
        return self

    def status(self) -> Any:
        """The job's ``qiskit.providers.JobStatus`` (None if not yet submitted)."""
        return qiskit_status(self.refresh()._row.status)

    def store_status(self) -> str:
        return self._row.status

    def error_message(self) -> str | None:
        return self._row.last_error

    def __repr__(self) -> str:
        return (f"ManagedJob(index={self.index}, experiments={self.start_index}-{self.end_index},"
                f" status={self._row.status!r}, job_id={self.job_id()!r})")


class ManagedJobSet:
    """A set of jobs made from one ``run`` call; retrieve it later by :meth:`job_set_id`."""

    def __init__(self, manager: JobManager, job_set_id: str) -> None:
        self._manager = manager
        self._store = manager.store
        self._id = job_set_id

    # -- identity ----------------------------------------------------------------------------

    def job_set_id(self) -> str:
        return self._id

    def _row(self) -> st.JobSetRow:
        return self._store.get_job_set(self._id)

    def name(self) -> str:
        return self._row().name

    def tags(self) -> list[str]:
        return list(self._row().tags)

    def backend_spec(self) -> str:
        return self._row().backend

    def state(self) -> str:
        """``running``, ``done``, ``partial``, ``failed``, ``cancelled`` or ``interrupted``."""
        return self._state_of(self._row())

    def _state_of(self, row: st.JobSetRow) -> str:
        if row.state == st.SET_RUNNING and self._manager._runner(self._id) is not None:
            return st.SET_RUNNING
        return self._store.effective_state(row)

    def update_name(self, name: str) -> str:
        """Rename the job set; returns the new name."""
        check_label(name, "a job set's name", MAX_NAME_LENGTH)
        self._store.update_job_set(self._id, name=name)
        return name

    def update_tags(self, replacement_tags: Sequence[str] | None = None,
                    additional_tags: Sequence[str] | None = None,
                    removal_tags: Sequence[str] | None = None) -> list[str]:
        """Replace, add to or remove from the tags (in that order); returns the new tags."""
        for label, given in (("replacement_tags", replacement_tags),
                             ("additional_tags", additional_tags), ("removal_tags", removal_tags)):
            if given is not None and (isinstance(given, str)
                                      or not all(isinstance(t, str) and t for t in given)):
                raise JobManagerInputError(f"{label} must be a list of non-empty strings")
        for tag in [*(replacement_tags or []), *(additional_tags or [])]:
            check_label(tag, "a tag", MAX_TAG_LENGTH)
        tags = list(replacement_tags) if replacement_tags is not None else self.tags()
        for tag in additional_tags or []:
            if tag not in tags:
                tags.append(tag)
        tags = [t for t in tags if t not in set(removal_tags or [])]
        self._store.update_job_set(self._id, tags=tags)
        return tags

    # -- jobs --------------------------------------------------------------------------------

    def managed_jobs(self) -> list[ManagedJob]:
        """Every job of the set, in order."""
        return [ManagedJob(self, row) for row in self._store.jobs(self._id)]

    def jobs(self) -> list[ManagedJob | None]:
        """The jobs, with None for any not (yet) submitted to the backend."""
        return [j if j.job_id() is not None else None for j in self.managed_jobs()]

    def experiment_index(self, experiment: Any) -> int:
        """The global index of an experiment given by index, circuit name or circuit."""
        return _ExperimentIndex(self._row())(experiment)

    def job(self, experiment: Any) -> tuple[ManagedJob, int]:
        """The job that holds an experiment, and the experiment's index within that job."""
        index = self.experiment_index(experiment)
        for job in self.managed_jobs():
            if job.start_index <= index <= job.end_index and job.shots_round == 0:
                return job, index - job.start_index
        raise JobManagerJobNotFound(f"no job holds experiment {index}")

    def statuses(self) -> list[Any]:
        """Each job's ``qiskit.providers.JobStatus`` (None if not yet submitted)."""
        return [qiskit_status(r.status) for r in self._store.jobs(self._id)]

    def error_messages(self) -> str | None:
        """What went wrong in each failed job, or None if nothing did."""
        lines = []
        for row in self._store.jobs(self._id):
            if row.status == st.FAILED:
                lines.append(f"Experiments {row.start}-{row.stop - 1}, job index={row.index}, "
                             f"job ID={row.backend_job_id}:\n  {row.last_error}")
        return "\n".join(lines) if lines else None

    # -- progress and report -----------------------------------------------------------------

    def progress(self) -> Progress:
        """Job counts, experiments done, elapsed time and an estimate of the time left."""
        return self._progress(self._row(), self._store.jobs(self._id))

    def _progress(self, row: st.JobSetRow, jobs: Sequence[st.JobRow]) -> Progress:
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job.status] = counts.get(job.status, 0) + 1
        rounds = 1 + max((j.round for j in jobs), default=0)
        done_units = sum(j.stop - j.start for j in jobs if j.status == st.DONE)
        experiments_done = done_units // rounds
        end = row.finished if row.finished and row.state in st.SET_FINAL else time.time()
        elapsed = max(0.0, end - row.created)
        total_units = sum(j.stop - j.start for j in jobs)
        open_units = sum(j.stop - j.start for j in jobs if j.status not in st.JOB_FINAL)
        eta = None
        if open_units == 0:
            eta = 0.0
        elif done_units:
            eta = elapsed * open_units / max(total_units - open_units, 1)
        return Progress(
            total_jobs=len(jobs),
            done=counts.get(st.DONE, 0),
            failed=counts.get(st.FAILED, 0),
            cancelled=counts.get(st.CANCELLED, 0),
            running=sum(counts.get(s, 0) for s in (st.SUBMITTING, st.QUEUED, st.RUNNING)),
            pending=counts.get(st.PENDING, 0),
            experiments=row.n_experiments,
            experiments_done=experiments_done,
            retries=sum(j.retries for j in jobs),
            elapsed=elapsed,
            eta=eta,
            state=self._state_of(row),
        )

    def report(self, detailed: bool = True) -> str:
        """A text report of the job set and, if ``detailed``, of each job."""
        row = self._row()
        jobs = self._store.jobs(self._id)
        p = self._progress(row, jobs)
        lines = [
            f"Job set name: {row.name}",
            f"          ID: {row.id}",
            f"     backend: {row.backend}",
            f"        tags: {row.tags}",
            f"       state: {p.state}",
            "Summary report:",
            f"       Total jobs: {p.total_jobs}",
            f"  Successful jobs: {p.done}",
            f"      Failed jobs: {p.failed}",
            f"   Cancelled jobs: {p.cancelled}",
            f"     Running jobs: {p.running}",
            f"     Pending jobs: {p.pending}",
            f"          Retries: {p.retries}",
            f"      Experiments: {p.experiments_done}/{p.experiments} done",
        ]
        if detailed:
            lines += ["", "Detail report:"]
            for job in jobs:
                label = f"  experiments: {job.start}-{job.stop - 1}"
                if job.round:
                    label += f" (shots round {job.round})"
                lines += [
                    label,
                    f"    job index: {job.index}",
                    f"    job ID: {job.backend_job_id}",
                    f"    name: {row.name}_{job.index}",
                    f"    status: {backend_job_status_text(job.status)}",
                    f"    attempts: {job.attempts} (retries: {job.retries})",
                ]
                if job.last_error:
                    lines.append(f"    error: {job.last_error}")
        return "\n".join(lines)

    # -- waiting and results -----------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> str:
        """Block until every job is final; returns the job set's state.

        Works for a set run by this process (waits on its runner) or by another one (watches
        the store). Raises :class:`JobManagerTimeoutError` after ``timeout`` seconds and
        :class:`JobManagerInvalidStateError` if the set is interrupted (call :meth:`resume`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        runner = self._manager._runner(self._id)
        if runner is not None:
            if not runner.finished.wait(timeout):
                raise JobManagerTimeoutError(
                    f"job set {self._id} did not finish within {timeout} seconds")
            if runner.error is not None:
                raise JobManagerInvalidStateError(
                    f"job set {self._id} stopped on an internal error: {runner.error}"
                ) from runner.error
            return self.state()
        delay = 0.05
        while True:
            state = self.state()
            if state in st.SET_FINAL:
                return state
            if state == st.SET_INTERRUPTED:
                raise JobManagerInvalidStateError(
                    f"job set {self._id} was interrupted (the process running it ended); "
                    "call resume() to finish it"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise JobManagerTimeoutError(
                    f"job set {self._id} did not finish within {timeout} seconds")
            time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 1.5, 1.0)

    def results(self, timeout: float | None = None, partial: bool = False,
                refresh: bool = False) -> ManagedResults:
        """The combined results.

        Waits for every job to finish unless ``partial`` is True, in which case it returns at
        once with whatever results are stored. ``refresh`` is accepted for compatibility: the
        store is always read afresh.
        """
        del refresh
        if not partial:
            self.wait(timeout)
        row = self._row()
        jobs = self._store.jobs(self._id)
        stored = self._store.raw_results(self._id)
        rounds = 1 + max((j.round for j in jobs), default=0)
        complete = {i: parts for i, parts in stored.items() if len(parts) == rounds}

        # The results are a snapshot, so they explain missing data from the same snapshot
        # (one read, however many experiments are asked about).
        def why_missing(index: int) -> str:
            for job in jobs:
                if job.start <= index < job.stop and job.status != st.DONE:
                    detail = f": {job.last_error}" if job.last_error else ""
                    return f"its job {job.index} is {job.status}{detail}"
            return "it has not been stored"

        return ManagedResults(self._id, row.backend, complete, row.n_experiments,
                              _ExperimentIndex(row), why_missing)

    # -- control -----------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel every job that has not finished. Works at any moment, from any process.

        Returns True if the set is (now) stopped or stopping.
        """
        return self._manager._cancel(self._id)

    def retry_failed(self, backend: Any = None) -> ManagedJobSet:
        """Run again every job that failed or was cancelled, keeping the results of the rest."""
        return self._manager._restart(self._id, {st.FAILED, st.CANCELLED}, backend)

    def resume(self, backend: Any = None) -> ManagedJobSet:
        """Finish an interrupted job set: reattach to jobs the backend still has, and submit
        only the jobs that never finished. Jobs already done are not run again."""
        return self._manager._restart(self._id, set(), backend)

    def __repr__(self) -> str:
        return f"ManagedJobSet(id={self._id!r})"
