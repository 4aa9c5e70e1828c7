"""A busy store, as a user's looks after some weeks: about 150 job sets in every state, filled
by the real core, with long names, names that differ only at the end, non-ASCII and unnamed
sets, tags and several backends; one set of 10,000 experiments; sets still running.

* done: small sets on ``aer``, ``basic``, ``aer:fake_manila --transpile`` and the emulator;
* partial and failed: the emulator with injected failures (``fail=``, seeded);
* cancelled: cancelled while a stalled emulator holds its jobs;
* interrupted: started by a second manager that then lets go of them (as a process that quits
  without finishing does);
* running: on stalled emulators (the first jobs finish, one runs for ever, the rest wait),
  owned by the manager of the scene, which stays open until :meth:`BusyStore.close`.

Ids and times are frozen (every set is made at a fixed moment before :data:`T0` and gets an
id made from that moment and its number), and every emulator takes one job at a time, so the
same jobs finish, fail or stall on every build: the screens are the same on every run.

Building takes a few seconds; tests build one per module or session and take copies
(:meth:`BusyStore.copy`). ``python -m tests.snapshots.busy DIR`` builds one for trying the
app by hand (``QJM_HOME=DIR qjm``); its running sets run until the command is stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.config import Config
from qjm_tui.core.engine import RetryPolicy
from qjm_tui.core.jobset import ManagedJobSet
from qjm_tui.core.store import Store
from qjm_tui.tui.app import QjmApp, make_app
from tests.snapshots.scenes import STORE_LABEL, T0, FrozenClock, _wait, basis, ghz, noisy

#: how many sets of each state the store holds (150 in all)
MIX = {"done": 88, "partial": 18, "failed": 12, "cancelled": 10, "interrupted": 10, "running": 12}

#: the experiments of the big set (a running set, in jobs of 100)
BIG = 10_000

#: long names (the longest is 87 characters) and names that differ only at their end
LONG_NAMES = [
    "readout-error-mitigation-calibration-for-heavy-hex-lattice-qubit-pairs-0-to-26-run-{n:03d}",
    "randomized-benchmarking-clifford-sequences-depth-1-to-512-with-interleaved-cx-{n:03d}",
    "quantum-volume-64-candidate-circuits-transpiled-for-fake-manila-seed-{n:04d}",
    "variational-ansatz-parameter-sweep-theta-0.00-to-6.28-in-64-steps-batch-{n:02d}",
]
SHORT_NAMES = ["bellfarm", "sweep-0412", "nightly-qv", "calib", "ghz-scan", "t1-t2", "xeb-cycle",
               "tomo-2q", "mirror-rb", "Messreihe-Größe-λ-φ", "量子体積-測定-パリティ", "chsh-ré-essai",
               "qaoa-maxcut-12", "vqe-h2-sto3g"]
TAGS = [[], ["nightly"], ["calibration", "heavy-hex"], ["nightly", "qv"], ["débogage"], []]


def _circuit(kind: int, n: int) -> QuantumCircuit:
    """A small circuit, one of a few shapes."""
    if kind % 3 == 0:
        return ghz(2 + n % 3, f"ghz_{n}")
    if kind % 3 == 1:
        return noisy(3, f"rot_{n}", 0.1 * (n % 9 + 1))
    return basis(f"{n % 8:03b}", f"basis_{n}")


@dataclass
class BusyStore:
    """The store, the manager that runs its running sets, and what was made."""

    path: Path
    manager: JobManager
    #: the ids of the sets of each state
    ids: dict[str, list[str]] = field(default_factory=dict)
    #: every set's name, by id
    names: dict[str, str] = field(default_factory=dict)
    #: the id of the set of 10,000 experiments
    big: str = ""

    def copy(self, folder: Path) -> Path:
        """A copy of the store in ``folder`` (made, if need be), its running sets' heartbeats
        written now, as their owner writes them while it runs them. Returns the copy's path."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "qjm.sqlite"
        source = sqlite3.connect(self.path)
        try:
            with sqlite3.connect(target) as copy:
                source.backup(copy)
            copy.close()
        finally:
            source.close()
        store = Store(target)
        try:
            for set_id in self.ids["running"]:
                store.heartbeat(set_id)
        finally:
            store.close()
        return target

    def app(self, path: Path | None = None, **kwargs: object) -> QjmApp:
        """The app on this store (or a copy of it), its clock ten minutes after :data:`T0`."""
        kwargs.setdefault("clock", lambda: T0 + 600)
        return make_app(path or self.path, config=Config(executor="threads"), store_label=STORE_LABEL,
                        **kwargs)

    def close(self) -> None:
        """Cancel the running sets and close the store."""
        self.manager.close(cancel=True, timeout=30)


def build(directory: Path, *, mix: dict[str, int] | None = None, seed: int = 17) -> BusyStore:
    """Fill a store under ``directory`` (emptied first) with the busy store's sets."""
    mix = dict(MIX if mix is None else mix)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = random.Random(seed)
    plan = [state for state, count in mix.items() for _ in range(count)]
    rng.shuffle(plan)
    clock = FrozenClock(T0 - 5 * 86400)
    step = 5 * 86400 / max(len(plan), 1)
    made = iter(range(1, 1_000_000))

    def new_id() -> str:
        tail = hashlib.sha256(f"{seed}-{next(made)}".encode()).hexdigest()[:8]
        return time.strftime("%Y%m%d-%H%M%S-", time.gmtime(clock.t)) + tail

    no_retry = RetryPolicy(max_attempts=1, base_delay=0.0, jitter=0.0)
    config = Config(executor="threads")
    path = directory / "qjm.sqlite"
    manager = JobManager(path, config=config, now=clock, new_id=new_id, retry_policy=no_retry)
    elsewhere = JobManager(Store(path, now=clock), config=config, now=clock, new_id=new_id,
                           retry_policy=no_retry)
    busy = BusyStore(path, manager, {state: [] for state in MIX})
    long_counts = [0] * len(LONG_NAMES)
    big_made = False

    def emulator(name: str, **options: object) -> str:
        opts = {"dir": directory / "emu" / name, "latency": 0, "queue": 0, "run": 0, "max_jobs": 1,
                "advertise": 1, **options}
        return "emulator:" + ",".join(f"{k}={v}" for k, v in opts.items())

    # Every set is started first and waited for afterwards: sets whose jobs fail take about a
    # second a job, and waiting for them side by side keeps the build to a few seconds.
    started: list[tuple[str, str, ManagedJobSet]] = []
    for number, state in enumerate(plan):
        clock.t = T0 - 5 * 86400 + number * step
        kind = rng.randrange(10)
        if kind < 4:
            which = rng.randrange(len(LONG_NAMES))
            long_counts[which] += 1
            name: str | None = LONG_NAMES[which].format(n=long_counts[which])
        elif kind < 9:
            name = f"{SHORT_NAMES[number % len(SHORT_NAMES)]}-{number}"
        else:
            name = None  # named after its id, as a set started without a name is
        tags = TAGS[number % len(TAGS)]
        size = rng.choice([1, 2, 3, 4, 6, 8])
        circuits = [_circuit(number, n) for n in range(size)]
        key = f"s{number}"
        if state == "running" and not big_made:
            big_made = True
            circuits = [basis(f"{n % 4:02b}", f"point_{n}") for n in range(BIG)]
            job_set = manager.run(circuits, backend=emulator(key, stall=3, seed=number),
                                  name="sweep-10k-points-overnight", shots=64,
                                  max_experiments_per_job=100, job_tags=["overnight"])
            busy.big = job_set.job_set_id()
            _wait(lambda s=busy.big: manager.store.status_counts(s).get("running") == 1)
        elif state in ("running", "interrupted", "cancelled"):
            owner = elsewhere if state == "interrupted" else manager
            stalling = emulator(key, stall=rng.randrange(1, 3 * size), seed=number)
            job_set = owner.run(circuits * 3, backend=stalling, name=name, shots=128,
                                max_experiments_per_job=1, job_tags=tags)
            set_id, store = job_set.job_set_id(), owner.store
            _wait(lambda s=set_id, st=store: st.status_counts(s).get("running") == 1)
            if state == "cancelled":
                job_set.cancel()
        else:
            if state == "done":
                backend = ["aer", "basic", emulator(key, seed=number), "aer"][number % 4]
                if number % 29 == 0:
                    backend = "aer:fake_manila"
            else:
                # a failed job costs the engine about a second: two to four jobs a set
                backend = emulator(key, fail=1.0 if state == "failed" else 0.5, seed=number)
                circuits = circuits * 2
            job_set = manager.run(circuits, backend=backend, name=name, shots=256,
                                  max_experiments_per_job=None if state == "done" else -(-len(circuits) // 4),
                                  job_tags=tags, transpile=backend.startswith("aer:"),
                                  seed_simulator=number)
        started.append((state, name or job_set.job_set_id(), job_set))
    for state, name, job_set in started:
        set_id = job_set.job_set_id()
        if state not in ("running", "interrupted"):
            job_set.results(partial=True, timeout=120)
            state = manager.store.summaries([set_id])[0].state
        busy.ids[state].append(set_id)
        busy.names[set_id] = name
    elsewhere.detach(timeout=30)
    return busy


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the busy store under DIR (its running sets run "
                                                 "until this command is stopped).")
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    busy = build(args.dir)
    counts = ", ".join(f"{len(ids)} {state}" for state, ids in busy.ids.items())
    print(f"built {busy.path} in {time.perf_counter() - start:.1f} s: {counts}", flush=True)
    print("the running sets run until Ctrl+C", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        busy.close()


if __name__ == "__main__":
    main()
