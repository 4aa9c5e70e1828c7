"""Fake IBM device models from qiskit-ibm-runtime: real qubit counts, coupling maps and noise."""

from __future__ import annotations

import functools
from typing import Any

from qjm_tui.core.errors import UnknownBackendError


@functools.lru_cache(maxsize=1)
def _provider() -> Any:
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    return FakeProviderForBackendV2()


@functools.lru_cache(maxsize=1)
def device_names() -> tuple[str, ...]:
    """Every fake device name, such as ``fake_manila``."""
    return tuple(sorted(b.name for b in _provider().backends()))


def fake_device(name: str) -> Any:
    """The fake device called ``name`` (``fake_manila`` or just ``manila``)."""
    wanted = name if name.startswith("fake_") else f"fake_{name}"
    if wanted not in device_names():
        known = ", ".join(device_names())
        raise UnknownBackendError(f"unknown device {name!r} for aer:<device>; known devices: {known}")
    return _provider().backend(wanted)
