"""Circuits as QPY bytes: the form the store keeps and pool workers receive."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, overload


def circuits_to_qpy(circuits: Sequence[Any]) -> bytes:
    """Serialise circuits to QPY bytes."""
    from qiskit import qpy

    buffer = io.BytesIO()
    qpy.dump(list(circuits), buffer)
    return buffer.getvalue()


def circuits_from_qpy(data: bytes) -> list[Any]:
    """Load circuits from QPY bytes."""
    from qiskit import qpy

    return list(qpy.load(io.BytesIO(data)))


class QpyCircuits(Sequence[Any]):
    """``count`` circuits held as QPY bytes, loaded the first time one is asked for.

    A job's payload carries its circuits this way when they come from the store: adapters that
    ship QPY to another process (the local process pool) never load them here, and those that
    need circuit objects get them on first use.
    """

    def __init__(self, qpy: bytes, count: int) -> None:
        self.qpy = qpy
        self._count = count
        self._loaded: list[Any] | None = None

    def _circuits(self) -> list[Any]:
        if self._loaded is None:
            self._loaded = circuits_from_qpy(self.qpy)
        return self._loaded

    def __len__(self) -> int:
        return self._count if self._loaded is None else len(self._loaded)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self._circuits()[index]

    def __iter__(self) -> Any:
        return iter(self._circuits())
