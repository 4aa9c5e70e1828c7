"""Results out of the store as files: JSON, CSV or a Qiskit ``Result``.

One implementation for ``qjm results`` / ``qjm export`` and the app's export form, so a file
written from either is the same, byte for byte. Nothing here prints: callers decide how to
tell the user (a line on stderr, a notification).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qjm_tui.core.files import write_file

if TYPE_CHECKING:
    from qjm_tui.core.jobset import ManagedJobSet
    from qjm_tui.core.manager import JobManager

#: export formats: name -> what it is, for help texts and the app's form
FORMATS = {"json": "counts per experiment as JSON", "csv": "experiment,name,outcome,count rows",
           "qiskit": "a Qiskit Result as JSON (qiskit.result.Result.from_dict reads it)"}
#: the file suffix each format is written with by default
SUFFIXES = {"json": ".json", "csv": ".csv", "qiskit": ".result.json"}


@dataclass(frozen=True)
class Exported:
    """One export: the text to write, how many experiments it holds, and what is missing."""

    text: str
    experiments: int
    #: why some experiments are left out (None when all have results)
    missing: str | None


def to_json(data: Any, indent: int | None = 2) -> str:
    """``data`` as JSON text, with Qiskit's result values (complex, numpy, dates) converted."""
    from qjm_tui.core.jsonable import jsonable

    return json.dumps(jsonable(data), indent=indent)


def csv_text(items: Sequence[dict[str, Any]]) -> str:
    """Counts as CSV, one row per outcome: ``experiment,name,outcome,count``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["experiment", "name", "outcome", "count"])
    for item in items:
        for outcome, count in sorted((item["counts"] or {}).items()):
            writer.writerow([item["index"], item["name"], outcome, count])
    return buffer.getvalue()


def parse_experiment(text: str) -> int | str:
    """An experiment as a person types it: an index if all digits, else a circuit name."""
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


def missing_message(header: dict[str, Any], items: Sequence[dict[str, Any]]) -> str | None:
    """How many experiments have no counts and why the first has none; None if all have."""
    missing = [i for i in items if i["counts"] is None]
    if not missing:
        return None
    running = " (the job set is still running)" if header["state"] == "running" else ""
    return (f"{len(missing)} of {len(items)} experiments have no counts{running}; "
            f"first: {missing[0]['error']}")


def export(manager: JobManager, job_set: ManagedJobSet, fmt: str, partial: bool = False) -> Exported:
    """A job set's results in ``fmt`` (a key of :data:`FORMATS`).

    ``json`` and ``csv`` hold every experiment that has counts. ``qiskit`` is one combined
    Qiskit ``Result`` and needs every experiment (it raises ManagedResultDataNotAvailable
    naming the first without a result) unless ``partial``, which keeps those that have one.
    """
    if fmt not in FORMATS:
        from qjm_tui.core.errors import JobManagerInputError

        raise JobManagerInputError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "qiskit":
        results = job_set.results(partial=True, wait=False)
        if partial:
            n = len(results.available())
            missing = (f"only {n} of {len(results)} experiments have results; exporting those"
                       if n < len(results) else None)
            return Exported(to_json(results.to_dict()) + "\n", n, missing)
        return Exported(to_json(results.combine_results().to_dict()) + "\n", len(results), None)
    header, items = result_rows(manager, job_set, None)
    n = sum(1 for i in items if i["counts"] is not None)
    text = to_json({**header, "experiments": items}) + "\n" if fmt == "json" else csv_text(items)
    return Exported(text, n, missing_message(header, items))


def default_export_path(name: str, fmt: str, folder: Path | None = None) -> Path:
    """Where an export goes unless the user says otherwise: a file named after the set, in
    ``folder`` (default: the working directory), with characters unsafe in file names replaced."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._") or "results"
    return (folder or Path.cwd()) / f"{stem}{SUFFIXES[fmt]}"


def write_atomically(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` through the one safe write (:func:`qjm_tui.core.files.write_file`):
    a regular file is replaced whole (a reader never sees half of it), a device or FIFO is
    written through, a symlink is followed, ``-`` is standard output. Raises IsADirectoryError
    for a folder and OSError when it cannot write."""
    write_file(path, text)
