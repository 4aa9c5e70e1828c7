"""Fake IBM device models from qiskit-ibm-runtime: real qubit counts, coupling maps and noise."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from typing import Any

from qjm_tui.backends.base import import_runtime
from qjm_tui.core.errors import UnknownBackendError


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the fake provider's notes that some devices' error values are not typical."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"qiskit_ibm_runtime\.")
        yield


@functools.lru_cache(maxsize=1)
def _provider() -> Any:
    import_runtime()
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    return FakeProviderForBackendV2()


@functools.lru_cache(maxsize=1)
def device_names() -> tuple[str, ...]:
    """Every fake device name, such as ``fake_manila``."""
    with _quiet():
        return tuple(sorted(b.name for b in _provider().backends()))


def fake_device(name: str) -> Any:
    """The fake device called ``name`` (``fake_manila`` or just ``manila``)."""
    wanted = name if name.startswith("fake_") else f"fake_{name}"
    if wanted not in device_names():
        known = ", ".join(device_names())
        raise UnknownBackendError(f"unknown device {name!r} for aer:<device>; known devices: {known}")
    with _quiet():
        return _provider().backend(wanted)
