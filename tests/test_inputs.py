"""Loading OpenQASM 2, OpenQASM 3 and QPY files, and the errors for bad ones."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from qiskit import qpy

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.inputs import load_circuit_file, load_circuit_files
from qjm_tui.core.text import strip_ansi
from tests.conftest import bell

QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\n' \
        'measure q -> c;\n'
QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\n' \
        'c = measure q;\n'


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_qasm2_qasm3_and_qpy_load_and_are_named_after_the_file(tmp_path: Path) -> None:
    [two] = load_circuit_file(write(tmp_path, "bell2.qasm", QASM2))
    [three] = load_circuit_file(write(tmp_path, "bell3.qasm", QASM3))
    assert two.num_qubits == three.num_qubits == 2
    assert (two.name, three.name) == ("bell2", "bell3")
    buffer = io.BytesIO()
    qpy.dump([bell("x"), bell("y")], buffer)
    loaded = load_circuit_files([write(tmp_path, "pair.qpy", buffer.getvalue())])
    assert [c.name for c in loaded] == ["x", "y"]


def test_qasm2_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.qasm", QASM2.replace("h q[0];", "h q[0]"))
    with pytest.raises(JobManagerInputError) as info:
        load_circuit_file(path)
    assert str(info.value).startswith(f"{path}:6:1:")
    assert "';'" in str(info.value)


def test_qasm3_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad3.qasm", QASM3.replace("h q[0];", "h q[0]"))
    with pytest.raises(JobManagerInputError) as info:
        load_circuit_file(path)
    assert str(info.value).startswith(f"{path}:6:")


def test_qasm3_unknown_gate_names_the_place(tmp_path: Path) -> None:
    path = write(tmp_path, "gate3.qasm", QASM3.replace("h q[0];", "frob q[0];"))
    with pytest.raises(JobManagerInputError, match=r"gate3.qasm:5:1: .*frob"):
        load_circuit_file(path)


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("   \n", "the file is empty"),
    ("hello", "not OpenQASM"),
    ("OPENQASM 4.0;\n", "unsupported OpenQASM version 4"),
    (b"\xff\xfe\x00binary", "neither OpenQASM text nor a QPY file"),
])
def test_other_bad_files(tmp_path: Path, content: str | bytes, message: str) -> None:
    with pytest.raises(JobManagerInputError, match=message):
        load_circuit_file(write(tmp_path, "x.qasm", content))


def test_truncated_qpy(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    qpy.dump([bell()], buffer)
    path = write(tmp_path, "cut.qpy", buffer.getvalue()[:40])
    with pytest.raises(JobManagerInputError, match=r"cut.qpy: not a readable QPY file"):
        load_circuit_file(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(JobManagerInputError, match="no such file"):
        load_circuit_file(tmp_path / "nope.qasm")
    with pytest.raises(JobManagerInputError, match="is a directory"):
        load_circuit_file(tmp_path)


def test_ansi_codes_are_stripped() -> None:
    assert strip_ansi("\x1b[31mred\x1b[0m error") == "red error"
