"""IBM Quantum through the legacy qiskit-ibm-provider (``ibm-provider:<backend>``).

Kept in its own module and imported only when such a spec is used: qiskit-ibm-provider is
deprecated (it warns on import) and pins qiskit to the 1.x line. Each qjm job is one
``IBMBackend.run(circuits, shots=..., job_tags=[...])`` job; a new process reattaches with
``provider.backend.retrieve_job(id)`` and finds unrecorded jobs with
``provider.backend.jobs(job_tags=...)``. Results are qiskit ``Result`` objects, converted with
:func:`~qjm_tui.backends.base.experiments_from_result`. Credentials: see
:mod:`qjm_tui.backends.ibm_common` (the provider takes ``token``, ``instance`` and ``url``).

What is exercised where: IBM has retired the service endpoint this package talks to, so nothing
here has been run against IBM Quantum by qjm's tests. The tests drive the provider's real
``IBMBackend.run``, ``IBMCircuitJob.status/result/cancel`` and
``IBMBackendService.retrieve_job/jobs`` over a stubbed runtime client (the provider's transport
object, answering with the provider's own JSON shapes from a local Aer run), so everything from
this adapter down to the HTTP layer is real; the HTTP layer and the service are not.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from qjm_tui.backends.base import QiskitJobs, experiments_from_result, limits_of, route_library_logs
from qjm_tui.backends.ibm_common import IBMCredentials, classify, ibm_job_status, resolve_credentials, scrub
from qjm_tui.core.errors import BackendConfigurationError, PermanentBackendError
from qjm_tui.core.ports import BackendLimits, ExecutionBackend, JobPayload, JobStatusInfo, RunOptions


def import_provider() -> Any:
    """The ``qiskit_ibm_provider`` module, imported without its deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import qiskit_ibm_provider
        except ImportError as exc:
            raise BackendConfigurationError(
                f"ibm-provider:<backend> needs qiskit-ibm-provider: pip install "
                f"'qiskit-ibm-provider>=0.11,<0.12' ({exc})") from None
    route_library_logs("qiskit_ibm_provider")
    return qiskit_ibm_provider


def check_provider_instance(instance: str | None) -> None:
    """Refuse an instance that is not ``hub/group/project`` before the provider is asked: its
    own parser fails on one with an error that names neither the value nor where it came from.
    A setting the user can correct, so a :class:`~qjm_tui.config.ConfigError` (exit 2)."""
    if instance is None:
        return
    parts = instance.split("/")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        from qjm_tui.config import ConfigError

        where = ("QISKIT_IBM_INSTANCE" if os.environ.get("QISKIT_IBM_INSTANCE")
                 else "instance in the [ibm] table of the config file")
        raise ConfigError(f"{instance!r} is not an IBM Quantum instance; ibm-provider needs "
                          "'hub/group/project' (such as 'ibm-q/open/main')", where)


class IBMProviderBackend(ExecutionBackend):
    """A backend reached through ``qiskit_ibm_provider.IBMProvider``.

    ``provider`` may be passed in (an ``IBMProvider`` or an object with its methods); otherwise
    one is made on first use from the resolved credentials.
    """

    inline_submit = False
    poll_interval = 5.0

    def __init__(self, name: str, config: Any = None, *, provider: Any = None) -> None:
        super().__init__()
        self.name = name
        self.spec = f"ibm-provider:{name}"
        self._provider = provider
        self._credentials: IBMCredentials | None = None
        if provider is None:
            self._credentials = resolve_credentials(config, self.spec)
            check_provider_instance(self._credentials.instance)
        self._backend: Any = None
        self._jobs = QiskitJobs(reattach=self._reattach)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self._credentials.source if self._credentials else "given provider"
        return f"IBMProviderBackend({self.name!r}, {where})"

    def provider(self) -> Any:
        """The ``IBMProvider``, logged in on first use."""
        with self._lock:
            if self._provider is None:
                module = import_provider()
                assert self._credentials is not None
                kwargs = self._credentials.service_kwargs()
                kwargs.pop("channel", None)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        self._provider = module.IBMProvider(**kwargs)
                except Exception as exc:
                    raise BackendConfigurationError(scrub(
                        f"cannot log in with qiskit-ibm-provider using the credentials from "
                        f"{self._credentials.source} (its IBM Quantum endpoint has been retired; "
                        f"ibm-runtime:{self.name} is the supported path): "
                        f"{type(exc).__name__}: {exc}", self._credentials)) from None
            return self._provider

    def backend(self) -> Any:
        """The provider's ``IBMBackend``."""
        if self._backend is None:
            try:
                self._backend = self.provider().get_backend(self.name)
            except BackendConfigurationError:
                raise
            except Exception as exc:
                raise BackendConfigurationError(scrub(
                    f"the provider has no backend {self.name!r}: {type(exc).__name__}: {exc}",
                    self._credentials)) from None
        return self._backend

    def target(self) -> Any:
        return self.backend()

    def limits(self) -> BackendLimits:
        return limits_of(self.backend())

    def run_options(self) -> RunOptions:
        """``IBMBackend``'s options and ``run`` parameters, read from the class (no login)."""
        from qjm_tui.backends.options import TAGS_BY_QJM, qiskit_run_options

        backend_class = import_provider().IBMBackend
        return qiskit_run_options(backend_class._default_options(), backend_class.run, backend_class,
                                  "IBMBackend options and IBMBackend.run (qiskit-ibm-provider)",
                                  {"job_tags": TAGS_BY_QJM})

    def can_reattach(self) -> bool:
        return True

    def submit(self, payload: JobPayload) -> str:
        options = dict(payload.run_options)
        if payload.shots is not None:
            options["shots"] = payload.shots
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                job = self.backend().run(list(payload.circuits), job_tags=list(payload.tags), **options)
        except BackendConfigurationError:
            raise
        except Exception as exc:
            raise classify(exc, self._credentials, "submitting the job") from None
        job_id = str(job.job_id())
        self._jobs.add(job_id, job)
        return job_id

    def _reattach(self, job_id: str) -> Any:
        try:
            return self.provider().backend.retrieve_job(job_id)
        except Exception as exc:
            raise classify(exc, self._credentials, f"reattaching to job {job_id}") from None

    def status(self, job_id: str) -> JobStatusInfo:
        return ibm_job_status(self._jobs.get(job_id), job_id, self._credentials)

    def result(self, job_id: str) -> list[dict[str, Any]]:
        job = self._jobs.get(job_id)
        try:
            result = job.result()
        except Exception as exc:
            raise classify(exc, self._credentials, f"fetching the result of job {job_id}") from None
        if result is None:
            raise PermanentBackendError(f"job {job_id} has no result")
        self._jobs.forget(job_id)
        return experiments_from_result(result)

    def cancel(self, job_id: str) -> bool:
        return self._jobs.cancel(job_id)

    def find(self, tags: Sequence[str]) -> list[str]:
        wanted = list(tags)
        try:
            jobs = self.provider().backend.jobs(job_tags=wanted, backend_name=self.name, limit=50)
        except Exception as exc:
            raise classify(exc, self._credentials, f"searching jobs tagged {wanted}") from None
        found = []
        for job in jobs:
            job_tags = job.tags() if callable(getattr(job, "tags", None)) else getattr(job, "tags", [])
            if set(wanted) <= set(job_tags or []):
                found.append(str(job.job_id()))
        return found

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "via": "qiskit-ibm-provider",
                "credentials": None if self._credentials is None else self._credentials.source}
