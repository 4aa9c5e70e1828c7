"""Run options are checked against what each backend declares, before anything is stored.

A misspelt option (``shot=100``), a value of the wrong kind (``memory="yes"``) or an option qjm
sets itself (``default_shots`` on IBM) is a JobManagerInputError naming the option, the backend
and the closest known name, on ``aer``, ``emulator`` and ``ibm-runtime:`` alike, and the store
(and the emulator's folder) stays byte-for-byte as it was. The declarations come from the
backends (Aer's ``Options``, SamplerV2's options dataclasses), and every option the README and the
tests use is accepted by the backend they use it with.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qjm_tui import JobManager
from qjm_tui.backends.local import LocalBackend
from qjm_tui.backends.registry import resolve_spec
from qjm_tui.cli import main
from qjm_tui.cli.commands import run_options as cli_run_options
from qjm_tui.config import Config
from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.options import QJM_PARAMETERS, check_run_options
from qjm_tui.core.ports import (
    BackendLimits,
    ExecutionBackend,
    JobPayload,
    JobStatusInfo,
    RunOption,
    RunOptions,
)
from tests.conftest import basis_state, bell
from tests.ibm_double import SPEC as IBM_SPEC
from tests.ibm_double import (
    StartService,
    start_ibm_fixture,  # noqa: F401  (the start_ibm fixture)
)

ROOT = Path(__file__).resolve().parent.parent
THREADS = Config(executor="threads")
RUNTIME = "ibm-runtime:fake_manila"


def _dump(path: Path) -> str:
    """Everything a store (or emulator job file) holds, read through a connection of its own."""
    if not path.exists():
        return "<absent>"
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def _tree(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def jm(tmp_path: Path) -> Iterator[JobManager]:
    """A manager whose store already holds one finished set."""
    manager = JobManager(tmp_path / "s.sqlite", config=THREADS)
    manager.run([basis_state("1")], backend="aer", shots=8, name="before").results(timeout=60)
    yield manager
    manager.close(cancel=True)


def _spec(kind: str, tmp_path: Path) -> str:
    return f"emulator:dir={tmp_path / 'emu'}" if kind == "emulator" else kind


def _refused(jm: JobManager, tmp_path: Path, spec: str, match: str, **kwargs: Any) -> None:
    """``run`` with ``kwargs`` raises JobManagerInputError matching ``match``; nothing changes."""
    before = _dump(jm.store.path), _tree(tmp_path / "emu")
    sets = [s.job_set_id() for s in jm.job_sets(whole_store=True)]
    with pytest.raises(JobManagerInputError, match=match):
        jm.run([bell()], backend=spec, transpile=True, **kwargs)
    assert [s.job_set_id() for s in jm.job_sets(whole_store=True)] == sets
    assert (_dump(jm.store.path), _tree(tmp_path / "emu")) == before


# -- refused --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["aer", "emulator", RUNTIME])
def test_a_misspelt_option_is_refused_with_the_closest_name(
    jm: JobManager, tmp_path: Path, kind: str
) -> None:
    spec = _spec(kind, tmp_path)
    _refused(
        jm,
        tmp_path,
        spec,
        re.escape(f"unknown run option 'shot' for {spec}; did you mean 'shots'?"),
        shot=100,
    )
    name, close = ("twirling", "twirling") if kind == RUNTIME else ("memroy", "memory")
    _refused(
        jm,
        tmp_path,
        spec,
        re.escape(f"unknown run option '{name}x' for {spec}; did you mean '{close}'?"),
        **{name + "x": {} if kind == RUNTIME else True},
    )


def test_the_message_is_one_sentence_with_the_suggestion(jm: JobManager, tmp_path: Path) -> None:
    _refused(jm, tmp_path, "aer", r"^unknown run option 'shot' for aer; did you mean 'shots'\?$", shot=100)


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        (
            "aer",
            {"memory": "yes"},
            "run option 'memory' for aer must be a bool or null, got 'yes' \\(a str\\)",
        ),
        ("aer", {"seed_simulator": "7"}, "'seed_simulator' for aer must be an int or null, got '7'"),
        ("aer", {"max_parallel_threads": True}, "must be an int or null, got True \\(a bool\\)"),
        ("aer", {"zero_threshold": "small"}, "'zero_threshold' for aer must be a float, got 'small'"),
        ("aer", {"method": 3}, "'method' for aer must be a str, got 3 \\(an int\\)"),
        (
            "emulator",
            {"memory": 1},
            "'memory' for emulator:dir=.* must be a bool or null, got 1 \\(an int\\)",
        ),
        ("emulator", {"seed_simulator": 1.5}, "'seed_simulator' for emulator:.* must be an int or null"),
        (RUNTIME, {"memory": "true"}, "'memory' for ibm-runtime:fake_manila must be a bool, got 'true'"),
        (
            RUNTIME,
            {"twirling": True},
            "'twirling' for ibm-runtime:fake_manila must be a dict of its options "
            r"\(enable_gates, .*\), got True \(a bool\)",
        ),
        (
            RUNTIME,
            {"twirling": {"num_randomizations": "many"}},
            "'twirling.num_randomizations' .* must be one of 'auto' or int, got 'many'",
        ),
        (
            RUNTIME,
            {"twirling": {"strategy": "activ"}},
            "must be one of 'active', .*got 'activ'; did you mean 'active'",
        ),
        (RUNTIME, {"execution": {"rep_delay": "long"}}, "'execution.rep_delay' .* must be a float"),
        (
            RUNTIME,
            {"max_execution_time": 1.5},
            "'max_execution_time' .* must be an int, got 1.5 \\(a float\\)",
        ),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused(
    jm: JobManager, tmp_path: Path, kind: str, options: dict[str, Any], message: str
) -> None:
    _refused(jm, tmp_path, _spec(kind, tmp_path), message, **options)


def test_ibm_runtime_names_nested_options_and_refuses_what_qjm_sets(jm: JobManager, tmp_path: Path) -> None:
    _refused(
        jm,
        tmp_path,
        RUNTIME,
        r"'twirling.enabel_gates' .*did you mean 'twirling.enable_gates'\?",
        twirling={"enabel_gates": True},
    )
    _refused(
        jm,
        tmp_path,
        RUNTIME,
        re.escape(
            "unknown run option 'seed_simulator' for ibm-runtime:fake_manila; "
            "did you mean 'simulator.seed_simulator' "
            "(simulator={'seed_simulator': ...})?"
        ),
        seed_simulator=7,
    )
    _refused(
        jm,
        tmp_path,
        RUNTIME,
        re.escape("'default_shots' for ibm-runtime:fake_manila is set by qjm: use shots=N"),
        default_shots=10,
    )
    _refused(
        jm,
        tmp_path,
        RUNTIME,
        "'environment.job_tags' .* is set by qjm: use job_tags=",
        environment={"job_tags": ["mine"]},
    )
    _refused(jm, tmp_path, RUNTIME, "'method' for ibm-runtime:fake_manila", method="statevector")


def test_qjm_parameters_are_suggested_for_their_misspellings(jm: JobManager, tmp_path: Path) -> None:
    for wrong, right in [
        ("max_experiment_per_job", "max_experiments_per_job"),
        ("job_tag", "job_tags"),
        ("transpiled", "transpile"),
        ("seed", "seed_simulator"),
    ]:
        _refused(
            jm, tmp_path, "aer", f"unknown run option '{wrong}' for aer; did you mean '{right}'", **{wrong: 1}
        )
    _refused(jm, tmp_path, "aer", r"'zzz' for aer; `qjm backends aer` lists the \d+ it takes", zzz=1)
    _refused(jm, tmp_path, "basic", "'zzz' for basic; it takes memory, .*seed_simulator", zzz=1)


def test_other_backend_kinds_check_too(jm: JobManager, tmp_path: Path) -> None:
    from qiskit_aer import AerSimulator

    # a Qiskit backend object (the generic wrapper), module:factory, and configured limits
    _refused(
        jm,
        tmp_path,
        AerSimulator(),
        "unknown run option 'shot' for object:aer_simulator; did you mean",
        shot=5,
    )
    _refused(
        jm,
        tmp_path,
        "qiskit_aer:AerSimulator",
        "'shot' for qiskit_aer:AerSimulator; did you mean 'shots'",
        shot=5,
    )
    limited = JobManager(jm.store, config=Config(executor="threads", backends={"aer": {"max_shots": 100}}))
    _refused(limited, tmp_path, "aer", "'shot' for aer; did you mean 'shots'", shot=5)


def test_ibm_provider_declares_from_its_backend_class() -> None:
    from qjm_tui.backends.ibm_provider import IBMProviderBackend

    declared = IBMProviderBackend("ibm_x", provider=object()).run_options()
    assert {"memory", "meas_level", "rep_delay", "init_qubits", "seed_simulator"} <= set(declared.names())
    check_run_options({"meas_level": 2, "rep_delay": 0.0001, "memory": True}, declared, "ibm-provider:ibm_x")
    with pytest.raises(JobManagerInputError, match="'memroy' for ibm-provider:ibm_x; did you mean 'memory'"):
        check_run_options({"memroy": True}, declared, "ibm-provider:ibm_x")
    with pytest.raises(JobManagerInputError, match="'job_tags' .* is set by qjm"):
        check_run_options({"job_tags": ["x"]}, declared, "ibm-provider:ibm_x")


def test_moving_a_set_to_a_backend_that_does_not_take_its_options_is_refused(
    jm: JobManager, tmp_path: Path
) -> None:
    job_set = jm.run([bell()], backend="aer", shots=8, method="no-such-method")
    assert job_set.wait(timeout=60) == "failed"
    before = _dump(jm.store.path)
    with pytest.raises(
        JobManagerInputError,
        match=f"job set {job_set.job_set_id()} cannot move to "
        "ibm-runtime:fake_manila, its run options do not fit: unknown run option 'method'",
    ):
        job_set.retry_failed(backend=RUNTIME)
    assert _dump(jm.store.path) == before


# -- accepted, and passed on as given -------------------------------------------------------


class Recording(ExecutionBackend):
    """Aer on threads, recording the run options each job reaches the backend with."""

    def __init__(self, declared: RunOptions | None) -> None:
        super().__init__()
        self.inner = LocalBackend("aer", executor="threads")
        self.spec = "recording"
        self.declared = declared
        self.seen: list[dict[str, Any]] = []

    def run_options(self) -> RunOptions | None:
        return self.declared

    def limits(self) -> BackendLimits:
        return self.inner.limits()

    def target(self) -> Any:
        return self.inner.target()

    def submit(self, payload: JobPayload) -> str:
        self.seen.append(dict(payload.run_options))
        return self.inner.submit(payload)

    def status(self, job_id: str) -> JobStatusInfo:
        return self.inner.status(job_id)

    def result(self, job_id: str) -> list[Any]:
        return self.inner.result(job_id)

    def cancel(self, job_id: str) -> bool:
        return self.inner.cancel(job_id)


def test_only_backend_options_reach_the_backend(jm: JobManager) -> None:
    backend = Recording(LocalBackend("aer", executor="threads").run_options())
    with pytest.warns(DeprecationWarning, match="job_share_level"):
        job_set = jm.run(
            [bell("a"), bell("b")],
            backend=backend,
            name="n",
            shots=16,
            max_experiments_per_job=1,
            job_tags=["t"],
            transpile=True,
            max_jobs_per_set=5,
            job_share_level="global",
            memory=True,
            seed_simulator=11,
            zero_threshold=0,
            max_memory_mb=None,
        )
    results = job_set.results(timeout=60)
    assert (
        backend.seen
        == [{"memory": True, "seed_simulator": 11, "zero_threshold": 0, "max_memory_mb": None}] * 2
    )
    assert len(results.get_memory("a")) == 16
    # a whole number where Aer takes only a float is passed on as one (Aer would warn and cast)
    assert type(backend.seen[0]["zero_threshold"]) is float
    assert jm.store.get_job_set(job_set.job_set_id()).run_options == backend.seen[0]


def test_an_adapter_that_declares_nothing_is_not_checked(jm: JobManager) -> None:
    backend = Recording(None)
    jm.run([bell()], backend=backend, shots=4, anything_goes=1).results(timeout=60)
    assert backend.seen == [{"anything_goes": 1}]


def test_declared_options_work_on_the_backends(jm: JobManager, tmp_path: Path) -> None:
    """Options each declaration accepts are ones the backend acts on: a seed repeats counts."""
    for spec in ("aer", f"emulator:dir={tmp_path / 'emu'},queue=0,run=0,latency=0"):
        counts = [
            jm.run([bell()], backend=spec, shots=200, seed_simulator=5, method="statevector", memory=True)
            .results(timeout=60)
            .get_counts(0)
            for _ in range(2)
        ]
        assert counts[0] == counts[1]
    runtime = dict(
        simulator={"seed_simulator": 3},
        twirling={"enable_gates": False, "strategy": "all"},
        dynamical_decoupling={"enable": False},
        environment={"log_level": "ERROR"},
        memory=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local testing mode says it ignores the hardware options
        runs = [
            jm.run([bell()], backend=RUNTIME, transpile=True, shots=300, **runtime).results(timeout=120)
            for _ in range(2)
        ]
    assert runs[0].get_counts(0) == runs[1].get_counts(0) and len(runs[0].get_memory(0)) == 300


def test_values_are_checked_as_json_kinds() -> None:
    declared = RunOptions(
        (
            RunOption("x", (float,)),
            RunOption("n", (int, type(None))),
            RunOption("l", (list,)),
            RunOption("g", (dict,), fields=(RunOption("k", (str, int), choices=("auto",)),)),
        )
    )
    check_run_options({"x": 1, "n": None, "l": ("a", "b"), "g": {"k": 4}}, declared, "b")
    check_run_options({"g": {"k": "auto"}}, declared, "b")
    for bad, match in [
        ({"x": True}, "must be a float, got True"),
        ({"n": 1.0}, "must be an int or null"),
        ({"l": "ab"}, "must be a list"),
        ({"g": {"k": "aut"}}, "did you mean 'auto'"),
        ({"g": {"kk": 1}}, "'g.kk' for b; did you mean 'g.k'"),
    ]:
        with pytest.raises(JobManagerInputError, match=match):
            check_run_options(bad, declared, "b")


def test_declarations_come_from_the_backends() -> None:
    """Every option Aer's Options has is declared, with a kind for all but the objects JSON
    cannot hold; SamplerV2's dataclass fields are declared, nested, with Literal choices."""
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime.options import SamplerOptions

    aer = resolve_spec("aer", THREADS).run_options()
    assert set(AerSimulator().options) <= set(aer.names())
    untyped = {o.name for o in aer.options if not o.kinds}
    assert untyped == {"executor", "noise_model", "parameter_binds"}
    assert aer.get("shots").set_by and aer.get("memory").kinds == (bool, type(None))
    runtime = resolve_spec(RUNTIME, THREADS).run_options()
    fields = [f.name for f in SamplerOptions.__dataclass_fields__.values() if not f.name.startswith("_")]
    assert set(fields) | {"memory"} == set(runtime.names())
    assert runtime.get("dynamical_decoupling").field("sequence_type").choices == ("XX", "XpXm", "XY4")
    assert runtime.get("default_shots").set_by and runtime.get("environment").field("job_tags").set_by
    assert runtime.get("twirling").field("enable_gates").default is False


# -- every option the README and the tests use is accepted ----------------------------------

#: receivers of .run() that are not a JobManager
_NOT_A_MANAGER = {"subprocess", "asyncio", "runner", "sim", "simulator", "sampler", "backend", "self.backend"}
#: files that use bad options on purpose
_ON_PURPOSE = {"test_run_options.py", "test_bad_inputs.py"}


def _literal(node: ast.AST | None) -> Any:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return _UNKNOWN


_UNKNOWN = object()


def _in_raises(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``with pytest.raises(...)`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
            "raises" in ast.unparse(item.context_expr) for item in node.items
        ):
            inside |= {id(n) for n in ast.walk(node)}
    return inside


def _python_uses(source: str, where: str) -> Iterator[tuple[str, Any, Any, str]]:
    """(option, value, backend, where) for each run option in ``source``'s manager ``run`` calls,
    also in Python code held in its strings (scripts the tests start as processes)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    raises = _in_raises(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ".run(" in node.value:
            yield from _python_uses(node.value, f"{where} (a script in a string)")
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
        ):
            continue
        receiver = node.func.value
        made_here = isinstance(receiver, ast.Call)  # JobManager().run(...), AerSimulator().run(...)
        if made_here and not ast.unparse(receiver.func).endswith("JobManager"):
            continue
        if ast.unparse(receiver) in _NOT_A_MANAGER or id(node) in raises:
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
        backend = _literal(keywords.get("backend"))
        for name, value in keywords.items():
            if name not in QJM_PARAMETERS:
                yield name, _literal(value), backend, f"{where}:{node.lineno}"


def _cli_uses(argv: list[Any], where: str) -> Iterator[tuple[str, Any, Any, str]]:
    """The same for ``--option KEY=VALUE`` in a command line given as a list of strings (on
    the default backend, ``aer``, unless it names one)."""
    words = [w for w in argv if isinstance(w, str)]
    backend = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-b", "--backend")), "aer")
    for i, word in enumerate(words[:-1]):
        if word == "--option" and "=" in words[i + 1] and not words[i + 1].startswith("KEY="):
            for name, value in cli_run_options([words[i + 1]]).items():
                yield name, value, backend, where


def option_uses() -> list[tuple[str, Any, Any, str]]:
    """Every run option used in the README and in the tests (and qjm's own code)."""
    uses: list[tuple[str, Any, Any, str]] = []
    for path in sorted([*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("qjm_tui").rglob("*.py")]):
        if path.name in _ON_PURPOSE:
            continue
        source = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        uses += _python_uses(source, where)
        raises = _in_raises(tree := ast.parse(source))
        for node in ast.walk(tree):
            if id(node) in raises:
                continue
            # command lines: list literals, a call's arguments, example text
            if isinstance(node, (ast.List, ast.Tuple)):
                uses += _cli_uses([_literal(e) for e in node.elts], f"{where}:{node.lineno}")
            elif isinstance(node, ast.Call):
                uses += _cli_uses([_literal(e) for e in node.args], f"{where}:{node.lineno}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "--option " in node.value:
                uses += _cli_uses(node.value.split("#")[0].split(), f"{where}:{node.lineno}")
    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    for lang, block in re.findall(r"```(\w*)\n(.*?)```", readme, re.S):
        if lang == "python":
            # a call shown failing on purpose is followed by the error it raises
            lines = block.splitlines()
            kept = [
                line
                for line, after in zip(lines, [*lines[1:], ""], strict=True)
                if "JobManagerInputError" not in after
            ]
            uses += _python_uses("\n".join(kept), "README.md")
        for line in block.splitlines():
            if "--option" in line:
                uses += _cli_uses(line.split("#")[0].split(), "README.md")
    for span in re.findall(r"`([^`\n]+)`", readme):
        if "--option" in span:
            uses += _cli_uses(span.split(), "README.md")
        elif ".run(" in span or span.startswith("run("):
            uses += _python_uses(re.sub(r"^run\(", "jm.run(", span).replace("...", "[]"), "README.md")
    return uses


def test_every_option_the_readme_and_the_tests_use_is_accepted(tmp_path: Path) -> None:
    uses = option_uses()
    names = {name for name, *_ in uses}
    # the scan finds what is known to be there (so a scan that finds nothing fails)
    assert {"memory", "seed_simulator", "method", "max_memory_mb", "twirling"} <= names, names
    declarations: dict[str, RunOptions | None] = {}

    def declared(spec: str) -> RunOptions | None:
        if spec not in declarations:
            declarations[spec] = resolve_spec(spec, THREADS).run_options()
        return declarations[spec]

    refused = []
    for name, value, backend, where in uses:
        specs = [backend] if isinstance(backend, str) else ["aer", "emulator", "basic", RUNTIME]
        specs = [re.sub(r"emulator:.*", "emulator", s) for s in specs]
        errors = []
        for spec in specs:
            try:
                if value is _UNKNOWN:  # not a literal: the name alone is checked
                    option = declared(spec).get(name)
                    if option is None or option.set_by:
                        raise JobManagerInputError(f"{name!r} is not an option of {spec}")
                else:
                    check_run_options({name: value}, declared(spec), spec)
            except JobManagerInputError as exc:
                errors.append(str(exc))
        if len(errors) == len(specs):
            refused.append(f"{where}: {name}={value!r} on {' / '.join(specs)}: {errors[0]}")
    assert not refused, "\n".join(refused)


# -- the command line -----------------------------------------------------------------------


def _qjm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_option_values(tmp_path: Path) -> None:
    assert cli_run_options(
        [
            "memory=true",
            "seed_simulator=42",
            "method=statevector",
            'device="GPU"',
            "twirling.enable_gates=true",
            "twirling.strategy=all",
            'basis_gates=["x","sx"]',
        ]
    ) == {
        "memory": True,
        "seed_simulator": 42,
        "method": "statevector",
        "device": "GPU",
        "twirling": {"enable_gates": True, "strategy": "all"},
        "basis_gates": ["x", "sx"],
    }
    from qjm_tui.cli.output import CliError

    for pair, message in [
        ("memory=True", "not JSON: write true"),
        ("x=None", "write null"),
        ("x=[1,2", "not valid JSON"),
        ("x=1.2.3", "not valid JSON"),
        ("x=", "no value"),
        ("x=NaN", "not a JSON number"),
        ("shots=5", "give shots with --shots"),
        ("job_tags=[]", "give job_tags with --tag"),
        ("=1", "expects KEY=VALUE"),
    ]:
        with pytest.raises(CliError, match=re.escape(message)):
            cli_run_options([pair])
    with pytest.raises(CliError, match="--option memory is given twice"):
        cli_run_options(["memory=true", "memory=false"])


def test_cli_run_refuses_a_misspelt_option_and_runs_a_good_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    monkeypatch.setenv("QJM_EXECUTOR", "threads")
    qasm = tmp_path / "one.qasm"
    qasm.write_text(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nx q[0];\nmeasure q -> c;\n'
    )
    code, out, err = _qjm(capsys, "run", str(qasm), "-b", "aer", "--option", "shot=100")
    assert code == 2 and out == ""
    assert err.strip() == "qjm: error: unknown run option 'shot' for aer; did you mean 'shots'?"
    assert 'INSERT INTO "job_sets"' not in _dump(isolated_home / "qjm.sqlite")
    code, out, err = _qjm(
        capsys,
        "run",
        str(qasm),
        "-b",
        "aer",
        "-q",
        "--json",
        "--option",
        "memory=true",
        "--option",
        "seed_simulator=3",
    )
    assert code == 0, err
    assert json.loads(out)["run_options"] == {"memory": True, "seed_simulator": 3}


def test_cli_backends_lists_the_run_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _qjm(capsys, "backends", "aer", RUNTIME)
    assert code == 0
    assert "Run options of aer, from AerSimulator options and AerSimulator.run" in out
    lines = out.splitlines()
    assert any(line.split()[:3] == ["seed_simulator", "int", "or"] for line in lines)
    assert any(line.split()[:3] == ["method", "str", '"automatic"'] for line in lines)
    assert "  shots: set by qjm, use shots=N (qjm run --shots N)" in lines
    assert any(line.split()[:2] == ["twirling.strategy", "one"] for line in lines)
    assert "  default_shots: set by qjm, use shots=N (qjm run --shots N)" in lines
    code, out, _ = _qjm(capsys, "backends", "basic", "--json")
    entry = json.loads(out)[0]
    options = {o["name"]: o for o in entry["run_options"]["options"]}
    assert options["memory"] == {"name": "memory", "type": "bool", "default": False}
    assert options["shots"]["set_by_qjm"].startswith("use shots=")
    code, out, _ = _qjm(capsys, "backends")  # the overview stays one table
    assert "Run options" not in out


def test_ibm_runtime_through_a_service_checks_the_same(jm: JobManager, tmp_path: Path) -> None:
    """The real-service path (a service object with the runtime's methods, as in
    test_ibm_offline.py) declares the same SamplerV2 options, without signing in to read them."""
    from qjm_tui.backends.ibm_runtime import IBMRuntimeBackend
    from tests.test_ibm_offline import StandInService

    service = StandInService()
    adapter = IBMRuntimeBackend("ibm_standin", service=service)
    assert not adapter.local
    _refused(
        jm,
        tmp_path,
        adapter,
        re.escape("'shot' for ibm-runtime:ibm_standin; did you mean 'shots'?"),
        shot=100,
    )
    _refused(
        jm,
        tmp_path,
        adapter,
        "'dynamical_decoupling.sequence_type' .* got 'XY8'",
        dynamical_decoupling={"sequence_type": "XY8"},
    )


def test_a_value_the_store_cannot_keep_is_named(jm: JobManager, tmp_path: Path) -> None:
    from qiskit_aer.noise import NoiseModel

    _refused(
        jm,
        tmp_path,
        "aer",
        r"since the store keeps them \('noise_model' is a NoiseModel\)",
        noise_model=NoiseModel(),
    )


def test_ibm_runtime_through_the_local_ibm_service_refuses_before_any_request(
    jm: JobManager, tmp_path: Path, start_ibm: StartService
) -> None:
    """Through the unmodified client and the local IBM Quantum service: a misspelt option and
    a wrong kind are refused before anything is stored and before a job reaches the service,
    and a correct option runs."""
    ibm = start_ibm()
    spec = IBM_SPEC
    _refused(jm, tmp_path, spec, re.escape(f"unknown run option 'shot' for {spec}; did you mean 'shots'?"),
             shot=100)
    _refused(jm, tmp_path, spec, f"'memory' for {re.escape(spec)} must be a bool", memory="yes")
    assert not [r for r in ibm.requests() if r.method == "POST" and r.path == "/api/v1/jobs"]
    job_set = jm.run([bell()], backend=spec, transpile=True, shots=50,
                     dynamical_decoupling={"enable": False})
    assert job_set.wait(120) == "done"
    from qiskit_ibm_runtime import QiskitRuntimeService

    [job] = ibm.jobs()
    inputs = QiskitRuntimeService(**ibm.service_kwargs()).job(job["id"]).inputs
    assert inputs["options"]["dynamical_decoupling"] == {"enable": False}
