"""Turn a backend spec string (or a Qiskit backend object) into an adapter."""

from __future__ import annotations

from typing import Any

from qjm_tui.backends.base import ExecutionBackend
from qjm_tui.core.errors import UnknownBackendError

KNOWN_SPECS = ("aer", "aer:<device>", "basic")


def resolve(backend: Any, config: Any = None) -> ExecutionBackend:
    """An adapter for ``backend``: a spec string, an adapter, or a Qiskit backend object.

    ``config`` (a :class:`qjm_tui.config.Config`) supplies the executor and per-backend limits.
    """
    if isinstance(backend, ExecutionBackend):
        return backend
    if isinstance(backend, str):
        return resolve_spec(backend, config)
    if hasattr(backend, "run"):
        from qjm_tui.backends.qiskit_backend import QiskitBackendAdapter

        return QiskitBackendAdapter(backend)
    raise UnknownBackendError(
        f"backend must be a spec string or a Qiskit backend, not {type(backend).__name__}"
    )


def resolve_spec(spec: str, config: Any = None) -> ExecutionBackend:
    """An adapter for a spec string such as ``aer``, ``aer:fake_manila`` or ``basic``."""
    options: dict[str, Any] = {}
    if config is not None:
        options["executor"] = config.executor
    spec = spec.strip()
    kind, _, _arg = spec.partition(":")
    if kind in ("aer", "basic"):
        from qjm_tui.backends.local import LocalBackend

        if kind == "aer" and _arg:
            from qjm_tui.backends.devices import fake_device

            fake_device(_arg)
        return LocalBackend(spec, **options)
    raise UnknownBackendError(
        f"unknown backend {spec!r}; known backends: {', '.join(KNOWN_SPECS)}"
    )
