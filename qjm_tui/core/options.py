"""Run options checked against what the backend declares, before anything is stored.

``run(circuits, backend="aer", shot=100)`` used to run the default 1,024 shots: the backend
ignored a keyword it did not know. Every option in ``**run_config`` is now looked up in the
backend's :meth:`~qjm_tui.core.ports.ExecutionBackend.run_options`; an unknown name, a value of
the wrong kind, a value outside the declared choices, or an option qjm sets itself is a
:class:`~qjm_tui.core.errors.JobManagerInputError` naming the option, the backend and the
closest known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.ports import JSON_KINDS, RunOption, RunOptions

#: ``run()``'s own parameters: qjm consumes them, so they never reach a backend. They are
#: offered as suggestions too (``shot`` -> ``shots``, ``job_tag`` -> ``job_tags``).
QJM_PARAMETERS = ("backend", "name", "max_experiments_per_job", "job_tags", "transpile",
                  "max_jobs_per_set", "shots", "job_share_level", "keep_together", "max_job_seconds")

#: beyond this many options an error points at the listing instead of naming them all
_LIST_AT_MOST = 12


def check_run_options(options: Mapping[str, Any], declared: RunOptions | None,
                      spec: str) -> dict[str, Any]:
    """``options`` as the backend takes them, or an error for the first it does not accept;
    ``None`` (undeclared) accepts all as they are.

    A whole number given where the backend takes only a float comes back as a float (``0`` ->
    ``0.0``): Aer casts such values itself, with a deprecation warning.
    """
    if declared is None:
        return dict(options)
    return {name: _check(str(name), value, declared.options, spec, "") for name, value in options.items()}


def kind_of(value: Any) -> str:
    """The JSON kind of ``value`` as the messages name it (``int``, ``str``, ``NoiseModel``)."""
    if isinstance(value, tuple):
        return "list"
    return JSON_KINDS.get(type(value), type(value).__name__)


def takes(kinds: Sequence[type], value: Any) -> bool:
    """Whether ``value`` is of one of ``kinds``: an int counts as a float, a bool never as an
    int, a tuple as a list."""
    for kind in kinds:
        if kind is bool and type(value) is bool:
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind is list and isinstance(value, (list, tuple)):
            return True
        if kind in (str, dict) and isinstance(value, kind):
            return True
        if kind is type(None) and value is None:
            return True
    return False


def closest(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate ``name`` most likely misspells, or None: a close spelling first, else one
    that ``name`` begins or ends (``seed`` -> ``seed_simulator``)."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    if match:
        return lowered[match[0]]
    key = name.lower()
    partial = sorted((c for c in lowered if c.startswith(key + "_") or c.endswith("_" + key)), key=len)
    return lowered[partial[0]] if partial else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(name: str, value: Any, known: Sequence[RunOption], spec: str, prefix: str) -> Any:
    option = next((o for o in known if o.name == name), None)
    full = prefix + name
    if option is None:
        candidates = [o.name for o in known if o.set_by is None]
        suggestion = closest(name, [*candidates, *([] if prefix else QJM_PARAMETERS)])
        group = next((o for o in known if (f := o.field(name)) is not None and f.set_by is None), None)
        if group is not None:  # an option of a group given on its own: seed_simulator on IBM
            hint = f"did you mean {prefix + group.name + '.' + name!r} ({group.name}={{{name!r}: ...}})?"
        elif suggestion is not None:
            hint = f"did you mean {prefix + suggestion!r}?"
        elif not candidates:
            hint = f"{spec} takes no run options" if not prefix else f"{prefix[:-1]} has no options"
        elif len(candidates) <= _LIST_AT_MOST:
            hint = "it takes " + ", ".join(prefix + c for c in candidates)
        else:
            hint = f"`qjm backends {spec}` lists the {len(candidates)} it takes"
        raise JobManagerInputError(f"unknown run option {full!r} for {spec}; {hint}")
    if option.set_by is not None:
        raise JobManagerInputError(f"run option {full!r} for {spec} is set by qjm: {option.set_by}")
    if option.fields:
        if not isinstance(value, Mapping):
            raise JobManagerInputError(
                f"run option {full!r} for {spec} must be a dict of its options "
                f"({', '.join(f.name for f in option.fields)}), got {_short(value)} ({_a(kind_of(value))})")
        return {key: _check(str(key), item, option.fields, spec, full + ".") for key, item in value.items()}
    if option.kinds and not takes(option.kinds, value):
        raise JobManagerInputError(f"run option {full!r} for {spec} must be {_article(option)}, "
                                   f"got {_short(value)} ({_a(kind_of(value))})")
    if option.choices and any(type(c) is type(value) for c in option.choices) \
            and value not in option.choices:
        near = closest(str(value), [str(c) for c in option.choices]) if isinstance(value, str) else None
        raise JobManagerInputError(
            f"run option {full!r} for {spec} must be {option.type_text()}, got {_short(value)}"
            + (f"; did you mean {near!r}?" if near else ""))
    if float in option.kinds and int not in option.kinds and type(value) is int:
        return float(value)
    return value


def _article(option: RunOption) -> str:
    text = option.type_text()
    return text if text.startswith(("one of", "{")) else _a(text)


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word
