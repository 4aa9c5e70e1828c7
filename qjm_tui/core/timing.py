"""How long a job will take on a backend, estimated before it is submitted.

An experiment takes ``shots x (its scheduled duration + the repetition delay)``: a QPU runs each
shot of each circuit in turn, and waits the repetition delay between shots so the qubits relax
(IBM's "dynamic repetition rate" execution). The scheduled duration is the longest path through
the circuit with each instruction's duration from the backend's ``Target`` — Qiskit's own
``QuantumCircuit.estimate_duration``, which gives what the transpiler's scheduler would. A job
adds :data:`JOB_OVERHEAD_SECONDS` once, for what a QPU does per job besides shots.

A backend whose ``Target`` carries no instruction durations (a plain simulator) has no
estimate; sizing jobs by time is then refused with a message that says so.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.text import strip_ansi

#: seconds a QPU spends on one job besides its shots (loading the circuits, arming the
#: electronics, reading results out). IBM's own example of ``job.usage_estimation`` is a Bell
#: circuit at the Sampler's default 4,096 shots estimated at 4.1 s of quantum time, of which
#: shots x (a few microseconds of circuit + the 250 us default repetition delay) is about 1.05 s:
#: the other ~3 s are per job.
JOB_OVERHEAD_SECONDS = 3.0


class EstimateError(Exception):
    """One circuit's duration cannot be estimated (control flow, an operation without a
    duration); the message says which operation."""


@dataclass(frozen=True)
class DeviceTiming:
    """What estimates an experiment's time on one backend.

    ``target`` is the backend's ``Target`` (with instruction durations); ``rep_delay`` the
    seconds between shots (``None`` when the backend does not say: counted as 0);
    ``overhead`` the seconds added once per job.
    """

    target: Any
    rep_delay: float | None
    backend: str
    overhead: float = JOB_OVERHEAD_SECONDS

    def circuit_seconds(self, circuit: Any) -> float:
        """The circuit's scheduled duration in seconds; raises :class:`EstimateError`."""
        try:
            return float(circuit.estimate_duration(self.target, unit="s"))
        except Exception as exc:  # noqa: BLE001 - Qiskit raises QiskitError, or others for odd input
            message = strip_ansi(str(exc)).strip().strip("'\"")
            if "not scheduled" in message or "units other" in message:
                # delays in us/ns/ms: Qiskit's estimate wants them in dt or seconds
                try:
                    return float(_unit_converted(circuit, self.target).estimate_duration(
                        self.target, unit="s"))
                except Exception as again:  # noqa: BLE001 - reported below as the reason
                    message = strip_ansi(str(again)).strip().strip("'\"")
            raise EstimateError(message or type(exc).__name__) from None

    def shot_seconds(self, circuit: Any) -> float:
        """Seconds one shot of the circuit takes: its duration plus the repetition delay."""
        return self.circuit_seconds(circuit) + (self.rep_delay or 0.0)


def _unit_converted(circuit: Any, target: Any) -> Any:
    from qiskit.transpiler.passes import TimeUnitConversion

    return TimeUnitConversion(target=target)(circuit)


def publishes_durations(target: Any) -> bool:
    """Whether a ``Target`` gives any instruction a duration."""
    if target is None:
        return False
    try:
        for _name, by_qargs in target.items():
            for props in (by_qargs or {}).values():
                if props is not None and getattr(props, "duration", None):
                    return True
    except Exception:  # noqa: BLE001 - an object that is not a Target publishes nothing usable
        return False
    return False


def repetition_delay(backend: Any, adapter: Any = None,
                     run_options: dict[str, Any] | None = None) -> float | None:
    """The seconds between shots: the ``rep_delay`` run option if given (``rep_delay`` as
    ``backend.run`` takes it, or ``execution.rep_delay`` as IBM's Sampler does), else what the
    adapter or the backend declares (``default_rep_delay``), else None."""
    options = run_options or {}
    option = options.get("rep_delay")
    if option is None and isinstance(options.get("execution"), dict):
        option = options["execution"].get("rep_delay")
    if isinstance(option, (int, float)) and not isinstance(option, bool) and option >= 0:
        return float(option)
    declared = getattr(adapter, "repetition_delay", None)
    if callable(declared):
        value = declared()
        if value is not None:
            return float(value)
    value = getattr(backend, "default_rep_delay", None)
    if value is None:
        config = getattr(backend, "configuration", None)
        if callable(config):
            try:
                value = getattr(config(), "default_rep_delay", None)
            except Exception:  # noqa: BLE001 - a configuration that cannot be read says nothing
                value = None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def device_timing(backend: Any, spec: str, adapter: Any = None,
                  run_options: dict[str, Any] | None = None) -> DeviceTiming | None:
    """How to estimate on ``backend`` (a Qiskit backend object), or None if it publishes no
    instruction durations."""
    target = getattr(backend, "target", None)
    if not publishes_durations(target):
        return None
    return DeviceTiming(target, repetition_delay(backend, adapter, run_options), spec)


def no_durations(spec: str) -> JobManagerInputError:
    """The error for ``max_job_seconds`` on a backend without instruction durations."""
    return JobManagerInputError(
        f"max_job_seconds cannot be used with backend {spec}: it publishes no instruction "
        "durations, so a job's time cannot be estimated; leave max_job_seconds out (and size "
        "jobs with max_experiments_per_job), or use a backend that publishes them (a device, or "
        "a simulator of one such as aer:fake_manila)")


def check_max_job_seconds(value: Any) -> float | None:
    """``value`` as a positive number of seconds (None stays None), or a clear error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value != value or value == float("inf"):
        raise JobManagerInputError(f"max_job_seconds must be a positive number of seconds, got {value!r}")
    return float(value)


def prefix_sums(values: Iterable[float]) -> array[float]:
    """``[0, v0, v0+v1, ...]`` as a compact array (8 bytes an experiment)."""
    out = array("d", [0.0])
    total = 0.0
    for value in values:
        total += value
        out.append(total)
    return out
