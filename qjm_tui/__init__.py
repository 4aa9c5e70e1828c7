"""qjm: a job manager for quantum computing, with a terminal interface.

``from qjm_tui import JobManager`` gives the library; ``IBMQJobManager`` is the same class under
the original name, so code written for it runs with only the import changed.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qjm_tui.compose import JobManager
    from qjm_tui.core.errors import (
        JobManagerError,
        JobManagerInputError,
        JobManagerInvalidStateError,
        JobManagerJobNotFound,
        JobManagerTimeoutError,
        JobManagerUnknownJobSet,
        JobSetStopped,
        ManagedResultDataNotAvailable,
    )
    from qjm_tui.core.jobset import ManagedJob, ManagedJobSet
    from qjm_tui.core.results import ManagedResults

# Loaded on first use, so importing one layer (``qjm_tui.core.store``) does not load the others,
# and ``qjm --version`` does not load Qiskit (the error classes derive from QiskitError).
_ERRORS = {
    "JobManagerError": "JobManagerError", "JobManagerInputError": "JobManagerInputError",
    "JobManagerInvalidStateError": "JobManagerInvalidStateError",
    "JobManagerJobNotFound": "JobManagerJobNotFound",
    "JobManagerTimeoutError": "JobManagerTimeoutError",
    "JobManagerUnknownJobSet": "JobManagerUnknownJobSet",
    "JobSetStopped": "JobSetStopped",
    "ManagedResultDataNotAvailable": "ManagedResultDataNotAvailable",
    "IBMQJobManagerError": "JobManagerError",
    "IBMQJobManagerInvalidStateError": "JobManagerInvalidStateError",
    "IBMQJobManagerTimeoutError": "JobManagerTimeoutError",
    "IBMQJobManagerJobNotFound": "JobManagerJobNotFound",
    "IBMQJobManagerUnknownJobSet": "JobManagerUnknownJobSet",
    "IBMQManagedResultDataNotAvailable": "ManagedResultDataNotAvailable",
}
_LAZY = {
    **{name: ("qjm_tui.core.errors", target) for name, target in _ERRORS.items()},
    "JobManager": ("qjm_tui.compose", "JobManager"),
    "IBMQJobManager": ("qjm_tui.compose", "JobManager"),
    "ManagedJob": ("qjm_tui.core.jobset", "ManagedJob"),
    "ManagedJobSet": ("qjm_tui.core.jobset", "ManagedJobSet"),
    "ManagedResults": ("qjm_tui.core.results", "ManagedResults"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'qjm_tui' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "IBMQJobManager",
    "IBMQJobManagerError",
    "IBMQJobManagerInvalidStateError",
    "IBMQJobManagerJobNotFound",
    "IBMQJobManagerTimeoutError",
    "IBMQJobManagerUnknownJobSet",
    "IBMQManagedResultDataNotAvailable",
    "JobManager",
    "JobManagerError",
    "JobManagerInputError",
    "JobManagerInvalidStateError",
    "JobManagerJobNotFound",
    "JobManagerTimeoutError",
    "JobManagerUnknownJobSet",
    "JobSetStopped",
    "ManagedJob",
    "ManagedJobSet",
    "ManagedResultDataNotAvailable",
    "ManagedResults",
    "__version__",
]
