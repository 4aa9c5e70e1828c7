"""Pulse schedules run locally, on qiskit-dynamics' ``DynamicsBackend``.

Two models (``pip install 'qjm-tui[pulse]'`` brings qiskit-dynamics 0.5.1):

* ``dynamics``: one transmon (three levels, 5 GHz, anharmonicity -330 MHz) driven on
  ``DriveChannel(0)`` and measured through ``AcquireChannel(0)`` into ``MemorySlot(0)``. Its drive
  strength is calibrated so that ``Gaussian(duration=160, sigma=40, amp=0.5)`` is a pi pulse
  (:data:`PI_AMPLITUDE`): a sweep of ``amp`` from 0 to 1 passes through one full Rabi cycle.
* ``dynamics:fake_7q_pulse``: the Hamiltonian, frequencies and limits of Qiskit's
  ``Fake7QPulseV1`` (seven transmons, drive and control channels). A schedule is simulated on
  the qubits it addresses (the drive, control, measure and acquire channels it uses), three
  levels each; the device's other qubits are left out of that schedule's model.

Both work in the frame of the undriven Hamiltonian with the rotating-wave approximation, and
step one sample (``dt``) at a time with a matrix exponential (``scipy_expm``): exact for a
piecewise-constant drive up to the terms the approximation drops, and about a hundred times
faster than an adaptive ODE solve to a tight tolerance that gives the same populations to
1e-4. ``solver_options={...}`` (a run option) changes the method; with jax installed,
``{"method": "jax_odeint"}`` runs it on jax (64-bit floats are switched on for it).

``MeasureChannel`` pulses are accepted and not modelled (neither model has a readout
resonator); the measurement is the ``Acquire``, which must put every measured qubit into a
``MemorySlot`` at one time, as ``DynamicsBackend`` requires.

qiskit-dynamics takes seconds to import, so it is imported only where a schedule is simulated
(in the executor's worker): describing a model, listing it and checking schedules against it
need only Qiskit. qiskit-dynamics 0.5.1 sets ``Target.num_qubits``, which qiskit 1.4's Target
forbids; the backend made here hands it a Target that takes the value it already has (Qiskit
grows it when the simulator adds its measure instructions), without changing the package.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from qjm_tui.backends.base import experiments_from_result
from qjm_tui.backends.local import FALLBACK_MAX_SHOTS, LocalBackend, WorkerSetup
from qjm_tui.core.circuits import circuits_from_qpy, quiet_pulse
from qjm_tui.core.errors import (
    BackendConfigurationError,
    JobManagerInputError,
    PermanentBackendError,
    UnknownBackendError,
)
from qjm_tui.core.ports import BackendLimits, JobPayload, RunOption, RunOptions

#: how to get the simulator, for every message that needs it
PULSE_EXTRA = "pip install 'qjm-tui[pulse]'"
#: the amplitude of ``Gaussian(duration=160, sigma=40)`` that is a pi pulse on ``dynamics``
PI_AMPLITUDE = 0.5

#: the shipped transmon: levels, frequency and anharmonicity (Hz), drive strength (Hz per unit
#: amplitude, calibrated: see PI_AMPLITUDE) and sample time (s, IBM's 2/9 ns)
TRANSMON_LEVELS = 3
TRANSMON_FREQUENCY = 5.0e9
TRANSMON_ANHARMONICITY = -0.33e9
TRANSMON_DRIVE_STRENGTH = 52.196e6
TRANSMON_DT = 2 / 9 * 1e-9

#: terms of the Hamiltonian in the rotating frame faster than this are dropped (both models'
#: qubits are near 5 GHz, so their counter-rotating terms sit near 10 GHz)
RWA_CUTOFF = 7.5e9


@dataclass(frozen=True)
class PulseModel:
    """What a pulse backend offers, known without importing qiskit-dynamics."""

    name: str
    spec: str
    description: str
    n_qubits: int
    dt: float
    #: the qubits a schedule addresses when it uses a drive or control channel, by index
    drive: dict[int, tuple[int, ...]]
    control: dict[int, tuple[int, ...]] = field(default_factory=dict)
    limits: BackendLimits = field(default_factory=BackendLimits)
    #: the most qubits one schedule may address (each multiplies the simulated states by 3)
    max_qubits: int = 1

    def channel_summary(self) -> str:
        """The channels a schedule may use, as a reader wants them listed."""

        def span(name: str, indices: Sequence[int]) -> str:
            ordered = sorted(indices)
            if len(ordered) == 1:
                return f"{name}({ordered[0]})"
            return f"{name}({ordered[0]}..{ordered[-1]})"

        qubits = range(self.n_qubits)
        parts = [span("DriveChannel", list(self.drive))]
        if self.control:
            parts.append(span("ControlChannel", list(self.control)))
        parts += [span("MeasureChannel", qubits), span("AcquireChannel", qubits),
                  span("MemorySlot", qubits)]
        return ", ".join(parts)


def _transmon_model() -> PulseModel:
    return PulseModel(
        name="transmon", spec="dynamics",
        description=(f"one transmon ({TRANSMON_FREQUENCY / 1e9:g} GHz, 3 levels), qiskit-dynamics; "
                     f"Gaussian(160, sigma=40, amp={PI_AMPLITUDE}) is a pi pulse"),
        n_qubits=1, dt=TRANSMON_DT, drive={0: (0,)},
        limits=BackendLimits(max_shots=FALLBACK_MAX_SHOTS), max_qubits=1)


def _fake_7q_model() -> PulseModel:
    config, _ = _fake_7q_device()
    control: dict[int, set[int]] = {}
    for qubits, channels in config.control_channels.items():
        for channel in channels:
            control.setdefault(channel.index, set()).update(qubits)
    return PulseModel(
        name="fake_7q_pulse", spec="dynamics:fake_7q_pulse",
        description="Fake7QPulseV1's Hamiltonian (7 transmons, 3 levels each), qiskit-dynamics; "
                    "each schedule simulates the qubits it addresses",
        n_qubits=config.n_qubits, dt=config.dt,
        drive={q: (q,) for q in range(config.n_qubits)},
        control={index: tuple(sorted(qubits)) for index, qubits in sorted(control.items())},
        limits=BackendLimits(max_experiments_per_job=config.max_experiments or None,
                             max_shots=config.max_shots or None),
        max_qubits=4)


_FAKE_7Q: tuple[Any, Any] | None = None
_MODELS = {"transmon": _transmon_model, "fake_7q_pulse": _fake_7q_model}
_MADE: dict[str, PulseModel] = {}
#: guards the per-process caches below (never held while another is taken)
_LOCK = threading.Lock()
_DEVICE_LOCK = threading.Lock()


def _fake_7q_device() -> tuple[Any, Any]:
    """Fake7QPulseV1's configuration and pulse defaults (read once per process)."""
    global _FAKE_7Q
    with _DEVICE_LOCK:
        if _FAKE_7Q is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from qiskit.providers.fake_provider import Fake7QPulseV1

                device = Fake7QPulseV1()
                _FAKE_7Q = (device.configuration(), device.defaults())
        return _FAKE_7Q


def model_names() -> list[str]:
    """The models ``dynamics:<model>`` takes (``dynamics`` alone is ``transmon``)."""
    return list(_MODELS)


def pulse_model(name: str) -> PulseModel:
    """The model called ``name``; :class:`UnknownBackendError` naming the others if none is."""
    made = _MADE.get(name)
    if made is None:
        maker = _MODELS.get(name)
        if maker is None:
            raise UnknownBackendError(
                f"unknown pulse model {name!r}; the dynamics backends are 'dynamics' (one transmon) "
                f"and {', '.join(repr('dynamics:' + n) for n in _MODELS if n != 'transmon')}")
        made = _MADE.setdefault(name, maker())
    return made


def model_of_spec(spec: str) -> PulseModel:
    """The model a spec (``dynamics`` or ``dynamics:<model>``) names."""
    _, _, name = spec.partition(":")
    return pulse_model(name or "transmon")


def importable(module: str) -> bool:
    """Whether ``module`` can be imported here, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_dynamics(spec: str) -> None:
    """Raise :class:`BackendConfigurationError` with the install command if qiskit-dynamics is
    missing."""
    if not importable("qiskit_dynamics"):
        raise BackendConfigurationError(
            f"backend {spec!r} runs pulse schedules on qiskit-dynamics, which is not installed; "
            f"install it with: {PULSE_EXTRA}")


# -- run options -----------------------------------------------------------------------------

#: what to do instead of setting one of the model's own options
_SET_BY_MODEL = "the pulse model's own: pick the model with the backend spec"
#: DynamicsBackend's options that are the model itself (its solver and its description)
MODEL_OPTIONS = ("solver", "subsystem_dims", "meas_map", "control_channel_map",
                 "experiment_result_function", "configuration", "defaults")


def run_options_of(model: PulseModel) -> RunOptions:
    """The run options ``DynamicsBackend.run`` takes, as qjm passes them.

    Declared here rather than read from the class, so that checking them needs no import of
    qiskit-dynamics (seconds); the tests check these names against the installed package's own
    ``_default_options()``. Kinds and choices are those ``DynamicsBackend.set_options`` checks.
    """
    from qjm_tui.backends.options import SHOTS_BY_QJM

    none = type(None)
    declared = [
        RunOption("shots", (int,), 1024, True, set_by=SHOTS_BY_QJM),
        RunOption("seed_simulator", (int, none), None, True),
        RunOption("memory", (bool,), False, True),  # qjm's default: DynamicsBackend's is True
        RunOption("meas_level", (int,), 2, True, choices=(1, 2)),
        RunOption("meas_return", (str,), "avg", True, choices=("single", "avg")),
        RunOption("max_outcome_level", (int, none), 1, True),
        RunOption("iq_centers", (list, none), None, True),
        RunOption("iq_width", (float,), 0.2, True),
        RunOption("normalize_states", (bool,), True, True),
        RunOption("initial_state", (str,), "ground_state", True, choices=("ground_state",)),
        RunOption("solver_options", (dict,), {"method": "scipy_expm", "max_dt": model.dt}, True),
        RunOption("validate", (bool,), True, True),
        *(RunOption(name, (), None, True, set_by=_SET_BY_MODEL) for name in MODEL_OPTIONS),
    ]
    return RunOptions(tuple(declared), "DynamicsBackend options and DynamicsBackend.run "
                                       "(qiskit-dynamics 0.5.1)")


# -- checking schedules, before anything is stored -------------------------------------------


def _qubits_of(model: PulseModel, channel: Any) -> tuple[int, ...] | None:
    """The qubits a schedule using ``channel`` addresses; None if the model has no such channel."""
    from qiskit import pulse

    index = channel.index
    if not isinstance(index, int):
        return None
    if isinstance(channel, pulse.DriveChannel):
        return model.drive.get(index)
    if isinstance(channel, pulse.ControlChannel):
        return model.control.get(index)
    if isinstance(channel, (pulse.MeasureChannel, pulse.AcquireChannel)):
        return (index,) if 0 <= index < model.n_qubits else None
    if isinstance(channel, pulse.MemorySlot):
        return () if 0 <= index < model.n_qubits else None
    return None


def addressed_qubits(model: PulseModel, schedule: Any) -> tuple[int, ...]:
    """The qubits ``schedule`` addresses (sorted); assumes it passed :func:`check_schedule`."""
    qubits: set[int] = set()
    for channel in schedule.channels:
        qubits.update(_qubits_of(model, channel) or ())
    return tuple(sorted(qubits))


def check_schedule(model: PulseModel, schedule: Any, where: str) -> None:
    """Raise :class:`JobManagerInputError` at ``where`` unless ``model`` can run ``schedule``:
    every channel exists, some ``Acquire`` puts a qubit into a ``MemorySlot``, every such acquire
    starts at one time and after the last drive or control pulse has ended (the simulator stops
    there), and the qubits it addresses are within ``model.max_qubits``."""
    from qiskit import pulse

    with quiet_pulse():
        unknown = [ch for ch in schedule.channels if _qubits_of(model, ch) is None]
        if unknown:
            names = ", ".join(sorted(repr(ch) for ch in unknown))
            raise JobManagerInputError(f"uses {names}, which backend {model.spec} does not have (it has "
                                       f"{model.channel_summary()})", where)
        timed = (schedule if isinstance(schedule, pulse.Schedule) else
                 pulse.transforms.block_to_schedule(schedule)).instructions
        acquires = sorted({t for t, inst in timed
                           if isinstance(inst, pulse.Acquire) and inst.mem_slot is not None})
        driven = [(t + inst.duration, inst.channels[0]) for t, inst in timed
                  if inst.duration and not isinstance(inst, (pulse.Acquire, pulse.Delay))
                  and isinstance(inst.channels[0], (pulse.DriveChannel, pulse.ControlChannel))]
    if not acquires:
        raise JobManagerInputError(
            "measures nothing: it has no Acquire into a MemorySlot, so there would be no counts; "
            "end it with pulse.acquire(duration, AcquireChannel(q), MemorySlot(q))", where)
    if len(acquires) > 1:
        raise JobManagerInputError(
            f"acquires at {len(acquires)} different times ({', '.join(map(str, acquires[:4]))} "
            "samples); the simulator measures once per schedule, so start every Acquire at one time",
            where)
    late = [(end, channel) for end, channel in driven if end > acquires[0]]
    if late:
        end, channel = max(late, key=lambda item: item[0])
        raise JobManagerInputError(
            f"drives {channel!r} until sample {end}, after its Acquire starts (sample {acquires[0]}); "
            "the simulator measures when the Acquire starts and would leave the rest out: acquire "
            "after the last pulse (pulse.align_sequential, or insert the Acquire at the pulse's end)",
            where)
    qubits = addressed_qubits(model, schedule)
    if len(qubits) > model.max_qubits:
        raise JobManagerInputError(
            f"addresses qubits {', '.join(map(str, qubits))}; backend {model.spec} simulates at most "
            f"{model.max_qubits} qubits per schedule (3 levels each, so {3 ** model.max_qubits} states)",
            where)


# -- simulating, in the executor's worker ----------------------------------------------------

_BACKEND_CLASS: Any = None


def _backend_class() -> Any:
    """``DynamicsBackend`` made to work on qiskit 1.4 (imported here, on first use).

    ``DynamicsBackend.__init__`` ends with ``target.num_qubits = ...``; qiskit 1.4's Target has
    no setter for it. The Target handed in (``from_backend`` makes an empty one; so does a
    construction without one) is replaced by one whose setter takes the value it already has:
    Qiskit has grown it to that when the simulator added its measure instruction on each qubit.
    """
    global _BACKEND_CLASS
    if _BACKEND_CLASS is not None:
        return _BACKEND_CLASS
    try:
        from qiskit.transpiler import Target
        from qiskit_dynamics import DynamicsBackend
    except ImportError as exc:
        raise PermanentBackendError(f"qiskit-dynamics cannot be imported ({exc}); install it with: "
                                    f"{PULSE_EXTRA}") from None

    class _Target(Target):
        """A Target whose ``num_qubits`` may be set to the value it already has."""

        @property
        def num_qubits(self) -> int | None:
            return Target.num_qubits.__get__(self, Target)

        @num_qubits.setter
        def num_qubits(self, value: int) -> None:
            if value != self.num_qubits:
                raise ValueError(f"the simulator's target has {self.num_qubits} qubits, not {value}")

    class _DynamicsBackend(DynamicsBackend):
        def __init__(self, solver: Any, target: Any = None, **options: Any) -> None:
            if target is None or (type(target) is Target and not target.operation_names):
                target = _Target(dt=None if target is None else target.dt)
            super().__init__(solver, target=target, **options)

    _BACKEND_CLASS = _DynamicsBackend
    return _BACKEND_CLASS


def _transmon_backend() -> Any:
    import numpy as np
    from qiskit_dynamics import Solver

    levels = TRANSMON_LEVELS
    lower = np.diag(np.sqrt(np.arange(1, levels)), 1)
    number = np.diag(np.arange(levels))
    static = 2 * np.pi * TRANSMON_FREQUENCY * number \
        + np.pi * TRANSMON_ANHARMONICITY * number @ (number - np.eye(levels))
    drive = 2 * np.pi * TRANSMON_DRIVE_STRENGTH * (lower + lower.T)
    solver = Solver(static_hamiltonian=static, hamiltonian_operators=[drive], rotating_frame=static,
                    hamiltonian_channels=["d0"], channel_carrier_freqs={"d0": TRANSMON_FREQUENCY},
                    dt=TRANSMON_DT, rwa_cutoff_freq=RWA_CUTOFF, array_library="numpy")
    return _backend_class()(solver, subsystem_dims=[levels])


def _fake_7q_backend(qubits: tuple[int, ...]) -> Any:
    import numpy as np
    from qiskit_dynamics import RotatingFrame
    from qiskit_dynamics.backend.backend_string_parser.hamiltonian_string_parser import (
        parse_backend_hamiltonian_dict,
    )

    config, defaults = _fake_7q_device()

    class Device:
        """What ``from_backend`` reads, without Fake7QPulseV1's deprecated V1 surface."""

        target = None

        def configuration(self) -> Any:
            return config

        def defaults(self) -> Any:
            return defaults

    # The frame of the diagonal of the undriven Hamiltonian: the full one does not survive the
    # rotating-wave approximation once the qubits' couplings are in it (its static part stops
    # being Hermitian to working precision).
    static = parse_backend_hamiltonian_dict(config.hamiltonian, list(qubits))[0]
    return _backend_class().from_backend(Device(), subsystem_list=list(qubits),
                                         rotating_frame=RotatingFrame(np.diag(static)),
                                         rwa_cutoff_freq=RWA_CUTOFF, array_library="numpy")


class PulseSimulator:
    """The simulators of one model in one process: the transmon's, or one per set of qubits
    of the 7-qubit device (the most recently used few are kept)."""

    KEEP = 8

    def __init__(self, model: PulseModel) -> None:
        self.model = model
        self._backends: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def backend(self, qubits: tuple[int, ...]) -> Any:
        """The ``DynamicsBackend`` that simulates ``qubits`` (made on first use)."""
        key = qubits if self.model.name != "transmon" else (0,)
        made = self._backends.get(key)
        if made is None:
            with _quiet_simulation():
                made = _transmon_backend() if self.model.name == "transmon" else _fake_7q_backend(key)
            self._backends[key] = made
            if len(self._backends) > self.KEEP:
                self._backends.popitem(last=False)
        self._backends.move_to_end(key)
        return made

    def warm(self) -> None:
        """Import qiskit-dynamics and build the simulator most schedules use."""
        self.backend((0,))

    def run(self, schedules: Sequence[Any], shots: int | None, options: dict[str, Any]
            ) -> list[dict[str, Any]]:
        """Simulate ``schedules`` and return one JSON-ready result dict each, in order."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, schedule in enumerate(schedules):
            groups.setdefault(addressed_qubits(self.model, schedule), []).append(i)
        results: list[dict[str, Any] | None] = [None] * len(schedules)
        with self._lock, _one_blas_thread():
            for qubits, indices in groups.items():
                backend = self.backend(qubits)
                run_options = _run_options(backend, shots, options)
                with _quiet_simulation():
                    result = backend.run([schedules[i] for i in indices], **run_options).result()
                for i, experiment in zip(indices, experiments_from_result(result), strict=True):
                    results[i] = experiment
        return [r for r in results if r is not None]


@contextlib.contextmanager
def _quiet_simulation() -> Iterator[None]:
    """:func:`quiet_pulse`, and the device's control-channel frequencies: complex numbers with
    no imaginary part, which qiskit-dynamics warns about as it casts them to real."""
    from numpy.exceptions import ComplexWarning

    with quiet_pulse():
        warnings.simplefilter("ignore", ComplexWarning)
        yield


def _one_blas_thread() -> Any:
    """BLAS on one thread while schedules are simulated.

    Each step exponentiates a matrix of a few to a few dozen rows; OpenBLAS's threads cost more
    than such a product, and with one pool worker per core they fight each other: measured here,
    one thread made a schedule ten times faster on a busy two-core machine. threadpoolctl sets
    it at run time, since numpy has loaded BLAS long before a worker is handed a job.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _run_options(backend: Any, shots: int | None, options: dict[str, Any]) -> dict[str, Any]:
    """The options for ``DynamicsBackend.run``: per-shot memory only when asked for (it is one
    string per shot), one matrix exponential per sample unless ``solver_options`` says otherwise."""
    run_options = {"memory": False, **options}
    given = dict(options.get("solver_options") or {})
    # A method of the caller's comes with the caller's settings; otherwise one step per sample.
    solver_options = given if "method" in given else \
        {"method": "scipy_expm", "max_dt": backend.options.solver._dt, **given}
    if str(solver_options.get("method", "")).startswith("jax"):
        _enable_jax()
    run_options["solver_options"] = solver_options
    if shots is not None:
        run_options["shots"] = shots
    return run_options


def _enable_jax() -> None:
    try:
        import jax
    except ImportError:
        raise PermanentBackendError("a jax solver method needs jax, which is not installed: "
                                    "pip install jax (or leave solver_options' method unset)") from None
    jax.config.update("jax_enable_x64", True)


_SIMULATORS: dict[str, PulseSimulator] = {}


def simulator(spec: str) -> PulseSimulator:
    """This process's simulator for ``spec`` (made once)."""
    model = model_of_spec(spec)
    with _LOCK:
        made = _SIMULATORS.get(spec)
        if made is None:
            made = _SIMULATORS[spec] = PulseSimulator(model)
    return made


def warm_pulse_worker(spec: str) -> int:
    """Make a pool worker's pulse simulator (and compile it) ahead of its first job."""
    simulator(spec).warm()
    return os.getpid()


def run_pulse_job(spec: str, schedules_or_qpy: Any, shots: int | None, run_options: dict[str, Any],
                  as_text: bool = False) -> list[Any]:
    """Run one job's schedules and return per-schedule result dicts (JSON text with ``as_text``).

    Module-level, so process pools and Dask ship it by reference, as ``run_local_job``.
    """
    import json

    schedules = circuits_from_qpy(schedules_or_qpy) if isinstance(schedules_or_qpy, bytes) \
        else list(schedules_or_qpy)
    try:
        experiments = simulator(spec).run(schedules, shots, run_options)
    except PermanentBackendError:
        raise
    except Exception as exc:
        raise PermanentBackendError(f"{type(exc).__name__}: {exc}") from None
    if as_text:
        return [json.dumps(e, separators=(",", ":")) for e in experiments]
    return experiments


# -- the adapter -----------------------------------------------------------------------------


class PulseBackend(LocalBackend):
    """A pulse model run on the local executor (the process pool by default), as Aer is."""

    experiment_kinds = ("schedules",)
    worker_setup = WorkerSetup(("qiskit_dynamics", "qjm_tui.backends.dynamics"), warm_pulse_worker)

    def __init__(self, spec: str = "dynamics", executor: Any = "processes", workers: int | None = None,
                 job_size: int | None = None, max_shots: int | None = None) -> None:
        self.model = model_of_spec(spec)
        require_dynamics(spec)
        super().__init__(spec, executor=executor, workers=workers, job_size=job_size, max_shots=max_shots)
        self.num_qubits = self.model.n_qubits
        self.detail = self.model.description

    def _job(self, payload: JobPayload) -> tuple[Any, ...]:
        work = payload.qpy_bytes() if self._ships_qpy else list(payload.circuits)
        return (run_pulse_job, self.spec, work, payload.shots, dict(payload.run_options), self._ships_qpy)

    def limits(self) -> BackendLimits:
        """The model's limits (the 7-qubit device's own), narrowed by ``job_size``/``max_shots``."""
        own = self.model.limits
        return BackendLimits(max_experiments_per_job=self.job_size or own.max_experiments_per_job,
                             max_shots=self.max_shots or own.max_shots)

    def target(self) -> Any:
        """None: pulse schedules are checked against the model (:meth:`check_schedules`)."""
        return None

    def run_options(self) -> RunOptions:
        """What ``DynamicsBackend.run`` takes (:func:`run_options_of`), without importing it."""
        return run_options_of(self.model)

    def check_schedules(self, schedules: Sequence[Any]) -> None:
        for i, schedule in enumerate(schedules):
            check_schedule(self.model, schedule, f"experiment {i} ({schedule.name!r})")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model.description}
