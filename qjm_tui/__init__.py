"""qjm: a job manager for quantum computing, with a terminal interface.

``from qjm_tui import JobManager`` gives the library; ``IBMQJobManager`` is the same class under
the original name, so code written for it runs with only the import changed.
"""

from qjm_tui.core.errors import (
    JobManagerError,
    JobManagerInputError,
    JobManagerInvalidStateError,
    JobManagerJobNotFound,
    JobManagerTimeoutError,
    JobManagerUnknownJobSet,
    ManagedResultDataNotAvailable,
)
from qjm_tui.core.jobset import ManagedJob, ManagedJobSet
from qjm_tui.core.manager import JobManager
from qjm_tui.core.results import ManagedResults

IBMQJobManager = JobManager
IBMQJobManagerError = JobManagerError
IBMQJobManagerInvalidStateError = JobManagerInvalidStateError
IBMQJobManagerTimeoutError = JobManagerTimeoutError
IBMQJobManagerJobNotFound = JobManagerJobNotFound
IBMQJobManagerUnknownJobSet = JobManagerUnknownJobSet
IBMQManagedResultDataNotAvailable = ManagedResultDataNotAvailable

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
    "ManagedJob",
    "ManagedJobSet",
    "ManagedResultDataNotAvailable",
    "ManagedResults",
    "__version__",
]
