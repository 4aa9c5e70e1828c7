"""Reading results out: ``qjm results`` (text, JSON, CSV, histograms) and ``qjm export``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from qjm_tui.cli.commands import open_manager
from qjm_tui.cli.output import EXIT_FAILED, EXIT_OK, note, out, print_json, write_output
from qjm_tui.exporting import csv_text, export, missing_message, result_rows
from qjm_tui.views import histogram_lines, printable


def missing_note(header: dict[str, Any], items: Sequence[dict[str, Any]]) -> int:
    """Say how many experiments have no counts (and why the first has none); 1 if any, else 0."""
    message = missing_message(header, items)
    if message is None:
        return EXIT_OK
    note(message)
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
    exported = export(manager, job_set, args.format, partial=args.partial)
    if exported.missing:
        note(exported.missing)
    write_output(args.output, exported.text)
    if args.output != "-":
        note(f"wrote {exported.experiments} experiments of job set {job_set.job_set_id()} to "
             f"{args.output} ({args.format})")
    return EXIT_FAILED if exported.missing else EXIT_OK
