"""Run-option declarations read from the backends themselves, never kept by hand.

* A Qiskit backend (Aer, BasicSimulator, IBM's provider backends, any object with ``run``)
  names its options in its ``Options``: those fields, plus the keyword parameters of its
  ``run`` method, are what it takes. Each option's kind comes from, first found: ``run``'s type
  annotation, the ``Options`` validator, the backend's documented option list (Aer documents
  each as ``* ``name`` (type): ...``), the three run options every Qiskit simulator shares
  (:data:`COMMON_KINDS`), and the default's own type.
* qiskit-ibm-runtime's SamplerV2 options are pydantic dataclasses: their fields and type
  annotations give names, kinds and ``Literal`` choices, nested groups (``twirling``,
  ``dynamical_decoupling``, ...) become options with fields, and a field's documented
  ``Default: ...`` line gives its default.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import inspect
import json
import re
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qjm_tui.core.ports import JSON_KINDS, RunOption, RunOptions

#: the run options Qiskit's simulators share, for backends whose Options leave them at None
#: with no word on their type
COMMON_KINDS: dict[str, tuple[type, ...]] = {"shots": (int,), "memory": (bool,), "seed_simulator": (int,)}

#: what qjm sets itself, and what to use instead
SHOTS_BY_QJM = "use shots=N (qjm run --shots N)"
TAGS_BY_QJM = "use job_tags=[...] (qjm run --tag TAG)"

_NONE = type(None)
_DOC_WORDS: dict[str, type] = {"int": int, "integer": int, "double": float, "float": float,
                               "bool": bool, "boolean": bool, "str": str, "string": str,
                               "list": list, "dict": dict, "none": _NONE}
_DOC_ENTRY = re.compile(r"^\s*\*\s*``(\w+)``\s*\(([^)]*)\)\s*:", re.MULTILINE)
_DEFAULT_LINE = re.compile(r"^\s*Default:\s*(?:``([^`]+)``|([\w+\-]+(?:\.\d+)?))\.?\s*$", re.MULTILINE)


# -- kinds from types ------------------------------------------------------------------------


def annotation_kinds(annotation: Any) -> tuple[tuple[type, ...], tuple[Any, ...]] | None:
    """The JSON kinds and choices a type annotation allows, or None if it allows anything (or
    only objects JSON cannot hold, which the store refuses anyway)."""
    kinds: list[type] = []
    choices: list[Any] = []
    open_kinds: set[type] = set()

    def add(kind: type, choice: Any = dataclasses.MISSING) -> None:
        if kind not in kinds:
            kinds.append(kind)
        if choice is dataclasses.MISSING:
            open_kinds.add(kind)
        elif choice not in choices:
            choices.append(choice)

    def walk(tp: Any) -> bool:
        """Add ``tp``'s kinds; False if it allows any value."""
        if tp is Any or tp is object:
            return False
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            return all(walk(arg) for arg in typing.get_args(tp))
        if origin is typing.Literal:
            for value in typing.get_args(tp):
                add(_plain_kind(value), value)
            return True
        if origin is not None:
            tp = origin
        if tp is None or tp is _NONE:
            add(_NONE)
        elif isinstance(tp, type):
            if issubclass(tp, enum.Enum):
                values = [m.value for m in tp]
                for value in values:
                    add(_plain_kind(value), value)
            elif issubclass(tp, bool):
                add(bool)
            elif issubclass(tp, int):
                add(int)
            elif issubclass(tp, float):
                add(float)
            elif issubclass(tp, str):
                add(str)
            elif issubclass(tp, (list, tuple)) or tp in (Sequence,):
                add(list)
            elif issubclass(tp, dict) or tp in (Mapping,):
                add(dict)
            # anything else (NoiseModel, CouplingMap, a "not set" marker) is no JSON kind
        return True

    if not walk(annotation) or not kinds or kinds == [_NONE]:
        return None
    return tuple(kinds), tuple(c for c in choices if _plain_kind(c) not in open_kinds)


def _plain_kind(value: Any) -> type:
    return list if isinstance(value, tuple) else type(value)


def _doc_kinds(text: str) -> tuple[type, ...] | None:
    """Kinds from a documented type such as ``int or None`` or ``double``; None if any word in
    it is not a plain kind (``futures.Executor or None``)."""
    words = [w.strip().lower() for w in re.split(r"\bor\b|[,|]", text) if w.strip()]
    kinds = tuple(_DOC_WORDS.get(w) for w in words)
    if not kinds or any(k is None for k in kinds):
        return None
    return tuple(dict.fromkeys(k for k in kinds if k is not None))


@functools.lru_cache(maxsize=64)
def documented_kinds(cls: type) -> dict[str, tuple[type, ...]]:
    """The options a backend class documents as ``* ``name`` (type): ...`` (Aer's style), from
    its docstring and its bases'."""
    found: dict[str, tuple[type, ...]] = {}
    for klass in reversed(cls.__mro__):
        for name, text in _DOC_ENTRY.findall(klass.__doc__ or ""):
            kinds = _doc_kinds(text)
            if kinds is not None:
                found[name] = kinds
    return found


def _validator_kinds(rule: Any) -> tuple[tuple[type, ...], tuple[Any, ...]] | None:
    """What a ``qiskit.providers.Options`` validator allows: a list of values, a (min, max)
    range of numbers, or a type."""
    if isinstance(rule, list) and rule:
        return tuple(dict.fromkeys(_plain_kind(v) for v in rule)), tuple(rule)
    if isinstance(rule, tuple):
        return (int, float), ()
    if isinstance(rule, type):
        return annotation_kinds(rule)
    return None


def plain_default(value: Any) -> Any:
    """A default as listings show it: JSON values as they are, enum members as their value,
    anything else as ``<TypeName>``."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return f"<{type(value).__name__}>"
    return value


# -- Qiskit backends -------------------------------------------------------------------------


def _run_parameters(run: Callable[..., Any] | None) -> dict[str, Any]:
    """``run``'s keyword parameters after the circuits, with their annotations (or ``Any``)."""
    if run is None:
        return {}
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):
        return {}
    try:
        hints = typing.get_type_hints(run)
    except Exception:
        hints = {}
    params = [p for p in signature.parameters.values() if p.name != "self"][1:]
    return {p.name: hints.get(p.name, Any) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def qiskit_run_options(options: Any, run: Callable[..., Any] | None, documented_by: type,
                       source: str, set_by: Mapping[str, str] | None = None) -> RunOptions:
    """The declaration of a Qiskit backend: ``options`` is its ``Options`` (or the class's
    ``_default_options()``), ``run`` its ``run`` method, ``documented_by`` the class whose
    docstring documents the options. ``set_by`` marks the options qjm sets itself."""
    set_by = {"shots": SHOTS_BY_QJM, **(set_by or {})}
    fields = dict(options.items()) if hasattr(options, "items") else dict(vars(options))
    validators = dict(getattr(options, "validator", None) or {})
    parameters = _run_parameters(run)
    documented = documented_kinds(documented_by)
    declared: list[RunOption] = []
    for name in dict.fromkeys([*fields, *parameters]):
        if name.startswith("_"):
            continue
        has_default = name in fields
        default = fields.get(name)
        found = None
        if parameters.get(name, Any) is not Any:
            found = annotation_kinds(parameters[name])
        if found is None and name in validators:
            found = _validator_kinds(validators[name])
        if found is None and name in documented:
            found = documented[name], ()
        if found is None and name in COMMON_KINDS:
            found = COMMON_KINDS[name], ()
        if found is None and default is not None and type(default) in JSON_KINDS:
            found = (type(default),), ()
        kinds, choices = found if found is not None else ((), ())
        if kinds and has_default and default is None and _NONE not in kinds:
            kinds = (*kinds, _NONE)  # None leaves the backend's own default in place
        declared.append(RunOption(name, kinds, plain_default(default), has_default, choices,
                                  set_by=set_by.get(name)))
    return RunOptions(tuple(declared), source)


def backend_run_options(backend: Any, source: str | None = None,
                        set_by: Mapping[str, str] | None = None) -> RunOptions:
    """The declaration of a Qiskit backend object, from its ``options`` and ``run``."""
    options = getattr(backend, "options", None)
    if options is None:
        default_options = getattr(type(backend), "_default_options", None)
        options = default_options() if callable(default_options) else {}
    name = type(backend).__name__
    return qiskit_run_options(options, getattr(backend, "run", None), type(backend),
                              source or f"{name} options and {name}.run", set_by)


# -- qiskit-ibm-runtime's option dataclasses -------------------------------------------------


@functools.lru_cache(maxsize=32)
def _documented_defaults(cls: type) -> dict[str, Any]:
    """The ``Default: X.`` line of each field's docstring in a runtime options dataclass."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            if not (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                continue
            match = _DEFAULT_LINE.search(after.value.value)
            if match:
                text = match.group(1) or match.group(2)
                try:
                    found[node.target.id] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    found[node.target.id] = text
    return found


def dataclass_run_options(cls: type, set_by: Mapping[str, str] | None = None,
                          prefix: str = "") -> tuple[RunOption, ...]:
    """The options of a runtime options dataclass (``SamplerOptions``); a field holding another
    options dataclass becomes an option with fields. ``set_by`` is keyed by dotted name."""
    set_by = set_by or {}
    hints = typing.get_type_hints(cls)
    defaults = _documented_defaults(cls)
    declared: list[RunOption] = []
    for field in dataclasses.fields(cls):
        name = field.name
        if name.startswith("_"):
            continue
        tp = hints.get(name, Any)
        nested = [a for a in typing.get_args(tp) if isinstance(a, type) and dataclasses.is_dataclass(a)]
        if nested:
            declared.append(RunOption(name, (dict,), fields=dataclass_run_options(
                nested[0], set_by, prefix + name + "."), set_by=set_by.get(prefix + name)))
            continue
        found = annotation_kinds(tp)
        kinds, choices = found if found is not None else ((), ())
        default: Any = field.default
        has_default = default is not dataclasses.MISSING and type(default).__name__ != "UnsetType"
        if not has_default and name in defaults:
            default, has_default = defaults[name], True
        declared.append(RunOption(name, kinds, plain_default(default) if has_default else None,
                                  has_default, choices, set_by=set_by.get(prefix + name)))
    return tuple(declared)
