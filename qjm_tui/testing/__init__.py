"""Test doubles that real client libraries talk to, for work without the real services.

:class:`IBMQuantumService` (in :mod:`qjm_tui.testing.ibm_service`) is a local IBM Quantum
Platform: the unmodified qiskit-ibm-runtime client signs in to it, lists its devices, submits
SamplerV2 jobs in batches, sessions or alone, and reads results, usage and errors back, over
HTTP, with scripted faults. Start one from Python (a context manager) or from a shell with
``python -m qjm_tui.testing.ibm_service``.

This package never imports the rest of qjm: it stands in for IBM's side only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IBMQuantumService"]


def __getattr__(name: str) -> Any:
    # The service imports Qiskit and Aer; loading it only when asked keeps this package cheap.
    if name == "IBMQuantumService":
        from qjm_tui.testing.ibm_service import IBMQuantumService

        return IBMQuantumService
    raise AttributeError(f"module 'qjm_tui.testing' has no attribute {name!r}")
