"""Layers run one way: ``tui``, ``cli`` -> ``backends`` -> ``core``; the service doubles in
``testing`` stand apart from all of them.

Two checks, each run over the real package and over a copy with a deliberate bad import (so a
checker that finds nothing is caught too):

* statically: every import statement in every module file (also those inside functions and
  under ``TYPE_CHECKING``), relative imports resolved, against the forbidden directions;
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
    # the web server (`qjm serve`) is loaded by its command alone, never by the app
    ("qjm_tui.tui", ("qjm_tui.web",)),
    # The service doubles stand in for the services' side: they know nothing of qjm.
    ("qjm_tui.testing", ("qjm_tui.core", "qjm_tui.backends", "qjm_tui.cli", "qjm_tui.tui",
                         "qjm_tui.config", "qjm_tui.compose", "qjm_tui.web", "textual")),
]
#: Textual belongs to the terminal app alone
TEXTUAL_HOME = "qjm_tui.tui"


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

            def later():
                from qjm_tui import cli
                return cli
        """,
    })
    static = "\n".join(static_violations(root))
    assert "qjm_tui.core.bad imports qjm_tui.backends.registry" in static
    assert "qjm_tui.core.bad imports qjm_tui.config" in static
    assert "qjm_tui.core.bad imports qjm_tui.cli" in static
    assert "qjm_tui.backends.bad imports textual" in static
    assert "qjm_tui.backends.bad imports qjm_tui.cli" in static
    runtime = runtime_violations(root)
    assert "importing qjm_tui.core loads qjm_tui.backends.registry" in runtime
    assert "importing qjm_tui.core loads qjm_tui.config" in runtime
    assert "importing qjm_tui.backends loads textual" in runtime
