"""How close qjm's job-time estimate is to the fake devices' own schedules.

Run:  python -m benchmarks.check_estimator [--circuits 20] [--devices all]

For every fake device of qiskit-ibm-runtime that publishes instruction durations, random
circuits (2-5 qubits, depth 1-8, measured; every other one with a wait of a few microseconds
before its measurements) are transpiled for it. For each, qjm's estimate of
one shot (``DeviceTiming``: Qiskit's longest-path ``estimate_duration`` over the device's
``Target`` durations, plus the device's default repetition delay) is set against the device's
own schedule: the circuit transpiled with ``scheduling_method="alap"``, which applies the
device's durations *and* its timing constraints (pulse and acquire alignment), plus the same
repetition delay. Prints the median and worst relative difference of the circuit's duration and
of one shot, per device and over all.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--circuits", type=int, default=20, help="random circuits per device")
    parser.add_argument("--devices", default="all", help="comma-separated class names, or all")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # the runtime's transpiler plugins complain on import
    from qiskit import transpile
    from qiskit.circuit.random import random_circuit
    from qiskit_ibm_runtime import fake_provider

    from qjm_tui.core.timing import device_timing

    names = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and n.endswith("V2")
                   or n.startswith("Fake") and not n.endswith(("V2", "Provider", "ProviderForBackendV2"))
                   and n[4:5].isupper())
    if args.devices != "all":
        names = args.devices.split(",")
    all_circuit, all_shot, all_gaps = [], [], []
    rng = random.Random(1)
    for name in names:
        try:
            device = getattr(fake_provider, name)()
        except Exception:  # noqa: BLE001 - some classes are not devices
            continue
        if not hasattr(device, "target"):
            continue
        timing = device_timing(device, name)
        if timing is None or not getattr(device, "dt", None):
            print(f"{name:24s} no durations")
            continue
        circuit_diffs, shot_diffs, gaps = [], [], []
        skipped = 0
        for seed in range(args.circuits):
            width = min(rng.randint(2, 5), device.num_qubits)
            circuit = random_circuit(width, rng.randint(1, 8), measure=seed % 2 == 0, seed=seed)
            try:
                isa = transpile(circuit, device, optimization_level=1, seed_transpiler=seed)
            except Exception:  # noqa: BLE001 - a device whose basis cannot take the circuit
                skipped += 1
                continue
            if seed % 2:
                # a wait in microseconds before measuring: what alignment constraints act on
                used = [isa.find_bit(q).index for i in isa.data for q in i.qubits]
                isa.delay(rng.choice([0.5, 1.3, 2.0, 7.7]), used[0] if used else 0, unit="us")
                isa.measure_all()
            try:
                scheduled = transpile(isa, device, scheduling_method="alap", optimization_level=0)
            except Exception:  # noqa: BLE001 - a device missing a duration cannot schedule it
                skipped += 1
                continue
            truth = scheduled.duration * device.dt
            estimate = timing.circuit_seconds(isa)
            rep = timing.rep_delay or 0.0
            circuit_diffs.append(abs(estimate - truth) / truth)
            gaps.append(truth - estimate)
            shot_diffs.append(abs((estimate + rep) - (truth + rep)) / (truth + rep))
        if not circuit_diffs:
            print(f"{name:24s} no circuit could be transpiled and scheduled for it")
            continue
        all_circuit += circuit_diffs
        all_shot += shot_diffs
        print(f"{name:24s} circuit: median {statistics.median(circuit_diffs):.2e} worst "
              f"{max(circuit_diffs):.2e}   one shot: median {statistics.median(shot_diffs):.2e} worst "
              f"{max(shot_diffs):.2e}   estimate short by at most {max(gaps) * 1e9:.1f} ns "
              f"({max(gaps) / device.dt:.0f} dt; rep delay {timing.rep_delay})"
              + (f"; {skipped} circuits it could not take or schedule" if skipped else ""))
        all_gaps += gaps
    print(f"\nall {len(all_circuit)} circuits: circuit duration median {statistics.median(all_circuit):.2e},"
          f" worst {max(all_circuit):.2e}; one shot median {statistics.median(all_shot):.2e},"
          f" worst {max(all_shot):.2e}; the estimate is never long and short by at most"
          f" {max(all_gaps) * 1e9:.1f} ns (min gap {min(all_gaps) * 1e9:.2g} ns)")


if __name__ == "__main__":
    main()
