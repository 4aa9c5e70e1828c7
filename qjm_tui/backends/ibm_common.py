"""IBM Quantum credentials, shared by the runtime and provider adapters.

Where credentials come from, first match wins:

1. the environment: ``QISKIT_IBM_TOKEN`` (and ``QISKIT_IBM_INSTANCE``, ``QISKIT_IBM_CHANNEL``,
   ``QISKIT_IBM_URL``);
2. the ``[ibm]`` table of the qjm config file (``token``, ``instance``, ``channel``, ``url``);
3. an account saved with qiskit-ibm-runtime's ``QiskitRuntimeService.save_account`` (the
   ``[ibm]`` table's ``account`` picks one by name).

The token is held in a :class:`Secret`, whose ``repr`` and ``str`` are ``***``, and every message
built from a service error passes through :func:`scrub`, so a token never reaches a log, an
exception message, the store, or the repr of any object.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from qjm_tui.backends.base import import_runtime, state_of_qiskit_status
from qjm_tui.core.errors import (
    AccessRefused,
    BackendConfigurationError,
    BackendLimitReached,
    PermanentBackendError,
    TransientBackendError,
)
from qjm_tui.core.ports import JobStatusInfo
from qjm_tui.core.status import JobStatus

DEFAULT_CHANNEL = "ibm_quantum_platform"


class Secret:
    """A string that never shows itself; call :meth:`reveal` where the real value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for handing to the service client."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class IBMCredentials:
    """How to reach IBM Quantum. ``source`` says where the credentials were found."""

    source: str
    token: Secret | None = None
    instance: str | None = None
    channel: str | None = None
    url: str | None = None
    account: str | None = None

    def service_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``QiskitRuntimeService`` / ``IBMProvider``."""
        kwargs: dict[str, Any] = {}
        if self.token is not None:
            kwargs["token"] = self.token.reveal()
        for key in ("instance", "channel", "url"):
            value = getattr(self, key)
            if value:
                kwargs[key] = value
        if self.account:
            kwargs["name"] = self.account
        return kwargs


def saved_account_names() -> list[str]:
    """Names of the accounts qiskit-ibm-runtime has saved on disk (none if it cannot tell)."""
    try:
        return list(import_runtime().QiskitRuntimeService.saved_accounts())
    except Exception:
        return []


def resolve_credentials(config: Any, spec: str) -> IBMCredentials:
    """The credentials to use for ``spec``; a clear :class:`BackendConfigurationError` if none."""
    ibm = dict(getattr(config, "ibm", None) or {})
    env_token = os.environ.get("QISKIT_IBM_TOKEN")
    common = {
        "instance": os.environ.get("QISKIT_IBM_INSTANCE") or ibm.get("instance") or None,
        "channel": os.environ.get("QISKIT_IBM_CHANNEL") or ibm.get("channel") or None,
        "url": os.environ.get("QISKIT_IBM_URL") or ibm.get("url") or None,
    }
    if env_token:
        return IBMCredentials("environment (QISKIT_IBM_TOKEN)", Secret(env_token), **common)
    if ibm.get("token"):
        source = getattr(config, "source", None)
        return IBMCredentials(f"config file {source}" if source else "configuration",
                              Secret(ibm["token"]), **common)
    names = saved_account_names()
    wanted = ibm.get("account")
    if names and (wanted is None or wanted in names):
        return IBMCredentials(f"saved account {wanted or 'default'}", None, account=wanted,
                              instance=common["instance"])
    from qjm_tui.config import config_path

    where = getattr(config, "source", None) or config_path()
    missing = f"no saved account named {wanted!r}" if wanted else "no IBM Quantum credentials"
    raise BackendConfigurationError(
        f"{missing} for backend {spec}: set QISKIT_IBM_TOKEN (and QISKIT_IBM_INSTANCE) in the "
        f"environment, or put token = \"...\" and instance = \"...\" in the [ibm] table of {where} "
        "(then chmod 600 it), or save an account with "
        "qiskit_ibm_runtime.QiskitRuntimeService.save_account(token=..., instance=...)"
    )


def scrub(text: str, credentials: IBMCredentials | None) -> str:
    """``text`` with the token (if any) replaced by ``***``."""
    if credentials is not None and credentials.token is not None:
        token = credentials.token.reveal()
        if token:
            text = text.replace(token, "***")
    return text


#: IBM Quantum's error codes qjm acts on: the pending-jobs limit and the usage quota
CODE_JOB_LIMIT = 3458
CODE_QUOTA = 4317

_ERROR_CODE = re.compile(r"[Ee]rror code:? (\d{3,5})\b")
_HTTP_STATUS = re.compile(r"\b([1-5]\d\d) (?:Client|Server) Error\b")
#: words of failures that are over soon: the network, a busy or restarting service
_PASSING = ("connection", "timed out", "timeout", "max retries exceeded", "temporarily",
            "maintenance", "unavailable", "too many 5", "remote end closed", "reset by peer",
            "bad gateway", "gateway time")


def error_code(text: str) -> int | None:
    """IBM's error code in a client error's text (``..., Error code: 3458.``), if any."""
    found = _ERROR_CODE.findall(text)
    return int(found[-1]) if found else None


def http_status(exc: BaseException, text: str) -> int | None:
    """The HTTP status behind a client error: the exception's own, else the one its text names
    (the runtime's service methods keep only the text)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status > 0:
        return status
    found = _HTTP_STATUS.search(text)
    return int(found.group(1)) if found else None


_SERVICE_SAYS = re.compile(r"for url: \S+?\.? (.+?)(?:, Error code: \d+\.)?['\"]*$", re.S)


def service_says(text: str) -> str:
    """What IBM Quantum itself said in a client error's text (its error message, without the
    client's "403 Client Error: Forbidden for url: ..." around it); the whole text if the
    message cannot be told apart."""
    found = _SERVICE_SAYS.search(text.strip())
    said = found.group(1).strip() if found else ""
    return said or text.strip()


def classify(exc: BaseException, credentials: IBMCredentials | None, doing: str) -> Exception:
    """The engine's error class for a qiskit-ibm-runtime (or network) failure, token scrubbed.

    The runtime's service methods wrap HTTP errors in exceptions without a status code, so the
    decision reads IBM's error code and the HTTP status from the text where it must:

    * error code 3458, "limit of N pending jobs", or HTTP 429: :class:`BackendLimitReached`
      (wait for a job of ours to finish, then submit);
    * error code 4317 (the instance's usage quota is used up), HTTP 401 (credentials no longer
      accepted) or 403 (access withdrawn): :class:`AccessRefused` (stop submitting the set,
      keep what finished, resume later); a 401 carries ``http_status`` so an adapter can sign
      in again first;
    * a network failure, a 5xx, 408 or 409: :class:`TransientBackendError`;
    * anything else, such as a 404 for a job the service no longer knows, or an invalid
      circuit: :class:`PermanentBackendError`.
    """
    text = scrub(f"{doing}: {type(exc).__name__}: {exc}", credentials)
    code = error_code(text)
    status = http_status(exc, text)
    name = type(exc).__name__
    lowered = text.lower()
    said = service_says(str(exc))
    if code == CODE_QUOTA:
        return AccessRefused(scrub(f"IBM Quantum refused new jobs: the instance's usage quota is used "
                                   f"up (error code {CODE_QUOTA}: {said})", credentials))
    if code == CODE_JOB_LIMIT or status == 429 or "limit of" in lowered or "reached the limit" in lowered \
            or "too many requests" in lowered:
        return BackendLimitReached(text)
    if status == 401 or name == "IBMNotAuthorizedError":
        refused = AccessRefused(scrub(f"IBM Quantum no longer accepts the credentials from "
                                      f"{credentials.source if credentials else 'the account'} "
                                      f"(HTTP 401 while {doing}: {said})", credentials))
        refused.http_status = 401  # type: ignore[attr-defined]
        return refused
    if status == 403:
        return AccessRefused(scrub(f"IBM Quantum refuses this account access (HTTP 403 while {doing}: "
                                   f"{said})", credentials))
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)) or (
            isinstance(status, int) and (status >= 500 or status in (408, 409))):
        return TransientBackendError(text)
    if status == 404 or name == "RuntimeJobNotFound":
        return PermanentBackendError(text)
    if name in ("IBMNotAuthorizedError", "IBMInputValueError", "IBMBackendValueError",
                "IBMAccountError", "QiskitError", "ValueError", "TypeError"):
        return PermanentBackendError(text)
    if name in ("RequestsApiError", "IBMApiError", "IBMBackendApiError", "ConnectionError",
                "ReadTimeout", "ConnectTimeout", "RuntimeJobTimeoutError") \
            or any(word in lowered for word in _PASSING):
        return TransientBackendError(text)
    return PermanentBackendError(text)


def ibm_job_status(job: Any, job_id: str, credentials: IBMCredentials | None) -> JobStatusInfo:
    """A runtime or provider job's state; a failure says why, and whether a rerun may help."""
    try:
        status = job.status()
    except Exception as exc:
        raise classify(exc, credentials, f"asking the status of job {job_id}") from None
    state = state_of_qiskit_status(status)
    if state != JobStatus.FAILED:
        return JobStatusInfo(state)
    try:
        message = str(job.error_message() or "")
    except Exception:
        message = ""
    message = scrub(message or "IBM Quantum reported the job failed", credentials)
    retryable = any(w in message.lower() for w in ("internal", "timed out", "temporar", "try again"))
    return JobStatusInfo(JobStatus.FAILED, message, retryable=retryable)
