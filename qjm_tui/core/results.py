"""ManagedResults: one view over the results of every job in a job set.

An experiment can be named by its global index, its circuit's name, or the circuit itself.
Experiments that ran in several shots rounds (shots above the backend's maximum) are merged:
counts added, memory joined, shots summed.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

from qjm_tui.core.errors import JobManagerJobNotFound, ManagedResultDataNotAvailable

#: parsed experiments kept at once: asking again is cheap, and a pass over a 100,000-experiment
#: set holds a few thousand parsed dicts instead of all of them (hundreds of MB)
PARSED_CACHE_SIZE = 4096


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One experiment result from the results of its shots rounds."""
    if len(rounds) == 1:
        return rounds[0]
    merged = dict(rounds[0])
    data = dict(merged.get("data") or {})
    counts: dict[str, int] = {}
    memory: list[Any] = []
    shots = 0
    for part in rounds:
        part_data = part.get("data") or {}
        for key, value in (part_data.get("counts") or {}).items():
            counts[key] = counts.get(key, 0) + int(value)
        memory.extend(part_data.get("memory") or [])
        shots += int(part.get("shots") or 0)
    if counts:
        data["counts"] = counts
    if memory:
        data["memory"] = memory
    merged["data"] = data
    merged["shots"] = shots
    merged["success"] = all(p.get("success", True) for p in rounds)
    return merged


#: experiments read from the store together when one of them is asked for, and how many such
#: pages are kept: a pass over a set reads it a page at a time, one look-up reads one page
PAGE = 64
PAGES_KEPT = 64
#: experiments listed from the store's index at a time when the available ones are walked
AVAILABLE_WINDOW = 65536


class ManagedResults:
    """Results of a job set, with the accessors of ``qiskit.result.Result``.

    Built from the store by :meth:`ManagedJobSet.results`: a snapshot of which experiments have
    results (their jobs' states when it was taken). The results themselves are read from the
    store when asked for, a page of experiments at a time, and only a few pages and a few
    thousand parsed experiments are kept, so a set of a million experiments costs the same
    memory as one of a thousand.
    """

    def __init__(
        self,
        job_set_id: str,
        backend_name: str,
        n_experiments: int,
        resolve: Callable[[Any], int],
        why_missing: Callable[[int], str],
        *,
        store: Any,
        usable: Sequence[tuple[int, int]],
        rounds: int = 1,
        wanted: Sequence[int] | range | None = None,
        all_done: bool = False,
        unsure: Sequence[tuple[int, int]] = (),
    ) -> None:
        """``store`` is read for the results of the experiments in the ``usable`` ranges
        (sorted ``(start, stop)``: their jobs had finished when the snapshot was taken);
        an experiment counts once it has a result for each of the ``rounds``. ``wanted``
        limits the results to those experiments; ``all_done`` says every job was done;
        ``unsure`` are the ranges of jobs that failed yet have results (only there can an
        experiment's result say it failed)."""
        self.job_set_id = job_set_id
        self.backend_name = backend_name
        self._store = store
        self._usable = list(usable)
        self._starts = [a for a, _ in self._usable]
        self._rounds = rounds
        self._wanted: range | frozenset[int] | None = (
            wanted if isinstance(wanted, range) or wanted is None else frozenset(wanted))
        self._all_done = all_done
        self._unsure = list(unsure)
        self._pages: OrderedDict[int, dict[int, list[str]]] = OrderedDict()
        self._parsed: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._n = n_experiments
        self._resolve = resolve
        self._why_missing = why_missing
        self._single: dict[int, Any] = {}

    def _in_snapshot(self, index: int) -> bool:
        """Whether the snapshot lets experiment ``index`` have a result."""
        if self._wanted is not None and index not in self._wanted:
            return False
        i = bisect.bisect_right(self._starts, index) - 1
        return i >= 0 and index < self._usable[i][1]

    def _raw(self, index: int) -> list[str] | None:
        if not self._in_snapshot(index):
            return None
        page_no = index // PAGE
        page = self._pages.get(page_no)
        if page is None:
            start = page_no * PAGE
            page = self._store.raw_results_between(self.job_set_id, start, min(start + PAGE, self._n))
            self._pages[page_no] = page
            if len(self._pages) > PAGES_KEPT:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page_no)
        parts = page.get(index)
        return parts if parts is not None and len(parts) == self._rounds else None

    def _parse(self, index: int) -> dict[str, Any] | None:
        exp = self._parsed.get(index)
        if exp is not None:
            self._parsed.move_to_end(index)
            return exp
        parts = self._raw(index)
        if parts is None:
            return None
        exp = merge_rounds([json.loads(part) for part in parts])
        self._parsed[index] = exp
        if len(self._parsed) > PARSED_CACHE_SIZE:
            self._parsed.popitem(last=False)
        return exp

    @property
    def success(self) -> bool:
        """True when every experiment has a successful result (every job of the set finished
        done: a job with a failed experiment is marked failed)."""
        return self._all_done and self._wanted is None and self._n > 0

    def __len__(self) -> int:
        return self._n

    def _ranges(self) -> Iterator[tuple[int, int] | list[int]]:
        """The usable ranges within ``wanted``: ``(start, stop)`` pairs, or lists of the
        wanted indices in a range when ``wanted`` is not a plain range."""
        for start, stop in self._usable:
            if self._wanted is None:
                yield start, stop
            elif isinstance(self._wanted, range) and self._wanted.step == 1:
                if max(start, self._wanted.start) < min(stop, self._wanted.stop):
                    yield max(start, self._wanted.start), min(stop, self._wanted.stop)
            else:
                yield [i for i in sorted(self._wanted) if start <= i < stop]

    def iter_available(self, within: tuple[int, int] | None = None) -> Iterator[int]:
        """The experiments that have results, in order, read from the store's index a window
        at a time (a million are never listed at once); only those in ``within`` if given."""
        low, high = within if within is not None else (0, self._n)
        for part in self._ranges():
            if isinstance(part, list):
                yield from (i for i in part if low <= i < high and self._raw(i) is not None)
                continue
            start, stop = max(part[0], low), min(part[1], high)
            for lo in range(start, stop, AVAILABLE_WINDOW):
                yield from self._store.complete_experiments(
                    self.job_set_id, lo, min(lo + AVAILABLE_WINDOW, stop), self._rounds)

    def available(self) -> list[int]:
        """Indices of the experiments that have results (read from the store's index)."""
        return list(self.iter_available())

    def count_available(self) -> int:
        """How many experiments have results (counted by the store)."""
        total = 0
        for part in self._ranges():
            if isinstance(part, list):
                total += sum(1 for i in part if self._raw(i) is not None)
            else:
                total += self._store.count_complete(self.job_set_id, part[0], part[1], self._rounds)
        return total

    def all_successful(self) -> bool:
        """Whether every experiment with a result says it succeeded (only those in failed jobs
        are read: a job is done only when all its experiments succeeded)."""
        for unsure in self._unsure:
            for i in self.iter_available(within=unsure):
                exp = self._parse(i)
                if exp is not None and not exp.get("success", True):
                    return False
        return True

    def why_missing(self, index: int) -> str:
        """Why experiment ``index`` has no result in these results."""
        return self._why_missing(index)

    def experiment(self, index: int) -> dict[str, Any] | None:
        """Experiment ``index``'s result dict (shots rounds merged), or None if it has none."""
        return self._parse(index)

    def _experiment(self, experiment: Any) -> tuple[int, dict[str, Any]]:
        index = self._resolve(experiment)
        exp = self._parse(index)
        if exp is None:
            raise ManagedResultDataNotAvailable(
                f"no result for experiment {index}: {self._why_missing(index)}"
            )
        if not exp.get("success", True):
            raise ManagedResultDataNotAvailable(
                f"experiment {index} failed on the backend: {exp.get('status') or 'no reason given'}"
            )
        return index, exp

    def _result_of(self, experiment: Any) -> Any:
        index, exp = self._experiment(experiment)
        result = self._single.get(index)
        if result is None:
            from qiskit.result import Result

            result = Result.from_dict(self._result_dict([exp]))
            self._single[index] = result
        return result

    def _result_dict(self, experiments: list[dict[str, Any]]) -> dict[str, Any]:
        return result_dict(self.backend_name, self.job_set_id, experiments)

    def get_counts(self, experiment: Any) -> dict[str, int]:
        """Histogram of measured bitstrings, as ``Result.get_counts`` formats it."""
        index, exp = self._experiment(experiment)
        counts = (exp.get("data") or {}).get("counts")
        if counts is None:
            raise ManagedResultDataNotAvailable(f"experiment {index} has no counts (was it measured?)")
        from qiskit.result import Counts

        # What Result.get_counts does, without building a Result per experiment.
        header = exp.get("header") or {}
        keep = {k: v for k, v in header.items() if k in ("time_taken", "creg_sizes", "memory_slots")}
        return cast(dict[str, int], Counts(counts, **keep))

    def get_memory(self, experiment: Any) -> list[Any]:
        """Per-shot measurements (run with ``memory=True``)."""
        try:
            return cast(list[Any], self._result_of(experiment).get_memory(0))
        except ManagedResultDataNotAvailable:
            raise
        except Exception as exc:
            raise ManagedResultDataNotAvailable(f"no memory for that experiment: {exc}") from None

    def get_statevector(self, experiment: Any, decimals: int | None = None) -> Any:
        """The final statevector (from a statevector simulation or ``save_statevector``)."""
        try:
            return self._result_of(experiment).get_statevector(0, decimals=decimals)
        except ManagedResultDataNotAvailable:
            raise
        except Exception as exc:
            raise ManagedResultDataNotAvailable(f"no statevector for that experiment: {exc}") from None

    def get_unitary(self, experiment: Any, decimals: int | None = None) -> Any:
        """The circuit's unitary (from a unitary simulation or ``save_unitary``)."""
        try:
            return self._result_of(experiment).get_unitary(0, decimals=decimals)
        except ManagedResultDataNotAvailable:
            raise
        except Exception as exc:
            raise ManagedResultDataNotAvailable(f"no unitary for that experiment: {exc}") from None

    def data(self, experiment: Any) -> dict[str, Any]:
        """The experiment's raw result data, as ``Result.data`` gives it."""
        return cast(dict[str, Any], self._result_of(experiment).data(0))

    def missing(self) -> tuple[int, int | None]:
        """How many experiments have no result, and the first of them (None if none)."""
        count = self._n - self.count_available()
        if not count:
            return 0, None
        expected = 0
        for found in self.iter_available():
            if found != expected:
                break
            expected += 1
        return count, expected

    def combine_results(self) -> Any:
        """Every experiment in one ``qiskit.result.Result``, in the global order."""
        count, first = self.missing()
        if first is not None:
            raise ManagedResultDataNotAvailable(
                f"{count} of {self._n} experiments have no result (first: experiment "
                f"{first}: {self._why_missing(first)}); results cannot be combined"
            )
        from qiskit.result import Result

        return Result.from_dict(self._result_dict(self._parsed_all(range(self._n))))

    def to_dict(self) -> dict[str, Any]:
        """Every available experiment as a ``Result``-shaped dict (for export)."""
        return self._result_dict(self._parsed_all(self.iter_available()))

    def _parsed_all(self, indices: Iterable[int]) -> list[dict[str, Any]]:
        """The experiments at ``indices``, each of which has a result."""
        return [exp for i in indices if (exp := self._parse(i)) is not None]


def result_dict(backend_name: str, job_id: str, experiments: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``qiskit.result.Result``-shaped dict holding ``experiments`` (for ``Result.from_dict``)."""
    return {
        "backend_name": backend_name,
        "backend_version": "qjm",
        "qobj_id": job_id,
        "job_id": job_id,
        "success": all(e.get("success", True) for e in experiments),
        "results": experiments,
    }


def not_found(experiment: Any, n: int) -> JobManagerJobNotFound:
    """The error for an experiment that names nothing in the job set."""
    return JobManagerJobNotFound(
        f"no experiment {experiment!r} in this job set (it has experiments 0 to {n - 1})"
    )
