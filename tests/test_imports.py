"""No import cycles: the modules of charlm/ and service/ (installed as `charlm_service`)
depend on each other one way.

Two graphs are checked, both read from the source with `ast`, nothing imported:

- Between modules: every `import` and `from ... import` a module holds, wherever it is
  (at module level, under `if TYPE_CHECKING:`, inside a function). An import that is
  only for types or only runs when called still ties the two modules together, and
  deferring it is how a cycle hides: each cycle this test was written against was one of
  those. An import of `a.b.c` is an edge to `a.b.c` alone, so that a package whose
  `__init__` re-exports its submodules is not on a cycle with each of them.
- At import time: the imports that run when the module is imported (module level,
  including under a module-level `if`, `try`, `with` or class body; not under
  `if TYPE_CHECKING:`, not inside functions), each also an edge to the packages whose
  `__init__` it runs (`a` and `a.b` for `a.b.c`, except the importer's own, which are
  already running). That is the cycle Python itself meets, where importing one module
  first fails on a partly initialised other.

`from pkg import name` is an edge to the module `pkg.name` when there is one, else to
`pkg`. Relative imports are resolved against the importing module. A string passed to
`importlib` is not an import statement and is not seen (the CLI reaches the service so,
on purpose: charlm must import without it).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

from .conftest import REPO

ROOTS = {"charlm": REPO / "charlm", "charlm_service": REPO / "service"}
"""The package name each folder installs as."""

Graph = Mapping[str, Collection[str]]
ImportNode = ast.Import | ast.ImportFrom


def module_files() -> dict[str, Path]:
    """Every module's dotted name and file; a package is named by its `__init__.py`."""
    found: dict[str, Path] = {}
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def eager_imports(body: list[ast.stmt]) -> Iterator[ImportNode]:
    """The import statements of `body` that run when the module itself is imported."""
    for node in body:
        if isinstance(node, ImportNode):
            yield node
        elif isinstance(node, ast.If):
            if not is_type_checking(node.test):
                yield from eager_imports(node.body)
            yield from eager_imports(node.orelse)
        elif isinstance(node, ast.Try | ast.TryStar):
            for block in (node.body, node.orelse, node.finalbody):
                yield from eager_imports(block)
            for handler in node.handlers:
                yield from eager_imports(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from eager_imports(node.body)


def all_imports(tree: ast.Module) -> Iterator[ImportNode]:
    """Every import statement of the module, wherever it is."""
    for node in ast.walk(tree):
        if isinstance(node, ImportNode):
            yield node


def ours(name: str, modules: Collection[str]) -> str | None:
    """`name` or its nearest enclosing module among ours; None for anything outside."""
    parts = name.split(".")
    while parts:
        if (candidate := ".".join(parts)) in modules:
            return candidate
        parts.pop()
    return None


def imported(
    name: str, source: str, modules: Collection[str], *, is_package: bool, eager: bool
) -> set[str]:
    """The modules of ours that module `name`, whose text is `source`, imports: those
    run at import time (`eager`), or all it names anywhere."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in eager_imports(tree.body) if eager else all_imports(tree):
        if isinstance(node, ast.Import):
            found |= {t for alias in node.names if (t := ours(alias.name, modules))}
            continue
        base = node.module or ""
        if node.level:  # level 1: the module's package (for a package's __init__, itself)
            package = name.split(".")
            up = node.level - 1 if is_package else node.level
            package = package[: len(package) - up] if up else package
            base = ".".join([*package, *([node.module] if node.module else [])])
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            target = submodule if submodule in modules else ours(base, modules)
            if target:
                found.add(target)
    found.discard(name)
    return found


def with_packages(importer: str, targets: set[str], modules: Collection[str]) -> set[str]:
    """`targets` and the packages whose `__init__` importing them runs: every package
    above each, except the importer's own (already running when it imports)."""
    own = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)}
    found = set(targets)
    for target in targets:
        parts = target.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts))} - own
    return {m for m in found if m in modules and m != importer}


def import_graph(*, eager: bool) -> dict[str, set[str]]:
    """The graph between modules (`eager` False) or at import time (`eager` True)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        source = path.read_text(encoding="utf-8")
        package = path.name == "__init__.py"
        targets = imported(name, source, files, is_package=package, eager=eager)
        graph[name] = with_packages(name, targets, files) if eager else targets
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_cycle(start: str, graph: Graph, within: Collection[str]) -> list[str]:
    """The shortest chain start -> ... -> start through the modules `within`, as a list
    that ends where it starts; [] when there is none."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph.get(node, ())):
            if succ not in within:
                continue
            if succ == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return [*reversed(chain), start]
            if succ not in came_from:
                came_from[succ] = node
                queue.append(succ)
    return []


def cycles(graph: Graph) -> list[list[str]]:
    """Each import cycle as a chain of modules that ends where it starts, beginning at
    its least name: for every module of a strongly connected component of more than one
    (or of one that imports itself), the shortest cycle through it, without repeats, so
    that every module on a cycle shows on one."""
    found: list[list[str]] = []
    for component in strongly_connected(graph):
        if len(component) == 1 and component[0] not in graph.get(component[0], ()):
            continue
        for start in component:
            loop = shortest_cycle(start, graph, set(component))[:-1]
            first = loop.index(min(loop))
            chain = [*loop[first:], *loop[:first], min(loop)]
            if chain not in found:
                found.append(chain)
    return found


def described(found: list[list[str]]) -> str:
    return f"{len(found)} import cycle(s):\n" + "\n".join(" -> ".join(c) for c in found)


# -- the finder, on graphs and sources made up here ---------------------------------------


def test_the_cycle_finder_finds_each_cycle_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    two = {"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}  # one component, two cycles
    assert cycles(two) == [["a", "b", "a"], ["a", "c", "a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert described(cycles(graph)).splitlines()[1] == "a -> b -> c -> a"


def test_imports_are_resolved_as_python_runs_them() -> None:
    modules = {"p", "p.a", "p.b", "p.sub", "p.sub.c", "p.sub.d"}
    source = """
from __future__ import annotations
import os
from typing import TYPE_CHECKING
from . import d
from .. import a
from ..b import thing
import p.sub
if TYPE_CHECKING:
    from p.sub import c
def later() -> None:
    from p.sub import c
"""
    eager = imported("p.sub.x", source, modules, is_package=False, eager=True)
    assert eager == {"p.sub.d", "p.a", "p.b", "p.sub"}
    every = imported("p.sub.x", source, modules, is_package=False, eager=False)
    assert every == eager | {"p.sub.c"}
    # in a package's __init__, `.` is the package itself
    init = imported("p.sub", "from . import c", modules, is_package=True, eager=True)
    assert init == {"p.sub.c"}
    # importing p.sub.c runs p/__init__ and p/sub/__init__, unless the importer is inside
    assert with_packages("p.a", {"p.sub.c"}, modules) == {"p.sub", "p.sub.c"}
    assert with_packages("q", {"p.sub.c"}, {*modules, "q"}) == {"p", "p.sub", "p.sub.c"}


def test_the_graph_reads_this_project() -> None:
    graph = import_graph(eager=False)
    assert len(graph) > 100 and "charlm_service.openai_api" in graph
    assert "charlm.errors" in graph["charlm.vocab"]
    assert "charlm.inference.activations" in graph["charlm_service.routes"]
    assert "charlm_service.accesslog" in graph["charlm_service.app"]  # a relative import
    assert "charlm.training" in import_graph(eager=True)["charlm.progress"]  # its __init__


# -- this project ---------------------------------------------------------------------------


def test_no_import_cycles_between_modules() -> None:
    found = cycles(import_graph(eager=False))
    assert not found, described(found)


def test_no_import_cycles_at_import_time() -> None:
    found = cycles(import_graph(eager=True))
    assert not found, described(found)
