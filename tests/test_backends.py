"""Backend specs through the registry: local simulators, fake devices, factories, config limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from qiskit import QuantumCircuit

from qjm_tui import JobManager
from qjm_tui.backends.emulator import EmulatorBackend
from qjm_tui.backends.local import LocalBackend
from qjm_tui.backends.qiskit_backend import QiskitBackendAdapter
from qjm_tui.backends.registry import KNOWN_SPECS, resolve, resolve_spec
from qjm_tui.config import Config
from qjm_tui.core.errors import (
    BackendConfigurationError,
    JobManagerInputError,
    UnknownBackendError,
)
from qjm_tui.core.ports import BackendLimits, ConfiguredBackend, narrow_limits
from tests.conftest import basis_state, bell

THREADS = Config(executor="threads")


@pytest.mark.parametrize("spec", ["nonsense", "aer:", "basic:x", "ibm-runtime:", "::", "qasm:foo bar"])
def test_unknown_spec_lists_the_known_forms(spec: str) -> None:
    with pytest.raises(UnknownBackendError) as err:
        resolve_spec(spec, THREADS)
    message = str(err.value)
    assert repr(spec) in message or spec.rstrip(":") in message
    if spec in ("nonsense", "basic:x", "::", "qasm:foo bar"):
        for form in KNOWN_SPECS:
            assert form in message


def test_unknown_spec_from_the_api(tmp_path: Path) -> None:
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        with pytest.raises(UnknownBackendError, match="known spec forms: aer, aer:<device>"):
            jm.run([bell()], backend="quantum-magic")
        assert jm.job_sets() == []


def test_unknown_device_lists_devices() -> None:
    with pytest.raises(UnknownBackendError, match="unknown device 'fake_nowhere'.*fake_manila"):
        resolve_spec("aer:fake_nowhere", THREADS)


def test_local_specs_resolve() -> None:
    for spec in ("aer", "aer:fake_manila", "aer:manila", "basic"):
        adapter = resolve_spec(spec, THREADS)
        assert isinstance(adapter, LocalBackend) and adapter.spec == spec
    assert resolve_spec("aer:fake_manila", THREADS).target().num_qubits == 5


def test_too_wide_for_fake_manila(tmp_path: Path) -> None:
    wide = QuantumCircuit(7, 7, name="wide")
    wide.x(range(7))
    wide.measure(range(7), range(7))
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        with pytest.raises(JobManagerInputError, match="uses h, which backend aer:fake_manila cannot run"):
            jm.run([bell("needs-basis")], backend="aer:fake_manila")
        with pytest.raises(JobManagerInputError) as err:
            jm.run([basis_state("01", "ok"), wide], backend="aer:fake_manila")
        assert "uses 7 qubits but backend aer:fake_manila has 5" in str(err.value)
        assert "experiment 1 ('wide')" in str(err.value)
        with pytest.raises(JobManagerInputError, match="7 qubits"):
            jm.run([wide], backend="aer:fake_manila", transpile=True)


def test_transpile_for_fake_manila(tmp_path: Path) -> None:
    ghz = QuantumCircuit(3, 3, name="ghz")
    ghz.h(0)
    ghz.cx(0, 2)  # not on manila's line coupling map: routing is needed
    ghz.cx(0, 1)
    ghz.measure(range(3), range(3))
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        job_set = jm.run([ghz, bell("b")], backend="aer:fake_manila", transpile=True, shots=2000)
        results = job_set.results(timeout=60)
    counts = results.get_counts("ghz")
    assert sum(counts.values()) == 2000
    assert counts.get("000", 0) + counts.get("111", 0) > 1600  # noisy, but mostly GHZ
    assert results.get_counts("b").get("00", 0) > 800


def test_basic_simulator(tmp_path: Path) -> None:
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        results = jm.run([basis_state("110")], backend="basic", shots=100).results(timeout=60)
    assert results.get_counts(0) == {"110": 100}


FACTORY = '''
from qiskit.providers.basic_provider import BasicSimulator

calls = []

def make_backend():
    calls.append(1)
    return BasicSimulator()

def broken():
    raise RuntimeError("no such device today")

def not_a_backend():
    return 42

not_callable = 3
'''


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "qjm_test_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "qjm_test_factory"


def test_module_factory_spec_is_stored_and_resolves_again(tmp_path: Path, factory_module: str) -> None:
    spec = f"{factory_module}:make_backend"
    adapter = resolve_spec(spec, THREADS)
    assert isinstance(adapter, QiskitBackendAdapter) and adapter.spec == spec
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        job_set = jm.run([basis_state("01")], backend=spec, shots=50)
        assert job_set.results(timeout=60).get_counts(0) == {"01": 50}
        job_set_id = job_set.job_set_id()
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        again = jm.retrieve_job_set(job_set_id)
        assert again.backend_spec() == spec
        assert isinstance(jm._adapter(again.backend_spec()), QiskitBackendAdapter)


@pytest.mark.parametrize(("attr", "error", "words"), [
    ("broken", BackendConfigurationError, "failed: RuntimeError: no such device today"),
    ("not_a_backend", BackendConfigurationError, "returned a int, not a Qiskit backend"),
    ("missing", UnknownBackendError, "has no 'missing'"),
    ("not_callable", UnknownBackendError, "is not callable"),
])
def test_module_factory_errors(factory_module: str, attr: str, error: type, words: str) -> None:
    with pytest.raises(error) as err:
        resolve_spec(f"{factory_module}:{attr}", THREADS)
    assert words in str(err.value)


def test_unimportable_module_is_unknown() -> None:
    with pytest.raises(UnknownBackendError, match="no module 'no_such_pkg.mod' to import"):
        resolve_spec("no_such_pkg.mod:make", THREADS)


def test_narrow_limits() -> None:
    declared = BackendLimits(max_experiments_per_job=100, max_shots=None, max_concurrent_jobs=10)
    narrowed = narrow_limits(declared, {"max_experiments_per_job": 300, "max_shots": 500,
                                        "max_concurrent_jobs": 3})
    assert narrowed == BackendLimits(100, 500, 3, None)


def test_config_limits_narrow_the_adapter(tmp_path: Path) -> None:
    config = Config(executor="threads", backends={"aer": {"max_experiments_per_job": 3},
                                                  "emulator": {"max_concurrent_jobs": 2,
                                                               "max_experiments_per_job": 50}})
    aer = resolve_spec("aer", config)
    assert isinstance(aer, ConfiguredBackend) and aer.spec == "aer"
    assert aer.limits().max_experiments_per_job == 3
    assert aer.preferred_job_size(1000) >= 1  # extra adapter attributes still reach through
    emu = resolve_spec(f"emulator:dir={tmp_path},max_per_job=20", config)
    assert isinstance(emu.inner, EmulatorBackend) and not emu.inline_submit
    assert emu.limits().max_concurrent_jobs == 2 and emu.limits().max_experiments_per_job == 20
    assert emu.can_reattach()
    assert resolve_spec("basic", config).__class__ is LocalBackend  # nothing configured for it
    with JobManager(tmp_path / "s.sqlite", config=config) as jm:
        job_set = jm.run([basis_state("1")] * 7, backend="aer", shots=10)
        assert len(job_set.managed_jobs()) == 3
        assert job_set.results(timeout=60).get_counts(6) == {"1": 10}


def test_resolve_objects() -> None:
    from qiskit.providers.basic_provider import BasicSimulator

    adapter = resolve(BasicSimulator(), THREADS)
    assert adapter.spec.startswith("object:")
    with pytest.raises(UnknownBackendError, match="not int; known spec forms"):
        resolve(3, THREADS)


def test_unknown_executor_is_clear() -> None:
    with pytest.raises(BackendConfigurationError, match="unknown executor 'gpu'.*dask://HOST:PORT"):
        resolve_spec("aer", Config(executor="gpu"))
