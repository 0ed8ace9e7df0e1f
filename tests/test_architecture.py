"""The layering the developer guide promises, checked by walking every import of the source.

* no import cycle among poelang's and the standard library's modules (imports
  inside functions count: a cycle is a cycle even when it is lazy; imports for
  type annotations only, under ``if TYPE_CHECKING:``, do not);
* the core does not import the library: nothing in ``poelang/`` imports
  ``poelang.stdlib`` (the library, folder ``stdlib_experts/``, registers itself through entry points);
* ``poelang/infer`` knows nothing of the language.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"poelang": "poelang", "stdlib_experts": "poelang.stdlib"}  # folder -> installed module name
LIBRARY = "poelang.stdlib"
# Cycles known to another piece of work, listed so that the test is strict for everything else.
KNOWN_CYCLES: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = (package, *path.relative_to(ROOT / folder).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node, except those under `if TYPE_CHECKING:` (imports for annotations, never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    cycles = [c for c in _cycles(_graph()) if frozenset(c) not in KNOWN_CYCLES]
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(sorted(c)) for c in cycles)


def test_the_core_does_not_import_the_library():
    offenders = {m: sorted(i for i in deps if i.startswith(LIBRARY))
                 for m, deps in _graph().items() if not m.startswith(LIBRARY)}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_engine_knows_nothing_of_the_language():
    allowed = ("poelang.infer", "poelang._lazy")
    offenders = {m: sorted(i for i in deps if not i.startswith(allowed) and i != "poelang")
                 for m, deps in _graph().items() if m.startswith("poelang.infer")}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_the_walk_sees_imports():  # the checks above are not vacuous
    graph = _graph()
    assert "poelang.infer.settings" in graph["poelang.graph"]
    assert "poelang.infer.kernels" in graph["poelang.infer.settings"]  # a lazy import, inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


# Modules and classes other work is reshaping this session, with their size when this test was written.
KNOWN_LARGE: dict[str, str] = {}


def test_modules_and_classes_are_small():
    """No module of poelang/ over 400 lines, no class over 250 (split by concern, don't grow)."""
    too_big = []
    for path in sorted((ROOT / "poelang").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in KNOWN_LARGE:
            continue
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            too_big.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 250:
                too_big.append(f"{rel}: class {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert too_big == []


def test_no_state_passed_through_undeclared_attributes():
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "poelang").rglob("*.py")
                 if 'getattr(self, "_' in p.read_text(encoding="utf-8")]
    assert offenders == []
