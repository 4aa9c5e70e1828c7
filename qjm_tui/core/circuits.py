"""Experiments as QPY bytes: the form the store keeps and pool workers receive.

Circuits and pulse ``ScheduleBlock``\\ s are written as QPY as they are. QPY cannot hold a pulse
``Schedule`` (its instructions sit at absolute times, which QPY has no field for), so a
``Schedule`` is written as a ``ScheduleBlock`` that holds the same instructions in time order,
with their start times in the block's metadata under :data:`SCHEDULE_TIMES`; reading it back
gives an equal ``Schedule`` (nested schedules come back flattened: every instruction at its
time, the sub-schedules' names gone). Read by ``qiskit.qpy`` alone, such a block has the
instructions but not their timing: pass it to :func:`schedule_from_block` first.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, overload

#: the metadata key under which a stored ``Schedule`` keeps its instructions' start times
SCHEDULE_TIMES = "qjm.schedule_times"


@contextlib.contextmanager
def quiet_pulse() -> Iterator[None]:
    """Silence Qiskit's pulse deprecation warnings while qjm itself handles schedules.

    Qiskit 1.3+ warns on every pulse object made and every schedule block QPY loads (pulse
    is gone in Qiskit 2). The user has had those warnings when making the schedules; qjm's
    own copies, loads and conversions (in pool workers too) would only repeat them.
    """
    from qiskit.qpy import QPYLoadingDeprecatedFeatureWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QPYLoadingDeprecatedFeatureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def circuits_to_qpy(circuits: Sequence[Any]) -> bytes:
    """Serialise circuits or pulse schedules (``Schedule`` and ``ScheduleBlock``) to QPY bytes."""
    from qiskit import QuantumCircuit, qpy

    programs = list(circuits)
    buffer = io.BytesIO()
    if not programs or isinstance(programs[0], QuantumCircuit):
        qpy.dump(programs, buffer)
    else:
        with quiet_pulse():
            qpy.dump([block_from_schedule(p) for p in programs], buffer)
    return buffer.getvalue()


def circuits_from_qpy(data: bytes) -> list[Any]:
    """Load circuits or schedule blocks from QPY bytes; stored ``Schedule``\\ s come back as such."""
    from qiskit import QuantumCircuit, qpy

    with quiet_pulse():
        loaded = list(qpy.load(io.BytesIO(data)))
        if not loaded or isinstance(loaded[0], QuantumCircuit):
            return loaded
        return [schedule_from_block(block) for block in loaded]


def block_from_schedule(program: Any) -> Any:
    """The ``ScheduleBlock`` that stores ``program`` if it is a ``Schedule``; else ``program``."""
    from qiskit.pulse import Schedule, ScheduleBlock

    if not isinstance(program, Schedule):
        return program
    timed = program.instructions
    metadata = {**program.metadata, SCHEDULE_TIMES: [int(t) for t, _ in timed]}
    block = ScheduleBlock(name=program.name, metadata=metadata)
    for _, instruction in timed:
        block.append(instruction, inplace=True)
    return block


def schedule_from_block(block: Any) -> Any:
    """The ``Schedule`` a block written by :func:`block_from_schedule` stands for; any other
    block is returned as it is."""
    from qiskit.pulse import Schedule
    from qiskit.pulse.instructions import Instruction

    metadata = dict(getattr(block, "metadata", None) or {})
    times = metadata.pop(SCHEDULE_TIMES, None)
    children = getattr(block, "blocks", ())
    if not isinstance(times, list) or len(times) != len(children) \
            or not all(isinstance(c, Instruction) for c in children):
        return block
    return Schedule(*zip(times, children, strict=True), name=block.name, metadata=metadata)


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
