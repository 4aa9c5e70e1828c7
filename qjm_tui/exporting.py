"""Results out of the store as files: JSON, CSV or a Qiskit ``Result``.

One implementation for ``qjm results`` / ``qjm export`` and the app's export form, so a file
written from either is the same, byte for byte. Nothing here prints: callers decide how to
tell the user (a line on stderr, a notification).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

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
    """One export: the text to write (empty when it was written to a stream), how many
    experiments it holds, and what is missing."""

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
    write_csv(buffer, items)
    return buffer.getvalue()


def parse_experiment(text: str) -> int | str:
    """An experiment as a person types it: an index if all digits, else a circuit name."""
    return int(text) if text.isdigit() else text


class Rows:
    """One dict per requested experiment (its counts, or why it has none), made one at a time
    as they are iterated, so a million experiments are never held at once; counts what it gave
    (for :func:`missing_message`)."""

    def __init__(self, manager: JobManager, job_set: ManagedJobSet,
                 experiments: Sequence[str] | None) -> None:
        self.row = manager.store.get_job_set(job_set.job_set_id())
        self.results = job_set.results(partial=True, wait=False)
        self.header = {"id": self.row.id, "name": self.row.name, "backend": self.row.backend,
                       "state": job_set.state()}
        # Named experiments are resolved first: a name that is no experiment's fails at once.
        self.indices: Sequence[int] = (
            [job_set.experiment_index(parse_experiment(e)) for e in experiments] if experiments
            else range(self.row.n_experiments))
        self.count = 0
        self.missing = 0
        self.first_error: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from qjm_tui.core.errors import ManagedResultDataNotAvailable

        names = self.row.experiment_names
        for index in self.indices:
            item: dict[str, Any] = {"index": index, "name": names[index],
                                    "shots": None, "counts": None, "error": None}
            try:
                counts = self.results.get_counts(index)
            except ManagedResultDataNotAvailable as exc:
                item["error"] = str(exc)
            except Exception as exc:  # e.g. a statevector-only experiment has no counts
                item["error"] = f"no counts for experiment {index}: {exc}"
            else:
                item["counts"] = dict(counts)
                item["shots"] = sum(counts.values())
            self.count += 1
            if item["counts"] is None:
                self.missing += 1
                if self.first_error is None:
                    self.first_error = item["error"]
            yield item

    def missing_message(self) -> str | None:
        """How many of the rows given so far have no counts, and why the first has none."""
        if not self.missing:
            return None
        running = " (the job set is still running)" if self.header["state"] == "running" else ""
        return (f"{self.missing} of {self.count} experiments have no counts{running}; "
                f"first: {self.first_error}")


def result_rows(manager: JobManager, job_set: ManagedJobSet, experiments: Sequence[str] | None
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job set's header data and one dict per requested experiment (counts or why not),
    as a list (for a few experiments; :class:`Rows` gives them one at a time)."""
    rows = Rows(manager, job_set, experiments)
    return rows.header, list(rows)


def missing_message(header: dict[str, Any], items: Sequence[dict[str, Any]]) -> str | None:
    """How many experiments have no counts and why the first has none; None if all have."""
    missing = [i for i in items if i["counts"] is None]
    if not missing:
        return None
    running = " (the job set is still running)" if header["state"] == "running" else ""
    return (f"{len(missing)} of {len(items)} experiments have no counts{running}; "
            f"first: {missing[0]['error']}")


def _json_lines(value: Any, indent: int) -> str:
    """``value`` as indented JSON (as :func:`to_json` writes it), every line moved right by
    ``indent`` spaces: one element of a list being written a piece at a time."""
    pad = " " * indent
    return "\n".join(pad + line for line in to_json(value).split("\n"))


def write_json_document(out: TextIO, head: dict[str, Any], key: str, items: Iterable[Any]) -> None:
    """Write ``{**head, key: [items...]}`` as :func:`to_json` would (the same bytes), but one
    item at a time, so the list is never held whole."""
    out.write("{\n")
    for name, value in head.items():
        out.write(f"  {json.dumps(name)}: {_json_lines(value, 2).lstrip()},\n")
    out.write(f"  {json.dumps(key)}: [")
    first = True
    for item in items:
        out.write("\n" if first else ",\n")
        out.write(_json_lines(item, 4))
        first = False
    out.write("]\n}\n" if first else "\n  ]\n}\n")


def write_csv(out: TextIO, items: Iterable[dict[str, Any]], clean: Callable[[str], str] | None = None
              ) -> None:
    """Counts as CSV, one row per outcome (``experiment,name,outcome,count``), a row at a time;
    ``clean`` is applied to each written line (the terminal's escaping, for stdout)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> None:
        text = buffer.getvalue()
        out.write(clean(text) if clean is not None else text)
        buffer.seek(0)
        buffer.truncate()

    writer.writerow(["experiment", "name", "outcome", "count"])
    for item in items:
        for outcome, count in sorted((item["counts"] or {}).items()):
            writer.writerow([item["index"], item["name"], outcome, count])
        flush()
    flush()


def export_to(manager: JobManager, job_set: ManagedJobSet, fmt: str, out: TextIO,
              partial: bool = False) -> Exported:
    """Write a job set's results in ``fmt`` (a key of :data:`FORMATS`) to ``out``, one
    experiment at a time, so memory does not grow with the set. The returned
    :class:`Exported` has no text (it went to ``out``).

    ``json`` and ``csv`` hold every experiment that has counts. ``qiskit`` is one combined
    Qiskit ``Result`` and needs every experiment (it raises ManagedResultDataNotAvailable
    naming the first without a result, before anything is written) unless ``partial``, which
    keeps those that have one.
    """
    if fmt not in FORMATS:
        from qjm_tui.core.errors import JobManagerInputError

        raise JobManagerInputError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "qiskit":
        return _export_qiskit(job_set, out, partial)
    rows = Rows(manager, job_set, None)
    if fmt == "json":
        write_json_document(out, rows.header, "experiments", rows)
    else:
        write_csv(out, rows)
    return Exported("", rows.count - rows.missing, rows.missing_message())


def _export_qiskit(job_set: ManagedJobSet, out: TextIO, partial: bool) -> Exported:
    from qiskit.result.models import ExperimentResult

    from qjm_tui.core.errors import ManagedResultDataNotAvailable
    from qjm_tui.core.results import result_dict

    results = job_set.results(partial=True, wait=False)
    n, total = results.count_available(), len(results)
    if not partial and n < total:
        missing, first = results.missing()
        raise ManagedResultDataNotAvailable(
            f"{missing} of {total} experiments have no result (first: experiment {first}: "
            f"{results.why_missing(first) if first is not None else ''}); results cannot be combined")
    head = result_dict(results.backend_name, results.job_set_id, [])
    head["success"] = results.all_successful()
    del head["results"]
    if partial:
        experiments: Iterable[Any] = (results.experiment(i) for i in results.iter_available())
        message = f"only {n} of {total} experiments have results; exporting those" if n < total else None
    else:
        # What Result.from_dict(...).to_dict() gives, one experiment at a time.
        head = {"backend_name": head["backend_name"], "backend_version": head["backend_version"],
                "date": None, "header": None, "qobj_id": head["qobj_id"], "job_id": head["job_id"],
                "status": None, "success": head["success"]}
        experiments = (ExperimentResult.from_dict(results.experiment(i)).to_dict()
                       for i in results.iter_available())
        message = None
    write_json_document(out, head, "results", experiments)
    return Exported("", n, message)


def export(manager: JobManager, job_set: ManagedJobSet, fmt: str, partial: bool = False) -> Exported:
    """A job set's results in ``fmt`` as text (see :func:`export_to`, which writes them to a
    file without holding them)."""
    buffer = io.StringIO()
    exported = export_to(manager, job_set, fmt, buffer, partial)
    return Exported(buffer.getvalue(), exported.experiments, exported.missing)


def default_export_path(name: str, fmt: str, folder: Path | None = None) -> Path:
    """Where an export goes unless the user says otherwise: a file named after the set, in
    ``folder`` (default: the working directory), with characters unsafe in file names replaced."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._") or "results"
    return (folder or Path.cwd()) / f"{stem}{SUFFIXES[fmt]}"


def write_atomically(path: Path | str, text: str | Callable[[TextIO], Any]) -> Any:
    """Write ``text`` to ``path`` through the one safe write (:func:`qjm_tui.core.files.write_file`):
    a regular file is replaced whole (a reader never sees half of it), a device or FIFO is
    written through, a symlink is followed, ``-`` is standard output. ``text`` may instead be a
    function that writes to the open file (a stream too large to hold); its answer is returned.
    Raises IsADirectoryError for a folder and OSError when it cannot write; on any failure a
    temporary file is removed and the file left as it was."""
    return write_file(path, text)
