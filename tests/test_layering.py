"""Lower stages never import higher ones (every import counts, module-level or inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "regurg_bench"

#: subpackage or module -> packages it must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # pure math: no model, no lm-eval glue, no stage above it
    "scoring": ("regurg_bench.evaluation", "regurg_bench.protocol", "regurg_bench.leaderboard",
                "regurg_bench.training", "regurg_bench.generation"),
    # neural metrics are used by evaluation's tasks, not the other way round
    "metrics": ("regurg_bench.evaluation", "regurg_bench.protocol", "regurg_bench.leaderboard"),
    # splits are built before any evaluation exists
    "builders": ("regurg_bench.evaluation", "regurg_bench.protocol", "regurg_bench.leaderboard"),
    "corpora": ("regurg_bench.generation", "regurg_bench.builders", "regurg_bench.evaluation",
                "regurg_bench.training", "regurg_bench.protocol"),
    # the run's typed results: read by the protocol and the leaderboard, so it imports neither
    "results.py": ("regurg_bench.protocol", "regurg_bench.leaderboard", "regurg_bench.evaluation",
                   "regurg_bench.training", "regurg_bench.generation"),
    # the shared helpers sit below everything
    "registry.py": ("regurg_bench.",), "hashing.py": ("regurg_bench.",), "versions.py": ("regurg_bench.",),
    "metric_table.py": ("regurg_bench.",), "atomic.py": ("regurg_bench.",),
}


def _type_only(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports that never run."""
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _nodes(tree: ast.AST, runtime_only: bool) -> list[ast.AST]:
    if not runtime_only:
        return list(ast.walk(tree))
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        todo += [child for child in ast.iter_child_nodes(node) if not _type_only(child)]
    return out


def imported_modules(path: Path, runtime_only: bool = False) -> set[str]:
    """Every module ``path`` imports, absolute names (relative imports resolved); ``runtime_only`` leaves out
    the imports under ``if TYPE_CHECKING:`` (for annotations only: they never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("regurg_bench", *path.relative_to(PACKAGE).parent.parts))
    out: set[str] = set()
    for node in _nodes(tree, runtime_only):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


def _files(unit: str) -> list[Path]:
    target = PACKAGE / unit
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(unit):
    bad = {f"{path.relative_to(PACKAGE)} imports {module}"
           for path in _files(unit) for module in imported_modules(path)
           if any(module == f.rstrip(".") or module.startswith(f if f.endswith(".") else f + ".")
                  for f in FORBIDDEN[unit])}
    assert not bad, sorted(bad)


def test_the_checker_sees_function_level_imports(tmp_path):
    sample = PACKAGE / "scoring" / "_layering_probe.py"
    sample.write_text("def f():\n    from regurg_bench.evaluation.signatures import corpus_score\n")
    try:
        assert "regurg_bench.evaluation.signatures" in imported_modules(sample)
    finally:
        sample.unlink()


def _module_graph() -> dict[str, set[str]]:
    """{module: the package's modules it imports when it runs} (a package's own ``__init__`` counts as the
    package). Imports for annotations only (``if TYPE_CHECKING:``) are not edges: they never execute, so they
    cannot form an import cycle, and an interface may name the types of the modules that use it."""
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = path
    graph = {}
    for name, path in mods.items():
        deps = set()
        for module in imported_modules(path, runtime_only=True):
            while module and module not in mods:
                module = module.rpartition(".")[0]
            if module and module not in (name, "regurg_bench"):
                deps.add(module)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


#: import cycles that still exist, to be removed; a new cycle fails the test, and so does a listed one that is
#: gone (then delete it here)
KNOWN_CYCLES: list[list[str]] = []


def test_no_new_import_cycles():
    """Among the package's modules (every import, module-level or in a function): the report and the collapse
    study no longer import each other; no cycle beyond the listed ones."""
    assert sorted(_cycles(_module_graph())) == sorted(KNOWN_CYCLES)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_type_only_imports_are_not_runtime_edges():
    sample = PACKAGE / "scoring" / "_layering_probe.py"
    sample.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from regurg_bench.protocol import plan\n"
                      "def f():\n    from regurg_bench.hashing import sha\n")
    try:
        assert {m for m in imported_modules(sample, runtime_only=True) if m.startswith("regurg_bench")} == {
            "regurg_bench.hashing", "regurg_bench.hashing.sha"}
        assert "regurg_bench.protocol" in imported_modules(sample)  # the layering rules still see it
    finally:
        sample.unlink()


#: the longest a function or method may be, ``def`` line to last line (decorators not counted)
MAX_FUNCTION_LINES = 80


def long_functions(path: Path, root: Path = PACKAGE.parent, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``file:line:function (N lines)`` for every function or method in ``path`` longer than ``limit`` lines
    (``file`` relative to ``root``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(root).as_posix()}:{node.lineno}:{node.name} ({length} lines)"
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            if (length := node.end_lineno - node.lineno + 1) > limit]


def test_no_function_is_longer_than_80_lines():
    """A function fits on a screen: split a longer one into named steps with one job each."""
    too_long = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in long_functions(path)]
    assert not too_long, too_long


def test_the_length_check_sees_a_long_method(tmp_path):
    sample = tmp_path / "probe.py"
    sample.write_text("class A:\n    def f(self):\n" + "        x = 1\n" * 80 + "\ndef g():\n" + "    x = 1\n" * 79)
    assert long_functions(sample, root=tmp_path) == ["probe.py:2:f (81 lines)"]
