"""Bad inputs through the CLI: each exits 2 with one line naming the place, and changes nothing stored.

Every case runs ``python -m qjm_tui.cli`` in a fresh process against a home that already holds a
finished job set and an emulator folder; both are hashed before and after.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.config import Config

BAD = Path(__file__).parent / "data" / "bad"
GOOD_QASM = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nx q[0];\nmeasure q -> c;\n'


def _tree_hash(path: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``path`` (or of ``path`` itself), by relative name."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A home with two finished sets whose ids share their first character, and an emulator folder."""
    home = tmp_path_factory.mktemp("home")
    qc = QuantumCircuit(1, 1)
    qc.x(0)
    qc.measure(0, 0)
    ids: list[str] = []
    pair = None
    with JobManager(home / "qjm.sqlite", config=Config(executor="threads")) as jm:
        while pair is None:
            js = jm.run([qc], backend="aer", name="ok", shots=16)
            js.results(timeout=60)
            ids.append(js.job_set_id())
            pair = next(((a, b) for a in ids for b in ids if a != b and a[0] == b[0]), None)
    (home / "emulator").mkdir()
    (home / "emulator" / "marker").write_text("emulator folder\n")
    return home, pair[0], pair[1]


# (case id, argv, config: None, text of the config file, "@file" from BAD, "readonly" for a
# read-only store file or "readonly-home" for a read-only QJM_HOME folder)
CASES: list[tuple[str, list[str], str | None]] = [
    ("qasm2_missing_semicolon", ["run", "@qasm2_missing_semicolon.qasm", "-b", "aer"], None),
    ("qasm2_unknown_gate", ["run", "@qasm2_unknown_gate.qasm", "-b", "aer"], None),
    ("qasm2_unclosed_bracket", ["run", "@qasm2_unclosed_bracket.qasm", "-b", "aer"], None),
    ("qasm3_missing_semicolon", ["run", "@qasm3_missing_semicolon.qasm", "-b", "aer"], None),
    ("qasm3_index_out_of_range", ["run", "@qasm3_index_out_of_range.qasm", "-b", "aer"], None),
    ("qasm3_unsupported_while", ["run", "@qasm3_unsupported_while.qasm", "-b", "aer"], None),
    ("truncated_qpy", ["run", "@truncated.qpy", "-b", "aer"], None),
    ("empty_file", ["run", "@empty.qasm", "-b", "aer"], None),
    ("binary_file", ["run", "@binary.qasm", "-b", "aer"], None),
    ("directory", ["run", "@", "-b", "aer"], None),
    ("missing_file", ["run", "@no_such_file.qasm", "-b", "aer"], None),
    ("too_wide", ["run", "@too_wide.qasm", "-b", "aer:fake_manila"], None),
    ("shots_zero", ["run", "%good", "-b", "aer", "--shots", "0"], None),
    ("shots_negative", ["run", "%good", "-b", "aer", "--shots", "-5"], None),
    ("shots_huge", ["run", "%good", "-b", "aer", "--shots", "1000000000000"], None),
    ("shots_huge_emulator", ["run", "%good", "-b", "emulator:dir=$home/emulator", "--shots", "10000000000"],
     None),
    ("shots_not_a_number", ["run", "%good", "-b", "aer", "--shots", "lots"], None),
    ("max_per_job_zero", ["run", "%good", "-b", "aer", "--max-per-job", "0"], None),
    ("unknown_backend", ["run", "%good", "-b", "nosuchbackend"], None),
    ("bad_emulator_option", ["run", "%good", "-b", "emulator:latency=fast"], None),
    ("unknown_id", ["show", "zzzzzzzz"], None),
    ("ambiguous_id", ["show", "$prefix"], None),
    ("unknown_id_results", ["results", "zzzzzzzz"], None),
    ("bad_toml", ["ls"], "@bad_syntax.toml"),
    ("wrong_config_type", ["ls"], "@wrong_type.toml"),
    ("executor_bogus", ["run", "%good", "-b", "aer"], None),
    ("executor_bogus_in_file", ["ls"], "executor = \"bogus\"\n"),
    ("control_chars_name", ["run", "%good", "-b", "aer", "--name", "evil\x1b]0;PWNED\x07\x1b[2J"], None),
    ("newline_name", ["run", "%good", "-b", "aer", "--name", "two\nlines"], None),
    ("overlong_name", ["run", "%good", "-b", "aer", "--name", "n" * 100_000], None),
    ("control_chars_tag", ["tag", "$id", "--add", "t\x1b[31m"], None),
    ("control_chars_rename", ["rename", "$id", "x\x1b[2Jy"], None),
    ("not_sqlite_store", ["ls"], "store = \"$bad/not_sqlite.db\"\n"),
    # the default executor: its worker pool starts while the request is checked, and a refused
    # request must still end in one line
    ("too_wide_processes", ["run", "@too_wide.qasm", "-b", "aer:fake_manila"], None),
    ("shots_huge_processes", ["run", "%good", "-b", "aer", "--shots", "1000000000000"], None),
    ("overlong_tag", ["run", "%good", "-b", "aer", "--tag", "t" * 1000], None),
    ("max_jobs_per_set_zero", ["run", "%good", "-b", "aer", "--max-jobs-per-set", "0"], None),
    ("max_jobs_per_set_wrong_type", ["ls"], "max_jobs_per_set = \"many\"\n"),
    ("unknown_experiment", ["results", "$id", "--experiment", "99"], None),
    ("export_to_a_directory", ["export", "$id", "-o", "."], None),
    ("readonly_store_write", ["rename", "$id", "new name"], "readonly"),
    ("readonly_store_run", ["run", "%good", "-b", "aer"], "readonly"),
    ("readonly_store_tag", ["tag", "$id", "--add", "x"], "readonly"),
    ("readonly_home_run", ["run", "%good", "-b", "aer"], "readonly-home"),
    ("readonly_home_rename", ["rename", "$id", "new name"], "readonly-home"),
    # special files where a plain one is expected (the devices are nodes made for the test)
    ("export_to_a_full_device", ["export", "$id", "-o", "%devfull"], None),
    ("circuit_file_is_a_fifo", ["run", "%fifo", "-b", "aer"], None),
    ("circuit_file_is_dev_zero", ["run", "%devzero", "-b", "aer"], None),
    ("circuit_file_is_dev_urandom", ["run", "%devurandom", "-b", "aer"], None),
    ("circuit_file_too_large", ["run", "%big", "-b", "aer"], "max_circuit_file_mb = 1\n"),
    ("config_file_is_dev_zero", ["ls"], "%devzero"),
    # a damaged store (random bytes over the job sets' page): reading and writing commands
    ("damaged_store_ls", ["ls"], "damaged"),
    ("damaged_store_show", ["show", "$id"], "damaged"),
    ("damaged_store_run", ["run", "%good", "-b", "aer"], "damaged"),
    ("damaged_store_rename", ["rename", "$id", "new name"], "damaged"),
    # another program's SQLite database where the store should be: refused as it is
    ("foreign_sqlite_store_run", ["run", "%good", "-b", "aer"], "foreign-sqlite"),
    ("foreign_sqlite_store_ls", ["ls"], "foreign-sqlite"),
    # run options: checked against what the backend declares, before anything is stored
    ("option_misspelt_aer", ["run", "%good", "-b", "aer", "--option", "shot=100"], None),
    ("option_misspelt_emulator", ["run", "%good", "-b", "emulator:dir=$home/emulator",
                                  "--option", "memroy=true"], None),
    ("option_misspelt_ibm_runtime", ["run", "%good", "-b", "ibm-runtime:fake_manila", "--transpile",
                                     "--option", "twirling.enabel_gates=true"], None),
    ("option_wrong_type", ["run", "%good", "-b", "aer", "--option", 'memory="yes"'], None),
    ("option_wrong_type_emulator", ["run", "%good", "-b", "emulator:dir=$home/emulator", "--option",
                                    "seed_simulator=1.5"], None),
    ("option_wrong_choice_ibm_runtime", ["run", "%good", "-b", "ibm-runtime:fake_manila", "--transpile",
                                         "--option", "twirling.strategy=activ"], None),
    ("option_set_by_qjm", ["run", "%good", "-b", "ibm-runtime:fake_manila", "--option", "default_shots=10"],
     None),
    ("option_not_json", ["run", "%good", "-b", "aer", "--option", "seed_simulator=[1,"], None),
    ("option_python_literal", ["run", "%good", "-b", "aer", "--option", "memory=True"], None),
    ("option_twice", ["run", "%good", "-b", "aer", "--option", "memory=true", "--option", "memory=false"],
     None),
    ("option_misspelt_detached", ["run", "%good", "-b", "aer", "--detach", "--option", "seed_simulater=1"],
     None),
    ("option_misspelt_processes", ["run", "%good", "-b", "aer", "--option", "shot=100"], None),
]

#: device nodes the special-file cases use: name -> (major, minor)
DEVICES = {"%devfull": (1, 7), "%devzero": (1, 5), "%devurandom": (1, 9)}


def _special(marker: str, folder: Path) -> Path:
    """The special file a case names: a device node of the test's own, a FIFO nobody writes,
    or a 2 MB file."""
    path = folder / marker.lstrip("%")
    if marker in DEVICES:
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(*DEVICES[marker]))
            os.close(os.open(path, os.O_RDONLY))
        except OSError as exc:
            pytest.skip(f"cannot make a device node here ({exc.strerror})")
    elif marker == "%fifo":
        os.mkfifo(path)
    elif marker == "%big":
        path.write_bytes(b"// padding\n" * 200_000)
    return path


def _damage(path: Path) -> None:
    """Random bytes over the page that holds the store's job sets, as a failing disk leaves:
    from past the page's header to its end, over every row it holds (the rows are written
    from the end of the page, and a short one can lie wholly in its last hundred bytes)."""
    conn = sqlite3.connect(path)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'job_sets'").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    noise = random.Random(19).randbytes(page - 100)
    with open(path, "r+b") as fh:
        fh.seek((root - 1) * page + 100)
        fh.write(noise)


def _foreign_database(path: Path) -> None:
    """Another program's SQLite database (rollback journal, no qjm tables) at the store path."""
    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)")
    conn.execute("INSERT INTO accounts (owner) VALUES ('someone else')")
    conn.commit()
    conn.close()


def _limit_memory() -> None:
    """Keep a case that would read a device to its end from taking the machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize(("name", "argv", "config"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_exits_2_with_one_line(
    name: str, argv: list[str], config: str | None, template_home: tuple[Path, str, str], tmp_path: Path
) -> None:
    src, id_a, id_b = template_home
    home = tmp_path / "home"
    shutil.copytree(src, home)
    good = tmp_path / "good.qasm"
    good.write_text(GOOD_QASM)
    env = dict(os.environ, QJM_HOME=str(home), QJM_EXECUTOR="threads")
    env.pop("QJM_BACKEND", None)
    env.pop("QJM_SHOTS", None)
    conf = tmp_path / "config.toml"
    readonly = config in ("readonly", "readonly-home")
    if config == "damaged":
        _damage(home / "qjm.sqlite")
    if config == "foreign-sqlite":
        _foreign_database(home / "qjm.sqlite")
    if config is None or readonly or config in ("damaged", "foreign-sqlite"):
        conf.write_text("")
    elif config.startswith("@"):
        shutil.copy(BAD / config[1:], conf)
    elif config.startswith("%"):
        conf = _special(config, tmp_path)
    else:
        conf.write_text(config.replace("$bad", str(BAD)))
    if name == "executor_bogus":
        env["QJM_EXECUTOR"] = "bogus"
    if name.endswith("_processes"):
        env.pop("QJM_EXECUTOR")
    if name == "not_sqlite_store":
        env.pop("QJM_HOME")
    env["QJM_CONFIG"] = str(conf)
    args = []
    for a in argv:
        if a.startswith("@"):
            a = str(BAD / a[1:])
        elif a == "%good":
            a = str(good)
        elif a == "$id":
            a = id_a
        elif "$home" in a:
            a = a.replace("$home", str(home))
        elif a == "$prefix":
            a = id_a[0]
        elif a.startswith("%") and a != "%good":
            a = str(_special(a, tmp_path))
        args.append(a)
    watched = [home / "qjm.sqlite", home / "emulator", BAD / "not_sqlite.db"]
    before = {str(p): _tree_hash(p) for p in watched}
    locked = {"readonly": home / "qjm.sqlite", "readonly-home": home}.get(config or "")
    if locked is not None:
        mode = locked.stat().st_mode
        locked.chmod(mode & ~0o222)
    try:
        proc = subprocess.run([sys.executable, "-m", "qjm_tui.cli", *args], env=env, capture_output=True,
                              text=True, timeout=120, cwd=tmp_path, preexec_fn=_limit_memory)
    finally:
        if locked is not None:
            locked.chmod(mode)
    after = {str(p): _tree_hash(p) for p in watched}
    if config in ("damaged", "foreign-sqlite"):
        left = sorted(p.name for p in home.iterdir() if p.name.startswith("qjm.sqlite-"))
        assert config == "damaged" or left == [], f"files made next to the database: {left}"
    for machine_device in ("/dev/full", "/dev/zero", "/dev/urandom"):
        assert stat.S_ISCHR(os.stat(machine_device).st_mode), f"{machine_device} was replaced"
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr: {proc.stderr[-2000:]!r}"
    assert len(err_lines) == 1, f"expected one line on stderr, got: {proc.stderr[-2000:]!r}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert not any(ord(ch) < 32 and ch != "\n" for ch in proc.stderr), f"raw control chars: {proc.stderr!r}"
    assert before == after, "the store or the emulator folder changed"
