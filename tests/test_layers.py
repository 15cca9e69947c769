"""The package's structure: no import cycles, and the core imports nothing above it.

Imports are read from the source (every ``import`` statement, also those inside
functions), so a cycle that only a lazy import hides still counts.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_mr_reparam"
ROOT = PACKAGE.name


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports (a name from a package counts as
    its ``__init__``, unless it is a submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_core_imports_nothing_above_it():
    edges = graph()
    above = {f"{ROOT}.cli", f"{ROOT}.cli_joint", f"{ROOT}.command", f"{ROOT}.training", f"{ROOT}._widget", f"{ROOT}._widget_controls",
             f"{ROOT}._widget_outputs", f"{ROOT}._widget_work", f"{ROOT}.widget_logic",
             f"{ROOT}._reader", f"{ROOT}._writer", f"{ROOT}._sample_data", f"{ROOT}.demo"}
    core = [m for m in edges if not any(m == a or m.startswith(a + ".") for a in above)]
    wrong = {m: sorted(t for t in edges[m] if any(t == a or t.startswith(a + ".") for a in above))
             for m in core}
    assert not {m: t for m, t in wrong.items() if t}
    training = [m for m in edges if m.startswith(f"{ROOT}.training")]
    assert not [m for m in training if f"{ROOT}.cli" in edges[m]], "training reaches into the user CLI"
    assert not [t for t in edges[f"{ROOT}.training.config"] if t.startswith(f"{ROOT}.phantoms")]
