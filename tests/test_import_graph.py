"""No import circles inside ``ratchet``: the module graph (every ``import``, including
ones inside functions and under ``TYPE_CHECKING``, as grimp sees them) has no cycle.

import-linter's ``layers`` contract keeps imports pointing down *between* packages; a
circle *inside* a package (``executors/base`` importing ``executors/ray`` which imports
``executors/base``) passes it. This test closes that gap: it lists every cycle it finds,
each with the lines that make it, so the failure says what to untangle.
"""

from __future__ import annotations

import grimp
import pytest


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in edges:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_cycles_and_only_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set(),
             "f": {"f"}, "g": {"h"}, "h": {"g"}}
    assert sorted(strongly_connected(edges)) == [["a", "b", "c"], ["g", "h"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("ratchet", exclude_type_checking_imports=False)


def test_the_graph_sees_lazy_and_type_checking_imports(graph: grimp.ImportGraph) -> None:
    # Guards the test below against a grimp that stops reporting these kinds of import.
    lazy = graph.get_import_details(importer="ratchet.pipelines.pipeline_definition",
                                    imported="ratchet.pipelines.runner")
    assert lazy, "the in-function import of the runner in Pipeline.run"
    typing_only = graph.get_import_details(importer="ratchet.pipelines.pipeline_definition",
                                           imported="ratchet.executors.base")
    assert typing_only, "the TYPE_CHECKING import of Executor in pipeline_definition"


def test_no_import_cycles_between_modules(graph: grimp.ImportGraph) -> None:
    edges = {module: set(graph.find_modules_directly_imported_by(module)) - {module}
             for module in graph.modules}
    cycles = strongly_connected(edges)
    report = []
    for cycle in cycles:
        members = set(cycle)
        lines = []
        for importer in cycle:
            for imported in sorted(edges[importer] & members):
                where = [d["line_number"] for d in graph.get_import_details(
                    importer=importer, imported=imported)]
                lines.append(f"    {importer} -> {imported} (line {', '.join(map(str, where))})")
        report.append(" <-> ".join(cycle) + "\n" + "\n".join(lines))
    assert not cycles, "import cycles in ratchet:\n" + "\n".join(report)
