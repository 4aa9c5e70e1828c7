"""Reading results out: ``qjm results`` (text, JSON, CSV, histograms) and ``qjm export``."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from qjm_tui.cli.commands import open_manager
from qjm_tui.cli.output import EXIT_FAILED, EXIT_OK, note, out, write_output
from qjm_tui.exporting import Exported, Rows, export_to, write_csv, write_json_document
from qjm_tui.views import histogram_lines, printable


def cmd_results(args: argparse.Namespace) -> int:
    """Counts per experiment: text, JSON or CSV, written one experiment at a time (a set of a
    million experiments streams out in constant memory). Never waits: use `qjm wait` first."""
    manager = open_manager(read_only=True)
    job_set = manager.retrieve_job_set(args.id)
    rows = Rows(manager, job_set, args.experiment)
    if args.json:
        write_json_document(sys.stdout, rows.header, "experiments", rows)
        sys.stdout.flush()
    elif args.csv:
        write_csv(sys.stdout, rows, clean=lambda text: printable(text, keep_newlines=True))
        sys.stdout.flush()
    elif args.experiment:
        for n, item in enumerate(rows):
            if n:
                out("")
            out(f"Experiment {item['index']} ({printable(item['name'])}): " + (
                f"{item['shots']} shots, {len(item['counts'])} outcomes" if item["counts"] is not None
                else printable(item["error"])))
            if item["counts"] is not None:
                for line in histogram_lines(item["counts"]):
                    out(line)
    else:
        for item in rows:
            if item["counts"] is None:
                out(f"{item['index']}\t{printable(item['name'])}\t-\t{printable(item['error'])}")
            else:
                ordered = sorted(item["counts"].items(), key=lambda kv: (-kv[1], kv[0]))
                out(f"{item['index']}\t{printable(item['name'])}\t{item['shots']}\t"
                    + " ".join(f"{k}:{v}" for k, v in ordered))
    message = rows.missing_message()
    if message is None:
        return EXIT_OK
    note(message)
    return EXIT_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    """Write a job set's results to a file: JSON, CSV, or a Qiskit Result as JSON, one
    experiment at a time (into a temporary file renamed into place at the end)."""
    manager = open_manager(read_only=True)
    job_set = manager.retrieve_job_set(args.id)

    def write(fh: TextIO) -> Exported:
        return export_to(manager, job_set, args.format, fh, partial=args.partial)

    exported = write_output(args.output, write)
    if exported.missing:
        note(exported.missing)
    if args.output != "-":
        note(f"wrote {exported.experiments} experiments of job set {job_set.job_set_id()} to "
             f"{args.output} ({args.format})")
    return EXIT_FAILED if exported.missing else EXIT_OK
