"""Reading results out: ``qjm results`` (text, JSON, CSV, histograms) and ``qjm export``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qjm_tui.cli.commands import open_manager
from qjm_tui.cli.output import EXIT_FAILED, EXIT_OK, csv_text, note, out, print_json, to_json, write_output
from qjm_tui.views import histogram_lines, printable

if TYPE_CHECKING:
    from qjm_tui.core.jobset import ManagedJobSet
    from qjm_tui.core.manager import JobManager


def parse_experiment(text: str) -> int | str:
    """An experiment given on the command line: an index if all digits, else a circuit name."""
    return int(text) if text.isdigit() else text


def result_rows(manager: JobManager, job_set: ManagedJobSet, experiments: Sequence[str] | None
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job set's header data and one dict per requested experiment (counts or why not)."""
    from qjm_tui.core.errors import ManagedResultDataNotAvailable

    row = manager.store.get_job_set(job_set.job_set_id())
    results = job_set.results(partial=True, wait=False)
    if experiments:
        indices = [job_set.experiment_index(parse_experiment(e)) for e in experiments]
    else:
        indices = list(range(row.n_experiments))
    items = []
    for index in indices:
        item: dict[str, Any] = {"index": index, "name": row.experiment_names[index],
                                "shots": None, "counts": None, "error": None}
        try:
            counts = results.get_counts(index)
        except ManagedResultDataNotAvailable as exc:
            item["error"] = str(exc)
        except Exception as exc:  # e.g. a statevector-only experiment has no counts
            item["error"] = f"no counts for experiment {index}: {exc}"
        else:
            item["counts"] = dict(counts)
            item["shots"] = sum(counts.values())
        items.append(item)
    header = {"id": row.id, "name": row.name, "backend": row.backend, "state": job_set.state()}
    return header, items


def missing_note(header: dict[str, Any], items: Sequence[dict[str, Any]]) -> int:
    """Say how many experiments have no counts (and why the first has none); 1 if any, else 0."""
    missing = [i for i in items if i["counts"] is None]
    if not missing:
        return EXIT_OK
    first = missing[0]
    running = " (the job set is still running)" if header["state"] == "running" else ""
    note(f"{len(missing)} of {len(items)} experiments have no counts{running}; "
         f"first: {first['error']}")
    return EXIT_FAILED


def cmd_results(args: argparse.Namespace) -> int:
    """Counts per experiment: text, JSON or CSV. Never waits: use `qjm wait` first."""
    manager = open_manager(read_only=True)
    job_set = manager.retrieve_job_set(args.id)
    header, items = result_rows(manager, job_set, args.experiment)
    if args.json:
        print_json({**header, "experiments": items})
    elif args.csv:
        sys.stdout.write(printable(csv_text(items), keep_newlines=True))
        sys.stdout.flush()
    elif args.experiment:
        for n, item in enumerate(items):
            if n:
                out("")
            out(f"Experiment {item['index']} ({printable(item['name'])}): " + (
                f"{item['shots']} shots, {len(item['counts'])} outcomes" if item["counts"] is not None
                else printable(item["error"])))
            if item["counts"] is not None:
                for line in histogram_lines(item["counts"]):
                    out(line)
    else:
        for item in items:
            if item["counts"] is None:
                out(f"{item['index']}\t{printable(item['name'])}\t-\t{printable(item['error'])}")
            else:
                ordered = sorted(item["counts"].items(), key=lambda kv: (-kv[1], kv[0]))
                out(f"{item['index']}\t{printable(item['name'])}\t{item['shots']}\t"
                    + " ".join(f"{k}:{v}" for k, v in ordered))
    return missing_note(header, items)


def cmd_export(args: argparse.Namespace) -> int:
    """Write a job set's results to a file: JSON, CSV, or a Qiskit Result as JSON."""
    manager = open_manager(read_only=True)
    job_set = manager.retrieve_job_set(args.id)
    code = EXIT_OK
    if args.format == "qiskit":
        results = job_set.results(partial=True, wait=False)
        if args.partial:
            data = results.to_dict()
            n = len(results.available())
            if n < len(results):
                note(f"only {n} of {len(results)} experiments have results; exporting those")
                code = EXIT_FAILED
        else:
            data = results.combine_results().to_dict()
            n = len(results)
        text = to_json(data) + "\n"
    else:
        header, items = result_rows(manager, job_set, None)
        n = sum(1 for i in items if i["counts"] is not None)
        code = missing_note(header, items)
        text = to_json({**header, "experiments": items}) + "\n" if args.format == "json" \
            else csv_text(items)
    write_output(args.output, text)
    if args.output != "-":
        note(f"wrote {n} experiments of job set {job_set.job_set_id()} to {args.output} ({args.format})")
    return code
