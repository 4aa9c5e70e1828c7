"""ManagedResults: one view over the results of every job in a job set.

An experiment can be named by its global index, its circuit's name, or the circuit itself.
Experiments that ran in several shots rounds (shots above the backend's maximum) are merged:
counts added, memory joined, shots summed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable
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


class ManagedResults:
    """Results of a job set, with the accessors of ``qiskit.result.Result``.

    Built from the store by :meth:`ManagedJobSet.results`; holds every stored experiment result.
    """

    def __init__(
        self,
        job_set_id: str,
        backend_name: str,
        experiments: dict[int, list[str]],
        n_experiments: int,
        resolve: Callable[[Any], int],
        why_missing: Callable[[int], str],
    ) -> None:
        """``experiments`` maps an index to its stored results (JSON text, one per shots
        round); each is parsed the first time it is asked for."""
        self.job_set_id = job_set_id
        self.backend_name = backend_name
        self._raw = experiments
        self._parsed: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._n = n_experiments
        self._resolve = resolve
        self._why_missing = why_missing
        self._single: dict[int, Any] = {}

    def _parse(self, index: int) -> dict[str, Any] | None:
        exp = self._parsed.get(index)
        if exp is not None:
            self._parsed.move_to_end(index)
            return exp
        parts = self._raw.get(index)
        if parts is None:
            return None
        exp = merge_rounds([json.loads(part) for part in parts])
        self._parsed[index] = exp
        if len(self._parsed) > PARSED_CACHE_SIZE:
            self._parsed.popitem(last=False)
        return exp

    @property
    def success(self) -> bool:
        """True when every experiment has a successful result."""
        return len(self._raw) == self._n and all(
            self._parse(i).get("success", True) for i in self._raw  # type: ignore[union-attr]
        )

    def __len__(self) -> int:
        return self._n

    def available(self) -> list[int]:
        """Indices of the experiments that have results."""
        return sorted(self._raw)

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

    def combine_results(self) -> Any:
        """Every experiment in one ``qiskit.result.Result``, in the global order."""
        missing = [i for i in range(self._n) if i not in self._raw]
        if missing:
            raise ManagedResultDataNotAvailable(
                f"{len(missing)} of {self._n} experiments have no result (first: experiment "
                f"{missing[0]}: {self._why_missing(missing[0])}); results cannot be combined"
            )
        from qiskit.result import Result

        return Result.from_dict(self._result_dict(self._parsed_all(range(self._n))))

    def to_dict(self) -> dict[str, Any]:
        """Every available experiment as a ``Result``-shaped dict (for export)."""
        return self._result_dict(self._parsed_all(sorted(self._raw)))

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
