"""Who may import whom, read from the source (ast): no module of bot/ or detectors/ may reach itself
through imports, detectors/ never imports bot/, and the platform adapters never import the core parts.

Every import counts, wherever it is written: at the top, inside a function, or under TYPE_CHECKING
(a function-local import that dodges a cycle at import time is still a knot for the reader).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "detectors")

# the parts that decide and act; an adapter is handed an EventSink instead (bot/platforms/base.py)
CORE_PARTS = (
    "bot.core",
    "bot.moderation",
    "bot.notify",
    "bot.commands",
    "bot.protect_chat",
    "bot.actions",
    "bot.pipeline",
    "bot.app",
    "bot.alerts",
)


def module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies in (``bot.x.y`` for a name ``y`` in ``bot.x``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports, relative imports made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}"  # a submodule, or a name in ``base`` (resolved below)


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for name in imported_names(module, path):
            target = _resolve(name, modules)
            while target:  # importing a.b.c runs a.b and a first
                if target != module and not module.startswith(target + "."):
                    graph[module].add(target)
                target = target.rpartition(".")[0] if "." in target else ""
                target = target if target in modules else ""
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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


def test_the_graph_sees_the_imports_it_should() -> None:
    """The reader itself: a top-level, a function-local and a relative import are all edges."""
    graph = import_graph()
    assert "bot.store" in graph["bot.store.protocol"] or "bot.store.records" in graph["bot.store.protocol"]
    assert "detectors.errors" in graph["bot.platforms.errors"]
    assert "bot.config" in graph["bot.app"]


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (each line one knot; untie it by passing the collaborator in):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_detectors_never_import_bot() -> None:
    graph = import_graph()
    bad = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("detectors") for t in targets)
    bad = [b for b in bad if " -> bot" in b]
    assert not bad, "detectors/ is a library of its own:\n" + "\n".join(bad)


def test_platform_adapters_never_import_the_core_parts() -> None:
    graph = import_graph()
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m.startswith("bot.platforms")
        for t in targets
        if t in CORE_PARTS
    )
    assert not bad, "an adapter talks to the core through EventSink (bot/platforms/base.py):\n" + "\n".join(bad)
