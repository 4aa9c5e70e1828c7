"""What qjm runs on: ``qjm backends`` (specs, limits, availability), ``qjm config`` and
``qjm doctor`` (the store's health)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from qjm_tui.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, note, out, print_json, print_table
from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.ports import RunOption, RunOptions


def probe_backend(spec: str, config: Any) -> dict[str, Any]:
    """What a backend spec resolves to: limits and width, or why it is not available; a note
    on its kind (a retired service) comes first."""
    from qjm_tui.backends.registry import kind_note

    entry = _probe(spec, config)
    note = kind_note(spec)
    if note:
        entry["detail"] = f"{note}. {entry['detail']}" if entry["detail"] else note
    return entry


def _probe(spec: str, config: Any) -> dict[str, Any]:
    import dataclasses

    from qjm_tui.backends.registry import resolve_spec

    entry: dict[str, Any] = {"spec": spec, "available": False, "limits": None, "num_qubits": None,
                             "detail": None, "run_options": None}
    if "<" in spec:
        entry["available"] = None
        entry["detail"] = "a family: put a name in place of <...> and run `qjm backends SPEC`"
        return entry
    # "emulator[:key=value,...]": the part before the optional bracket is a spec of its own.
    spec = spec.split("[", 1)[0]
    # Probe with in-process threads: no worker pool is started just to read limits.
    probe_config = dataclasses.replace(config, executor="threads") \
        if dataclasses.is_dataclass(config) and not isinstance(config, type) else config
    try:
        adapter = resolve_spec(spec, probe_config)
    except JobManagerInputError as exc:
        entry["detail"] = str(exc)
        entry["unknown"] = True
        return entry
    except Exception as exc:
        entry["detail"] = str(exc).strip() or type(exc).__name__
        return entry
    try:
        entry["limits"] = dataclasses.asdict(adapter.limits())
        target = adapter.target()
        width = getattr(getattr(target, "target", None), "num_qubits", None)
        if width is None:
            width = getattr(target, "num_qubits", None)
        if width is None:  # a backend with no Qiskit target (pulse models) says it itself
            width = getattr(adapter, "num_qubits", None)
        entry["num_qubits"] = width
        entry["available"] = True
        entry["detail"] = getattr(target, "name", None) or getattr(adapter, "detail", None) \
            or type(adapter).__name__
        entry["run_options"] = run_options_data(adapter.run_options())
    except Exception as exc:
        entry["detail"] = str(exc).strip() or type(exc).__name__
    return entry


def run_options_data(declared: RunOptions | None) -> dict[str, Any] | None:
    """A backend's run options as plain data, one entry per option, a group's options under
    dotted names (``twirling.strategy``, as ``qjm run --option`` takes them)."""
    if declared is None:
        return None

    def flat(options: tuple[RunOption, ...], prefix: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for option in options:
            if option.fields:
                rows += flat(option.fields, prefix + option.name + ".")
                continue
            row: dict[str, Any] = {"name": prefix + option.name, "type": option.type_text()}
            if option.has_default:
                row["default"] = option.default
            if option.set_by:
                row["set_by_qjm"] = option.set_by
            rows.append(row)
        return rows

    return {"source": declared.source, "options": flat(declared.options, "")}


def print_run_options(spec: str, data: dict[str, Any]) -> None:
    """The run options a backend takes, as a table, and those qjm sets itself."""
    options = [o for o in data["options"] if "set_by_qjm" not in o]
    out("")
    out(f"Run options of {spec}, from {data['source']}")
    out("(give them as qjm run --option KEY=VALUE, or run(..., KEY=VALUE) in Python):")
    if options:
        print_table(["OPTION", "TYPE", "DEFAULT"], [
            [o["name"], o["type"], json.dumps(o["default"]) if "default" in o and not (
                isinstance(o["default"], str) and o["default"].startswith("<")) else o.get("default", "-")]
            for o in options])
    else:
        out("  none")
    for o in data["options"]:
        if "set_by_qjm" in o:
            out(f"  {o['name']}: set by qjm, {o['set_by_qjm']}")


def cmd_backends(args: argparse.Namespace) -> int:
    """Known backend specs, their limits and whether they can be used here."""
    from qjm_tui.backends import registry
    from qjm_tui.config import load_config

    config = load_config()
    specs = list(args.specs) if args.specs else list(registry.KNOWN_SPECS)
    entries = []
    for spec in specs:
        entry = probe_backend(spec, config)
        entry["default"] = spec == config.default_backend
        entries.append(entry)
    unknown = [e for e in entries if e.pop("unknown", False)]
    # A spec the user typed that names no backend is bad input, as in `qjm run --backend`.
    code = EXIT_USAGE if unknown else EXIT_OK
    if args.json:
        print_json(entries)
        return code

    def limit_text(entry: dict[str, Any]) -> str:
        limits = entry["limits"] or {}
        shown = [f"{k.replace('max_', 'max ').replace('_', ' ')}={v}" for k, v in limits.items() if v]
        return ", ".join(shown) or ("none" if entry["limits"] is not None else "")

    rows = []
    for e in entries:
        available = {True: "yes", False: "no", None: "-"}[e["available"]]
        rows.append([e["spec"] + (" (default)" if e["default"] else ""), available,
                     "" if e["num_qubits"] is None else str(e["num_qubits"]), limit_text(e),
                     e["detail"] or ""])
    print_table(["SPEC", "AVAILABLE", "QUBITS", "LIMITS", "DETAIL"], rows)
    if args.specs:  # named on the command line: what each one takes
        for e in entries:
            if e["run_options"] is not None:
                print_run_options(e["spec"], e["run_options"])
    for entry in unknown:
        err(f"qjm: error: {entry['detail']}")
    return code


def cmd_config(args: argparse.Namespace) -> int:
    """The effective configuration (secrets masked) and where qjm keeps its files."""
    from qjm_tui.config import config_path, load_config

    config = load_config()
    data = config.masked()
    data["keys"] = app_keys(config)
    path = config_path()
    data["config_path"] = str(path)
    data["config_file_exists"] = path.exists()
    if args.json:
        print_json(data)
        return EXIT_OK
    out(f"config file: {path}" + ("" if path.exists() else " (not found; built-in defaults in use)"))
    out(f"store:       {data['store']}")
    out(f"log:         {data['log']}")
    out("")
    for key in ("default_backend", "default_shots", "executor"):
        out(f"{key} = {json.dumps(data[key])}")
    for section in ("retry", "ibm"):
        if data[section]:
            out(f"\n[{section}]")
            for key, value in data[section].items():
                out(f"{key} = {json.dumps(value)}")
    for spec, limits in (data["backends"] or {}).items():
        out(f"\n[backends.{json.dumps(spec)}]")
        for key, value in limits.items():
            out(f"{key} = {value}")
    if data["keys"]:
        out("\n[keys]  # the app's keys by binding id, with the file's changes applied")
        for binding_id, keys in data["keys"].items():
            out(f"{json.dumps(binding_id)} = {json.dumps(keys)}")
    return EXIT_OK


def app_keys(config: Any) -> dict[str, str]:
    """The app's effective keys by binding id (empty where the app cannot load); an unknown id
    in the file's [keys] table is a ConfigError naming it."""
    try:
        from qjm_tui.tui.app import QjmApp
        from qjm_tui.tui.keys import effective_keys
    except ImportError:
        return {}
    return effective_keys(config.keys, QjmApp, where=str(config.source or "configuration"))


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the store with SQLite's integrity check; recover what can be read from a damaged
    one into a new store, leaving the damaged file as it is."""
    from qjm_tui.config import load_config
    from qjm_tui.core.repair import check_store, default_recovery_path

    path = args.store if args.store is not None else load_config().store_path()
    if not path.exists():
        note(f"no store at {path}; nothing to check")
        return EXIT_OK
    output = args.output if args.output is not None else default_recovery_path(path)
    checkup = check_store(path, recover_to=output)
    recovery = checkup.recovery
    if args.json:
        print_json({"store": str(path), "sound": not checkup.problems, "problems": checkup.problems,
                    "job_sets": checkup.job_sets,
                    "recovered": None if recovery is None else {
                        "output": str(recovery.output), "copied": recovery.copied, "gaps": recovery.gaps,
                        "unreadable_tables": recovery.unreadable,
                        "incomplete_sets": recovery.incomplete_sets, "orphans": recovery.orphans,
                        "results_lost": recovery.results_lost}})
        return EXIT_FAILED if checkup.problems else EXIT_OK
    if not checkup.problems:
        sets = "" if checkup.job_sets is None else f"; {checkup.job_sets} job sets"
        out(f"{path}: sound (SQLite integrity check: ok{sets})")
        return EXIT_OK
    out(f"{path}: damaged; SQLite's integrity check found:")
    for line in checkup.problems[:10]:
        out(f"  {line}")
    if len(checkup.problems) > 10:
        out("  ...")
    assert recovery is not None
    copied = ", ".join(f"{n:,} {table.replace('_', ' ')}" for table, n in recovery.copied.items() if n)
    out(f"recovered into {recovery.output}: {copied or 'nothing'}")
    if recovery.gaps:
        out("  unreadable stretches stepped over: " +
            ", ".join(f"{n} in {table}" for table, n in recovery.gaps.items()))
    if recovery.unreadable:
        out(f"  tables that could not be read at all: {', '.join(recovery.unreadable)}")
    if recovery.incomplete_sets:
        lost = recovery.incomplete_sets
        shown = ", ".join(lost[:5]) + (", ..." if len(lost) > 5 else "")
        out(f"  {len(lost)} job sets lost some of their jobs: {shown}")
    if recovery.results_lost:
        out(f"  {recovery.results_lost} finished jobs lost their results: they are marked failed, "
            "so `qjm retry ID` runs them again")
    if recovery.orphans:
        out(f"  {recovery.orphans} rows dropped: their job set could not be read")
    out(f"{path} is unchanged. To use the recovered store: mv {path} {path}.damaged && "
        f"mv {recovery.output} {path}")
    return EXIT_FAILED
