"""Turn a backend spec string (or a Qiskit backend object) into an adapter.

A spec is what a job set stores, so a later process can build the same backend again:

* ``aer`` — the ideal Aer simulator; ``aer:<device>`` — Aer with the noise model, qubit count and
  coupling map of a fake IBM device (``aer:fake_manila``); ``basic`` — Qiskit's BasicSimulator.
  These run locally on the configured executor (process pool, threads, or a Dask cluster).
* ``dynamics`` / ``dynamics:fake_7q_pulse`` — pulse schedules on a local pulse simulator
  (qiskit-dynamics, the ``pulse`` extra; :mod:`qjm_tui.backends.dynamics`), on the same executor.
* ``emulator`` / ``emulator:key=value,...`` — a local stand-in for a remote service
  (:mod:`qjm_tui.backends.emulator`).
* ``ibm-runtime:<backend>[,mode=batch|session|job][,poll=SECONDS]`` — IBM Quantum through
  qiskit-ibm-runtime (SamplerV2), in a Runtime batch by default.
* ``ibm-provider:<backend>`` — IBM Quantum through the legacy qiskit-ibm-provider.
* ``<module>:<factory>`` — any importable callable returning a Qiskit backend (or an adapter),
  such as ``mypkg.backends:make_backend``.

Per-backend limits from the configuration (``[backends."<spec>"]``, else ``[backends.<kind>]``
for every spec of that kind, such as ``[backends.emulator]``) narrow the backend's own.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from qjm_tui.core.errors import BackendConfigurationError, UnknownBackendError
from qjm_tui.core.ports import ConfiguredBackend, ExecutionBackend

KNOWN_SPECS = (
    "aer",
    "aer:<device>",
    "basic",
    "dynamics",
    "dynamics:fake_7q_pulse",
    "emulator[:key=value,...]",
    "ibm-runtime:<backend>[,mode=batch|session|job]",
    "ibm-provider:<backend>",
    "<module>:<factory>",
)
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

#: what a user must know about a kind of spec before choosing it (``qjm backends`` shows it)
KIND_NOTES = {
    "ibm-provider": "retired: qiskit-ibm-provider speaks only IBM's retired IBM Quantum API "
                    "(auth.quantum-computing.ibm.com) and reaches no IBM service today; use "
                    "ibm-runtime:<backend>",
}


def kind_note(spec: str) -> str | None:
    """The note on ``spec``'s kind (see :data:`KIND_NOTES`), if it has one."""
    return KIND_NOTES.get(spec.partition(":")[0])


def _known() -> str:
    return ", ".join(KNOWN_SPECS)


def resolve(backend: Any, config: Any = None) -> ExecutionBackend:
    """An adapter for ``backend``: a spec string, an adapter, or a Qiskit backend object.

    ``config`` (a :class:`qjm_tui.config.Config`) supplies the executor, per-backend limits and
    IBM credentials.
    """
    if isinstance(backend, ExecutionBackend):
        return backend
    if isinstance(backend, str):
        return resolve_spec(backend, config)
    if hasattr(backend, "run"):
        from qjm_tui.backends.qiskit_backend import QiskitBackendAdapter

        return _with_config_limits(QiskitBackendAdapter(backend), config)
    raise UnknownBackendError(
        f"backend must be a spec string or a Qiskit backend, not {type(backend).__name__}; "
        f"known spec forms: {_known()}"
    )


def resolve_spec(spec: str, config: Any = None) -> ExecutionBackend:
    """An adapter for a spec string such as ``aer``, ``emulator:max_jobs=5`` or
    ``ibm-runtime:ibm_brisbane``; raises :class:`UnknownBackendError` for anything else."""
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownBackendError(f"empty backend spec; known spec forms: {_known()}")
    return _with_config_limits(_build(spec.strip(), config), config)


def _build(spec: str, config: Any) -> ExecutionBackend:
    kind, colon, arg = spec.partition(":")
    if kind in ("aer", "basic"):
        from qjm_tui.backends.local import LocalBackend

        if kind == "basic" and colon:
            raise UnknownBackendError(f"unknown backend {spec!r}: 'basic' takes no argument; "
                                      f"known spec forms: {_known()}")
        if kind == "aer" and colon:
            if not arg:
                raise UnknownBackendError(f"backend {spec!r} names no device; use aer:<device> "
                                          "such as aer:fake_manila")
            from qjm_tui.backends.devices import fake_device

            fake_device(arg)
        executor = getattr(config, "executor", None) or "processes"
        return LocalBackend(spec, executor=executor)
    if kind == "dynamics":
        from qjm_tui.backends.dynamics import PulseBackend

        if colon and not arg:
            raise UnknownBackendError(f"backend {spec!r} names no model; use dynamics or "
                                      "dynamics:fake_7q_pulse")
        return PulseBackend(spec, executor=getattr(config, "executor", None) or "processes")
    if kind == "emulator":
        from qjm_tui.backends.emulator import EmulatorBackend

        return EmulatorBackend(arg, spec=spec)
    if kind == "ibm-runtime":
        from qjm_tui.backends.ibm_runtime import IBMRuntimeBackend, parse_spec

        name, options = parse_spec(spec, _name_of(spec, arg))
        return IBMRuntimeBackend(name, config=config, mode=options.get("mode", "batch"),
                                 poll_interval=options.get("poll"), spec=spec)
    if kind == "ibm-provider":
        from qjm_tui.backends.ibm_provider import IBMProviderBackend

        return IBMProviderBackend(_name_of(spec, arg), config=config)
    if colon and _DOTTED.match(kind) and _DOTTED.match(arg):
        return _from_factory(spec, kind, arg)
    raise UnknownBackendError(f"unknown backend {spec!r}; known spec forms: {_known()}")


def _name_of(spec: str, name: str) -> str:
    if not name:
        raise UnknownBackendError(f"backend {spec!r} names no backend; write it as "
                                  f"{spec.rstrip(':')}:<backend name>")
    return name


def _from_factory(spec: str, module_name: str, attr_path: str) -> ExecutionBackend:
    """Import ``module_name``, call ``attr_path`` and wrap what it returns."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name.split(".")[0]):
            raise UnknownBackendError(
                f"unknown backend {spec!r}: it is not a built-in spec and there is no module "
                f"{module_name!r} to import; known spec forms: {_known()}"
            ) from None
        raise BackendConfigurationError(f"importing {module_name!r} for backend {spec!r} failed: "
                                        f"{exc}") from None
    except Exception as exc:
        raise BackendConfigurationError(f"importing {module_name!r} for backend {spec!r} failed: "
                                        f"{type(exc).__name__}: {exc}") from None
    factory: Any = module
    for part in attr_path.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise UnknownBackendError(f"unknown backend {spec!r}: module {module_name!r} has no "
                                      f"{attr_path!r}")
    if not callable(factory):
        raise UnknownBackendError(f"backend {spec!r}: {module_name}.{attr_path} is not callable")
    try:
        made = factory()
    except Exception as exc:
        raise BackendConfigurationError(f"the backend factory {spec!r} failed: "
                                        f"{type(exc).__name__}: {exc}") from None
    if isinstance(made, ExecutionBackend):
        made.spec = spec
        return made
    if not hasattr(made, "run"):
        raise BackendConfigurationError(f"the backend factory {spec!r} returned a "
                                        f"{type(made).__name__}, not a Qiskit backend")
    from qjm_tui.backends.qiskit_backend import QiskitBackendAdapter

    return QiskitBackendAdapter(made, spec=spec)


def _with_config_limits(adapter: ExecutionBackend, config: Any) -> ExecutionBackend:
    if config is None or not hasattr(config, "backend_limits"):
        return adapter
    limits = config.backend_limits(adapter.spec)
    if not limits:
        limits = config.backend_limits(adapter.spec.partition(":")[0])
    return ConfiguredBackend(adapter, limits) if limits else adapter
