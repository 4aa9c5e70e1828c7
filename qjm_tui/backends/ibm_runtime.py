"""IBM Quantum through qiskit-ibm-runtime: one SamplerV2 job per qjm job.

``ibm-runtime:<backend>`` (such as ``ibm-runtime:ibm_brisbane``) submits each job as a SamplerV2
job, tagged with the job set's tags and the job's client tag. Jobs live on IBM's side, so a new
process reattaches to them by id (``service.job(id)``) and finds jobs whose id was never
recorded by tag (``service.jobs(job_tags=...)``). Credentials: see
:mod:`qjm_tui.backends.ibm_common`. SamplerV2 needs circuits in the backend's instruction set,
so run with ``transpile=True`` unless the circuits are already transpiled.

Options follow the backend's name, comma separated: ``ibm-runtime:ibm_brisbane,mode=job``.

* ``mode=batch`` (the default; IBM's advice for many independent jobs): a set's jobs run in one
  Runtime batch, opened at the first submission and closed once the last job is submitted. A
  resumed set goes on in its batch while IBM still takes jobs in it, and opens a new one when
  not (it ran out of time, or was closed); a job IBM cancelled because its batch ran out of
  time is submitted again in a new batch.
* ``mode=session``: the same with a dedicated Runtime session (the QPU is held for the set).
* ``mode=job``: every job on its own.
* ``poll=SECONDS``: how often the jobs' states are asked (default 5).

Each job's batch or session id, the quantum seconds it used (from its metrics, once it ran) and
IBM's estimate before it runs are reported to the engine, which keeps them in the store.

A token that stops being accepted (HTTP 401: expired early, revoked) makes the adapter sign in
again once and repeat the call; if the new sign-in is refused too, or IBM answers 403 or says
the usage quota is used up (code 4317), the engine stops submitting the set
(:class:`~qjm_tui.core.errors.AccessRefused`).

``ibm-runtime:fake_<device>`` (such as ``ibm-runtime:fake_manila``) uses qiskit-ibm-runtime's
local testing mode instead: the same SamplerV2 code path, run locally on the fake device's noisy
model, with no account and no network. Those jobs live in this process only.

What is exercised where: the tests run this adapter, through the unmodified qiskit-ibm-runtime
client (sign-in, instance search, backends, jobs, batches, results, metrics and the client's own
retries), against :mod:`qjm_tui.testing.ibm_service`, a local IBM Quantum Platform, with
scripted faults; and the local testing mode end to end. Neither is IBM Quantum itself, which
the test machines cannot reach.

SamplerV2 returns one bit array per classical register; :func:`pub_result_to_experiment` turns
them into the ``ExperimentResult.to_dict()`` shape the store keeps (hex counts keys, header with
``creg_sizes`` and ``memory_slots``), so results from IBM read exactly like results from Aer.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qjm_tui.backends.base import QiskitJobs, import_runtime, limits_of, state_of_qiskit_status
from qjm_tui.backends.ibm_common import IBMCredentials, classify, ibm_job_status, resolve_credentials, scrub
from qjm_tui.core.errors import (
    AccessRefused,
    BackendConfigurationError,
    BackendError,
    PermanentBackendError,
    UnknownBackendError,
)
from qjm_tui.core.ports import (
    BackendLimits,
    ExecutionBackend,
    JobPayload,
    JobStatusInfo,
    RunOption,
    RunOptions,
)
from qjm_tui.core.status import JobStatus

log = logging.getLogger(__name__)

#: a tag marking jobs whose results should keep per-shot memory (so a reattaching process knows)
MEMORY_TAG = "qjm:memory"


# -- results ---------------------------------------------------------------------------------


def header_of(circuit: Any) -> dict[str, Any]:
    """What the result conversion needs from a circuit: its name and where each creg's bits sit."""
    registers = [[reg.name, reg.size, [circuit.find_bit(bit).index for bit in reg]]
                 for reg in circuit.cregs]
    return {"name": circuit.name, "registers": registers, "memory_slots": circuit.num_clbits}


def header_from_data(data: Any, name: str) -> dict[str, Any]:
    """The header when the circuit is not at hand: registers in the result's order, contiguous."""
    registers, offset = [], 0
    for reg_name in data.keys():
        size = getattr(data, reg_name).num_bits
        registers.append([reg_name, size, list(range(offset, offset + size))])
        offset += size
    return {"name": name, "registers": registers, "memory_slots": offset}


def pub_result_to_experiment(pub_result: Any, header: dict[str, Any], memory: bool = False
                             ) -> dict[str, Any]:
    """One SamplerV2 pub result as an ``ExperimentResult.to_dict()``-shaped dict."""
    data = pub_result.data
    slots = int(header["memory_slots"])
    shots = None
    wide = slots > 62
    values: Any = None
    for reg_name, size, positions in header["registers"]:
        bits = getattr(data, reg_name, None)
        if bits is None:
            raise PermanentBackendError(f"the result has no data for register {reg_name!r}")
        shots = bits.num_shots
        # bit k of the register, k = 0 first: unpack big-endian bytes and reverse.
        unpacked = np.unpackbits(bits.array.reshape(shots, -1), axis=-1)[:, ::-1][:, :size]
        if values is None:
            values = [0] * shots if wide else np.zeros(shots, dtype=np.uint64)
        for k, pos in enumerate(positions):
            column = unpacked[:, k]
            if wide:
                values = [v | (int(b) << pos) for v, b in zip(values, column, strict=True)]
            else:
                values |= column.astype(np.uint64) << np.uint64(pos)
    if values is None:  # no classical bits at all
        shots = int(pub_result.metadata.get("shots", 0)) if hasattr(pub_result, "metadata") else 0
        values = [0] * shots
    ints = [int(v) for v in values]
    counts: dict[str, int] = {}
    for value in ints:
        key = hex(value)
        counts[key] = counts.get(key, 0) + 1
    out_data: dict[str, Any] = {"counts": counts}
    if memory:
        out_data["memory"] = [hex(v) for v in ints]
    return {
        "shots": len(ints),
        "success": True,
        "status": "DONE",
        "data": out_data,
        "header": {
            "name": header["name"],
            "creg_sizes": [[name, size] for name, size, _ in header["registers"]],
            "memory_slots": slots,
        },
    }


# -- run options -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def sampler_run_options() -> RunOptions:
    """SamplerV2's options, from qiskit-ibm-runtime's ``SamplerOptions`` dataclass, and qjm's
    ``memory`` (keep each shot's outcome, as Aer's ``memory=True`` does). ``default_shots`` and
    ``environment.job_tags`` are qjm's to set: from ``shots`` and ``job_tags``."""
    from qjm_tui.backends.options import SHOTS_BY_QJM, TAGS_BY_QJM, dataclass_run_options

    runtime = import_runtime()
    from qiskit_ibm_runtime.options import SamplerOptions

    declared = dataclass_run_options(SamplerOptions, {"default_shots": SHOTS_BY_QJM,
                                                      "environment.job_tags": TAGS_BY_QJM})
    memory = RunOption("memory", (bool,), False, True)
    return RunOptions((memory, *declared),
                      f"SamplerV2 options (qiskit-ibm-runtime {runtime.__version__}) and memory")


# -- the adapter -----------------------------------------------------------------------------

#: execution modes, the first the default
MODES = ("batch", "session", "job")
#: options an ``ibm-runtime:<backend>,key=value`` spec takes
SPEC_OPTIONS = ("mode", "poll")


def parse_spec(spec: str, arg: str) -> tuple[str, dict[str, Any]]:
    """The backend name and options of ``ibm-runtime:<backend>[,mode=...][,poll=...]``;
    a clear :class:`UnknownBackendError` for anything else."""
    name, *pairs = [part.strip() for part in arg.split(",")]
    if not name or "=" in name:
        raise UnknownBackendError(f"backend {spec!r} names no backend; write it as "
                                  "ibm-runtime:<backend name>[,mode=batch|session|job][,poll=SECONDS]")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in SPEC_OPTIONS:
            raise UnknownBackendError(f"backend {spec!r}: unknown option {pair!r}; ibm-runtime takes "
                                      f"{', '.join(k + '=' for k in SPEC_OPTIONS)}")
        if key == "mode":
            if value not in MODES:
                raise UnknownBackendError(f"backend {spec!r}: mode={value!r} is not one of "
                                          f"{', '.join(MODES)}")
            options["mode"] = value
        else:
            try:
                options["poll"] = float(value)
            except ValueError:
                options["poll"] = -1.0
            if not 0 < options["poll"] <= 3600:
                raise UnknownBackendError(f"backend {spec!r}: poll={value!r} must be a number of "
                                          "seconds between 0 and 3600")
    return name, options


def _unauthorized(error: BaseException) -> bool:
    return getattr(error, "http_status", None) == 401


def _session_refused(exc: BaseException) -> bool:
    """Whether a submission was refused because its batch or session takes no more jobs."""
    text = str(exc).lower()
    return ("session" in text or "batch" in text) and ("closed" in text or "not accept" in text
                                                        or "does not accept" in text)


class _Group:
    """The batch or session one job set's jobs run in, in this process."""

    def __init__(self) -> None:
        #: the runtime's Batch or Session object, None until one is opened or taken up again
        self.context: Any = None
        self.session_id: str | None = None
        #: groups the set's jobs ran in before (from the store), oldest first
        self.earlier: list[str] = []


class IBMRuntimeBackend(ExecutionBackend):
    """A backend on IBM Quantum (or a fake device in local testing mode) via SamplerV2.

    ``service`` may be passed in (a ``QiskitRuntimeService`` or an object with its methods);
    otherwise one is made on first use from the resolved credentials. ``mode`` is the execution
    mode (see the module's documentation); ``poll_interval`` the seconds between state checks.
    """

    inline_submit = False

    def __init__(self, name: str, config: Any = None, *, service: Any = None, mode: str = "batch",
                 poll_interval: float | None = None, spec: str | None = None) -> None:
        super().__init__()
        if mode not in MODES:
            raise UnknownBackendError(f"ibm-runtime mode {mode!r} is not one of {', '.join(MODES)}")
        self.name = name
        self.spec = spec or f"ibm-runtime:{name}"
        self.local = name.startswith("fake_") and service is None
        self.mode = "job" if self.local else mode
        self.poll_interval = poll_interval or (0.1 if self.local else 5.0)
        self._credentials: IBMCredentials | None = None
        self._service = service
        self._own_service = service is None and not self.local
        self._backend: Any = None
        self._jobs = QiskitJobs(reattach=self._reattach)
        self._headers: dict[str, list[dict[str, Any]]] = {}
        self._local_tags: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._groups: dict[str, _Group] = {}
        self._groups_lock = threading.Lock()
        #: sign-ins so far: a call that failed on a stale token signs in again only once
        self._epoch = 0
        #: what this process knows of each job: its batch or session, and its usage figures
        self._session_of: dict[str, str] = {}
        self._estimates: dict[str, float | None] = {}
        self._usage: dict[str, float | None] = {}
        if self.local:
            from qjm_tui.backends.devices import fake_device

            self._backend = fake_device(name)
        elif service is None:
            self._credentials = resolve_credentials(config, self.spec)

    def __repr__(self) -> str:
        where = "local testing mode" if self.local else \
            (self._credentials.source if self._credentials else "given service")
        return f"IBMRuntimeBackend({self.name!r}, {where}, mode={self.mode})"

    # -- connection --------------------------------------------------------------------------

    def service(self) -> Any:
        """The ``QiskitRuntimeService``, signed in on first use."""
        with self._lock:
            if self._service is None:
                QiskitRuntimeService = import_runtime().QiskitRuntimeService  # noqa: N806

                assert self._credentials is not None
                try:
                    self._service = QiskitRuntimeService(**self._credentials.service_kwargs())
                except Exception as exc:
                    raise BackendConfigurationError(scrub(
                        f"cannot connect to IBM Quantum with the credentials from "
                        f"{self._credentials.source}: {type(exc).__name__}: {exc}",
                        self._credentials)) from None
            return self._service

    def backend(self) -> Any:
        """The IBM backend object (its ``target`` is used to validate and transpile)."""
        if self._backend is None:
            service = self.service()
            try:
                self._backend = service.backend(self.name)
            except Exception as exc:
                raise BackendConfigurationError(scrub(
                    f"IBM Quantum has no backend {self.name!r} for this account, or it cannot be "
                    f"reached: {type(exc).__name__}: {exc}", self._credentials)) from None
        return self._backend

    def _sign_in_again(self, epoch: int) -> None:
        """Drop the service and everything made through it (they hold the refused token), so
        the next call signs in afresh; once per refusal, however many threads saw it."""
        with self._lock:
            if self._epoch != epoch:
                return
            self._epoch += 1
            self._service = None
            self._backend = None
            self._jobs = QiskitJobs(reattach=self._reattach)
        with self._groups_lock:
            for group in self._groups.values():
                group.context = None  # taken up again by id through the new service
        log.info("IBM Quantum refused the token (401): signing in again")

    def _call(self, action: Callable[[], Any], doing: str) -> Any:
        """``action()``, its failures classified (:meth:`_classified`); on a refused token
        (401), sign in again and repeat it once."""
        epoch = self._epoch
        try:
            return action()
        except Exception as exc:
            error = self._classified(exc, doing)
            if not (self._own_service and _unauthorized(error)):
                raise error from None
        self._sign_in_again(epoch)
        try:
            return action()
        except Exception as exc:
            raise self._classified(exc, doing) from None

    def _classified(self, exc: Exception, doing: str) -> BaseException:
        """``exc`` as a backend error. A sign-in that fails once this process had to sign in
        again (this thread, or another that saw the token refused and dropped the service)
        means the account is refused: :class:`AccessRefused`, which stops the set for a resume.
        With refused credentials the client finds no instance and so says the device does not
        exist; the device was there before."""
        if isinstance(exc, BackendConfigurationError) and self._own_service and self._epoch > 0:
            return AccessRefused(f"{doing}: signing in to IBM Quantum again failed: {exc}")
        return exc if isinstance(exc, BackendError) else classify(exc, self._credentials, doing)

    def target(self) -> Any:
        return self.backend()

    def limits(self) -> BackendLimits:
        return limits_of(self.backend())

    def run_options(self) -> RunOptions:
        return sampler_run_options()

    def can_reattach(self) -> bool:
        return not self.local

    # -- batches and sessions ----------------------------------------------------------------

    def start_group(self, group: str, earlier: Sequence[str]) -> None:
        if self.mode == "job":
            return
        with self._groups_lock:
            self._groups.setdefault(group, _Group()).earlier = list(earlier)

    def end_group(self, group: str) -> None:
        with self._groups_lock:
            found = self._groups.get(group)
            context = found.context if found is not None else None
            if found is not None:
                found.context, found.session_id, found.earlier = None, None, []
        if context is not None:
            try:
                context.close()
            except Exception as exc:
                log.warning("closing IBM Quantum %s %s failed: %s", self.mode,
                            getattr(context, "session_id", "?"), scrub(str(exc), self._credentials))

    def _context_class(self) -> Any:
        runtime = import_runtime()
        return runtime.Batch if self.mode == "batch" else runtime.Session

    def _mode_for(self, group: str | None, refused: str | None = None) -> Any:
        """What a SamplerV2 runs in for ``group``: the backend (job mode), or the set's batch or
        session, taken up again or opened. ``refused`` is a batch the service just refused."""
        if self.mode == "job" or group is None:
            return self.backend()
        with self._groups_lock:
            found = self._groups.setdefault(group, _Group())
            if refused is not None and found.session_id == refused:
                found.context, found.session_id = None, None
            if found.context is not None:
                return found.context
            candidates = ([found.session_id] if found.session_id else []) + found.earlier[::-1]
            for session_id in dict.fromkeys(candidates):
                if session_id != refused and (context := self._take_up(session_id)) is not None:
                    found.context, found.session_id = context, session_id
                    return context
            found.earlier = []
            context = self._context_class()(backend=self.backend())
            found.context, found.session_id = context, context.session_id
            log.info("opened IBM Quantum %s %s", self.mode, context.session_id)
            return context

    def _take_up(self, session_id: str) -> Any:
        """The batch or session ``session_id`` if IBM still takes jobs in it, else None."""
        try:
            context = self._context_class().from_id(session_id, self.service())
            details = context.details() or {}
        except Exception as exc:
            log.info("IBM Quantum %s %s cannot be taken up again: %s", self.mode, session_id,
                     scrub(str(exc), self._credentials))
            return None
        if details.get("state") == "closed" or not details.get("accepting_jobs", False):
            return None
        log.info("went on in IBM Quantum %s %s", self.mode, session_id)
        return context

    def _session_ended(self, session_id: str | None) -> None:
        """A job came back cancelled because its batch ended: open a new one for the next job."""
        with self._groups_lock:
            for group in self._groups.values():
                if session_id is not None and group.session_id == session_id:
                    group.context, group.session_id = None, None

    # -- jobs --------------------------------------------------------------------------------

    def submit(self, payload: JobPayload) -> str:
        SamplerV2 = import_runtime().SamplerV2  # noqa: N806

        options = dict(payload.run_options)
        memory = bool(options.pop("memory", False))
        tags = list(payload.tags) + ([MEMORY_TAG] if memory else [])

        def run(refused: str | None = None) -> tuple[Any, str | None]:
            mode = self._mode_for(payload.group, refused)
            try:
                sampler = SamplerV2(mode=mode)
                sampler.options.environment.job_tags = tags
                if options:
                    sampler.options.update(**options)
            except Exception as exc:
                raise PermanentBackendError(scrub(
                    f"invalid SamplerV2 options {sorted(options)}: {type(exc).__name__}: {exc}",
                    self._credentials)) from None
            session_id = getattr(mode, "session_id", None) if mode is not self._backend else None
            try:
                return sampler.run(list(payload.circuits), shots=payload.shots), session_id
            except Exception as exc:
                if session_id is None or refused is not None or not _session_refused(exc):
                    raise
            # The batch took no more jobs (it ran out of time, or was closed): nothing was
            # created, so the job goes into a new one.
            log.info("IBM Quantum %s %s takes no more jobs; opening a new one", self.mode, session_id)
            return run(refused=session_id)

        job, session_id = self._call(run, "submitting the SamplerV2 job")
        job_id = str(job.job_id())
        self._jobs.add(job_id, job)
        with self._lock:
            self._headers[job_id] = [header_of(c) for c in payload.circuits]
            if session_id:
                self._session_of[job_id] = session_id
        if self.local:
            self._local_tags[job_id] = tags
        return job_id

    def _reattach(self, job_id: str) -> Any:
        if self.local:
            raise PermanentBackendError(f"local-testing-mode job {job_id} ended with the process "
                                        "that ran it")
        try:
            return self.service().job(job_id)
        except Exception as exc:
            raise classify(exc, self._credentials, f"reattaching to job {job_id}") from None

    def status(self, job_id: str) -> JobStatusInfo:
        if self.local:
            return ibm_job_status(self._jobs.get(job_id), job_id, self._credentials)

        def ask() -> tuple[Any, Any]:
            job = self._jobs.get(job_id)
            return job, job.status()

        job, raw = self._call(ask, f"asking the status of job {job_id}")
        state = state_of_qiskit_status(raw)
        message, retryable = None, False
        if state == JobStatus.FAILED:
            try:
                message = str(job.error_message() or "")
            except Exception:
                message = ""
            message = scrub(message or "IBM Quantum reported the job failed", self._credentials)
            retryable = any(w in message.lower() for w in ("internal", "timed out", "temporar", "try again"))
        session_id = self._session_of.get(job_id) or getattr(job, "_session_id", None)
        if state == JobStatus.CANCELLED:
            # The runtime keeps the service's reason only on the job object.
            message = getattr(job, "_reason", None) or None
            if message and ("maximum time" in message.lower() or "expired" in message.lower()):
                self._session_ended(session_id)
        return JobStatusInfo(state, message, retryable, usage=self._usage_of(job, job_id, state),
                             usage_estimate=self._estimate_of(job, job_id, state),
                             session_id=session_id, session_mode=self.mode if session_id else None)

    def _estimate_of(self, job: Any, job_id: str, state: JobStatus) -> float | None:
        """IBM's estimate of the job's quantum seconds, asked once while it waits or runs."""
        if state not in (JobStatus.QUEUED, JobStatus.RUNNING) or job_id in self._estimates:
            return self._estimates.get(job_id)
        try:
            value = (job.usage_estimation or {}).get("quantum_seconds")
        except Exception as exc:
            log.debug("no usage estimate for %s: %s", job_id, exc)
            return None
        self._estimates[job_id] = None if value is None else float(value)
        return self._estimates[job_id]

    def _usage_of(self, job: Any, job_id: str, state: JobStatus) -> float | None:
        """The quantum seconds the job used (its metrics), asked once it ran."""
        if state not in (JobStatus.DONE, JobStatus.FAILED) or job_id in self._usage:
            return self._usage.get(job_id)
        try:
            value = ((job.metrics() or {}).get("usage") or {}).get("quantum_seconds")
        except Exception as exc:
            log.info("the usage of job %s could not be read: %s", job_id, scrub(str(exc), self._credentials))
            return None
        self._usage[job_id] = None if value is None else float(value)
        return self._usage[job_id]

    def _headers_for(self, job_id: str, job: Any, n: int, data: list[Any]) -> list[dict[str, Any]]:
        with self._lock:
            known = self._headers.get(job_id)
        if known is not None and len(known) == n:
            return known
        circuits: list[Any] = []
        try:  # a reattached job: the service still has its inputs
            circuits = [pub[0] if isinstance(pub, (tuple, list)) else getattr(pub, "circuit", pub)
                        for pub in job.inputs.get("pubs", [])]
        except Exception:
            circuits = []
        if len(circuits) == n and all(hasattr(c, "cregs") for c in circuits):
            return [header_of(c) for c in circuits]
        return [header_from_data(d, f"{job_id}-{i}") for i, d in enumerate(data)]

    def result(self, job_id: str) -> list[dict[str, Any]]:
        def fetch() -> tuple[Any, Any]:
            job = self._jobs.get(job_id)
            return job, job.result()

        job, primitive_result = self._call(fetch, f"fetching the result of job {job_id}")
        pubs = list(primitive_result)
        memory = MEMORY_TAG in self._tags(job_id, job)
        headers = self._headers_for(job_id, job, len(pubs), [p.data for p in pubs])
        experiments = [pub_result_to_experiment(p, h, memory) for p, h in zip(pubs, headers, strict=True)]
        self._jobs.forget(job_id)
        with self._lock:
            self._headers.pop(job_id, None)
            self._session_of.pop(job_id, None)
            self._estimates.pop(job_id, None)
            self._usage.pop(job_id, None)
        return experiments

    def _tags(self, job_id: str, job: Any) -> list[str]:
        if self.local:
            return self._local_tags.get(job_id, [])
        try:
            return list(job.tags or [])
        except Exception:
            return []

    def cancel(self, job_id: str) -> bool:
        return self._jobs.cancel(job_id)

    def find(self, tags: Sequence[str]) -> list[str]:
        wanted = list(tags)
        if self.local:
            return [i for i, t in self._local_tags.items() if set(wanted) <= set(t)]
        jobs = self._call(lambda: self.service().jobs(job_tags=wanted, backend_name=self.name, limit=50),
                          f"searching jobs tagged {wanted}")
        return [str(job.job_id()) for job in jobs]

    def describe(self) -> dict[str, Any]:
        mode = "local testing" if self.local else f"IBM Quantum, {self.mode} mode"
        return {"spec": self.spec, "mode": mode,
                "credentials": None if self._credentials is None else self._credentials.source}
