"""The IBM adapters without a network.

* ``ibm-runtime:fake_<device>``: qiskit-ibm-runtime's local testing mode, end to end through
  JobManager (real SamplerV2, real local jobs, real result conversion).
* ``ibm-runtime:<name>`` with a stand-in ``QiskitRuntimeService`` (backend / job / jobs) whose
  jobs are local-testing-mode SamplerV2 jobs: reattach by id in a new adapter, find by tag.
* ``ibm-provider:<name>``: the provider's real ``IBMBackend`` / ``IBMCircuitJob`` /
  ``IBMBackendService`` over a stubbed runtime client (its transport), which answers with the
  service's JSON shapes from a local Aer run.
* Credentials: the lookup order, the clear error when there are none, and that a token never
  shows in a repr, an error message, a log, or the store.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile

from qjm_tui import JobManager
from qjm_tui.backends import ibm_common
from qjm_tui.backends.ibm_runtime import IBMRuntimeBackend, header_of, pub_result_to_experiment
from qjm_tui.backends.registry import resolve_spec
from qjm_tui.config import Config
from qjm_tui.core.errors import BackendConfigurationError
from qjm_tui.core.ports import JobPayload
from qjm_tui.core.status import JobStatus
from tests.conftest import basis_state, bell

TOKEN = "tok-9f8e7d6c5b4a-SECRET"
THREADS = Config(executor="threads")


@pytest.fixture(autouse=True)
def no_saved_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's own saved IBM accounts (if any) must not leak into the tests."""
    monkeypatch.setattr(ibm_common, "saved_account_names", lambda: [])


def _two_registers() -> QuantumCircuit:
    q, a, c = QuantumRegister(3), ClassicalRegister(1, "a"), ClassicalRegister(2, "c")
    qc = QuantumCircuit(q, a, c, name="regs")
    qc.x(0)
    qc.x(2)
    qc.measure(0, a[0])
    qc.measure([1, 2], [c[0], c[1]])
    return qc


def _wait(adapter: Any, job_id: str) -> None:
    import time

    for _ in range(600):
        if adapter.status(job_id).state == JobStatus.DONE:
            return
        time.sleep(0.05)
    raise AssertionError("job did not finish")


# -- runtime: local testing mode -------------------------------------------------------------


def test_runtime_local_testing_mode_end_to_end(tmp_path: Path) -> None:
    adapter = resolve_spec("ibm-runtime:fake_manila", THREADS)
    assert isinstance(adapter, IBMRuntimeBackend) and adapter.local and not adapter.can_reattach()
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        job_set = jm.run([_two_registers(), bell("b")], backend="ibm-runtime:fake_manila",
                         transpile=True, shots=400, memory=True, job_tags=["offline"])
        results = job_set.results(timeout=120)
    counts = results.get_counts("regs")
    assert sum(counts.values()) == 400 and max(counts, key=counts.get) == "10 1"
    assert results.get_memory("regs")[0].count(" ") == 1  # registers split like Aer's
    bell_counts = results.get_counts("b")
    assert bell_counts.get("00", 0) + bell_counts.get("11", 0) > 300


def test_runtime_needs_isa_circuits_unless_transpiled(tmp_path: Path) -> None:
    from qjm_tui.core.errors import JobManagerInputError

    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        with pytest.raises(JobManagerInputError, match="transpile=True"):
            jm.run([bell()], backend="ibm-runtime:fake_manila")


def test_conversion_matches_aer_formatting() -> None:
    from qiskit.result import Result
    from qiskit_ibm_runtime import SamplerV2
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    device = FakeManilaV2()
    circuit = transpile(_two_registers(), device)
    pub = SamplerV2(mode=device).run([circuit], shots=64).result()[0]
    exp = pub_result_to_experiment(pub, header_of(_two_registers()), memory=True)
    assert exp["header"]["creg_sizes"] == [["a", 1], ["c", 2]] and exp["header"]["memory_slots"] == 3
    assert all(key.startswith("0x") for key in exp["data"]["counts"])
    result = Result.from_dict({"backend_name": "x", "backend_version": "1", "qobj_id": "q", "job_id": "j",
                               "success": True, "results": [exp]})
    assert sum(result.get_counts(0).values()) == 64 and len(result.get_memory(0)) == 64
    assert "10 1" in result.get_counts(0)


# -- runtime: a stand-in service -------------------------------------------------------------


class StandInService:
    """The part of ``QiskitRuntimeService`` the adapter uses; jobs run in local testing mode.

    ``keep`` plays the service's side of submission: it records the job so ``job(id)`` and
    ``jobs(job_tags=...)`` find it later, from any adapter.
    """

    def __init__(self) -> None:
        from qiskit_ibm_runtime.fake_provider import FakeManilaV2

        self.device = FakeManilaV2()
        self.kept: dict[str, tuple[Any, list[str]]] = {}
        self.calls: list[str] = []

    def backend(self, name: str) -> Any:
        self.calls.append(f"backend:{name}")
        return self.device

    def keep(self, adapter: IBMRuntimeBackend, job_id: str, tags: list[str]) -> None:
        self.kept[job_id] = (adapter._jobs.get(job_id), tags)

    def job(self, job_id: str) -> Any:
        self.calls.append(f"job:{job_id}")
        return self.kept[job_id][0]

    def jobs(self, job_tags: list[str], backend_name: str, limit: int) -> list[Any]:
        self.calls.append(f"jobs:{job_tags}")
        return [job for job, tags in self.kept.values() if set(job_tags) <= set(tags)][:limit]


def test_runtime_reattach_by_id_and_find_by_tag() -> None:
    service = StandInService()
    first = IBMRuntimeBackend("ibm_test", service=service)
    assert first.can_reattach() and not first.local
    circuit = transpile(_two_registers(), service.device)
    tags = ["set-1", "job-0"]
    job_id = first.submit(JobPayload([circuit], 100, {}, tags))
    service.keep(first, job_id, tags)
    # A new adapter (as in a new process) knows nothing but the id and the tags.
    second = IBMRuntimeBackend("ibm_test", service=service)
    assert second.find(["set-1", "job-0"]) == [job_id]
    assert second.find(["set-1", "job-9"]) == []
    _wait(second, job_id)
    [exp] = second.result(job_id)
    assert f"job:{job_id}" in service.calls
    assert exp["header"]["name"] == "regs"  # recovered from the job's inputs
    assert exp["shots"] == 100


def test_runtime_through_job_manager_with_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import qiskit_ibm_runtime

    made: list[dict[str, Any]] = []
    service = StandInService()

    def fake_service(**kwargs: Any) -> StandInService:
        made.append(kwargs)
        return service

    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", fake_service)
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "crn:v1:test-instance")
    caplog.set_level(logging.DEBUG)
    store = tmp_path / "s.sqlite"
    with JobManager(store, config=THREADS) as jm:
        job_set = jm.run([basis_state("101")], backend="ibm-runtime:ibm_test", transpile=True, shots=50)
        counts = job_set.results(timeout=120).get_counts(0)
        report = job_set.report()
    assert sum(counts.values()) == 50
    assert made == [{"token": TOKEN, "instance": "crn:v1:test-instance"}]
    for text in (report, caplog.text, repr(resolve_spec("ibm-runtime:ibm_test", THREADS))):
        assert TOKEN not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["ibm-runtime:ibm_brisbane", "ibm-provider:ibmq_qasm_simulator"])
def test_missing_credentials_say_what_to_set(spec: str, tmp_path: Path) -> None:
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        with pytest.raises(BackendConfigurationError) as err:
            jm.run([bell()], backend=spec)
    message = str(err.value)
    for words in ("no IBM Quantum credentials", spec, "QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE",
                  "[ibm]", "chmod 600", "save_account"):
        assert words in message


def test_credential_order(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config(ibm={"token": "from-file", "instance": "file-inst"})
    creds = ibm_common.resolve_credentials(config, "ibm-runtime:x")
    assert creds.token.reveal() == "from-file" and creds.instance == "file-inst"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    creds = ibm_common.resolve_credentials(config, "ibm-runtime:x")
    assert creds.token.reveal() == TOKEN and creds.source.startswith("environment")
    assert creds.instance == "file-inst"  # the instance still comes from the file
    monkeypatch.delenv("QISKIT_IBM_TOKEN")
    monkeypatch.setattr(ibm_common, "saved_account_names", lambda: ["default-ibm-quantum-platform"])
    saved = ibm_common.resolve_credentials(Config(), "ibm-runtime:x")
    assert saved.token is None and saved.source.startswith("saved account")
    with pytest.raises(BackendConfigurationError, match="no saved account named 'work'"):
        ibm_common.resolve_credentials(Config(ibm={"account": "work"}), "ibm-runtime:x")


def test_token_never_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import qiskit_ibm_runtime

    def refusing_service(**kwargs: Any) -> None:
        raise ValueError(f"login refused for token {kwargs['token']}")

    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", refusing_service)
    config = Config(ibm={"token": TOKEN})
    adapter = resolve_spec("ibm-runtime:ibm_kyiv", config)
    creds = ibm_common.resolve_credentials(config, "x")
    for text in (repr(adapter), str(adapter.describe()), repr(creds), str(creds.token), str(config.masked())):
        assert TOKEN not in text
    with pytest.raises(BackendConfigurationError) as err:
        adapter.target()
    assert TOKEN not in str(err.value) and "login refused for token ***" in str(err.value)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(creds.token)


# -- provider over a stubbed transport -------------------------------------------------------


def _manila_json(kind: str) -> dict[str, Any]:
    import qiskit_ibm_runtime.fake_provider as fp

    return json.loads((Path(fp.__file__).parent / "backends" / "manila" / f"{kind}_manila.json").read_text())


class StubRuntimeClient:
    """Stands in for qiskit-ibm-provider's RuntimeClient (its HTTP transport).

    It answers with the service's JSON shapes; a job's circuits run on Aer (with manila's noise)
    when submitted, and the job reports queued, running, then completed on successive polls.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}

    def backend_status(self, name: str) -> dict[str, Any]:
        return {"backend_name": name, "backend_version": "1.0", "operational": True,
                "pending_jobs": 0, "status_msg": "active"}

    def backend_properties(self, name: str, datetime: Any = None) -> dict[str, Any]:
        return _manila_json("props")

    def backend_pulse_defaults(self, name: str) -> None:
        return None

    def program_run(self, program_id: str, backend_name: str, params: dict[str, Any], hgp: str,
                    job_tags: list[str] | None, **_: Any) -> dict[str, str]:
        from qiskit_aer import AerSimulator
        from qiskit_ibm_runtime.fake_provider import FakeManilaV2

        sim = AerSimulator.from_backend(FakeManilaV2())
        result = sim.run(params["circuits"], shots=params.get("shots", 1024),
                         memory=bool(params.get("memory"))).result().to_dict()
        job_id = uuid.uuid4().hex
        self.jobs[job_id] = {"id": job_id, "created": dt.datetime.now(dt.timezone.utc).isoformat(),
                             "program": {"id": program_id}, "backend": backend_name,
                             "hub": "h", "group": "g", "project": "p", "tags": list(job_tags or []),
                             "polls": 0, "cancelled": False, "result": result}
        return {"id": job_id}

    def _status(self, job: dict[str, Any]) -> str:
        if job["cancelled"]:
            return "Cancelled"
        return ("Queued", "Running")[job["polls"]] if job["polls"] < 2 else "Completed"

    def job_get(self, job_id: str, exclude_params: bool = False) -> dict[str, Any]:
        from qiskit_ibm_provider.api.exceptions import RequestsApiError

        job = self.jobs.get(job_id)
        if job is None:
            raise RequestsApiError("Error code: 3250. Job not found", 404)
        status = self._status(job)
        job["polls"] += 1
        return {**{k: v for k, v in job.items() if k not in ("polls", "cancelled", "result")},
                "status": status, "state": {"status": status}}

    def job_type(self, job_id: str) -> str:
        return "RUNTIME"

    def job_results(self, job_id: str) -> str:
        from qiskit_ibm_provider.utils.json_encoder import IBMJsonEncoder

        return json.dumps(self.jobs[job_id]["result"], cls=IBMJsonEncoder)

    def job_cancel(self, job_id: str) -> None:
        self.jobs[job_id]["cancelled"] = True

    def jobs_get(self, limit: int | None = None, skip: int = 0, descending: bool = True,
                 job_tags: list[str] | None = None, backend: str | None = None, **_: Any) -> dict[str, Any]:
        rows = [j for j in self.jobs.values()
                if set(job_tags or []) <= set(j["tags"]) and backend in (None, j["backend"])]
        rows = rows[skip:skip + (limit or len(rows))]
        return {"jobs": [{**{k: v for k, v in j.items() if k not in ("polls", "cancelled", "result")},
                          "status": self._status(j), "state": {"status": self._status(j)}} for j in rows]}


class StubProvider:
    """An IBMProvider whose backends and job service are the provider's own classes."""

    def __init__(self, transport: StubRuntimeClient) -> None:
        from qiskit_ibm_provider.ibm_backend_service import IBMBackendService

        self._runtime_client = transport
        from qiskit_ibm_provider.api.client_parameters import ClientParameters

        # Only used to build (never to open) the job's websocket client.
        params = ClientParameters(token="stub-not-a-token", url="https://127.0.0.1:9")
        self._api_client = SimpleNamespace(_params=params)
        self._hgp = SimpleNamespace(name="h/g/p", backends={"ibmq_manila": None},
                                    _api_client=self._api_client)
        self.backend = IBMBackendService(self, self._hgp)

    def _get_hgps(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [self._hgp]

    def _get_hgp(self, *args: Any, **kwargs: Any) -> Any:
        return self._hgp

    def get_backend(self, name: str, instance: str | None = None) -> Any:
        from qiskit.providers.models import QasmBackendConfiguration
        from qiskit_ibm_provider.ibm_backend import IBMBackend

        configuration = QasmBackendConfiguration.from_dict(_manila_json("conf"))
        return IBMBackend(configuration, self, self._api_client, instance="h/g/p")


def test_qjm_backends_says_the_provider_reaches_no_ibm_service_today(
        capsys: pytest.CaptureFixture[str]) -> None:
    from qjm_tui.cli import main

    assert main(["backends", "--json", "ibm-provider:<backend>", "ibm-provider:ibmq_manila"]) == 0
    entries = json.loads(capsys.readouterr().out)
    for entry in entries:
        assert entry["detail"].startswith(
            "retired: qiskit-ibm-provider speaks only IBM's retired IBM Quantum API "
            "(auth.quantum-computing.ibm.com) and reaches no IBM service today; use ibm-runtime:<backend>")
    assert main(["backends", "ibm-provider:<backend>"]) == 0
    assert "reaches no IBM service today" in capsys.readouterr().out


def test_provider_module_is_lazy() -> None:
    import subprocess
    import sys

    code = ("import sys, qjm_tui.backends.registry, qjm_tui.core.manager; "
            "print('qiskit_ibm_provider' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_provider_over_stubbed_transport(tmp_path: Path) -> None:
    from qjm_tui.backends.ibm_provider import IBMProviderBackend

    transport = StubRuntimeClient()
    adapter = IBMProviderBackend("ibmq_manila", provider=StubProvider(transport))
    assert adapter.target().num_qubits == 5 and adapter.can_reattach()
    circuit = transpile(_two_registers(), adapter.target())
    job_id = adapter.submit(JobPayload([circuit], 200, {"memory": True}, ["set-p", "job-0"]))
    assert transport.jobs[job_id]["tags"] == ["set-p", "job-0"]
    assert adapter.status(job_id).state == "queued"
    assert adapter.status(job_id).state == "running"
    # A new adapter reattaches by id through IBMBackendService.retrieve_job, and finds by tag.
    again = IBMProviderBackend("ibmq_manila", provider=StubProvider(transport))
    assert again.find(["set-p", "job-0"]) == [job_id]
    assert again.find(["set-p", "job-1"]) == []
    _wait(again, job_id)
    [exp] = again.result(job_id)
    assert exp["shots"] == 200 and exp["header"]["creg_sizes"] == [["a", 1], ["c", 2]]
    assert len(exp["data"]["memory"]) == 200
    other = adapter.submit(JobPayload([circuit], 10, {}, ["set-p", "job-1"]))
    assert adapter.cancel(other) and adapter.status(other).state == "cancelled"


def test_provider_through_job_manager(tmp_path: Path) -> None:
    from qjm_tui.backends.ibm_provider import IBMProviderBackend

    adapter = IBMProviderBackend("ibmq_manila", provider=StubProvider(StubRuntimeClient()))
    adapter.poll_interval = 0.05
    with JobManager(tmp_path / "s.sqlite", config=THREADS) as jm:
        job_set = jm.run([_two_registers(), basis_state("11", "b11")], backend=adapter,
                         transpile=True, shots=300)
        results = job_set.results(timeout=120)
    assert max(results.get_counts("regs"), key=results.get_counts("regs").get) == "10 1"
    assert results.get_counts("b11").get("11", 0) > 250
