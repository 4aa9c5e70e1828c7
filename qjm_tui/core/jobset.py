"""ManagedJobSet and ManagedJob: the user's handles on a job set and its jobs.

Both are thin views over the store (the source of truth) and the manager that runs the jobs,
reached through the few methods :class:`JobSetOwner` lists. A handle retrieved in a new process
reads the same rows as the one that created the set, so everything here works after a restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from qjm_tui.core import store as st
from qjm_tui.core.errors import JobManagerInputError, JobManagerInvalidStateError, JobManagerJobNotFound
from qjm_tui.core.inputs import MAX_TAG_LENGTH, check_label
from qjm_tui.core.ports import ExecutionBackend
from qjm_tui.core.progress import Progress
from qjm_tui.core.results import ManagedResults, not_found
from qjm_tui.core.status import JOB_FINAL, JobStatus, SetState, job_status_phrase
from qjm_tui.core.text import printable
from qjm_tui.core.usage import job_usage_phrase, seconds_text, session_phrase, usage_phrase

_TO_QISKIT: Mapping[str, str] = {
    JobStatus.SUBMITTING: "INITIALIZING",
    JobStatus.QUEUED: "QUEUED",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.DONE: "DONE",
    JobStatus.FAILED: "ERROR",
    JobStatus.CANCELLED: "CANCELLED",
}


def qiskit_status(status: str) -> Any:
    """The ``qiskit.providers.JobStatus`` for a store status (None: not submitted yet)."""
    from qiskit.providers import JobStatus

    name = _TO_QISKIT.get(status)
    return None if name is None else JobStatus[name]


class JobSetOwner(Protocol):
    """What a job set's handle asks of the manager that made it (``JobManager`` is one): the
    store it reads, and the changes and waits that go through the manager's engine."""

    store: st.Store
    #: wall-clock time
    now: Callable[[], float]

    def job_set_state(self, job_set_id: str, row: st.JobSetRow | None = None) -> SetState: ...

    def running_here(self, job_set_id: str) -> bool: ...

    def backend_for(self, job_set_id: str) -> ExecutionBackend | None: ...

    def wait_for(self, job_set_id: str, timeout: float | None = None) -> SetState: ...

    def rename_job_set(self, job_set_id: str, name: str) -> str: ...

    def retag_job_set(self, job_set_id: str, tags: Sequence[str]) -> list[str]: ...

    def cancel_job_set(self, job_set_id: str) -> bool: ...

    def cancel_job(self, job_set_id: str, index: int) -> bool: ...

    def retry_job_set(self, job_set_id: str, backend: Any = None) -> ManagedJobSet: ...

    def resume_job_set(self, job_set_id: str, backend: Any = None) -> ManagedJobSet: ...

    def delete_job_set(self, job_set_id: str) -> None: ...


class _ExperimentIndex:
    """Finds an experiment's global index by index, circuit name or circuit, in one job set."""

    def __init__(self, row: st.JobSetRow) -> None:
        self._n = row.n_experiments
        self._names = row.experiment_names
        #: names looked up so far (the store finds a name without reading every one)
        self._by_name: dict[str, int] = {}

    def __call__(self, experiment: Any) -> int:
        if isinstance(experiment, bool):
            raise not_found(experiment, self._n)
        if isinstance(experiment, int):
            if 0 <= experiment < self._n:
                return experiment
            raise not_found(experiment, self._n)
        name = experiment if isinstance(experiment, str) else getattr(experiment, "name", None)
        if isinstance(name, str):
            found = self._by_name.get(name)
            if found is None:
                try:
                    found = self._names.index(name)  # the first of equal names, as list.index
                except ValueError:
                    found = -1
                self._by_name[name] = found
            if found >= 0:
                return found
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
        self._row = self._job_set.job_row(self._row.index)
        return self

    def status(self) -> Any:
        """The job's ``qiskit.providers.JobStatus`` (None if not yet submitted)."""
        return qiskit_status(self.refresh()._row.status)

    def store_status(self) -> str:
        return self._row.status

    def error_message(self) -> str | None:
        return self._row.last_error

    def job(self) -> BackendJob | None:
        """The backend's own job behind this one, as the original handed back the provider's
        job: ``status()``, ``result()``, ``cancel()`` go to the backend itself.

        None when there is none to reach: not submitted yet, or a local simulator job that
        ran in another process.
        """
        job_id = self.refresh()._row.backend_job_id
        if job_id is None:
            return None
        adapter = self._job_set.backend_adapter()
        if adapter is None or not adapter.knows(job_id):
            return None
        return BackendJob(adapter, job_id, self)

    def result(self, timeout: float | None = None, partial: bool = False) -> ManagedResults:
        """This job's experiments' results (waits for the job set like ``results``)."""
        return self._job_set.results(timeout=timeout, partial=partial,
                                     experiments=range(self.start_index, self.end_index + 1))

    def cancel(self) -> bool:
        """Cancel this job only (the rest of the set goes on). True if it is now stopped."""
        return self._job_set.cancel_job(self.index)

    def __repr__(self) -> str:
        return (f"ManagedJob(index={self.index}, experiments={self.start_index}-{self.end_index},"
                f" status={self._row.status.value!r}, job_id={self.job_id()!r})")


class BackendJob:
    """A backend's job as that backend sees it (what ``ManagedJob.job()`` returns).

    ``native`` is the provider's own job object (an IBM ``RuntimeJob``, a Qiskit ``Job``) where
    the adapter keeps one, else None.
    """

    def __init__(self, adapter: Any, job_id: str, managed: ManagedJob) -> None:
        self._adapter = adapter
        self._id = job_id
        self._managed = managed

    def job_id(self) -> str:
        return self._id

    @property
    def native(self) -> Any | None:
        getter = getattr(self._adapter, "native_job", None)
        return getter(self._id) if getter is not None else None

    def status(self) -> Any:
        """The backend's ``qiskit.providers.JobStatus`` for this job, asked afresh."""
        return qiskit_status(self._adapter.status(self._id).state)

    def result(self) -> Any:
        """The backend's result for this job as a ``qiskit.result.Result``."""
        from qiskit.result import Result

        from qjm_tui.core.results import result_dict

        experiments = [json.loads(e) if isinstance(e, str) else e for e in self._adapter.result(self._id)]
        return Result.from_dict(result_dict(self._adapter.spec, self._id, experiments))

    def cancel(self) -> bool:
        """Cancel the job (through the job set, so qjm does not resubmit it)."""
        return self._managed.cancel()

    def __repr__(self) -> str:
        return f"BackendJob({self._id!r}, backend={self._adapter.spec!r})"


class ManagedJobSet:
    """A set of jobs made from one ``run`` call; retrieve it later by :meth:`job_set_id`."""

    def __init__(self, manager: JobSetOwner, job_set_id: str) -> None:
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

    def backend_adapter(self) -> ExecutionBackend | None:
        """The adapter that runs (or would run) the set: this process's if it runs the set
        here, else one made from its backend spec; None if that cannot be made now."""
        return self._manager.backend_for(self._id)

    def state(self) -> SetState:
        """``running``, ``done``, ``partial``, ``failed``, ``cancelled`` or ``interrupted``."""
        return self._manager.job_set_state(self._id)

    def update_name(self, name: str) -> str:
        """Rename the job set; returns the new name."""
        return self._manager.rename_job_set(self._id, name)

    def update_tags(self, replacement_tags: Sequence[str] | None = None,
                    additional_tags: Sequence[str] | None = None,
                    removal_tags: Sequence[str] | None = None) -> list[str]:
        """Replace, add to or remove from the tags (in that order); returns the new tags.

        Raises :class:`JobManagerInvalidStateError` when no argument is given, as the original
        did (an empty ``replacement_tags`` list clears the tags).
        """
        if replacement_tags is None and additional_tags is None and removal_tags is None:
            raise JobManagerInvalidStateError(
                "update_tags() needs replacement_tags, additional_tags or removal_tags")
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
        return self._manager.retag_job_set(self._id, tags)

    # -- jobs --------------------------------------------------------------------------------

    def managed_jobs(self) -> list[ManagedJob]:
        """Every job of the set, in order."""
        return [ManagedJob(self, row) for row in self._store.jobs(self._id)]

    def job_row(self, index: int) -> st.JobRow:
        """Job ``index`` of the set as stored now."""
        return self._store.job(self._id, index)

    def cancel_job(self, index: int) -> bool:
        """Cancel job ``index`` only (the rest of the set goes on); True if it is now stopped."""
        return self._manager.cancel_job(self._id, index)

    def jobs(self) -> list[ManagedJob | None]:
        """The jobs, with None for any not (yet) submitted to the backend."""
        return [j if j.job_id() is not None else None for j in self.managed_jobs()]

    def retrieve_jobs(self) -> None:
        """Refresh the jobs from the store and, where the backend keeps jobs, check that each
        submitted job is still there, as the original retrieved every job from the provider.

        Raises :class:`JobManagerJobNotFound` naming the jobs the backend no longer has.
        """
        rows = self._store.jobs(self._id)
        adapter = self.backend_adapter()
        if adapter is None or not adapter.can_reattach():
            return
        lost = []
        for row in rows:
            job_id = row.backend_job_id
            if job_id and row.status not in JOB_FINAL and not adapter.knows(job_id):
                lost.append(f"job {row.index} ({row.backend_job_id})")
        if lost:
            raise JobManagerJobNotFound(f"{adapter.spec} no longer has {', '.join(lost)}; "
                                        "retry_failed() after cancel() runs them again")

    def experiment_index(self, experiment: Any) -> int:
        """The global index of an experiment given by index, circuit name or circuit."""
        return _ExperimentIndex(self._row())(experiment)

    def job(self, experiment: Any) -> tuple[ManagedJob, int]:
        """The job that holds an experiment, and the experiment's index within that job."""
        index = self.experiment_index(experiment)
        for row in self._store.jobs_holding(self._id, index):
            if row.round == 0:
                return ManagedJob(self, row), index - row.start
        raise JobManagerJobNotFound(f"no job holds experiment {index}")

    def statuses(self) -> list[Any]:
        """Each job's ``qiskit.providers.JobStatus`` (None if not yet submitted)."""
        return [qiskit_status(r.status) for r in self._store.jobs(self._id)]

    def unstored_experiments(self) -> list[int]:
        """The experiments whose circuits are not in the store, once nobody is storing them: the
        process that created the set ended before it had stored them all. They can only be run
        again from their source; empty for every set whose creation finished."""
        row = self._row()
        if row.state == SetState.RUNNING and self._manager.job_set_state(self._id, row) == SetState.RUNNING:
            return []
        missing: list[int] = []
        reached = 0  # experiments before this one are stored (the ranges come in order)
        for start, stop in self._store.stored_ranges(self._id):
            if start > reached:
                missing.extend(range(reached, min(start, row.n_experiments)))
            reached = max(reached, stop)
        missing.extend(range(reached, row.n_experiments))
        return missing

    def unrunnable_jobs(self) -> list[int]:
        """The unfinished jobs that hold an experiment of :meth:`unstored_experiments`: no
        retry or resume can run them."""
        missing = set(self.unstored_experiments())
        if not missing:
            return []
        return [job.index for job in self._store.jobs(self._id)
                if job.status != JobStatus.DONE and missing.intersection(range(job.start, job.stop))]

    def error_messages(self) -> str | None:
        """What went wrong in each failed job, or None if nothing did."""
        lines = []
        for row in self._store.jobs(self._id):
            if row.status == JobStatus.FAILED:
                lines.append(f"Experiments {row.start}-{row.stop - 1}, job index={row.index}, "
                             f"job ID={row.backend_job_id}:\n  {row.last_error}")
        return "\n".join(lines) if lines else None

    # -- progress and report -----------------------------------------------------------------

    def progress(self, row: st.JobSetRow | None = None) -> Progress:
        """Job counts, experiments done, elapsed time and an estimate of the time left.

        One grouped query, however many jobs the set has (progress displays call it often);
        ``row`` is the set's row if the caller has just read it.
        """
        found = self._store.summaries([self._id])
        if not found:
            self._row()  # raises the store's clear "no job set" error
        state = self._manager.job_set_state(self._id, row) if row is not None \
            else SetState.RUNNING if self._manager.running_here(self._id) else None
        return Progress.of(found[0], self._manager.now(), state)

    def report(self, detailed: bool = True) -> str:
        """A text report of the job set and, if ``detailed``, of each job."""
        row = self._row()
        jobs = self._store.jobs(self._id)
        p = self.progress(row)
        lines = [
            f"Job set name: {printable(row.name)}",
            f"          ID: {printable(row.id)}",
            f"     backend: {printable(row.backend)}",
            f"        tags: {printable(str(row.tags))}",
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
        used = [j.usage for j in jobs if j.usage is not None]
        estimated = [j.usage_estimate for j in jobs
                     if j.usage is None and j.usage_estimate is not None and j.status not in JOB_FINAL]
        usage = usage_phrase(sum(used) if used else None, sum(estimated) if estimated else None)
        if usage:
            lines.append(f"        QPU usage: {usage}")
        estimates = [j.estimated_seconds for j in jobs if j.estimated_seconds is not None]
        if estimates:
            # qjm's own estimate, from the backend's instruction durations, beside the service's
            lines.append(f"   Estimated time: {estimate_text(sum(estimates))} on the backend "
                         "(shots x (duration + repetition delay) + overhead, over the jobs)")
        if row.stop_reason and p.state == SetState.INTERRUPTED:
            lines += ["", f"Stopped: {printable(row.stop_reason)}",
                      f"  finished jobs keep their results; `qjm resume {printable(row.id)}` goes on "
                      "once that is fixed"]
        unstored = self.unstored_experiments()
        if unstored:
            lines += ["", f"Never stored: {printable(unstored_message(row, unstored))}"]
        if detailed:
            lines += ["", "Detail report:"]
            for job in jobs:
                label = f"  experiments: {job.start}-{job.stop - 1}"
                if job.round:
                    label += f" (shots round {job.round})"
                lines += [
                    label,
                    f"    job index: {job.index}",
                    f"    job ID: {printable(str(job.backend_job_id))}",
                    f"    name: {printable(row.name)}_{job.index}",
                    f"    status: {job_status_phrase(job.status)}",
                    f"    attempts: {job.attempts} (retries: {job.retries})",
                ]
                where = session_phrase(job.session_mode, job.session_id)
                if where:
                    lines.append(f"    runs in: {printable(where)}")
                job_usage = job_usage_phrase(job.usage, job.usage_estimate)
                if job_usage:
                    lines.append(f"    QPU usage: {job_usage}")
                if job.estimated_seconds is not None:
                    lines.append(f"    estimated time: {estimate_text(job.estimated_seconds)}")
                if job.last_error:
                    lines.append(f"    error: {printable(job.last_error)}")
        return "\n".join(lines)

    # -- waiting and results -----------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> SetState:
        """Block until every job is final; returns the job set's state.

        Works for a set run by this process (waits on its runner) or by another one (watches
        the store). Raises :class:`JobManagerTimeoutError` after ``timeout`` seconds and
        :class:`JobManagerInvalidStateError` if the set is interrupted (call :meth:`resume`).
        """
        return self._manager.wait_for(self._id, timeout)

    def results(self, timeout: float | None = None, partial: bool = False,
                refresh: bool = False, wait: bool = True,
                experiments: Sequence[int] | range | None = None) -> ManagedResults:
        """The combined results, once every job has reached a final state (as the original).

        ``partial``: also give the experiments that succeeded inside jobs that failed (a
        backend can fail some circuits of a job and run the rest); without it a failed job's
        experiments all read as unavailable. ``wait=False`` returns at once with what is stored
        now (a snapshot: call again for newer results). ``refresh`` is accepted for
        compatibility: the store is always read afresh.
        """
        del refresh
        if wait:
            self.wait(timeout)
        return stored_results(self._store, self._id, partial=partial, experiments=experiments)

    # -- control -----------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel every job that has not finished. Works at any moment, from any process.

        Returns True if the set is (now) stopped or stopping.
        """
        return self._manager.cancel_job_set(self._id)

    def retry_failed(self, backend: Any = None) -> ManagedJobSet:
        """Run again every job that failed or was cancelled, keeping the results of the rest."""
        return self._manager.retry_job_set(self._id, backend)

    def resume(self, backend: Any = None) -> ManagedJobSet:
        """Finish an interrupted job set: reattach to jobs the backend still has, and submit
        only the jobs that never finished. Jobs already done are not run again."""
        return self._manager.resume_job_set(self._id, backend)

    def delete(self) -> None:
        """Remove the job set and everything it holds from the store; refuses a running set
        (cancel it and wait first)."""
        self._manager.delete_job_set(self._id)

    def __repr__(self) -> str:
        return f"ManagedJobSet(id={self._id!r})"


def stored_results(store: st.Store, job_set_id: str, *, partial: bool = False,
                   experiments: Sequence[int] | range | None = None,
                   row: st.JobSetRow | None = None) -> ManagedResults:
    """The results a job set has in the store now, without waiting (a snapshot).

    What :meth:`ManagedJobSet.results` gives once it has waited; readers that hold only a
    store (the app) call it directly. ``partial`` and ``experiments`` as there; ``row`` is the
    set's row if the caller has just read it.
    """
    row = row if row is not None else store.get_job_set(job_set_id)
    if experiments is not None and len(experiments) == 1:
        # one experiment (the app's histogram): read only the jobs that hold it
        jobs = store.jobs_holding(job_set_id, experiments[0])
        rounds = store.rounds(job_set_id)
    else:
        jobs = store.jobs(job_set_id)
        rounds = 1 + max((j.round for j in jobs), default=0)
    taken = time.time()
    usable = {JobStatus.DONE, JobStatus.FAILED} if partial else {JobStatus.DONE}
    ranges: list[tuple[int, int]] = []
    for job in jobs:
        if job.round == 0 and job.status in usable:
            if ranges and ranges[-1][1] == job.start:
                ranges[-1] = (ranges[-1][0], job.stop)
            else:
                ranges.append((job.start, job.stop))
    ranges.sort()
    all_done = bool(jobs) and experiments is None and all(j.status == JobStatus.DONE for j in jobs)
    unsure = sorted((j.start, j.stop) for j in jobs if j.status == JobStatus.FAILED and partial)

    # The results are a snapshot, so they explain missing data from the same snapshot
    # (one read, however many experiments are asked about) and say so.
    when = time.strftime("%H:%M:%S", time.localtime(taken))

    def why_missing(index: int) -> str:
        for job in jobs:
            if job.start <= index < job.stop and job.status != JobStatus.DONE:
                detail = f": {job.last_error}" if job.last_error else ""
                hint = "" if job.status in JOB_FINAL else "; call results() again for newer ones"
                return (f"its job {job.index} was {job.status} when these results were read"
                        f" ({when}){detail}{hint}")
        if experiments is not None and index not in experiments:
            return "these results hold only the experiments of one job"
        return f"it was not stored when these results were read ({when}); call results() again"

    return ManagedResults(job_set_id, row.backend, row.n_experiments, _ExperimentIndex(row),
                          why_missing, store=store, usable=ranges, rounds=rounds,
                          wanted=experiments, all_done=all_done, unsure=unsure)


def unstored_message(row: st.JobSetRow, missing: Sequence[int]) -> str:
    """Why experiments of a set can never run: their circuits were never stored. Names them
    (ranges and the first few names) and says what to do."""
    names = [row.experiment_names[i] for i in missing[:5] if i < len(row.experiment_names)]
    more = f", and {len(missing) - len(names)} more" if len(missing) > len(names) else ""
    which = "experiment" if len(missing) == 1 else "experiments"
    return (f"the circuits of {which} {index_ranges(missing)} ({', '.join(names)}{more}) were never "
            f"stored: the process that created job set {row.id} ended while storing them; they "
            "cannot be retried or resumed, run them again from their source in a new job set")


def estimate_text(seconds: float) -> str:
    """An estimated time as a report gives it: the seconds as the service's usage reads
    (``12.5 s``), and from a minute on in minutes too (``183 s (3m03s)``)."""
    if seconds < 60:
        return seconds_text(seconds)
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    human = f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
    return f"{seconds_text(seconds)} ({human})"


def index_ranges(indices: Sequence[int]) -> str:
    """Sorted indices as ranges: ``0-3, 7, 9-12``."""
    parts: list[str] = []
    start = prev = None
    for i in indices:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(parts)
