"""core's import graph against docs/DESIGN.md's module list: every module of core/ is listed, the
graph has no cycle, and every import (at module level or inside a function) goes to a module listed
ABOVE the importer (a lower layer). The list is the fenced block of docs/DESIGN.md whose lines name
`core/...py` files, from the lowest layer (first line) to the top floor (last line).

`from core.x import name` counts as importing core.x.name when that is a module, else core.x. The
implicit import of a package's __init__ when one of its modules is imported is not counted (a
package __init__ only re-exports).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"


def listed_modules() -> list[str]:
    """Module names in DESIGN.md's list, in order (core/models/vlm.py -> core.models.vlm)."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S):
        names = [line.split()[0] for line in block.splitlines()
                 if line.startswith("core/") and line.split()[0].endswith(".py")]
        if names:
            return [module_name(Path(name)) for name in names]
    raise AssertionError("docs/DESIGN.md has no fenced block listing core/*.py modules")


def module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def core_modules() -> dict[str, Path]:
    return {module_name(p.relative_to(ROOT)): p for p in sorted(CORE.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The core modules `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [resolve(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else resolve(source)
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t and t != name)
    return found


def graph() -> dict[str, set[str]]:
    modules = core_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_is_listed_once():
    listed = listed_modules()
    assert len(listed) == len(set(listed)), "a module is listed twice in docs/DESIGN.md"
    actual = set(core_modules())
    assert sorted(actual - set(listed)) == [], "core modules missing from docs/DESIGN.md's list"
    assert sorted(set(listed) - actual) == [], "docs/DESIGN.md lists modules that do not exist"


def test_no_cycles():
    edges = graph()
    state: dict[str, int] = {}          # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_point_down_the_layers():
    order = {name: i for i, name in enumerate(listed_modules())}
    upward = [f"{name} imports {target}, which DESIGN.md lists below it (a higher layer)"
              for name, targets in graph().items() for target in sorted(targets)
              if name in order and target in order and order[target] > order[name]]
    assert upward == [], "\n".join(upward)


def test_resolution_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from core import paths\n    from core.models import registry\n"
                    "    import core.jobs.store\n    from core.runs import RunInfo\n")
    found = imports_of("x", path, {"core", "core.paths", "core.models", "core.models.registry",
                                   "core.jobs", "core.jobs.store", "core.runs"})
    assert found == {"core.paths", "core.models.registry", "core.jobs.store", "core.runs"}


def test_every_core_import_outside_core_resolves():
    """Imports inside functions run only when that path runs: bench/insight_report.py kept
    `core.dataset_build` for a session after the module moved to core.data.build, and failed only
    after twelve minutes of work. Every `from core... import name` in the scripts around core names
    a module, or a name in one, that exists."""
    import importlib

    broken = []
    for folder in ("bench", "app_pages", "ui", "tests/e2e"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "core":
                    try:
                        module = importlib.import_module(node.module)
                    except ImportError as exc:
                        broken.append(f"{path.relative_to(ROOT)}:{node.lineno}: {exc}")
                        continue
                    for alias in node.names:
                        if not hasattr(module, alias.name) and \
                                importlib.util.find_spec(f"{node.module}.{alias.name}") is None:
                            broken.append(f"{path.relative_to(ROOT)}:{node.lineno}: no {node.module}.{alias.name}")
    assert not broken, "\n".join(broken)
