"""Experiments in: read once, checked against the backend, named, timed, and made ready to be
stored one job's block at a time.

A small circuit takes about 6 kB as a Python object, so a million of them cannot be held at
once. Circuits given as a list are the caller's own and are used as they are. Everything else
(circuit files, a generator) is read in one pass and nothing of it is kept but, per experiment,
where its QPY program lies, its name (in compact chunks) and its estimated time:

- a QPY file is read a program at a time; its programs stay in the file, and a job's block is
  made by copying their bytes behind a fresh QPY header (no second parse, no re-serialising);
- any other circuit (OpenQASM files, circuits from a generator, transpiled circuits, QPY in an
  older format mixed with newer) is written once to a temporary spool file as QPY, and blocks
  are cut from there.

Every circuit is checked (or transpiled) before anything is stored, a chunk at a time, so a bad
circuit is still reported by index and name with nothing stored.
"""

from __future__ import annotations

import abc
import bisect
import io
import os
import stat
import struct
import tempfile
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from qjm_tui.core.circuits import circuits_to_qpy
from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.inputs import (
    DEFAULT_NAME,
    load_circuit_file,
    normalize_experiments,
    transpile_for,
    validate_for_target,
)
from qjm_tui.core.split import Group
from qjm_tui.core.store import ChunkedNames
from qjm_tui.core.text import strip_ansi
from qjm_tui.core.timing import DeviceTiming, EstimateError

#: circuits checked (or transpiled) and timed together
CHUNK = 1000
#: bytes of a QPY file read at a time while its programs are parsed
WINDOW = 1 << 22

_MAGIC = b"QISKIT"
_HEAD_V10 = struct.Struct("!6sBBBBQc")
_HEAD_OLD = struct.Struct("!6sBBBBQ")
#: where the program count sits in a QPY file header (after the magic and four version bytes)
_COUNT_AT = 10
#: where the QPY format version sits (right after the magic)
_MAGIC_VERSION_AT = len(_MAGIC)


class BlockSource(abc.ABC):
    """Makes the QPY bytes of experiments ``start`` to ``stop - 1`` (one job's block)."""

    @abc.abstractmethod
    def qpy(self, start: int, stop: int) -> bytes:
        """The QPY file of experiments ``start`` to ``stop - 1``."""

    def close(self) -> None:
        """Release the files behind the blocks."""


class _ListBlocks(BlockSource):
    def __init__(self, circuits: Sequence[Any]) -> None:
        self.circuits = circuits

    def qpy(self, start: int, stop: int) -> bytes:
        return circuits_to_qpy(self.circuits[start:stop])


@dataclass
class _Segment:
    """Experiments ``first`` onwards whose QPY programs lie back to back in ``file``:
    program k from ``offsets[k]`` to ``offsets[k + 1]``; ``head`` is the file's QPY header."""

    first: int
    file: BinaryIO
    head: bytes
    offsets: array[int] = field(default_factory=lambda: array("q"))

    @property
    def count(self) -> int:
        return max(len(self.offsets) - 1, 0)

    @property
    def stop(self) -> int:
        return self.first + self.count


def _with_count(head: bytes, count: int) -> bytes:
    patched = bytearray(head)
    struct.pack_into("!Q", patched, _COUNT_AT, count)
    return bytes(patched)


def _format_of(head: bytes) -> bytes:
    """The header without its program count: two heads alike here can share one file."""
    return head[:_COUNT_AT] + head[_COUNT_AT + 8:]


class _SegmentBlocks(BlockSource):
    """Blocks cut from QPY programs kept in files (the caller's QPY files and the spool)."""

    def __init__(self, segments: list[_Segment], owned: list[BinaryIO]) -> None:
        self.segments = segments
        self._firsts = [s.first for s in segments]
        self._owned = owned
        self._lock = threading.Lock()

    def _read(self, file: BinaryIO, start: int, stop: int) -> bytes:
        with self._lock:
            file.seek(start)
            data = file.read(stop - start)
        if len(data) != stop - start:
            raise JobManagerInputError(f"{getattr(file, 'name', 'a circuit file')}: changed while "
                                       "it was being stored (it is shorter than when it was read)")
        return data

    def qpy(self, start: int, stop: int) -> bytes:
        parts: list[tuple[bytes, int, bytes]] = []
        i = bisect.bisect_right(self._firsts, start) - 1
        while start < stop:
            segment = self.segments[i]
            hi = min(stop, segment.stop)
            lo_offset = segment.offsets[start - segment.first]
            hi_offset = segment.offsets[hi - segment.first]
            parts.append((segment.head, hi - start, self._read(segment.file, lo_offset, hi_offset)))
            start, i = hi, i + 1
        if len({_format_of(head) for head, _, _ in parts}) == 1:
            return _with_count(parts[0][0], sum(n for _, n, _ in parts)) + b"".join(d for _, _, d in parts)
        # QPY of different versions in one job: read them and write them out again as one.
        from qiskit import qpy

        circuits: list[Any] = []
        for head, n, data in parts:
            circuits.extend(qpy.load(io.BytesIO(_with_count(head, n) + data)))
        return circuits_to_qpy(circuits)

    def close(self) -> None:
        for file in self._owned:
            try:
                file.close()
            except OSError:
                pass
        self._owned = []


@dataclass
class Scanned:
    """What one pass over the experiments found."""

    count: int
    names: ChunkedNames
    #: each experiment's estimated seconds per shot (None: no estimate for this backend)
    shot_seconds: array[float] | None
    #: why there is no estimate although the backend publishes durations (None otherwise)
    estimate_problem: str | None
    #: ``(start, stop, label)`` of each circuit file's experiments
    files: list[tuple[int, int, str]]
    #: the circuits themselves when the caller gave a list (None: they live in ``blocks`` only)
    circuits: list[Any] | None
    blocks: BlockSource


def _label(index: int, circuit: Any) -> str:
    return f"experiment {index} ({circuit.name!r})"


class _Timer:
    """Each experiment's seconds per shot, until one cannot be estimated."""

    def __init__(self, timing: DeviceTiming | None, required: bool, spec: str) -> None:
        self.timing = timing
        self.required = required
        self.spec = spec
        self.seconds: array[float] | None = array("d") if timing is not None else None
        self.problem: str | None = None

    def add(self, index: int, circuit: Any) -> None:
        if self.seconds is None or self.timing is None:
            return
        try:
            self.seconds.append(self.timing.shot_seconds(circuit))
        except EstimateError as exc:
            if self.required:
                raise JobManagerInputError(
                    f"its duration on {self.spec} cannot be estimated ({exc}), so max_job_seconds "
                    "cannot be used with it", _label(index, circuit)) from None
            self.problem = f"{_label(index, circuit)}: {exc}"
            self.seconds = None


def is_circuit_list(experiments: Any) -> bool:
    """Whether ``experiments`` is one circuit or a list (or tuple) of circuits only."""
    from qiskit import QuantumCircuit

    if isinstance(experiments, QuantumCircuit):
        return True
    return isinstance(experiments, (list, tuple)) and all(
        isinstance(c, QuantumCircuit) for c in experiments)


def holds_schedules(experiments: Any) -> bool:
    """Whether ``experiments`` are pulse schedules: a schedule, or a list (or tuple) holding one
    or a QPY file of schedule blocks. Such sets are small and read whole (see :func:`listed`);
    a mix with circuits is refused when they are read."""
    from qjm_tui.core.inputs import is_pulse

    if is_pulse(experiments):
        return True
    items = [experiments] if isinstance(experiments, (str, os.PathLike)) else experiments
    if not isinstance(items, (list, tuple)):
        return False
    return any(is_pulse(item) or (isinstance(item, (str, os.PathLike)) and _qpy_of_schedules(Path(item)))
               for item in items)


def _qpy_of_schedules(path: Path) -> bool:
    if not _streamable_qpy(path):
        return False
    try:
        with open(path, "rb") as fh:
            head = _qpy_head(fh, path)[0]
    except (OSError, JobManagerInputError):
        return False
    # the program-type key that ends the header: b"q" for circuits, b"s" for schedule blocks
    return head[_MAGIC_VERSION_AT] >= 5 and head[-1:] == b"s"


def listed(experiments: Sequence[Any]) -> Scanned:
    """What :func:`scan` gives, for experiments already read and checked (pulse schedules)."""
    names = ChunkedNames(str(getattr(e, "name", "")) for e in experiments)
    return Scanned(len(experiments), names, None, None, [], list(experiments), _ListBlocks(experiments))


def scan(experiments: Any, *, target_backend: Any, spec: str, transpile: bool,
         timing: DeviceTiming | None = None, timing_required: bool = False,
         max_file_mb: int | None = None) -> Scanned:
    """Read, check (or transpile), name and time every experiment once; raise
    :class:`JobManagerInputError` naming the first problem. Nothing is stored.

    A file read whole (OpenQASM, anything not streamed) may hold at most ``max_file_mb``
    megabytes (see :func:`~qjm_tui.core.inputs.load_circuit_file`); a QPY file is read a
    program at a time within a fixed window, so its size is not capped."""
    target = getattr(target_backend, "target", None)
    timer = _Timer(timing, timing_required, spec)
    if is_circuit_list(experiments):
        circuits = normalize_experiments(experiments)
        if transpile:
            if target_backend is not None:
                circuits = transpile_for(circuits, target_backend, spec)
        else:
            validate_for_target(circuits, target, spec)
        names = ChunkedNames()
        for i, circuit in enumerate(circuits):
            names.append(circuit.name)
            timer.add(i, circuit)
        return Scanned(len(circuits), names, timer.seconds, timer.problem, [], circuits,
                       _ListBlocks(circuits))
    reader = _StreamReader(target_backend, target, spec, transpile, timer, max_file_mb)
    try:
        reader.read(experiments)
    except BaseException:
        reader.blocks().close()
        raise
    return Scanned(reader.count, reader.names, timer.seconds, timer.problem, reader.files, None,
                   reader.blocks())


class _StreamReader:
    """One pass over experiments that are not a plain list of circuits."""

    def __init__(self, target_backend: Any, target: Any, spec: str, transpile: bool,
                 timer: _Timer, max_file_mb: int | None = None) -> None:
        self.max_file_mb = max_file_mb
        self.target_backend = target_backend
        self.target = target
        self.spec = spec
        self.transpile = transpile and target_backend is not None
        self.timer = timer
        self.names = ChunkedNames()
        self.files: list[tuple[int, int, str]] = []
        self.count = 0
        #: circuits read but not yet checked: (circuit, where its QPY program is, if in a file)
        self._buffer: list[tuple[Any, tuple[_Segment, int, int] | None]] = []
        self._segments: list[_Segment] = []
        self._owned: list[BinaryIO] = []
        self._spool: BinaryIO | None = None
        self._spool_head = b""

    def blocks(self) -> _SegmentBlocks:
        return _SegmentBlocks(self._segments, self._owned)

    # -- reading -----------------------------------------------------------------------------

    def read(self, experiments: Any) -> None:
        from qiskit import QuantumCircuit

        from qjm_tui.core.inputs import is_pulse

        if isinstance(experiments, (str, os.PathLike)):
            experiments = [experiments]
        elif not isinstance(experiments, Iterable):
            raise JobManagerInputError(
                f"experiments must be circuits or circuit files, not {type(experiments).__name__}")
        for i, item in enumerate(experiments):
            if isinstance(item, QuantumCircuit):
                self._add(item, None)
            elif isinstance(item, (str, os.PathLike)):
                self._read_file(Path(item))
            elif is_pulse(item):
                raise JobManagerInputError(
                    "is a pulse schedule among circuits read one at a time; give pulse schedules "
                    "as a list (or their QPY files), as a job set of their own", f"experiment {i}")
            else:
                raise JobManagerInputError(
                    f"is a {type(item).__name__}; qjm runs QuantumCircuit objects, pulse schedules "
                    "(Schedule, ScheduleBlock) or circuit files", f"experiment {i}")
        self._flush()
        if not self.count:
            raise JobManagerInputError("there are no experiments to run")

    def _read_file(self, path: Path) -> None:
        first = self.count + len(self._buffer)
        if _streamable_qpy(path):
            self._read_qpy(path)
        else:
            circuits = load_circuit_file(path, self.max_file_mb)
            for circuit in circuits:
                self._add(circuit, None)
        self.files.append((first, self.count + len(self._buffer), f"file {path.name}"))

    def _read_qpy(self, path: Path) -> None:
        from qiskit import QuantumCircuit, qpy

        file = open(path, "rb")  # noqa: SIM115 - kept open until the blocks are stored
        self._owned.append(file)
        head, total, body = _qpy_head(file, path)
        segment = None
        if not self.transpile:
            self._flush()  # the file's programs follow what came before, in order
            segment = _Segment(self.count, file, head, array("q", [body]))
            self._segments.append(segment)
        window = _Window(file)
        one = _with_count(head, 1)
        offset = body
        for k in range(total):
            program = _OneProgram(one, window, offset)
            try:
                loaded = qpy.load(program)
            except Exception as exc:  # noqa: BLE001 - qpy raises struct errors, QpyError, ValueError
                detail = strip_ansi(str(exc)).strip() or type(exc).__name__
                raise JobManagerInputError(
                    f"not a readable QPY file (truncated or damaged at circuit {k}: {detail})",
                    str(path)) from None
            circuit = loaded[0] if loaded else None
            if not isinstance(circuit, QuantumCircuit):
                raise JobManagerInputError("holds pulse schedules, and the other experiments given are "
                                           "circuits; a job set holds one kind: run them as two job "
                                           "sets", str(path))
            if not circuit.name or DEFAULT_NAME.fullmatch(circuit.name):
                circuit.name = path.stem if total == 1 else f"{path.stem}[{k}]"
            end = offset + program.consumed
            self._add(circuit, (segment, offset, end) if segment is not None else None)
            offset = end
            window.drop_before(offset)
        if total == 0:
            raise JobManagerInputError("the file holds no circuits", str(path))

    def _add(self, circuit: Any, where: tuple[_Segment, int, int] | None) -> None:
        self._buffer.append((circuit, where))
        if len(self._buffer) >= CHUNK:
            self._flush()

    # -- checking and keeping ----------------------------------------------------------------

    def _flush(self) -> None:
        if not self._buffer:
            return
        first = self.count
        circuits = [c for c, _ in self._buffer]
        places = [w for _, w in self._buffer]
        self._buffer = []
        if self.transpile:
            circuits = transpile_for(circuits, self.target_backend, self.spec, first)
            places = [None] * len(circuits)
        else:
            validate_for_target(circuits, self.target, self.spec, first)
        for offset, (circuit, where) in enumerate(zip(circuits, places, strict=True)):
            index = first + offset
            self.names.append(circuit.name)
            self.timer.add(index, circuit)
            if where is not None:
                segment, _start, end = where
                segment.offsets.append(end)
            else:
                self._spool_circuit(index, circuit)
        self.count += len(circuits)

    def _spool_circuit(self, index: int, circuit: Any) -> None:
        """Write one circuit's QPY program to the spool, in its own segment run."""
        from qiskit import qpy

        buffer = io.BytesIO()
        qpy.dump(circuit, buffer)
        data = buffer.getvalue()
        head_size = _head_size(data)
        if self._spool is None:
            self._spool = tempfile.TemporaryFile(prefix="qjm-spool-")  # noqa: SIM115 - closed with the blocks
            self._owned.append(self._spool)
            self._spool_head = data[:head_size]
        last = self._segments[-1] if self._segments else None
        if last is None or last.file is not self._spool or last.stop != index:
            end = self._spool.seek(0, os.SEEK_END)
            last = _Segment(index, self._spool, self._spool_head, array("q", [end]))
            self._segments.append(last)
        self._spool.seek(0, os.SEEK_END)
        self._spool.write(data[head_size:])
        last.offsets.append(self._spool.tell())


def _streamable_qpy(path: Path) -> bool:
    """A regular, readable file that starts like QPY (anything else is read whole, with the
    messages :func:`load_circuit_file` gives)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with open(path, "rb") as fh:
            return fh.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def _head_size(data: bytes) -> int:
    """The bytes a QPY file's header takes, with the program-type key (QPY 5 and later)."""
    version = data[len(_MAGIC)]
    size = _HEAD_V10.size if version >= 10 else _HEAD_OLD.size
    return size + (1 if version >= 5 else 0)


def _qpy_head(file: BinaryIO, path: Path) -> tuple[bytes, int, int]:
    """The file's header (type key included), how many programs it says it holds, and where
    the first program starts."""
    start = file.read(_HEAD_V10.size + 1)
    if len(start) < _HEAD_OLD.size + 1:
        raise JobManagerInputError("not a readable QPY file (truncated header)", str(path))
    size = _head_size(start)
    if len(start) < size:
        raise JobManagerInputError("not a readable QPY file (truncated header)", str(path))
    head = start[:size]
    (total,) = struct.unpack_from("!Q", head, _COUNT_AT)
    return head, total, size


class _Window:
    """A QPY file read forward in large pieces, kept from the current program on."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.base = 0
        self.data = b""
        self.file.seek(0)

    def get(self, position: int, size: int) -> bytes:
        end = position + size
        if end > self.base + len(self.data):
            self.file.seek(self.base + len(self.data))
            self.data += self.file.read(max(WINDOW, end - self.base - len(self.data)))
        return self.data[position - self.base:end - self.base]

    def drop_before(self, position: int) -> None:
        if position - self.base > WINDOW:
            self.data = self.data[position - self.base:]
            self.base = position


class _OneProgram:
    """A file object ``qpy.load`` reads one program from: a header saying "one program", then
    the file's bytes from ``offset``. ``consumed`` tells how long the program was."""

    def __init__(self, head: bytes, window: _Window, offset: int) -> None:
        self.head = head
        self.window = window
        self.offset = offset
        self.position = 0

    @property
    def consumed(self) -> int:
        return self.position - len(self.head)

    def seek(self, position: int, whence: int = 0) -> int:
        if whence != 0:
            raise io.UnsupportedOperation("only absolute seeks")
        self.position = position
        return position

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise io.UnsupportedOperation("QPY reads sized pieces")
        out = b""
        if self.position < len(self.head):
            out = self.head[self.position:self.position + size]
            self.position += len(out)
            size -= len(out)
        if size > 0:
            more = self.window.get(self.offset + self.position - len(self.head), size)
            self.position += len(more)
            out += more
        return out


def count_hint(experiments: Any) -> int | None:
    """How many experiments there are, where that is known without reading them (a list of
    circuits; QPY files say in their header, other files hold one); None for a generator."""
    from qiskit import QuantumCircuit

    if isinstance(experiments, QuantumCircuit):
        return 1
    items = [experiments] if isinstance(experiments, (str, os.PathLike)) else experiments
    if not isinstance(items, (list, tuple)):
        return None
    total = 0
    for item in items:
        if isinstance(item, QuantumCircuit):
            total += 1
        elif isinstance(item, (str, os.PathLike)) and _streamable_qpy(Path(item)):
            try:
                with open(item, "rb") as fh:
                    total += _qpy_head(fh, Path(item))[1]
            except (OSError, JobManagerInputError):
                total += 1
        else:
            total += 1
    return total


def check_keep_together(spec: Any) -> None:
    """Refuse, before anything is read, a ``keep_together`` that is not one of its forms."""
    if spec is None or spec == "files":
        return
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Iterable):
        raise JobManagerInputError(
            f"keep_together must be 'files', a list of groups (each a list or range of experiment "
            f"indices or circuit names) or a mapping of group names to such lists; got {spec!r}")


def groups(spec: Any, scanned: Scanned) -> list[Group]:
    """The groups ``keep_together`` names, as spans of experiments.

    ``"files"``: each circuit file's experiments. A mapping: each name's members. Any other
    iterable: each item's members (named ``group 0``, ``group 1``...). Members are experiment
    indices or circuit names (a name must belong to exactly one experiment); a range is taken
    as its bounds. Jobs hold consecutive experiments, so a group holds every experiment from its
    first member to its last.
    """
    check_keep_together(spec)
    if spec is None:
        return []
    if spec == "files":
        if not scanned.files:
            raise JobManagerInputError("keep_together='files' keeps each circuit file's experiments "
                                       "in one job, but no circuit files were given")
        return [Group(a, b, label) for a, b, label in scanned.files if b > a]
    if isinstance(spec, Mapping):
        items = [(f"group {name!r}", members) for name, members in spec.items()]
    else:
        items = [(f"group {k}", members) for k, members in enumerate(spec)]
    out = []
    for label, members in items:
        low, high = _span(label, members, scanned)
        out.append(Group(low, high + 1, label))
    return out


def _span(label: str, members: Any, scanned: Scanned) -> tuple[int, int]:
    """The first and last experiment of a group's members."""
    n = scanned.count
    if isinstance(members, range):
        if not members:
            raise JobManagerInputError(f"{label} is empty")
        low, high = min(members[0], members[-1]), max(members[0], members[-1])
        for end in (low, high):
            _index(label, end, n)
        return low, high
    if isinstance(members, (str, bytes, int)) or not isinstance(members, Iterable):
        raise JobManagerInputError(f"{label} must be a list or range of experiment indices or circuit "
                                   f"names, got {members!r}")
    lowest: int | None = None
    highest: int | None = None
    for member in members:
        if isinstance(member, str):
            found = scanned.names.find(member)
            if not found:
                raise JobManagerInputError(f"{label} names {member!r}, which is no experiment's name")
            if len(found) > 1:
                shown = ", ".join(str(i) for i in found[:4]) + (", ..." if len(found) > 4 else "")
                raise JobManagerInputError(f"{label} names {member!r}, which {len(found)} experiments "
                                           f"are called ({shown}); name those by index")
            index = found[0]
        else:
            index = _index(label, member, n)
        lowest = index if lowest is None else min(lowest, index)
        highest = index if highest is None else max(highest, index)
    if lowest is None or highest is None:
        raise JobManagerInputError(f"{label} is empty")
    return lowest, highest


def _index(label: str, member: Any, n: int) -> int:
    if isinstance(member, bool) or not isinstance(member, int):
        raise JobManagerInputError(f"{label} holds {member!r}; a group's members are experiment "
                                   "indices or circuit names")
    if not 0 <= member < n:
        raise JobManagerInputError(f"{label} names experiment {member}, but the set has experiments "
                                   f"0 to {n - 1}")
    return member
