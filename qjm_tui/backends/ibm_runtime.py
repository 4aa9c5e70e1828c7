"""IBM Quantum through qiskit-ibm-runtime: one SamplerV2 job per qjm job.

``ibm-runtime:<backend>`` (such as ``ibm-runtime:ibm_brisbane``) submits each job as a SamplerV2
job in job mode, tagged with the job set's tags and the job's client tag. Jobs live on IBM's
side, so a new process reattaches to them by id (``service.job(id)``) and finds jobs whose id
was never recorded by tag (``service.jobs(job_tags=...)``). Credentials: see
:mod:`qjm_tui.backends.ibm_common`. SamplerV2 needs circuits in the backend's instruction set,
so run with ``transpile=True`` unless the circuits are already transpiled.

``ibm-runtime:fake_<device>`` (such as ``ibm-runtime:fake_manila``) uses qiskit-ibm-runtime's
local testing mode instead: the same SamplerV2 code path, run locally on the fake device's noisy
model, with no account and no network. Those jobs live in this process only.

What is exercised where: the local testing mode (SamplerV2 construction, job tags as options,
submission, status, results and their conversion to qjm's per-circuit dicts) runs offline in the
tests. The service calls — ``QiskitRuntimeService`` login, ``service.backend``, ``service.job``
and ``service.jobs`` — are tested against a stand-in service object with the runtime's own
method names, not against IBM Quantum, which the test environment cannot reach.

SamplerV2 returns one bit array per classical register; :func:`pub_result_to_experiment` turns
them into the ``ExperimentResult.to_dict()`` shape the store keeps (hex counts keys, header with
``creg_sizes`` and ``memory_slots``), so results from IBM read exactly like results from Aer.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from qjm_tui.backends.base import QiskitJobs, import_runtime, limits_of
from qjm_tui.backends.ibm_common import IBMCredentials, classify, ibm_job_status, resolve_credentials, scrub
from qjm_tui.core.errors import BackendConfigurationError, PermanentBackendError
from qjm_tui.core.ports import (
    BackendLimits,
    ExecutionBackend,
    JobPayload,
    JobStatusInfo,
    RunOption,
    RunOptions,
)

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


class IBMRuntimeBackend(ExecutionBackend):
    """A backend on IBM Quantum (or a fake device in local testing mode) via SamplerV2.

    ``service`` may be passed in (a ``QiskitRuntimeService`` or an object with its methods);
    otherwise one is made on first use from the resolved credentials.
    """

    inline_submit = False

    def __init__(self, name: str, config: Any = None, *, service: Any = None) -> None:
        super().__init__()
        self.name = name
        self.spec = f"ibm-runtime:{name}"
        self.local = name.startswith("fake_") and service is None
        self.poll_interval = 0.1 if self.local else 5.0
        self._credentials: IBMCredentials | None = None
        self._service = service
        self._backend: Any = None
        self._jobs = QiskitJobs(reattach=self._reattach)
        self._headers: dict[str, list[dict[str, Any]]] = {}
        self._local_tags: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        if self.local:
            from qjm_tui.backends.devices import fake_device

            self._backend = fake_device(name)
        elif service is None:
            self._credentials = resolve_credentials(config, self.spec)

    def __repr__(self) -> str:
        where = "local testing mode" if self.local else \
            (self._credentials.source if self._credentials else "given service")
        return f"IBMRuntimeBackend({self.name!r}, {where})"

    # -- connection --------------------------------------------------------------------------

    def service(self) -> Any:
        """The ``QiskitRuntimeService``, logged in on first use."""
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

    def target(self) -> Any:
        return self.backend()

    def limits(self) -> BackendLimits:
        return limits_of(self.backend())

    def run_options(self) -> RunOptions:
        return sampler_run_options()

    def can_reattach(self) -> bool:
        return not self.local

    # -- jobs --------------------------------------------------------------------------------

    def submit(self, payload: JobPayload) -> str:
        SamplerV2 = import_runtime().SamplerV2  # noqa: N806

        options = dict(payload.run_options)
        memory = bool(options.pop("memory", False))
        tags = list(payload.tags) + ([MEMORY_TAG] if memory else [])
        try:
            sampler = SamplerV2(mode=self.backend())
            sampler.options.environment.job_tags = tags
            if options:
                sampler.options.update(**options)
        except Exception as exc:
            raise PermanentBackendError(scrub(f"invalid SamplerV2 options {sorted(options)}: "
                                              f"{type(exc).__name__}: {exc}", self._credentials)) from None
        try:
            job = sampler.run(list(payload.circuits), shots=payload.shots)
        except Exception as exc:
            raise classify(exc, self._credentials, "submitting the SamplerV2 job") from None
        job_id = str(job.job_id())
        self._jobs.add(job_id, job)
        with self._lock:
            self._headers[job_id] = [header_of(c) for c in payload.circuits]
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
        return ibm_job_status(self._jobs.get(job_id), job_id, self._credentials)

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
        job = self._jobs.get(job_id)
        try:
            primitive_result = job.result()
        except Exception as exc:
            raise classify(exc, self._credentials, f"fetching the result of job {job_id}") from None
        pubs = list(primitive_result)
        memory = MEMORY_TAG in self._tags(job_id, job)
        headers = self._headers_for(job_id, job, len(pubs), [p.data for p in pubs])
        experiments = [pub_result_to_experiment(p, h, memory) for p, h in zip(pubs, headers, strict=True)]
        self._jobs.forget(job_id)
        with self._lock:
            self._headers.pop(job_id, None)
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
        try:
            jobs = self.service().jobs(job_tags=wanted, backend_name=self.name, limit=50)
        except Exception as exc:
            raise classify(exc, self._credentials, f"searching jobs tagged {wanted}") from None
        return [str(job.job_id()) for job in jobs]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "mode": "local testing" if self.local else "IBM Quantum",
                "credentials": None if self._credentials is None else self._credentials.source}
