"""Errors raised by qjm.

The names mirror the original IBMQJobManager's so code written against it keeps working.
Every error qjm raises for bad input or a bad state is a :class:`JobManagerError`, which is a
``qiskit.exceptions.QiskitError`` as the original's were, so both ``except JobManagerError``
and ``except QiskitError`` catch it. Backend adapters classify their own failures with the
``Backend*Error`` classes and :class:`AccessRefused`; the engine decides from the class whether
to wait, retry, give up on a job, or stop submitting altogether.
"""

from __future__ import annotations

from qiskit.exceptions import QiskitError


class JobManagerError(QiskitError):  # type: ignore[misc]  # Qiskit ships no type information
    """Base class for every error qjm raises."""

    def __str__(self) -> str:
        # QiskitError shows its message quoted (its repr); qjm's messages are sentences.
        return str(self.message)


class JobManagerInvalidStateError(JobManagerError):
    """An operation is not valid in the job set's current state."""


class JobSetStopped(JobManagerInvalidStateError):
    """The set stopped short of its end for a reason resuming at once would not fix: the
    service refused the account (a quota used up, credentials refused) or the disk holding the
    store is full; ``reason`` says which. It is resumable once that is fixed, and waiting for it
    would never end, so ``wait()`` raises this instead."""

    def __init__(self, message: str, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class IllegalMove(JobManagerInvalidStateError):
    """A job or a job set was asked to move to a state it cannot reach from the one it is in
    (see ``qjm_tui.core.lifecycle``); nothing was written."""


class JobManagerTimeoutError(JobManagerError):
    """Waiting for a job set (or its results) took longer than the timeout."""


class JobManagerJobNotFound(JobManagerError):
    """No job holds the requested experiment."""


class JobManagerUnknownJobSet(JobManagerError):
    """No job set with that id (or id prefix) is in the store."""


class JobManagerInputError(JobManagerError):
    """The experiments, options or files given to qjm are not valid.

    ``location`` names where the problem is (a file, ``file:line:col``, or ``experiment 12``)
    so a person can go straight to it.
    """

    def __init__(self, message: str, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class UnknownBackendError(JobManagerInputError):
    """A backend spec string names no known backend."""


class BackendConfigurationError(JobManagerError):
    """A backend cannot be set up: missing credentials, missing package, bad config."""


class StoreError(JobManagerError):
    """The store file cannot be used (corrupt, foreign, newer schema, not writable)."""


class StoreFullError(StoreError):
    """The disk holding the store is full: a write could not be made (nothing half-written)."""


class StoreDamagedError(StoreError):
    """The store file is damaged (SQLite finds it malformed); ``qjm doctor`` recovers what it can."""


class ManagedResultDataNotAvailable(JobManagerError):
    """The result data asked for is not available (the experiment failed or was cancelled)."""


class BackendError(Exception):
    """Base class for failures an adapter reports to the engine.

    Not a JobManagerError: these never reach a user directly; the engine records them on the
    job and the user sees the job's status and ``error_messages()``.
    """


class BackendLimitReached(BackendError):
    """The backend refuses more jobs right now; wait for a slot and submit again."""


class TransientBackendError(BackendError):
    """A passing failure (network, service busy); the same call may work if retried."""


class PermanentBackendError(BackendError):
    """A failure that retrying cannot fix (invalid circuit, unknown job); keep the message."""


class AccessRefused(BackendError):
    """The service refuses this account any more work for now: its usage quota is used up, or
    the credentials or the access were withdrawn.

    No job is at fault and nothing within this run can fix it, so the set stops submitting
    (the job being submitted is not charged an attempt), follows the jobs the service already
    holds where it still can, keeps every result, and is left resumable with the message as
    its reason: ``resume`` goes on once the account is in order.
    """
