"""Circuits as QPY bytes: the form the store keeps and pool workers receive."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any


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
