"""Load and validate experiments before anything is submitted.

Circuits come from OpenQASM 2, OpenQASM 3 and QPY files, or as Python objects; pulse schedules
(``Schedule``, ``ScheduleBlock``) as objects or from QPY files of schedule blocks. Every problem
is reported as a :class:`JobManagerInputError` that names where it is (``file:line:col`` for
OpenQASM, ``experiment 12 ('bell')`` for circuits and schedules) and what to do about it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.files import TooLarge, read_bounded
from qjm_tui.core.text import strip_ansi

_QASM_VERSION = re.compile(r"^\s*OPENQASM\s+(\d+)(?:\.\d+)?\s*;", re.MULTILINE)
_POSITION = re.compile(r"(\d+),(\d+):\s*(.*)", re.DOTALL)
_ANTLR_POSITION = re.compile(r"line (\d+):(\d+)\s+(.*)")
_PARSER_POSITION = re.compile(r"L(\d+):C(\d+):\s*(.*)", re.DOTALL)
_QPY_MAGIC = b"QISKIT"
#: the names Qiskit gives unnamed experiments; a file's experiments are named after the file instead
#: the names Qiskit gives unnamed programs; such a program is named after its file instead
DEFAULT_NAME = re.compile(r"circuit-\d+|block\d+|sched\d+")


MAX_NAME_LENGTH = 200
MAX_TAG_LENGTH = 100


def check_label(value: Any, what: str, limit: int) -> str:
    """``value`` if it is a non-empty string of at most ``limit`` characters with no control
    characters; names and tags are printed to terminals, so they must not carry escape sequences."""
    if not isinstance(value, str) or not value.strip():
        raise JobManagerInputError(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise JobManagerInputError(f"{what} is {len(value)} characters long; at most {limit} are allowed")
    bad = next((ch for ch in value if ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0), None)
    if bad is not None:
        raise JobManagerInputError(f"{what} contains the control character {bad!r}; use printable text")
    return value


#: the largest circuit file read unless the configuration allows more (``max_circuit_file_mb``):
#: OpenQASM files of 50 MB are real, and parsing 200 MB of OpenQASM takes gigabytes already
DEFAULT_MAX_CIRCUIT_FILE_MB = 200


def load_circuit_file(path: str | os.PathLike[str], max_mb: int | None = None) -> list[Any]:
    """Load every circuit in an OpenQASM 2, OpenQASM 3 or QPY file.

    Only a regular file of at most ``max_mb`` megabytes (default
    :data:`DEFAULT_MAX_CIRCUIT_FILE_MB`) is read: a device such as ``/dev/zero`` would fill
    memory and a FIFO could wait for ever, so both are refused before anything is read.
    Circuits without a name are named after the file (``bell`` or ``bell[3]``) so results can
    be looked up by name.
    """
    path = Path(path)
    limit_mb = DEFAULT_MAX_CIRCUIT_FILE_MB if max_mb is None else max_mb
    try:
        data = read_bounded(path, limit_mb * 1_000_000)
    except FileNotFoundError:
        raise JobManagerInputError("no such file", str(path)) from None
    except IsADirectoryError:
        raise JobManagerInputError("is a directory, not a circuit file", str(path)) from None
    except TooLarge:
        raise JobManagerInputError(
            f"larger than {limit_mb} MB, the most qjm reads from one circuit file; to allow more, "
            "raise max_circuit_file_mb in the configuration file", str(path)) from None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # not a regular file: say what it is
            raise JobManagerInputError(f"{exc.strerror}; give an OpenQASM or QPY file",
                                       str(path)) from None
        raise JobManagerInputError(f"cannot read: {exc.strerror}", str(path)) from None
    if not data.strip():
        raise JobManagerInputError("the file is empty", str(path))
    if data.startswith(_QPY_MAGIC):
        circuits = _load_qpy(data, path)
    else:
        try:
            if b"\x00" in data:
                raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JobManagerInputError(
                "neither OpenQASM text nor a QPY file (it is binary but has no QPY header)", str(path)
            ) from None
        circuits = _load_qasm(text, path)
    if not circuits:
        raise JobManagerInputError("the file holds no circuits", str(path))
    for i, circuit in enumerate(circuits):
        if not circuit.name or DEFAULT_NAME.fullmatch(circuit.name):
            name = path.stem if len(circuits) == 1 else f"{path.stem}[{i}]"
            if is_pulse(circuit):
                circuit._name = name  # a schedule's name has no setter
            else:
                circuit.name = name
    return circuits


def load_circuit_files(paths: Iterable[str | os.PathLike[str]], max_mb: int | None = None) -> list[Any]:
    """Load several files, keeping the order of the files and of the circuits within each
    (each file at most ``max_mb`` megabytes, as :func:`load_circuit_file` says)."""
    circuits: list[Any] = []
    for path in paths:
        circuits.extend(load_circuit_file(path, max_mb))
    if not circuits:
        raise JobManagerInputError("no circuit files were given")
    experiment_kind(circuits)
    return circuits


def _load_qpy(data: bytes, path: Path) -> list[Any]:
    from qiskit import qpy

    from qjm_tui.core.circuits import quiet_pulse, schedule_from_block

    try:
        with quiet_pulse():
            loaded = qpy.load(io.BytesIO(data))
    except Exception as exc:  # qpy raises struct/QpyError/ValueError for damaged files
        detail = strip_ansi(str(exc)) or type(exc).__name__
        raise JobManagerInputError(f"not a readable QPY file (truncated or damaged: {detail})",
                                   str(path)) from None
    from qiskit import QuantumCircuit
    from qiskit.pulse import ScheduleBlock

    # QPY holds one kind of program per file: circuits, or pulse schedule blocks.
    if all(isinstance(c, QuantumCircuit) for c in loaded):
        return list(loaded)
    if all(isinstance(c, ScheduleBlock) for c in loaded):
        with quiet_pulse():
            return [schedule_from_block(c) for c in loaded]
    kinds = sorted({type(c).__name__ for c in loaded})
    raise JobManagerInputError(f"holds {', '.join(kinds)}; qjm runs circuits and pulse schedules",
                               str(path))


def _load_qasm(text: str, path: Path) -> list[Any]:
    match = _QASM_VERSION.search(text)
    if match is None:
        raise JobManagerInputError(
            "not OpenQASM (no 'OPENQASM 2.0;' or 'OPENQASM 3.0;' header) and not QPY", f"{path}:1:1"
        )
    version = match.group(1)
    if version == "2":
        return [_load_qasm2(text, path)]
    if version == "3":
        return [_load_qasm3(text, path)]
    line = text[: match.start(1)].count("\n") + 1
    raise JobManagerInputError(f"unsupported OpenQASM version {version}", f"{path}:{line}:1")


def _load_qasm2(text: str, path: Path) -> Any:
    from qiskit import qasm2

    try:
        return qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    except qasm2.QASM2Error as exc:
        message = strip_ansi(str(exc)).strip().strip('"')
        message = message.removeprefix("<input>:")
        found = _POSITION.match(message)
        if found:
            line, col, rest = found.groups()
            raise JobManagerInputError(rest.strip(), f"{path}:{line}:{int(col) + 1}") from None
        raise JobManagerInputError(message, str(path)) from None


def _load_qasm3(text: str, path: Path) -> Any:
    from qiskit import qasm3

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return qasm3.loads(text)
    except Exception as exc:
        # The parser raises an empty error whose cause says "L<line>:C<col>: message"; the
        # converter raises "L,C: message"; ANTLR may print "line L:C message" to stderr.
        chain: list[str] = []
        cause: BaseException | None = exc
        while cause is not None and len(chain) < 5:
            chain.append(strip_ansi(str(cause)))
            cause = cause.__cause__ or cause.__context__
        token = _offending_token(exc)
        if token is not None:
            line, col, text = token
            raise JobManagerInputError(f"syntax error at {text!r} (is a ';' or bracket missing "
                                       "just before it?)", f"{path}:{line}:{col + 1}") from None
        for text in chain:
            found = _PARSER_POSITION.search(text)
            if found:
                where, column, rest = found.groups()
                raise JobManagerInputError(rest.strip(), f"{path}:{where}:{int(column) + 1}") from None
        for source in (captured.getvalue(), chain[0]):
            for line_text in source.splitlines():
                found = _ANTLR_POSITION.search(line_text)
                if found:
                    where, column, rest = found.groups()
                    raise JobManagerInputError(rest.strip(), f"{path}:{where}:{int(column) + 1}") from None
            found = _POSITION.search(source.strip().strip('"'))
            if found:
                where, column, rest = found.groups()
                raise JobManagerInputError(rest.strip(), f"{path}:{where}:{int(column) + 1}") from None
        if "qiskit_qasm3_import" in str(exc):
            raise JobManagerInputError(
                "reading OpenQASM 3 needs the 'qiskit-qasm3-import' package", str(path)
            ) from None
        detail = strip_ansi(str(exc)).strip() or type(exc).__name__
        raise JobManagerInputError(f"not valid OpenQASM 3: {detail}", str(path)) from None


def _offending_token(exc: BaseException) -> tuple[int, int, str] | None:
    """Where ANTLR stopped, from the recognition error the OpenQASM 3 parser wraps."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        for arg in getattr(seen, "args", ()):
            token = getattr(arg, "offendingToken", None)
            if token is not None and getattr(token, "line", None) is not None:
                return int(token.line), int(token.column), str(token.text)
        seen = seen.__cause__ or seen.__context__
    return None


def is_pulse(experiment: Any) -> bool:
    """Whether ``experiment`` is a pulse schedule (``Schedule`` or ``ScheduleBlock``)."""
    from qiskit.pulse import Schedule, ScheduleBlock

    return isinstance(experiment, (Schedule, ScheduleBlock))


def normalize_experiments(experiments: Any, max_file_mb: int | None = None) -> list[Any]:
    """A list of experiments from one circuit or schedule, a sequence of them, or file paths:
    all ``QuantumCircuit``, or all pulse schedules (``Schedule``/``ScheduleBlock``), never both
    (each file at most ``max_file_mb`` megabytes, as :func:`load_circuit_file` says)."""
    from qiskit import QuantumCircuit

    if isinstance(experiments, QuantumCircuit) or is_pulse(experiments):
        return [experiments]
    if isinstance(experiments, (str, os.PathLike)):
        return load_circuit_file(experiments, max_file_mb)
    if not isinstance(experiments, Iterable):
        raise JobManagerInputError(
            f"experiments must be circuits, pulse schedules or circuit files, not "
            f"{type(experiments).__name__}"
        )
    circuits: list[Any] = []
    for i, item in enumerate(experiments):
        if isinstance(item, QuantumCircuit) or is_pulse(item):
            circuits.append(item)
        elif isinstance(item, (str, os.PathLike)):
            circuits.extend(load_circuit_file(item, max_file_mb))
        else:
            raise JobManagerInputError(
                f"is a {type(item).__name__}; qjm runs QuantumCircuit objects, pulse schedules "
                "(Schedule, ScheduleBlock) or circuit files",
                f"experiment {i}",
            )
    if not circuits:
        raise JobManagerInputError("there are no experiments to run")
    experiment_kind(circuits)
    return circuits


def experiment_kind(experiments: Sequence[Any]) -> str:
    """``"circuits"`` or ``"schedules"``: what a job set holds. A set holds one kind, since a
    backend job runs one kind; the first experiment of the other kind is named in the error."""
    pulse = is_pulse(experiments[0])
    for i, item in enumerate(experiments):
        if is_pulse(item) != pulse:
            first, other = ("pulse schedules", "a circuit") if pulse else ("circuits", "a pulse schedule")
            raise JobManagerInputError(
                f"is {other}, but the experiments before it are {first}; a job set holds circuits "
                "or pulse schedules, not both: run them as two job sets", _label(i, item))
    return "schedules" if pulse else "circuits"


def check_kind_runs(kind: str, runs: Sequence[str], backend_name: str, transpile: bool = False) -> None:
    """Raise unless a backend that runs ``runs`` can take a set of ``kind`` experiments."""
    if kind == "schedules" and "schedules" not in runs:
        raise JobManagerInputError(
            f"backend {backend_name} cannot run pulse schedules; run them on the local pulse "
            "simulator: backend 'dynamics' (one transmon) or 'dynamics:fake_7q_pulse' (needs "
            "qiskit-dynamics: pip install 'qjm-tui[pulse]')")
    if kind == "circuits" and "circuits" not in runs:
        raise JobManagerInputError(
            f"backend {backend_name} runs pulse schedules only; run circuits on a circuit backend "
            "such as 'aer'")
    if kind == "schedules" and transpile:
        raise JobManagerInputError("transpile applies to circuits; pulse schedules run as they are, "
                                   "so leave transpile off (no --transpile)")


def check_schedules(schedules: Sequence[Any]) -> None:
    """Raise if a schedule cannot be stored and run as it is, whatever the backend: unassigned
    parameters, unresolved references, or metadata that is not plain JSON."""
    import json

    for i, schedule in enumerate(schedules):
        if schedule.is_parameterized():
            names = ", ".join(sorted(p.name for p in schedule.parameters))
            raise JobManagerInputError(f"has unassigned parameters ({names}); assign them first "
                                       "(assign_parameters)", _label(i, schedule))
        missing = [key for key, value in getattr(schedule, "references", {}).items() if value is None]
        if missing:
            keys = "; ".join(",".join(map(str, key)) if isinstance(key, tuple) else str(key)
                             for key in missing)
            raise JobManagerInputError(
                f"calls schedules it does not hold ({keys}); assign them "
                "with assign_references", _label(i, schedule))
        try:
            json.dumps(schedule.metadata)
        except (TypeError, ValueError) as exc:
            raise JobManagerInputError(f"has metadata that cannot be stored ({exc}); use plain "
                                       "values (numbers, strings, lists, dicts)",
                                       _label(i, schedule)) from None


def validate_shots(shots: Any) -> int | None:
    """``None`` or a positive integer; anything else is a clear error."""
    if shots is None:
        return None
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise JobManagerInputError(f"shots must be a positive integer, got {shots!r}")
    return int(shots)


def _label(index: int, circuit: Any) -> str:
    return f"experiment {index} ({circuit.name!r})"


def validate_for_target(circuits: Sequence[Any], target: Any, backend_name: str, first: int = 0) -> None:
    """Raise if any circuit is wider than the backend or uses operations it cannot run
    (``first``: the global index of the first circuit, for the messages)."""
    if target is None:
        return
    width = getattr(target, "num_qubits", None)
    supported = set(getattr(target, "operation_names", ()) or ())
    always = {"barrier", "measure", "delay", "reset", "store", "if_else", "while_loop", "for_loop",
              "switch_case", "break_loop", "continue_loop", "box"}
    for i, circuit in enumerate(circuits):
        if width is not None and circuit.num_qubits > width:
            raise JobManagerInputError(
                f"uses {circuit.num_qubits} qubits but backend {backend_name} has {width}",
                _label(first + i, circuit),
            )
        if supported:
            missing = sorted(set(circuit.count_ops()) - supported - always)
            if missing:
                raise JobManagerInputError(
                    f"uses {', '.join(missing)}, which backend {backend_name} cannot run; "
                    "pass transpile=True (or --transpile) to translate it for the backend",
                    _label(first + i, circuit),
                )


def transpile_for(circuits: Sequence[Any], target_backend: Any, backend_name: str,
                  first: int = 0) -> list[Any]:
    """Transpile for the backend, keeping each circuit's name (``first`` as for
    :func:`validate_for_target`)."""
    from qiskit import transpile

    width = getattr(getattr(target_backend, "target", None), "num_qubits", None)
    for i, circuit in enumerate(circuits):
        if width is not None and circuit.num_qubits > width:
            raise JobManagerInputError(
                f"uses {circuit.num_qubits} qubits but backend {backend_name} has {width}",
                _label(first + i, circuit),
            )
    try:
        out = transpile(list(circuits), backend=target_backend)
    except Exception as exc:
        raise JobManagerInputError(f"cannot be transpiled for {backend_name}: "
                                   f"{strip_ansi(str(exc))}") from None
    return list(out) if isinstance(out, list) else [out]
