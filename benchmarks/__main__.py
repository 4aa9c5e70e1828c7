"""``python -m benchmarks``: list the benchmarks; ``python -m benchmarks NAME [ARGS]`` runs one
(the same as ``python -m benchmarks.NAME [ARGS]``; ``NAME --help`` says what it takes)."""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> dict[str, str]:
    """Each benchmark module's name and the first line of its docstring, sorted by name."""
    found = {}
    for path in sorted(HERE.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        found[path.stem] = doc.splitlines()[0] if doc else ""
    return found


def main(argv: list[str]) -> int:
    known = benchmarks()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.splitlines()[0].replace("``", "") + "\n")
        width = max(map(len, known))
        for name, line in known.items():
            print(f"  {name:<{width}}  {line}")
        return 0
    name = argv[0]
    if name not in known:
        print(f"python -m benchmarks: no benchmark {name!r} (known: {', '.join(known)})", file=sys.stderr)
        return 2
    sys.argv = [f"python -m benchmarks {name}", *argv[1:]]
    runpy.run_module(f"benchmarks.{name}", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
