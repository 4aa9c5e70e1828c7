"""A local IBM Quantum Platform that the unmodified qiskit-ibm-runtime client talks to.

It speaks the part of the IBM Quantum Platform REST API that qiskit-ibm-runtime 0.44 uses —
IAM token, resource search, catalog, backends (list, configuration, properties, status),
instance usage, jobs (create, get, list by tags with paging, results, cancel, metrics, tags) and
sessions (batches and dedicated sessions) — on 127.0.0.1 only. Its devices are the fake devices
shipped with qiskit-ibm-runtime (their real configuration and calibration data); jobs run on
Aer with the device's noise model, and results are encoded with the runtime's own
``RuntimeEncoder``, so ``job.result()`` decodes them as it decodes IBM's.

How the client reaches it, with nothing patched: the service is also an HTTP forward proxy.
The client's environment gets ``HTTP_PROXY``/``HTTPS_PROXY`` pointing here, the account's url
is ``https://cloud.ibm.invalid`` (the client derives ``iam.``, ``api.global-search-tagging.``,
``globalcatalog.`` and ``quantum.`` hosts from it), and its instance is a CRN this service owns.
The bearer token is always fetched from ``https://iam.cloud.ibm.com`` (fixed in the client).
For each of these hosts the client opens a CONNECT tunnel through the proxy, and the service
terminates the tunnel itself with a certificate made at start-up, which the client trusts
through ``REQUESTS_CA_BUNDLE``. :meth:`IBMQuantumService.environ` gives all of it; no request
ever leaves the machine (any other host is refused).

Why tunnels and not plain HTTP through the proxy (which the client also accepts, with an
``http://`` url): the client then handles connections as it does with IBM. A request forwarded
in plain HTTP whose connection drops after it was sent is taken by urllib3 for a failure to
reach the proxy and sent again, even a POST, so a job whose answer was lost would be created
twice by the client itself; over a tunnel the same drop is a failed request, not repeated.

Every request is logged (:meth:`IBMQuantumService.requests`), and every job the service ever
accepted is kept (:meth:`IBMQuantumService.jobs`): tests read them as the witness of what a
client asked and what ran, and as proof that nothing ran twice.

Faults are scripted per test:

* :meth:`~IBMQuantumService.fail`: answer a method and path with an HTTP error (optionally with
  ``Retry-After``), a given number of times;
* :meth:`~IBMQuantumService.reset`: drop the connection without an answer, before or after the
  request took effect;
* :meth:`~IBMQuantumService.slow`: answer late;
* ``max_pending_jobs``: refuse jobs beyond that many queued or running, worded the current way
  (429, "limit of N pending jobs") or the older way (400 with error code 3458);
* ``quota_seconds`` and :meth:`~IBMQuantumService.use_up_quota`: refuse new jobs with error
  code 4317 once the instance's quantum seconds are used up;
* :meth:`~IBMQuantumService.fail_next_jobs`: jobs that fail on the service with a reason code;
* :meth:`~IBMQuantumService.forget_job`: a job the service no longer knows (404);
* ``batch_seconds`` and :meth:`~IBMQuantumService.expire_session`: a batch or session that runs
  out of time, whose queued jobs the service cancels;
* ``token_seconds`` and :meth:`~IBMQuantumService.revoke_tokens`: tokens that expire in the
  middle of a run;
* :meth:`~IBMQuantumService.refuse_credentials`: every runtime call answered 401 or 403.

What it does not model: IBM's real TLS endpoints and certificates (only the token call goes
over TLS, to this service's own authority), and IBM's scheduling (here every accepted job starts
at once, or in order once ``parallel_jobs`` are running, and takes ``job_seconds``). Error codes
other than 3458, 4317 and a failed job's 1517 are this service's own choice.

Run it from a shell to point your own scripts at it::

    python -m qjm_tui.testing.ibm_service --device fake_manila --max-pending-jobs 3

It prints the environment to export and logs every request until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import fnmatch
import importlib
import json
import logging
import math
import os
import random
import secrets
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from qjm_tui.testing.tls import LocalAuthority

log = logging.getLogger(__name__)

#: the account url a client uses; ``.invalid`` names can never resolve to a real host
DEFAULT_URL = "https://cloud.ibm.invalid"
#: the host the client always fetches its token from, over TLS (fixed in qiskit-ibm-runtime)
IAM_TLS_HOST = "iam.cloud.ibm.com"
#: every host the service terminates a tunnel for: the fixed IAM host and those the client
#: derives from the account url
TLS_HOSTS = (IAM_TLS_HOST, "iam.cloud.ibm.invalid", "api.global-search-tagging.cloud.ibm.invalid",
             "globalcatalog.cloud.ibm.invalid", "quantum.cloud.ibm.invalid",
             "eu-de.quantum.cloud.ibm.invalid")
DEFAULT_CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/qjm0local:qjm-local-instance::"
PLAN_ID = "qjm-local-plan"

#: IBM's error code for "you have reached the limit of pending jobs"
CODE_JOB_LIMIT = 3458
#: IBM's error code for "the instance has used up its usage quota"
CODE_QUOTA = 4317
#: the reason code of a job that failed on the service (the client says "Error code 1517; ...")
CODE_JOB_FAILED = 1517
#: this service's codes for a session that takes no jobs, and for an unknown job or session
CODE_SESSION_CLOSED = 1217
CODE_NOT_FOUND = 1291


#: decoding circuits in two threads at once can trip CPython 3.11's check of the AST
#: constructor's recursion depth ("AST constructor recursion depth mismatch"), a race in the
#: interpreter, not in the job: the service decodes one job's circuits at a time
_DECODING = threading.Lock()


def _now_iso(timestamp: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if timestamp is None else timestamp, dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- devices ---------------------------------------------------------------------------------


class _Device:
    """A fake device served under its configuration's name (``ibmq_manila``, ``ibm_kyiv``)."""

    def __init__(self, folder: str, noise: bool = True) -> None:
        import qiskit_ibm_runtime.fake_provider as fake_provider

        self.folder = folder
        self.noise = noise
        root = Path(fake_provider.__file__).parent / "backends" / folder
        conf, props = root / f"conf_{folder}.json", root / f"props_{folder}.json"
        if not conf.exists():
            raise ValueError(f"qiskit-ibm-runtime ships no fake device {folder!r}")
        self.configuration: dict[str, Any] = json.loads(conf.read_text())
        self.properties: dict[str, Any] | None = json.loads(props.read_text()) if props.exists() else None
        self.name: str = self.configuration["backend_name"]
        self._simulator: Any = None
        self._lock = threading.Lock()

    @property
    def qubits(self) -> int:
        return int(self.configuration.get("n_qubits", 0))

    def simulator(self) -> Any:
        """An Aer simulator with this device's noise model (or none), made once."""
        with self._lock:
            if self._simulator is None:
                import warnings

                from qiskit_aer import AerSimulator

                if not self.noise:
                    self._simulator = AerSimulator()
                    return self._simulator

                module = importlib.import_module(f"qiskit_ibm_runtime.fake_provider.backends.{self.folder}")
                fake = next(value for value in vars(module).values()
                            if isinstance(value, type) and getattr(value, "conf_filename", None)
                            == f"conf_{self.folder}.json")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._simulator = AerSimulator.from_backend(fake())
            return self._simulator


def device_folder(name: str) -> str:
    """The fake-provider folder for ``fake_manila``, ``manila`` or ``ibmq_manila``."""
    import qiskit_ibm_runtime.fake_provider as fake_provider

    root = Path(fake_provider.__file__).parent / "backends"
    folders = sorted(p.name for p in root.iterdir() if (p / f"conf_{p.name}.json").exists())
    for prefix in ("fake_", "ibmq_", "ibm_"):
        if name.startswith(prefix) and name[len(prefix):] in folders:
            return name[len(prefix):]
    if name in folders:
        return name
    raise ValueError(f"unknown device {name!r}; qiskit-ibm-runtime ships: {', '.join(folders)}")


# -- what the service holds ------------------------------------------------------------------


@dataclass
class Fault:
    """One scripted fault: requests matching ``method`` and ``path`` (a glob over the path,
    query excluded) after the first ``skip`` are answered this way, ``times`` times (None:
    always)."""

    method: str
    path: str
    status: int | None = None
    body: Any = None
    retry_after: float | None = None
    delay: float = 0.0
    reset: bool = False
    #: a reset or a delay comes after the request took effect (a job created): only the
    #: answer is lost or late
    after: bool = False
    times: int | None = 1
    skip: int = 0
    #: the share of matching requests it hits (drawn from the service's seeded generator)
    rate: float = 1.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.path)


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the service saw it (no header or body, so never a token)."""

    at: float
    method: str
    host: str
    path: str
    query: str
    status: int | None
    note: str = ""

    def line(self) -> str:
        """``METHOD path -> status (note)``, the query left out."""
        shown = "reset" if self.status is None else str(self.status)
        return f"{self.method} {self.path} -> {shown}" + (f" ({self.note})" if self.note else "")


@dataclass
class _Session:
    id: str
    mode: str
    backend: str
    created: float
    max_ttl: float | None
    accepting: bool = True
    state: str = "open"
    closed_at: float | None = None
    started_at: float | None = None

    def json(self, usage: float) -> dict[str, Any]:
        return {"id": self.id, "mode": self.mode, "backend_name": self.backend, "state": self.state,
                "accepting_jobs": self.accepting, "max_ttl": self.max_ttl, "interactive_ttl": None,
                "active_ttl": self.max_ttl, "created_at": _now_iso(self.created),
                "started_at": _now_iso(self.started_at) if self.started_at else None,
                "activated_at": _now_iso(self.started_at) if self.started_at else None,
                "closed_at": _now_iso(self.closed_at) if self.closed_at else None,
                "last_job_started": None, "last_job_completed": None, "elapsed_time": usage}


@dataclass
class _Job:
    id: str
    backend: str
    program: str
    tags: list[str]
    session_id: str | None
    params: Any  # as received (still encoded), echoed back by GET /jobs/{id}
    created: float
    seconds: float
    fail: tuple[int, str] | None = None
    status: str = "Queued"
    reason: str | None = None
    reason_code: int | None = None
    started: float | None = None
    finished: float | None = None
    cancel_reason: str | None = None
    future: Future[str] | None = None
    #: when the simulator finished its circuits (wall clock)
    computed: float | None = None
    #: how many times its results were read
    results_read: int = 0
    #: whether its circuits ran to the end on the simulator (a cancelled queued job never ran)
    ran: bool = False

    @property
    def final(self) -> bool:
        return self.status in ("Completed", "Failed", "Cancelled")

    @property
    def usage(self) -> float:
        """Quantum seconds this job used: its planned run time once it ran (the simulator's own
        time is not the device's), what it had run if it was cancelled while running."""
        if self.started is None or self.finished is None:
            return 0.0
        return round(min(self.finished - self.started, self.seconds), 3)

    def json(self, with_params: bool) -> dict[str, Any]:
        state: dict[str, Any] = {"status": self.status}
        if self.reason:
            state["reason"] = self.reason
        if self.reason_code:
            state["reason_code"] = self.reason_code
        out = {"id": self.id, "backend": self.backend, "state": state, "status": self.status,
               "program": {"id": self.program}, "created": _now_iso(self.created),
               "tags": list(self.tags), "session_id": self.session_id, "private": False,
               "runtime": "", "user_id": "qjm-local-user",
               "estimated_running_time_seconds": round(self.seconds, 3)}
        if with_params:
            out["params"] = self.params
        return out


class _Answer(Exception):
    """Ends handling with this HTTP answer."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
                 note: str = "") -> None:
        super().__init__(status)
        self.status, self.body, self.headers, self.note = status, body, headers or {}, note


def _first(query: dict[str, list[str]], name: str) -> str | None:
    """The first value of a query parameter, if it was given."""
    values = query.get(name)
    return values[0] if values else None


def _error(status: int, message: str, code: int | None = None, note: str = "") -> _Answer:
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["code"] = code
    return _Answer(status, {"error": error}, note=note or message)


class _Reset(Exception):
    """Ends handling by dropping the connection; with an answer, after sending part of it."""

    def __init__(self, answer: tuple[int, Any, dict[str, str]] | None = None) -> None:
        super().__init__("reset")
        self.answer = answer


# -- the service -----------------------------------------------------------------------------


class IBMQuantumService:
    """A local IBM Quantum Platform on 127.0.0.1 (see the module's documentation).

    ``devices``: fake device names (``fake_manila``, ``manila`` or ``ibmq_manila``), served under
    their configuration's name. ``max_pending_jobs``: how many queued or running jobs the
    instance may hold; a job beyond is refused, ``limit_answer="429"`` the current way ("You
    have reached the limit of N pending jobs", HTTP 429) or ``"400"`` the older way (HTTP 400,
    error code 3458, other words). ``job_seconds``: how long each job runs (its quantum
    seconds); ``parallel_jobs``: how many run at once (None: all accepted). ``token_seconds``:
    how long a token lives. ``batch_seconds``: a batch's or session's maximum time when the
    client gives none. ``quota_seconds``: the instance's usage allowance; ``quota_status`` is the
    HTTP status of a refusal once it is used up. ``api_key`` is the key to sign in with (made
    up when not given). ``max_experiments`` replaces the devices' own circuits-per-job limit
    in the configuration the service publishes. ``noise=False`` runs the circuits without the
    devices' noise (for tests that check exact outcomes). ``seed`` seeds the simulator and the
    faults drawn at a ``rate``. ``max_page`` is the most jobs one page of a job list holds,
    whatever the client asks for.
    """

    def __init__(self, devices: Sequence[str] = ("fake_manila",), *, max_pending_jobs: int | None = None,
                 limit_answer: str = "429", job_seconds: float = 0.2, parallel_jobs: int | None = None,
                 token_seconds: float = 3600.0, batch_seconds: float | None = None,
                 quota_seconds: float | None = None, quota_status: int = 403,
                 api_key: str | None = None, instance: str = DEFAULT_CRN, workers: int = 2,
                 max_experiments: int | None = None, noise: bool = True, max_page: int = 200,
                 seed: int | None = 1234) -> None:
        if limit_answer not in ("429", "400"):
            raise ValueError(f"limit_answer must be '429' or '400', not {limit_answer!r}")
        self.devices = {d.name: d for d in (_Device(device_folder(n), noise) for n in devices)}
        if max_experiments is not None:
            for device in self.devices.values():
                device.configuration["max_experiments"] = max_experiments
        self.max_pending_jobs = max_pending_jobs
        self.limit_answer = limit_answer
        self.job_seconds = job_seconds
        self.parallel_jobs = parallel_jobs
        self.token_seconds = token_seconds
        self.batch_seconds = batch_seconds
        self.quota_seconds = quota_seconds
        self.quota_status = quota_status
        self.api_key = api_key or f"qjm-local-{secrets.token_hex(12)}"
        self.instance = instance
        self.seed = seed
        self.max_page = max_page
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._order: list[str] = []
        self._forgotten: set[str] = set()
        self._sessions: dict[str, _Session] = {}
        self._faults: list[Fault] = []
        self._log: list[LoggedRequest] = []
        self._tokens: dict[str, float] = {}  # jti -> expiry (wall clock)
        self._revoked: set[str] = set()
        self._issued: list[str] = []
        self._refuse: int | None = None
        self._fail_next: list[tuple[int, str]] = []
        self._refusals = {"limit": 0, "quota": 0}
        self._consumed = 0.0
        self._executor = ThreadPoolExecutor(max(1, workers), thread_name_prefix="ibm-double-aer")
        self._authority: LocalAuthority | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        #: set when the service stops, so answers held back by a fault end at once
        self._stopping = threading.Event()
        self.on_request: Callable[[LoggedRequest], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> IBMQuantumService:
        """Start serving on 127.0.0.1 (a free port); returns self."""
        if self._server is not None:
            return self
        self._authority = LocalAuthority(TLS_HOSTS)
        self._tls = self._authority.server_context()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.service = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="ibm-double", daemon=True)
        self._thread.start()
        for device in self.devices.values():  # built while the client signs in, not at its first job
            self._executor.submit(device.simulator)
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and remove the certificate files."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._authority is not None:
            self._authority.close()
            self._authority = None

    def __enter__(self) -> IBMQuantumService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- how a client reaches it -------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start the service first"
        return int(self._server.server_address[1])

    @property
    def proxy(self) -> str:
        """The proxy url the client's ``HTTP_PROXY`` and ``HTTPS_PROXY`` name."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The account url to give the client."""
        return DEFAULT_URL

    @property
    def ca_bundle(self) -> str:
        """The certificate file the client must trust (``REQUESTS_CA_BUNDLE``)."""
        assert self._authority is not None, "start the service first"
        return str(self._authority.ca_file)

    def environ(self) -> dict[str, str]:
        """The environment a client process needs: the proxy, the certificate, and the account
        as qiskit-ibm-runtime and qjm read it (``QISKIT_IBM_TOKEN``, ``_INSTANCE``, ``_URL``)."""
        return {"HTTP_PROXY": self.proxy, "HTTPS_PROXY": self.proxy, "http_proxy": self.proxy,
                "https_proxy": self.proxy, "REQUESTS_CA_BUNDLE": self.ca_bundle,
                "QISKIT_IBM_TOKEN": self.api_key, "QISKIT_IBM_INSTANCE": self.instance,
                "QISKIT_IBM_URL": self.url, "QISKIT_IBM_CHANNEL": "ibm_quantum_platform"}

    def service_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``QiskitRuntimeService`` (with :meth:`environ` in effect)."""
        return {"channel": "ibm_quantum_platform", "token": self.api_key, "instance": self.instance,
                "url": self.url}

    @contextlib.contextmanager
    def activated(self) -> Iterator[IBMQuantumService]:
        """This process's environment pointed at the service for the ``with`` block (and
        ``NO_PROXY`` taken out, which would let requests bypass it); restored after."""
        keys = [*self.environ(), "NO_PROXY", "no_proxy"]
        saved = {k: os.environ.get(k) for k in keys}
        try:
            os.environ.pop("NO_PROXY", None)
            os.environ.pop("no_proxy", None)
            os.environ.update(self.environ())
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    # -- faults ------------------------------------------------------------------------------

    def fail(self, method: str, path: str, status: int, *, times: int | None = 1, skip: int = 0,
             body: Any = None, retry_after: float | None = None, delay: float = 0.0,
             rate: float = 1.0) -> Fault:
        """Answer ``method path`` (a glob such as ``/api/v1/jobs/*/results``) with ``status``
        the next ``times`` times (None: from now on) after ``skip`` more, each with chance
        ``rate``; ``body`` is the answer (default: an error message), ``retry_after`` its
        ``Retry-After`` header."""
        return self._add(Fault(method, path, status=status, body=body, retry_after=retry_after,
                               delay=delay, times=times, skip=skip, rate=rate))

    def reset(self, method: str, path: str, *, times: int | None = 1, skip: int = 0,
              after: bool = False, rate: float = 1.0) -> Fault:
        """Drop the connection. Before the request takes effect, nothing is sent (through a
        proxy the client then sends the request again, a POST too: urllib3 takes the drop for a
        failure to reach the proxy). ``after``: the request takes effect (a job is created, a
        cancel done) and the answer is cut off half-way, so the client knows the request went
        through but not its answer, and does not repeat it."""
        return self._add(Fault(method, path, reset=True, after=after, times=times, skip=skip, rate=rate))

    def slow(self, method: str, path: str, seconds: float, *, times: int | None = None,
             skip: int = 0, after: bool = False) -> Fault:
        """Answer ``method path`` ``seconds`` late; ``after``: the request takes effect at once
        (a job is created) and only the answer waits."""
        return self._add(Fault(method, path, delay=seconds, times=times, skip=skip, after=after))

    def clear_faults(self) -> None:
        """Remove every scripted fault."""
        with self._lock:
            self._faults.clear()

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next_jobs(self, count: int = 1, reason: str = "Error in the job's circuits: "
                       "the device rejected an instruction", code: int = CODE_JOB_FAILED) -> None:
        """The next ``count`` jobs accepted fail on the service with ``reason`` and ``code``."""
        with self._lock:
            self._fail_next += [(code, reason)] * count

    def forget_job(self, job_id: str) -> None:
        """The service no longer knows the job: every call about it answers 404."""
        with self._lock:
            self._forgotten.add(job_id)

    def use_up_quota(self) -> None:
        """The instance's usage allowance is used up from now on (error code 4317)."""
        with self._lock:
            self.quota_seconds = min(self.quota_seconds or self._consumed, self._consumed)

    def grant_quota(self, seconds: float | None = None) -> None:
        """More usage allowance (``seconds`` more; None: no limit)."""
        with self._lock:
            self.quota_seconds = None if seconds is None else self._consumed + seconds

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (401), as an expired one is; the
        client must fetch a new one."""
        with self._lock:
            self._revoked.update(self._tokens)

    def refuse_credentials(self, status: int | None = 401) -> None:
        """Answer every runtime call with ``status`` (401 or 403); None ends it."""
        with self._lock:
            self._refuse = status

    def expire_session(self, session_id: str | None = None) -> list[str]:
        """End a batch or session now (the newest one if no id is given), as when it runs out
        of time: it takes no more jobs and its queued jobs are cancelled. Returns their ids."""
        with self._lock:
            if session_id is None:
                if not self._sessions:
                    raise ValueError("no batch or session to expire")
                session_id = list(self._sessions)[-1]
            return self._expire(self._sessions[session_id], time.time())

    # -- the witness -------------------------------------------------------------------------

    def requests(self) -> list[LoggedRequest]:
        """Every request so far, in order."""
        with self._lock:
            return list(self._log)

    def request_lines(self, hosts: str | None = None) -> list[str]:
        """The log as ``METHOD path -> status`` lines; ``hosts``, a part of the host name such
        as ``"quantum."``, keeps only those hosts' requests."""
        return [r.line() for r in self.requests() if hosts is None or hosts in r.host]

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the service accepted, oldest first: id, backend, tags, session, state,
        whether its circuits ran, and how often its results were read."""
        with self._lock:
            self._advance(time.time())
            return [{"id": j.id, "backend": j.backend, "tags": list(j.tags), "session_id": j.session_id,
                     "status": j.status, "reason": j.reason, "ran": j.ran, "usage": j.usage,
                     "results_read": j.results_read, "created": j.created, "started": j.started,
                     "finished": j.finished}
                    for j in (self._jobs[i] for i in self._order)]

    def sessions(self) -> list[dict[str, Any]]:
        """Every batch and session, oldest first."""
        with self._lock:
            self._advance(time.time())
            return [s.json(self._session_usage(s.id)) for s in self._sessions.values()]

    def secret_values(self) -> list[str]:
        """The API key and every access token issued so far: what must never show up in a
        client's output, files or logs."""
        with self._lock:
            return [self.api_key, *self._issued]

    def refusals(self) -> dict[str, int]:
        """How many jobs were refused because of the pending-jobs limit and the quota."""
        with self._lock:
            return dict(self._refusals)

    def runs_by_tag(self, prefix: str = "") -> dict[str, int]:
        """For each job tag starting with ``prefix``: how many accepted jobs carrying it ran."""
        counts: dict[str, int] = {}
        for job in self.jobs():
            if job["ran"]:
                for tag in job["tags"]:
                    if tag.startswith(prefix):
                        counts[tag] = counts.get(tag, 0) + 1
        return counts

    # -- handling a request ------------------------------------------------------------------

    def handle(self, method: str, host: str, path: str, query: dict[str, list[str]], body: bytes,
               headers: Any) -> tuple[int, Any, dict[str, str], str]:
        """Answer one request (the HTTP layer calls this); returns status, body, headers, note."""
        host = host.split(":")[0].lower()
        if host.startswith("iam."):
            return self._iam(method, path, body)
        if host.startswith("api.global-search-tagging."):
            return 200, self._search(), {}, ""
        if host.startswith("globalcatalog."):
            return 200, {"overview_ui": {"en": {"display_name": "Local"}},
                         "metadata": {"pricing": {"type": "free"}}}, {}, ""
        if "quantum." in host and path.startswith("/api/v1/"):
            self._authorize(headers)
            return self._runtime(method, path[len("/api/v1"):], query, body)
        raise _error(404, f"no such endpoint: {method} {host}{path}")

    def _iam(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str], str]:
        if method != "POST" or path != "/identity/token":
            raise _error(404, f"no such IAM endpoint: {method} {path}")
        form = parse_qs(body.decode("utf-8", "replace"))
        if form.get("apikey", [""])[0] != self.api_key:
            raise _Answer(400, {"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not "
                                "be found.", "context": {}}, note="unknown API key")
        issued = int(time.time())
        jti = uuid.uuid4().hex
        expiry = issued + self.token_seconds
        with self._lock:
            self._tokens[jti] = expiry
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        claims = _b64(json.dumps({"iam_id": "qjm-local", "jti": jti, "iat": issued,
                                  "exp": int(math.ceil(expiry))}).encode())
        token = f"{header}.{claims}.{_b64(secrets.token_bytes(32))}"
        with self._lock:
            self._issued.append(token)
        return 200, {"access_token": token, "refresh_token": "not-supported", "token_type": "Bearer",
                     "expires_in": int(self.token_seconds), "expiration": int(math.ceil(expiry))}, {}, \
            "token issued"

    def _search(self) -> dict[str, Any]:
        return {"items": [{"crn": self.instance, "name": "qjm-local-instance",
                           "service_plan_unique_id": PLAN_ID, "tags": [],
                           "doc": {"extensions": {"virtual_private_endpoints": {}, "backends":
                                                  sorted(self.devices)}}}],
                "limit": 100, "search_cursor": None}

    def _authorize(self, headers: Any) -> None:
        auth = headers.get("Authorization", "")
        if self._refuse is not None:
            raise _error(self._refuse, "Unauthorized: the credentials are not accepted"
                         if self._refuse == 401 else "Forbidden: this instance may not use the "
                         "service", note="credentials refused")
        if headers.get("Service-CRN") != self.instance:
            raise _error(403, "Forbidden: unknown service instance", note="wrong instance")
        if not auth.startswith("Bearer "):
            raise _error(401, "Unauthorized: a bearer token is needed", note="no bearer token")
        try:
            claims = json.loads(base64.urlsafe_b64decode(auth[7:].split(".")[1] + "=="))
        except (ValueError, IndexError):
            raise _error(401, "Unauthorized: malformed token", note="bad token") from None
        jti = claims.get("jti")
        with self._lock:
            expiry = self._tokens.get(jti)
            revoked = jti in self._revoked
        if expiry is None:
            raise _error(401, "Unauthorized: unknown token", note="unknown token")
        if revoked or time.time() > expiry:
            raise _error(401, "Unauthorized: the token has expired", note="token expired")

    # -- runtime API -------------------------------------------------------------------------

    def _runtime(self, method: str, path: str, query: dict[str, list[str]],
                 body: bytes) -> tuple[int, Any, dict[str, str], str]:
        parts = [p for p in path.split("/") if p]
        now = time.time()
        with self._lock:
            self._advance(now)
            if parts == ["backends"] and method == "GET":
                return 200, {"devices": [self._device_entry(d) for d in self.devices.values()]}, {}, ""
            if len(parts) == 3 and parts[0] == "backends" and method == "GET":
                device = self.devices.get(parts[1])
                if device is None:
                    raise _error(404, f"backend {parts[1]} not found", CODE_NOT_FOUND)
                if parts[2] == "configuration":
                    return 200, device.configuration, {}, ""
                if parts[2] == "properties":
                    return 200, device.properties or {}, {}, ""
                if parts[2] == "status":
                    return 200, {"state": True, "status": "active", "message": "",
                                 "length_queue": self._pending_count(device.name),
                                 "backend_version": device.configuration.get("backend_version", "1")}, {}, ""
            if parts == ["instances", "usage"] and method == "GET":
                return 200, self._usage_json(), {}, ""
            if parts == ["jobs"] and method == "POST":
                return self._create_job(json.loads(body or b"{}"), now)
            if parts == ["jobs"] and method == "GET":
                return 200, self._list_jobs(query), {}, ""
            if len(parts) >= 2 and parts[0] == "jobs":
                return self._job_call(method, parts[1], parts[2:], query, body, now)
            if parts == ["sessions"] and method == "POST":
                return self._create_session(json.loads(body or b"{}"), now)
            if len(parts) >= 2 and parts[0] == "sessions":
                return self._session_call(method, parts[1], parts[2:], json.loads(body or b"{}"), now)
        raise _error(404, f"no such endpoint: {method} /api/v1{path}", CODE_NOT_FOUND)

    def _device_entry(self, device: _Device) -> dict[str, Any]:
        return {"name": device.name, "qubits": device.qubits,
                "status": {"name": "online", "reason": "available"},
                "queue_length": self._pending_count(device.name), "processor_type":
                device.configuration.get("processor_type", {}), "performance": {}}

    def _pending_count(self, backend: str | None = None) -> int:
        return sum(1 for j in self._jobs.values()
                   if not j.final and (backend is None or j.backend == backend))

    def _usage_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"instance_id": self.instance, "plan_id": PLAN_ID,
                               "usage_consumed_seconds": round(self._consumed, 3)}
        if self.quota_seconds is not None:
            out["usage_limit_seconds"] = self.quota_seconds
            out["usage_limit_reached"] = self._consumed >= self.quota_seconds
        else:
            out["usage_limit_reached"] = False
        return out

    def _create_job(self, request: dict[str, Any], now: float) -> tuple[int, Any, dict[str, str], str]:
        backend = request.get("backend")
        if backend not in self.devices:
            raise _error(400, f"backend {backend!r} is not available to this instance", CODE_NOT_FOUND)
        if self.quota_seconds is not None and self._consumed >= self.quota_seconds:
            self._refusals["quota"] += 1
            raise _error(self.quota_status, "The instance has used up its monthly usage quota "
                         f"({self.quota_seconds:g} s of quantum time); no new jobs can run until "
                         "more time is allocated.", CODE_QUOTA, note="quota used up")
        if self.max_pending_jobs is not None and self._pending_count() >= self.max_pending_jobs:
            self._refusals["limit"] += 1
            if self.limit_answer == "429":
                raise _error(429, f"You have reached the limit of {self.max_pending_jobs} pending jobs. "
                             "Please wait for a job to complete or cancel one before submitting "
                             "anything new.", CODE_JOB_LIMIT, note="pending-jobs limit")
            raise _error(400, "Maximum number of pending jobs reached for this instance",
                         CODE_JOB_LIMIT, note="pending-jobs limit")
        session_id = request.get("session_id")
        if session_id is not None:
            session = self._sessions.get(session_id)
            if session is None:
                raise _error(404, f"session {session_id} not found", CODE_NOT_FOUND)
            if not session.accepting:
                raise _error(400, f"Session {session_id} is closed and does not accept jobs.",
                             CODE_SESSION_CLOSED, note="session closed")
            if session.backend != backend:
                raise _error(400, f"session {session_id} runs on {session.backend}, not {backend}")
        fail = self._fail_next.pop(0) if self._fail_next else None
        job = _Job(id=f"d{uuid.uuid4().hex[:19]}", backend=backend, program=request.get("program_id", ""),
                   tags=list(request.get("tags") or []), session_id=session_id,
                   params=request.get("params"), created=now, seconds=self.job_seconds, fail=fail)
        self._jobs[job.id] = job
        self._order.append(job.id)
        if fail is None:
            seed = None if self.seed is None else self.seed + len(self._order)
            job.future = self._executor.submit(self._execute, self.devices[backend], job.params, seed)
            job.future.add_done_callback(lambda _f: self._computed(job))
        self._advance(now)
        return 200, {"id": job.id, "backend": backend}, {}, f"accepted {job.id}"

    def _computed(self, job: _Job) -> None:
        if self._stopping.is_set():
            return
        with self._lock:
            job.computed = time.time()
            self._advance(job.computed)

    def _execute(self, device: _Device, params: Any, seed: int | None) -> str:
        """Run a SamplerV2 job's pubs on Aer with the device's noise model; the encoded result."""
        from qiskit.primitives import BackendSamplerV2
        from qiskit_ibm_runtime.utils import RuntimeDecoder, RuntimeEncoder

        with _DECODING:
            decoded = json.loads(json.dumps(params), cls=RuntimeDecoder)
        options = decoded.get("options") or {}
        default_shots = options.get("default_shots") or 4096
        pubs = []
        for pub in decoded.get("pubs", []):
            circuit, values, shots = (list(pub) + [None, None])[:3]
            pubs.append((circuit, values if circuit.num_parameters else None, shots or default_shots))
        sampler = BackendSamplerV2(backend=device.simulator(), options={"seed_simulator": seed})
        return json.dumps(sampler.run(pubs).result(), cls=RuntimeEncoder)

    def _advance(self, now: float) -> None:
        """Move every job and session on to where it is at ``now`` (called under the lock)."""
        for session in self._sessions.values():
            if session.state != "closed" and session.max_ttl is not None \
                    and now >= session.created + session.max_ttl:
                self._expire(session, now)
        running = sum(1 for j in self._jobs.values() if j.status == "Running")
        for job_id in self._order:
            job = self._jobs[job_id]
            if job.status == "Queued" and (self.parallel_jobs is None or running < self.parallel_jobs):
                job.status, job.started = "Running", max(now, job.created)
                running += 1
                if job.session_id in self._sessions:
                    session = self._sessions[job.session_id]
                    session.started_at = session.started_at or now
                    if session.state == "open":
                        session.state = "active"
            if job.status == "Running" and job.started is not None and now >= job.started + job.seconds:
                if job.fail is not None:
                    job.status, job.reason_code, job.reason = "Failed", *job.fail
                elif job.future is not None and job.future.done():
                    if job.future.cancelled():
                        continue  # the service is stopping
                    if job.future.exception() is not None:
                        job.status, job.reason_code = "Failed", CODE_JOB_FAILED
                        job.reason = f"Error running the job: {job.future.exception()}"
                    else:
                        job.status, job.ran = "Completed", True
                else:
                    continue  # the simulator is still at it
                # As a device would report it: the planned run time, or longer if the simulator
                # took longer (not the moment a client happened to ask).
                job.finished = max(job.started + job.seconds, job.computed or job.started)
                self._consumed += job.usage
                running -= 1
        for session in self._sessions.values():
            if session.state != "closed" and not session.accepting and not any(
                    not j.final for j in self._jobs.values() if j.session_id == session.id):
                session.state, session.closed_at = "closed", now

    def _expire(self, session: _Session, now: float) -> list[str]:
        session.accepting, session.state, session.closed_at = False, "closed", now
        cancelled = []
        for job in self._jobs.values():
            if job.session_id == session.id and job.status == "Queued":
                job.status = "Cancelled"
                job.reason = f"The {session.mode if session.mode == 'batch' else 'session'} " \
                             "reached its maximum time; queued jobs were cancelled"
                job.finished = now
                if job.future is not None:
                    job.future.cancel()
                cancelled.append(job.id)
        return cancelled

    def _session_usage(self, session_id: str) -> float:
        return round(sum(j.usage for j in self._jobs.values() if j.session_id == session_id), 3)

    def _list_jobs(self, query: dict[str, list[str]]) -> dict[str, Any]:
        tags = query.get("tags", [])
        backend, session_id, pending = (_first(query, name) for name in ("backend", "session_id", "pending"))
        rows = [j for j in (self._jobs[i] for i in self._order)
                if j.id not in self._forgotten and set(tags) <= set(j.tags)
                and backend in (None, j.backend) and session_id in (None, j.session_id)
                and (pending is None or (pending == "true") != j.final)]
        if (query.get("sort") or [""])[0] != "ASC":
            rows.reverse()
        offset = int((query.get("offset") or ["0"])[0])
        limit = min(int((query.get("limit") or ["200"])[0]), self.max_page)
        page = rows[offset:offset + limit]
        return {"jobs": [j.json(with_params=False) for j in page], "count": len(rows),
                "limit": limit, "offset": offset}

    def _job_call(self, method: str, job_id: str, rest: list[str], query: dict[str, list[str]],
                  body: bytes, now: float) -> tuple[int, Any, dict[str, str], str]:
        job = self._jobs.get(job_id)
        if job is None or job_id in self._forgotten:
            raise _error(404, f"Job not found: {job_id}", CODE_NOT_FOUND)
        if not rest and method == "GET":
            exclude = (query.get("exclude_params") or ["false"])[0] == "true"
            return 200, job.json(with_params=not exclude), {}, ""
        if not rest and method == "DELETE":
            self._forgotten.add(job_id)
            return 204, None, {}, f"deleted {job_id}"
        if rest == ["results"] and method == "GET":
            if job.status == "Completed":
                assert job.future is not None
                job.results_read += 1
                return 200, job.future.result(), {"Content-Type": "text/plain"}, ""
            if job.status == "Failed":
                return 200, f"Job {job_id} failed: {job.reason}", {"Content-Type": "text/plain"}, ""
            raise _error(400, f"Job {job_id} has no results yet (status {job.status})", CODE_NOT_FOUND)
        if rest == ["cancel"] and method == "POST":
            if job.final:
                raise _error(409, f"Job {job_id} is in a final state ({job.status}) and cannot be "
                             "cancelled", note="already final")
            job.status, job.reason, job.finished = "Cancelled", "Cancelled by the user", now
            if job.started is not None:
                self._consumed += job.usage
            if job.future is not None:
                job.future.cancel()
            return 204, None, {}, f"cancelled {job_id}"
        if rest == ["metrics"] and method == "GET":
            return 200, {"timestamps": {"created": _now_iso(job.created),
                                        "running": _now_iso(job.started) if job.started else None,
                                        "finished": _now_iso(job.finished) if job.finished else None},
                         "bss": {"seconds": job.usage},
                         "usage": {"quantum_seconds": job.usage, "seconds": job.usage},
                         "executions": None, "num_circuits": None, "qiskit_version": None}, {}, ""
        if rest == ["tags"] and method == "PUT":
            job.tags = list(json.loads(body or b"{}").get("tags", []))
            return 204, None, {}, ""
        if rest == ["logs"] and method == "GET":
            return 200, "", {"Content-Type": "text/plain"}, ""
        raise _error(404, f"no such endpoint: {method} /api/v1/jobs/{job_id}/{'/'.join(rest)}",
                     CODE_NOT_FOUND)

    def _create_session(self, request: dict[str, Any], now: float) -> tuple[int, Any, dict[str, str], str]:
        backend = request.get("backend")
        if backend not in self.devices:
            raise _error(400, f"backend {backend!r} is not available to this instance", CODE_NOT_FOUND)
        max_ttl = request.get("max_ttl") or self.batch_seconds
        session = _Session(id=f"s{uuid.uuid4().hex[:19]}", mode=request.get("mode") or "dedicated",
                           backend=backend, created=now, max_ttl=max_ttl)
        self._sessions[session.id] = session
        return 200, session.json(0.0), {}, f"{session.mode} {session.id} opened"

    def _session_call(self, method: str, session_id: str, rest: list[str], request: dict[str, Any],
                      now: float) -> tuple[int, Any, dict[str, str], str]:
        session = self._sessions.get(session_id)
        if session is None:
            raise _error(404, f"Session not found: {session_id}", CODE_NOT_FOUND)
        if not rest and method == "GET":
            return 200, session.json(self._session_usage(session_id)), {}, ""
        if not rest and method == "PATCH":
            if request.get("accepting_jobs") is False:
                session.accepting = False
                self._advance(now)
            return 204, None, {}, f"{session.mode} {session_id} takes no more jobs"
        if rest == ["close"] and method == "DELETE":
            cancelled = self._expire(session, now)
            return 204, None, {}, f"{session.mode} {session_id} cancelled ({len(cancelled)} queued jobs)"
        raise _error(404, f"no such endpoint: {method} /api/v1/sessions/{session_id}/{'/'.join(rest)}")

    # -- the HTTP layer's bookkeeping --------------------------------------------------------

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.rate < 1.0 and self._random.random() >= fault.rate:
                    continue
                fault.hits += 1
                if fault.hits <= fault.skip:
                    continue
                if fault.times is not None and fault.hits - fault.skip > fault.times:
                    continue
                return fault
        return None

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)
        if self.on_request is not None:
            self.on_request(entry)


class _Handler(BaseHTTPRequestHandler):
    """The HTTP side: a forward proxy (absolute-form requests, CONNECT to the IAM host) whose
    every request is answered by the service itself."""

    protocol_version = "HTTP/1.1"
    server_version = "qjm-local-ibm-quantum"
    tunnel_host: str | None = None
    # An answer leaves in one write, without waiting for the client's acknowledgement of the
    # last one (Nagle's algorithm against delayed ACKs cost 40 ms and more per request).
    disable_nagle_algorithm = True
    wbufsize = 1 << 16

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.client_address, *args)

    @property
    def service(self) -> IBMQuantumService:
        return self.server.service  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        with self.service._lock:
            self.service._sockets.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()
        with self.service._lock:
            self.service._sockets.discard(self.connection)

    def do_CONNECT(self) -> None:  # noqa: N802 - http.server's naming
        host = self.path.rsplit(":", 1)[0].lower()
        if host not in TLS_HOSTS:
            self.service._record(LoggedRequest(time.time(), "CONNECT", self.path, self.path, "", 403,
                                               "tunnel refused: not an IBM Quantum host served here"))
            self._send(403, {"error": {"message": f"no tunnel to {self.path}: only the IBM Quantum "
                                                  "hosts of this local service are served"}})
            self.close_connection = True
            return
        self.service._record(LoggedRequest(time.time(), "CONNECT", self.path, self.path, "", 200, "tunnel"))
        self.send_response(200, "Connection Established")
        self.end_headers()
        self.wfile.flush()
        try:
            tls = self.service._tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake for %s failed: %s", self.path, exc)
            self.close_connection = True
            return
        inner = _Handler.__new__(_Handler)
        inner.tunnel_host = host
        with contextlib.suppress(OSError):
            _Handler.__init__(inner, tls, self.client_address, self.server)
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def _dispatch(self) -> None:
        service = self.service
        parts = urlsplit(self.path)
        host = parts.netloc or self.tunnel_host or self.headers.get("Host") or ""
        path, query_text = parts.path or "/", parts.query
        length = int(self.headers.get("Content-Length") or 0)
        if length and hasattr(socket, "TCP_QUICKACK"):
            # A client that sends the body in a segment of its own (urllib3 through a proxy)
            # waits for the acknowledgement of the headers: give it now, not 40 ms later.
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        body = self.rfile.read(length) if length else b""
        method = self.command
        started = time.time()
        fault = service._fault_for(method, path)
        if fault is not None and fault.delay and not fault.after:
            service._stopping.wait(fault.delay)
        status: int | None
        note = ""
        try:
            if fault is not None and fault.reset and not fault.after:
                raise _Reset
            if fault is not None and fault.status is not None:
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                raise _Answer(fault.status, fault.body if fault.body is not None else
                              {"error": {"message": f"scripted failure {fault.status}"}}, headers,
                              note="scripted")
            status, payload, headers, note = service.handle(method, host, path, parse_qs(query_text),
                                                            body, self.headers)
            if fault is not None and fault.delay and fault.after:
                service._stopping.wait(fault.delay)
            if fault is not None and fault.reset:
                note = f"{note}; answer cut off" if note else "answer cut off"
                raise _Reset((status, payload, headers))
        except _Answer as answer:
            status, payload, headers, note = answer.status, answer.body, answer.headers, answer.note
        except _Reset as reset:
            service._record(LoggedRequest(started, method, host, path, query_text, None,
                                          note or "connection reset"))
            if reset.answer is not None:
                with contextlib.suppress(OSError):
                    self._send(*reset.answer, cut=True)
                self._drop(graceful=True)
            else:
                self._drop()
            return
        except Exception as exc:  # an error in the service itself: say so, do not hang
            log.exception("the local IBM Quantum service failed on %s %s", method, path)
            status, payload, headers, note = 500, {"error": {"message": f"internal error: {exc}"}}, {}, \
                "internal error"
        service._record(LoggedRequest(started, method, host, path, query_text, status, note))
        try:
            self._send(status, payload, headers)
        except OSError:  # the client went away (or the service stopped) while it waited
            self.close_connection = True

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
              cut: bool = False) -> None:
        """Answer; ``cut``: send the status, the headers and half the body only (the connection
        is then dropped, so the client cannot read the answer)."""
        headers = dict(headers or {})
        if payload is None:
            data = b""
        elif isinstance(payload, (bytes, str)):
            data = payload.encode() if isinstance(payload, str) else payload
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            data = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        # IBM's answers carry a trace id; the client reads it when it words an error, and
        # without it appends the raw body a second time.
        headers.setdefault("uber-trace-id", f"{secrets.token_hex(8)}:{secrets.token_hex(8)}:0:1")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data) + (1 if cut else 0)))
        self.end_headers()
        if data:
            self.wfile.write(data[:len(data) // 2] if cut else data)
        self.wfile.flush()

    def _drop(self, graceful: bool = False) -> None:
        """Close the connection at once: with a reset, so anything sent and not yet read is
        lost too; ``graceful``: with a plain end of stream, after what was sent (a reset would
        make the client lose the cut-off answer already on its way, and take the drop for one
        before the request was sent)."""
        self.close_connection = True
        if graceful:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        else:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()


# -- from a shell ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qjm_tui.testing.ibm_service``: serve until Ctrl-C, printing each request."""
    parser = argparse.ArgumentParser(
        prog="python -m qjm_tui.testing.ibm_service",
        description="A local IBM Quantum Platform for qiskit-ibm-runtime (and qjm's ibm-runtime "
                    "backend). Prints the environment to export, then one line per request.")
    parser.add_argument("--device", action="append", metavar="NAME",
                        help="a fake device to serve (fake_manila, fake_kyiv, ...); repeat for "
                             "more (default: fake_manila)")
    parser.add_argument("--max-pending-jobs", type=int, metavar="N",
                        help="refuse jobs beyond N queued or running")
    parser.add_argument("--limit-answer", choices=("429", "400"), default="429",
                        help="how a refusal is worded: 429 'limit of N pending jobs' (default) or "
                             "the older 400 with error code 3458")
    parser.add_argument("--job-seconds", type=float, default=1.0, metavar="S",
                        help="how long each job runs (default 1)")
    parser.add_argument("--parallel-jobs", type=int, metavar="N",
                        help="how many jobs run at once (default: every accepted job)")
    parser.add_argument("--quota-seconds", type=float, metavar="S",
                        help="the instance's usage allowance in quantum seconds")
    parser.add_argument("--token-seconds", type=float, default=3600.0, metavar="S",
                        help="how long a token lives (default 3600)")
    args = parser.parse_args(argv)
    service = IBMQuantumService(args.device or ["fake_manila"], max_pending_jobs=args.max_pending_jobs,
                                limit_answer=args.limit_answer, job_seconds=args.job_seconds,
                                parallel_jobs=args.parallel_jobs, quota_seconds=args.quota_seconds,
                                token_seconds=args.token_seconds)
    service.on_request = lambda r: print(f"{time.strftime('%H:%M:%S')} {r.host} {r.line()}",
                                         file=sys.stderr, flush=True)
    with service:
        print("# a local IBM Quantum Platform on 127.0.0.1; in the shell that runs your client:")
        for key, value in service.environ().items():
            print(f"export {key}={value}")
        print("unset NO_PROXY no_proxy")
        print(f"# devices: {', '.join(sorted(service.devices))}")
        print("# qjm: qjm run bell.qasm --backend ibm-runtime:" + sorted(service.devices)[0] + " --transpile")
        print("# python: QiskitRuntimeService() reads the same variables")
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
