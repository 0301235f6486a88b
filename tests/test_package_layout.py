"""The package's layers, read from its source: no import cycle (function-local
imports included), information flows down only, and no library module
imports the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import jaxpg

ROOT = Path(jaxpg.__file__).parent

# Each layer may import itself and the layers below it (a module's own
# package is resolved first: jaxpg.drivers.train is in "drivers").
# The token-policy package spans components and its own drivers, so it sits
# with the drivers (it uses their device layout); the drivers never import it.
LAYERS = {
    "kernels": 0,
    "_version": 0,
    "checks": 0,  # argument checks every layer shares
    "envs": 1,
    "initializers": 2,
    "networks": 2,
    "recurrent": 2,
    "nnx_bridge": 2,
    "rollout": 2,
    "config": 3,
    "presets": 3,
    "algorithms": 4,
    "drivers": 5,
    "experiment": 5,
    "analysis": 5,
    "sequence": 5,
    "cli": 6,
    "__init__": 7,
    "_backend": 7,  # what `import jaxpg` does to JAX's backend
    "__main__": 7,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """jaxpg modules that ``path`` imports anywhere (top level or inside a
    function), resolved to the modules of the package."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from pkg import mod" imports the module mod (its package is
            # already initialising); "from pkg import name" imports pkg.
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in subs if n in modules]
            if len(names) < len(subs):
                names.append(node.module)
        for name in names:
            if name.startswith("jaxpg") and name in modules:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        graph[name] = _imports(path, modules) - {name}
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS[key]


def test_every_module_has_a_layer():
    unknown = sorted(
        m for m in _graph() if m != "jaxpg" and m.split(".")[1] not in LAYERS
    )
    assert not unknown, f"modules outside the layer table: {unknown}"


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep == "jaxpg":
                continue
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_imports_flow_down_the_layers():
    """The package's root (``import jaxpg``, ``from jaxpg import name``) is the
    top layer: only the command line, a user of the public API, imports it
    (the cycle check above leaves those edges out for that reason)."""
    wrong = [
        f"{m} imports {d}"
        for m, deps in _graph().items()
        if m != "jaxpg"
        for d in deps
        if _layer(d) > _layer(m) and not (d == "jaxpg" and _layer(m) == LAYERS["cli"])
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_argument_parsing_outside_the_command_line():
    offenders = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.py")
        if p.relative_to(ROOT).parts[0] != "cli" and "import argparse" in p.read_text()
    ]
    assert not offenders, offenders


def test_test_modules_have_unique_names():
    """Test folders have no ``__init__.py``, so pytest imports each test file by
    its base name: two files of the same name in different folders collide
    when one worker collects both."""
    tests = Path(__file__).resolve().parent
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_the_costliest_first_list_names_existing_test_files():
    """conftest.py's scheduling order: a renamed or deleted file would drop
    out of it silently."""
    from conftest import COSTLIEST_FIRST

    root = Path(__file__).resolve().parents[1]
    assert len(COSTLIEST_FIRST) >= 10
    assert [n for n in COSTLIEST_FIRST if not (root / n).is_file()] == []
    assert len(set(COSTLIEST_FIRST)) == len(COSTLIEST_FIRST)
