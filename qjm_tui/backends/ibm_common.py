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
from dataclasses import dataclass
from typing import Any

from qjm_tui.core.errors import BackendConfigurationError

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
        from qiskit_ibm_runtime import QiskitRuntimeService

        return list(QiskitRuntimeService.saved_accounts())
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
