"""Crash suite: SIGKILL at seeded random moments, resume in a new process, lose nothing, run
nothing twice.

Each round starts one process that resumes every unfinished job set of a shared store (and
sometimes starts a new set, on ``aer``, on the emulated service with faults, or on IBM Quantum
through the unmodified qiskit-ibm-runtime client against the local IBM Quantum service, also
with faults: answers cut off after a job was created, refused status checks, a pending-jobs
limit), then kills it
with SIGKILL at a seeded moment picked from one phase: inside ``run()`` while the circuits are
being stored, while jobs are being submitted, while a retry is under way, while results are
being stored, or after a random delay. The next round's process resumes what the killed one
left. A last process, never killed, resumes everything. Then:

* every experiment whose circuit reached the store has exactly one result, equal to what its
  circuit must give (basis-state circuits: one bitstring gets every shot);
* a set killed inside ``run()`` before all its circuits were stored ends in a final state and
  has no results for the experiments whose circuits never reached the store;
* the emulated service's and the IBM service's own records show no chunk (a job's experiment
  range) run twice;
* ``PRAGMA integrity_check`` is ok on the store and on the emulated service's job file.

Processes are forked from one that has imported Qiskit and qjm already, so a round costs
milliseconds rather than the seconds a fresh interpreter takes; every round is a new process.

Two more campaigns disrupt real ``qjm run`` and ``qjm resume`` commands instead of killing
them: SIGTERM and SIGHUP at seeded moments (the command must leave its set interrupted, say so
and exit 143 or 129), and a full disk (the store on a small tmpfs that is filled at a seeded
moment and freed after the command has stopped by itself). The same checks follow.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qjm_tui.backends.emulator import EmulatorBackend
from qjm_tui.core.status import SET_FINAL, SetState
from qjm_tui.core.store import JobRow, Store
from qjm_tui.testing.ibm_service import IBMQuantumService
from tests.conftest import executions_per_chunk
from tests.test_full_disk import basis_file

#: the IBM sets' backend: the local service's manila, its jobs' states asked often
IBM_SPEC = "ibm-runtime:ibmq_manila,poll=0.02"

REPO = Path(__file__).resolve().parents[1]

#: a process that imports everything once, then forks one worker per command read from stdin
ZYGOTE = textwrap.dedent("""
    import json, os, sys, traceback
    import qiskit_aer  # noqa: F401  (imported once, before any fork)
    import qiskit_ibm_runtime  # noqa: F401
    from qiskit import QuantumCircuit
    from qjm_tui import JobManager
    from qjm_tui.backends import emulator, ibm_runtime, local  # noqa: F401
    from qjm_tui.cli import main as cli_main
    from qjm_tui.config import Config
    from qjm_tui.core.engine import RetryPolicy

    POLICY = RetryPolicy(max_attempts=30, base_delay=0.02, max_delay=0.2, limit_wait=0.05,
                         max_poll_errors=3)

    def basis(i):
        qc = QuantumCircuit(3, 3, name=f"c{i}")
        for q in range(3):
            if ((i % 8) >> q) & 1:
                qc.x(q)
        qc.measure(range(3), range(3))
        return qc

    def work(task):
        new = task.get("new")
        manager = JobManager(task["store"], config=Config(executor="threads"), retry_policy=POLICY,
                             new_id=lambda: new["id"])
        sets = [manager.retrieve_job_set(set_id).resume() for set_id in task["resume"]]
        if new:
            sets.append(manager.run([basis(i) for i in range(new["n"])], backend=new["spec"],
                                    max_experiments_per_job=new["per_job"], shots=new["shots"],
                                    **new["options"]))
        for job_set in sets:
            job_set.wait(300)
        manager.close()

    for line in sys.stdin:
        task = json.loads(line)
        if task["do"] == "wait":
            print(os.waitpid(task["pid"], 0)[1], flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            log = os.open(task["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(log, 1)
            os.dup2(log, 2)
            code = 0
            try:
                if task["do"] == "cli":  # one qjm command, as a user runs it
                    code = cli_main(task["argv"])
                else:
                    work(task)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        print(pid, flush=True)
""")

PHASES = ("run", "submit", "retry", "results", "random")


@dataclass
class Campaign:
    """What a crash campaign did, for the assertions and the figures it reports."""

    kills: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    unstored_sets: int = 0
    experiments_checked: int = 0
    results_lost: int = 0
    chunks_run_twice: int = 0


class Zygote:
    """The forking process: ``start`` runs a task in a new child, ``reap`` collects a child."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], cwd=REPO, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def _ask(self, command: dict[str, Any]) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, "the forking process ended"
        return int(answer)

    def start(self, task: dict[str, Any]) -> int:
        return self._ask({"do": "fork", **task})

    def reap(self, pid: int) -> int:
        """Wait for the child and return its wait status (a killed child is no zombie after)."""
        return self._ask({"do": "wait", "pid": pid})

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def _alive(pid: int) -> bool:
    """Whether the child is still running (a finished one is a zombie until reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _moment_reached(db: sqlite3.Connection, phase: str, set_ids: list[str], target: int,
                    new_id: str | None, blocks_planned: int) -> bool:
    """Whether the store shows the moment picked for this kill."""
    marks = ",".join("?" * len(set_ids))
    if phase == "run":
        if new_id is None:
            return False
        row = db.execute("SELECT COUNT(*), (SELECT COUNT(*) FROM job_sets WHERE id=?) FROM circuit_blocks"
                         " WHERE job_set_id=?", (new_id, new_id)).fetchone()
        return row[1] == 1 and min(target, blocks_planned - 1) <= row[0] < blocks_planned
    rows = db.execute(f"SELECT status, retries, backend_job_id FROM jobs WHERE job_set_id IN ({marks})",
                      set_ids).fetchall()
    if phase == "submit":
        return sum(1 for s, _r, b in rows if b or s == "submitting") >= target and \
            any(s == "submitting" for s, _r, _b in rows)
    if phase == "retry":
        return any(r > 0 and s not in ("done", "failed", "cancelled") for s, r, _b in rows)
    return sum(1 for s, _r, _b in rows if s == "done") >= target  # results


def _set_ids(db: sqlite3.Connection, unfinished_only: bool) -> list[str]:
    """The ids of the store's job sets (only those not in a final state, if asked)."""
    final = sorted(SET_FINAL) if unfinished_only else []
    marks = ",".join("?" * len(final))
    return [i for (i,) in db.execute(f"SELECT id FROM job_sets WHERE state NOT IN ({marks})", final)]


def start_ibm_service(seed: int) -> IBMQuantumService:
    """The local IBM Quantum service the IBM sets run on, with faults at seeded rates: answers
    to job submissions cut off after the job was created (the client cannot tell it went
    through), refused status checks, and a limit of 2 pending jobs. No noise, so every outcome
    is exact."""
    ibm = IBMQuantumService(["fake_manila"], max_pending_jobs=2, job_seconds=0.05, noise=False, seed=seed)
    ibm.reset("POST", "/api/v1/jobs", after=True, times=None, rate=0.15)
    ibm.fail("GET", "/api/v1/jobs/*", 429, times=None, rate=0.1)
    return ibm.start()


def ibm_runs_per_chunk(ibm: IBMQuantumService, jobs: list[JobRow]) -> Counter[tuple[str, int, int]]:
    """How many times the IBM service ran each chunk to the end, from its own record."""
    ranges = {job.client_tag: (job.job_set_id, job.start, job.stop) for job in jobs}
    runs: Counter[tuple[str, int, int]] = Counter()
    for tag, count in ibm.runs_by_tag("qjm:").items():
        if tag in ranges:
            runs[ranges[tag]] += count
    return runs


def run_campaign(tmp_path: Path, kills: int, seed: int) -> Campaign:
    """Kill ``kills`` processes at seeded moments, resume after each, then finish everything."""
    rng = random.Random(seed)
    home = tmp_path / "home"
    store_path, service = home / "qjm.sqlite", tmp_path / "service"
    ibm = start_ibm_service(seed)
    env = {**os.environ, "QJM_HOME": str(home), "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore",
           **ibm.environ()}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    campaign = Campaign()
    zygote = Zygote(env)
    log = tmp_path / "workers.log"
    db: sqlite3.Connection | None = None
    try:
        while sum(campaign.kills.values()) < kills:
            campaign.rounds += 1
            assert campaign.rounds <= 4 * kills, f"too few kills landed: {campaign.kills}"
            phase = rng.choice(PHASES)
            unfinished = [] if db is None else _set_ids(db, unfinished_only=True)
            new = None
            if phase == "run" or not unfinished or rng.random() < 0.3:
                n = len(campaign.sets)
                new = {"id": f"crash-{n:03d}", "n": 24, "per_job": 2, "shots": 32, "options": {},
                       "spec": f"emulator:dir={service},latency=0.01,queue=0.05,run=0.05,max_jobs=4,"
                               f"max_per_job=2,fault_rate=0.3,status_error=0.25,seed={seed * 1000 + n}"}
                if n % 3 == 1:
                    new.update(spec="aer", shots=4000, options={"memory": True})
                elif n % 3 == 2:
                    new.update(spec=IBM_SPEC, options={"transpile": True})
                campaign.sets[new["id"]] = new
            pid = zygote.start({"store": str(store_path), "log": str(log), "resume": unfinished,
                                "new": new})
            involved = unfinished + ([new["id"]] if new else [])
            target = rng.randint(0, 11) if phase == "run" else rng.randint(1, 10)
            delay = rng.uniform(0.0, 1.0)
            started = time.monotonic()
            killed = False
            while _alive(pid) and time.monotonic() - started < 60:
                if db is None and store_path.exists():
                    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)
                try:
                    reached = (time.monotonic() - started >= delay) if phase == "random" else (
                        db is not None and _moment_reached(db, phase, involved, target,
                                                           new and new["id"], 12))
                except sqlite3.OperationalError:
                    reached = False  # the store is being created
                if reached:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.002)
            status = zygote.reap(pid)
            if killed:
                campaign.kills[phase] += 1
            else:
                assert status == 0, f"a worker failed (status {status}):\n{log.read_text()[-3000:]}"
        if db is None:
            db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)
        last = zygote.start({"store": str(store_path), "log": str(log), "new": None,
                             "resume": _set_ids(db, unfinished_only=False)})
        assert zygote.reap(last) == 0, log.read_text()[-3000:]
        _check(campaign, store_path, service, ibm)
    finally:
        if db is not None:
            db.close()
        zygote.close()
        ibm.stop()
    return campaign


def _check(campaign: Campaign, store_path: Path, service: Path, ibm: IBMQuantumService | None = None) -> None:
    store = Store(store_path)
    emulator = EmulatorBackend(f"dir={service}")
    try:
        all_jobs = []
        for set_id, plan in campaign.sets.items():
            if not any(r.id == set_id for r in store.list_job_sets()):
                continue  # killed before run() stored the set: nothing was kept, nothing ran
            row = store.get_job_set(set_id)
            jobs = store.jobs(set_id)
            all_jobs += jobs
            stored = {e for start, stop, _q in store.circuit_blocks(set_id, 0, plan["n"])
                      for e in range(start, stop)}
            results = store.results(set_id)
            state = store.effective_state(row)
            assert state in SET_FINAL, (set_id, state)
            if len(stored) < plan["n"]:
                campaign.unstored_sets += 1
            else:
                assert state == SetState.DONE, (set_id, state, [j.last_error for j in jobs])
            for experiment in range(plan["n"]):
                got = results.get(experiment, [])
                if experiment not in stored:
                    assert got == [], (set_id, experiment)
                    continue
                campaign.experiments_checked += 1
                if not got:
                    campaign.results_lost += 1
                    continue
                assert len(got) == 1, (set_id, experiment, len(got))
                assert got[0]["data"]["counts"] == {hex(experiment % 8): plan["shots"]}, (set_id, experiment)
        runs = executions_per_chunk(emulator.jobs(), all_jobs)
        faults = emulator.faults()
        if ibm is not None:
            runs += ibm_runs_per_chunk(ibm, all_jobs)
            faults["ibm_limit_refusals"] = ibm.refusals()["limit"]
            faults["ibm_answers_cut_off"] = sum("answer cut off" in r.note for r in ibm.requests())
            faults["ibm_status_refused"] = sum(r.status == 429 for r in ibm.requests())
        campaign.chunks_run_twice = sum(1 for n in runs.values() if n > 1)
        campaign.faults = faults
        for path in (store_path, service / "emulator.sqlite"):
            with sqlite3.connect(path) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", path
    finally:
        store.close()
        emulator.close()
    assert campaign.results_lost == 0
    assert campaign.chunks_run_twice == 0, runs


def _report(campaign: Campaign) -> str:
    return (f"{sum(campaign.kills.values())} kills in {campaign.rounds} rounds "
            f"({dict(campaign.kills)}); {len(campaign.sets)} job sets, {campaign.unstored_sets} killed "
            f"before all circuits were stored; faults injected {sum(campaign.faults.values())} "
            f"({campaign.faults}); {campaign.experiments_checked} results checked, "
            f"{campaign.results_lost} lost, {campaign.chunks_run_twice} chunks run twice")


def test_twenty_kills_at_seeded_moments_lose_nothing_and_run_nothing_twice(tmp_path: Path) -> None:
    campaign = run_campaign(tmp_path, kills=20, seed=20261125)
    print(_report(campaign))
    assert sum(campaign.kills.values()) == 20
    assert len(campaign.kills) >= 3, campaign.kills  # the kills landed in several phases


@pytest.mark.slow
def test_a_hundred_kills_at_seeded_moments(tmp_path: Path) -> None:
    campaign = run_campaign(tmp_path, kills=100, seed=7)
    print(_report(campaign))
    assert sum(campaign.kills.values()) == 100
    assert len(campaign.kills) == len(PHASES), campaign.kills


# -- SIGTERM, SIGHUP and a full disk against the command line ------------------------------------

#: retry settings for the command-line rounds (as POLICY in the forking process)
RETRY_CONFIG = """
[retry]
max_attempts = 30
base_delay = 0.02
max_delay = 0.2
limit_wait = 0.05
max_poll_errors = 3
"""

DISRUPTION_PHASES = ("submit", "results", "random")


def _read(db: sqlite3.Connection | None, query: Any, *args: Any) -> Any:
    """``query(db, *args)``, or None while the store cannot be read (not made yet)."""
    if db is None:
        return None
    try:
        return query(db, *args)
    except sqlite3.Error:
        return None


def _owned_sets(db: sqlite3.Connection, pid: int) -> list[str]:
    """The ids of the sets process ``pid`` runs now."""
    return [i for (i,) in db.execute("SELECT id FROM job_sets WHERE owner_pid = ? AND state = 'running'",
                                     (pid,))]


def run_disruption_campaign(tmp_path: Path, kinds: tuple[str, ...], rounds: int, seed: int,
                            disk: Any = None) -> Campaign:
    """``rounds`` commands (``qjm run`` of a new set, or ``qjm resume`` of an unfinished one),
    each disrupted at a seeded moment by the next of ``kinds``: ``SIGTERM``, ``SIGHUP`` or
    ``full`` (the store's disk filled, then freed once the command stopped); then a last
    resume of everything, and the crash suite's checks."""
    rng = random.Random(seed)
    tmp_path.mkdir(parents=True, exist_ok=True)
    home = (disk.path if disk is not None else tmp_path) / "home"
    store_path, service = home / "qjm.sqlite", tmp_path / "service"
    config = tmp_path / "config.toml"
    config.write_text(RETRY_CONFIG)
    source = basis_file(tmp_path / "basis.qpy", 24)
    env = {**os.environ, "QJM_HOME": str(home), "QJM_CONFIG": str(config), "QJM_EXECUTOR": "threads",
           "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    env.pop("QJM_BACKEND", None)
    env.pop("QJM_SHOTS", None)
    campaign = Campaign()
    zygote = Zygote(env)
    db: sqlite3.Connection | None = None
    try:
        for round_no in range(rounds):
            campaign.rounds += 1
            kind = kinds[round_no % len(kinds)]
            phase = rng.choice(DISRUPTION_PHASES)
            known = set(_read(db, _set_ids, False) or [])
            unfinished = _read(db, _set_ids, True) or []
            if unfinished and rng.random() < 0.5:
                argv = ["resume", rng.choice(unfinished), "-q"]
                plan = None
            else:
                n = len(campaign.sets)
                plan = {"n": 24, "shots": 32}
                spec = (f"emulator:dir={service},latency=0.01,queue=0.05,run=0.05,max_jobs=4,"
                        f"max_per_job=2,fault_rate=0.3,status_error=0.25,seed={seed * 1000 + n}")
                if n % 2:
                    spec, plan["shots"] = "aer", 4000
                argv = ["run", str(source), "-b", spec, "--max-per-job", "2", "--shots",
                        str(plan["shots"]), "-q"]
            log = tmp_path / f"round-{round_no:02d}.log"
            pid = zygote.start({"do": "cli", "argv": argv, "log": str(log)})
            target = rng.randint(1, 10)
            delay = rng.uniform(0.0, 1.0)
            started = time.monotonic()
            disrupted = False
            owned: float | None = None
            while _alive(pid) and time.monotonic() - started < 60:
                if db is None and store_path.exists():
                    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)
                # Only the sets this command runs count, and only once it runs them: a signal
                # before it has set up its handlers would end it as the default action does.
                involved = _read(db, _owned_sets, pid) or []
                if phase == "random":
                    if owned is None and involved:
                        owned = time.monotonic()
                    reached = owned is not None and time.monotonic() - owned >= delay
                else:
                    reached = bool(involved and _read(db, _moment_reached, phase, involved, target, None, 12))
                if reached:
                    if kind == "full":
                        # Full to the last byte, or nearly: small writes may still fit.
                        disk.fill(leave=rng.choice((0, 0, 16 << 10, 64 << 10, 256 << 10)))
                    else:
                        os.kill(pid, getattr(signal, kind))
                    disrupted = True
                    break
                time.sleep(0.002)
            deadline = time.monotonic() + 120
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):  # a command that does not stop by itself on a full disk is a failure
                os.kill(pid, signal.SIGKILL)
            code = os.waitstatus_to_exitcode(zygote.reap(pid))
            if kind == "full" and disrupted:
                disk.free()
            said = log.read_text(errors="replace")
            if plan is not None:
                for set_id in set(_read(db, _set_ids, False) or []) - known:
                    campaign.sets[set_id] = plan
            assert code != -signal.SIGKILL, f"the command did not stop by itself:\n{said[-3000:]}"
            if not disrupted:
                # A set a full disk left with circuits never stored ends partial, saying so.
                assert code == 0 or (code == 1 and "were never stored" in said), \
                    f"{argv} failed ({code}):\n{said[-3000:]}"
                continue
            campaign.kills[kind] += 1
            if kind == "full":
                # Stopped by itself: finished before a write failed (0), interrupted (1) or
                # refused a new set (2); whatever it said names the full disk.
                assert code in (0, 1, 2), (code, said[-3000:])
                assert code == 0 or "full" in said, said[-3000:]
            else:
                number = int(getattr(signal, kind))
                assert code in (0, 128 + number), (argv, phase, code, said[-3000:])
                assert code == 0 or f"{kind}: " in said, said[-3000:]
        if db is None:
            db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)
        final_log = tmp_path / "final.log"
        last = zygote.start({"do": "fork", "store": str(store_path), "log": str(final_log), "new": None,
                             "resume": _set_ids(db, unfinished_only=False)})
        assert zygote.reap(last) == 0, final_log.read_text()[-3000:]
    finally:
        if db is not None:
            db.close()
        zygote.close()
    _check(campaign, store_path, service)
    return campaign


def test_sigterm_and_sighup_rounds_lose_nothing_and_run_nothing_twice(tmp_path: Path) -> None:
    campaign = run_disruption_campaign(tmp_path, ("SIGTERM", "SIGHUP"), rounds=8, seed=20261203)
    print(_report(campaign))
    assert campaign.kills["SIGTERM"] >= 1 and campaign.kills["SIGHUP"] >= 1, campaign.kills


def test_full_disk_rounds_lose_nothing_and_run_nothing_twice(tmp_path: Path) -> None:
    from tests.fulldisk import small_disk

    with small_disk(tmp_path / "disk", size_mb=8) as disk:
        campaign = run_disruption_campaign(tmp_path, ("full",), rounds=6, seed=20261204, disk=disk)
    print(_report(campaign))
    assert campaign.kills["full"] >= 2, campaign.kills


@pytest.mark.slow
def test_forty_sigterm_sighup_and_full_disk_rounds(tmp_path: Path) -> None:
    from tests.fulldisk import small_disk

    signals = run_disruption_campaign(tmp_path / "signals", ("SIGTERM", "SIGHUP"), rounds=40, seed=11)
    print(_report(signals))
    with small_disk(tmp_path / "disk", size_mb=8) as disk:
        full = run_disruption_campaign(tmp_path / "full", ("full",), rounds=20, seed=12, disk=disk)
    print(_report(full))
    assert signals.kills["SIGTERM"] >= 10 and signals.kills["SIGHUP"] >= 10 and full.kills["full"] >= 10
