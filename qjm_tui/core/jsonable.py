"""Values made ready for JSON: results as the store keeps them, and the CLI's JSON output."""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into what it can: complex numbers as
    ``[re, im]`` (the form ``Result.from_dict`` reads back), numpy values as plain numbers and
    lists, dates as ISO text, objects with ``to_dict`` as their dict."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, complex | np.complexfloating):
        return [float(value.real), float(value.imag)]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    # quantum_info objects (Statevector, Operator, DensityMatrix) keep their matrix in .data;
    # their to_dict() would give a ket dict that Result cannot read back.
    if isinstance(getattr(value, "data", None), np.ndarray):
        return jsonable(value.data)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return value
