"""Layers run one way: ``tui``, ``cli`` -> ``backends`` -> ``core``; the service doubles in
``testing`` stand apart from all of them.

The checks, each run over the real package and over a copy with deliberate bad imports (so a
checker that finds nothing is caught too):

* statically: every import statement in every module file (also those inside functions and
  under ``TYPE_CHECKING``), relative imports resolved, against the forbidden directions;
* the same import graph has no cycle between modules, and no module imports one of a higher
  layer (:data:`LAYERS`);
* at run time: each layer's modules imported in a fresh interpreter, then ``sys.modules`` is
  searched for what that layer must not have loaded.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import qjm_tui

PACKAGE_ROOT = Path(qjm_tui.__file__).resolve().parent.parent

#: (importing layer, forbidden targets); a module is in a layer if its name starts with it
FORBIDDEN: list[tuple[str, tuple[str, ...]]] = [
    ("qjm_tui.core", ("qjm_tui.backends", "qjm_tui.cli", "qjm_tui.tui", "qjm_tui.config",
                      "qjm_tui.compose", "qjm_tui.web", "qjm_tui.testing", "textual")),
    ("qjm_tui.backends", ("qjm_tui.cli", "qjm_tui.tui", "qjm_tui.compose", "qjm_tui.web",
                          "qjm_tui.testing", "textual")),
    # the web server (`qjm serve`) is loaded by its command alone, never by the app; the app
    # never reaches into the command line (what both need lives below them)
    ("qjm_tui.tui", ("qjm_tui.web", "qjm_tui.cli")),
    # The service doubles stand in for the services' side: they know nothing of qjm.
    ("qjm_tui.testing", ("qjm_tui.core", "qjm_tui.backends", "qjm_tui.cli", "qjm_tui.tui",
                         "qjm_tui.config", "qjm_tui.compose", "qjm_tui.web", "textual")),
]
#: Textual belongs to the terminal app alone
TEXTUAL_HOME = "qjm_tui.tui"

#: the layers from the ground up: a module imports only modules of its own layer or below (a
#: module is in the first layer with a prefix it starts with; the package's own face,
#: ``qjm_tui/__init__.py``, is the library layer)
LAYERS: list[tuple[str, ...]] = [
    ("qjm_tui.core", "qjm_tui.testing"),
    ("qjm_tui.config",),
    ("qjm_tui.backends",),
    ("qjm_tui.views", "qjm_tui.exporting"),
    ("qjm_tui.compose",),
    ("qjm_tui",),
    ("qjm_tui.tui",),
    ("qjm_tui.web",),
    ("qjm_tui.cli",),
    ("qjm_tui.__main__",),
]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones made absolute.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module file, so
    ``from qjm_tui import cli`` is seen as an import of ``qjm_tui.cli``.
    """
    module = _module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                as_module = root.joinpath(*sub.split("."))
                is_module = as_module.with_suffix(".py").exists() or (as_module / "__init__.py").exists()
                found.append((node.lineno, sub if is_module else base))
    return found


def static_violations(root: Path) -> list[str]:
    """Every forbidden import in the ``qjm_tui`` package under ``root``, as readable lines."""
    bad = []
    for path in sorted((root / "qjm_tui").rglob("*.py")):
        module = _module_name(root, path)
        for line, target in _imports(root, path):
            where = f"{path.relative_to(root)}:{line}"
            for layer, forbidden in FORBIDDEN:
                if _within(module, layer):
                    bad += [f"{where}: {module} imports {target} ({layer} must not import {f})"
                            for f in forbidden if _within(target, f)]
            if _within(target, "textual") and not _within(module, TEXTUAL_HOME):
                bad.append(f"{where}: {module} imports {target} (Textual only under {TEXTUAL_HOME})")
    return sorted(set(bad))


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package under ``root`` and the package's modules it imports."""
    paths = {_module_name(root, p): p for p in sorted((root / "qjm_tui").rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        for _line, target in _imports(root, path):
            while target and target not in paths:  # a name imported from a module
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The groups of modules that import each other in a loop (strongly connected components of
    more than one module, by Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(tuple(sorted(group)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the module's layer (the most specific prefix wins)."""
    matches = [(len(prefix), rank) for rank, prefixes in enumerate(LAYERS) for prefix in prefixes
               if _within(module, prefix)]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module of a higher layer than the importer's."""
    return sorted(f"{module} imports {target}" for module, targets in graph.items()
                  for target in targets if layer_of(target) > layer_of(module))


_PROBE = textwrap.dedent("""
    import importlib, json, sys
    modules, forbidden = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    for name in modules:
        importlib.import_module(name)
    loaded = sorted(m for m in sys.modules
                    if any(m == f or m.startswith(f + ".") for f in forbidden))
    print(json.dumps(loaded))
""")


def runtime_violations(root: Path) -> list[str]:
    """What each layer loads, imported alone in a fresh interpreter, that it must not."""
    bad = []
    for layer, forbidden in FORBIDDEN:
        folder = root.joinpath(*layer.split("."))
        modules = sorted(_module_name(root, p) for p in folder.rglob("*.py"))
        env = {**os.environ, "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(modules), json.dumps(forbidden)],
                              capture_output=True, text=True, timeout=300, env=env, cwd=root)
        assert proc.returncode == 0, f"importing {layer} failed: {proc.stderr[-2000:]}"
        bad += [f"importing {layer} loads {m}" for m in json.loads(proc.stdout.strip().splitlines()[-1])]
    return bad


def test_no_module_imports_against_the_layers() -> None:
    assert static_violations(PACKAGE_ROOT) == []


def test_no_module_imports_in_a_loop_or_from_a_higher_layer() -> None:
    graph = import_graph(PACKAGE_ROOT)
    assert import_cycles(graph) == []
    assert upward_imports(graph) == []


def test_each_layer_imported_alone_loads_nothing_above_it() -> None:
    assert runtime_violations(PACKAGE_ROOT) == []


def _copy_with(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(PACKAGE_ROOT / "qjm_tui", root / "qjm_tui",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_the_checks_catch_deliberate_bad_imports(tmp_path: Path) -> None:
    root = _copy_with(tmp_path, {
        "qjm_tui/core/bad.py": """
            from qjm_tui.backends.registry import resolve
            from .. import config

            def later():
                from ..cli import main
                return main
        """,
        "qjm_tui/backends/bad.py": """
            import textual

            from .loop import again

            def later():
                from qjm_tui import cli
                return cli
        """,
        "qjm_tui/backends/loop.py": """
            def again():
                from qjm_tui.backends.bad import later
                return later
        """,
        # a loop through type hints alone is a loop too, and the view must not reach up
        "qjm_tui/core/jobset.py": (PACKAGE_ROOT / "qjm_tui/core/jobset.py").read_text(encoding="utf-8")
        + "\nimport typing\n\nif typing.TYPE_CHECKING:\n    from qjm_tui.core.manager import JobManager\n",
        "qjm_tui/views.py": (PACKAGE_ROOT / "qjm_tui/views.py").read_text(encoding="utf-8")
        + "\n\ndef later():\n    from qjm_tui.tui.app import QjmApp\n    return QjmApp\n",
        # the app reaching into the command line, inside a function
        "qjm_tui/tui/bad.py": """
            def later():
                from qjm_tui.cli.detach import launch
                return launch
        """,
    })
    static = "\n".join(static_violations(root))
    assert "qjm_tui.core.bad imports qjm_tui.backends.registry" in static
    assert "qjm_tui.core.bad imports qjm_tui.config" in static
    assert "qjm_tui.core.bad imports qjm_tui.cli" in static
    assert "qjm_tui.backends.bad imports textual" in static
    assert "qjm_tui.backends.bad imports qjm_tui.cli" in static
    assert "qjm_tui.tui.bad imports qjm_tui.cli.detach (qjm_tui.tui must not import qjm_tui.cli)" in static
    graph = import_graph(root)
    cycles = import_cycles(graph)
    assert ("qjm_tui.backends.bad", "qjm_tui.backends.loop") in cycles
    assert ("qjm_tui.core.jobset", "qjm_tui.core.manager") in cycles
    upward = upward_imports(graph)
    assert "qjm_tui.core.bad imports qjm_tui.config" in upward
    assert "qjm_tui.backends.bad imports qjm_tui.cli" in upward
    assert "qjm_tui.views imports qjm_tui.tui.app" in upward
    assert "qjm_tui.tui.bad imports qjm_tui.cli.detach" in upward
    runtime = runtime_violations(root)
    assert "importing qjm_tui.core loads qjm_tui.backends.registry" in runtime
    assert "importing qjm_tui.core loads qjm_tui.config" in runtime
    assert "importing qjm_tui.backends loads textual" in runtime
