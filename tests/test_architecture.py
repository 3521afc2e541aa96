"""The package's imports run one way: the widget on the facade, the facade on the analyses,
the analyses on the core, never back, and no module imports itself through others.

Every import is counted, those under `if TYPE_CHECKING:` and inside functions too: a type
annotation that names a higher floor still ties the floors together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "featviz_widgets"
# What each subpackage may import besides itself (docs/ARCHITECTURE.md draws it).
ALLOWED = {
    "core": set(),
    "evidence": {"core"},
    "plotting": {"core", "evidence"},
    "occlusion": {"core"},
    "optimize": {"core"},
    "monitor": {"core"},
    "dataset": {"core", "occlusion"},
    "compare": {"core", "plotting"},
    "visualizer": {"core", "plotting", "occlusion", "optimize", "dataset", "evidence"},
    "widget": {
        "core",
        "plotting",
        "occlusion",
        "optimize",
        "dataset",
        "evidence",
        "compare",
        "visualizer",
    },
    "microscope": {
        "core",
        "plotting",
        "dataset",
        "evidence",
        "optimize",
        "occlusion",
        "visualizer",
    },
    "cli": {"api"},  # `featviz-widgets --version` reads the package's __version__
}
TOP_LEVEL = {"__init__", "__main__"}  # the public API and the entry point import anything


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_source(path: Path, node: ast.ImportFrom) -> str | None:
    """The package's module that `from ... import` names, absolute; None outside the package."""
    name = module_name(path)
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    if node.level:
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))
    if (node.module or "").startswith("featviz_widgets"):
        return node.module
    return None


def imports_of(path: Path) -> set[str]:
    """The package's modules that `path` imports (absolute names), wherever the import is."""
    name = module_name(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("featviz_widgets")}
        elif isinstance(node, ast.ImportFrom):
            target = import_source(path, node)
            if target is None:
                continue
            # `from . import plots` names a module; `from .x import y` names x
            candidates = [f"{target}.{a.name}" for a in node.names] if not node.module else []
            modules = [c for c in candidates if c in MODULES] or [target]
            found |= set(modules)
    return found - {name}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def floor(module: str) -> str:
    """The subpackage `module` is in, or "api" for the package's own top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else "api"


def test_every_subpackage_has_a_floor_and_the_walk_sees_imports():
    floors = {floor(m) for m in MODULES} - {"api"}
    assert floors == set(ALLOWED), f"subpackages without a declared floor: {floors ^ set(ALLOWED)}"
    assert "featviz_widgets.core.capture" in GRAPH["featviz_widgets.core.features"]
    assert "featviz_widgets.visualizer" in GRAPH["featviz_widgets.widget.explorer"] or (
        "featviz_widgets.visualizer.facade" in GRAPH["featviz_widgets.widget.explorer"]
    )


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way(module):
    source = floor(module)
    if source == "api":
        assert module.rsplit(".", 1)[-1] in TOP_LEVEL | {"featviz_widgets"}, module
        return
    against = {
        target
        for target in GRAPH[module]
        if floor(target) != source and floor(target) not in ALLOWED[source]
    }
    assert not against, (
        f"{module} imports {sorted(against)}: `{source}` may import only "
        f"{sorted(ALLOWED[source]) or 'nothing else'} (see docs/ARCHITECTURE.md)"
    )


def test_no_import_cycles():
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target in GRAPH and not state.get(target):
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if not state.get(node):
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_subpackage():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = floor(module_name(path))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = import_source(path, node)
            if target is None or floor(target) == source:
                continue
            found += [
                f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {alias.name} from {target}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.endswith("__")
            ]
    assert not found, (
        "private names imported across subpackages (make them public, or give a public "
        "function):\n" + "\n".join(found)
    )


def _longest_chain(module: str, within: str, seen: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The longest chain of imports from `module` that stays inside package `within`."""
    chain = (*seen, module)
    longest = chain
    for target in sorted(GRAPH.get(module, ())):
        if target.startswith(within) and target not in chain:
            found = _longest_chain(target, within, chain)
            longest = found if len(found) > len(longest) else longest
    return longest


def test_the_widgets_imports_are_at_most_five_modules_deep():
    """The explorer is the composition root: it makes the view job, the model switch and the
    panels and hands them what they need, so no module reaches the registry through another."""
    within = "featviz_widgets.widget"
    chains = [_longest_chain(module, within) for module in GRAPH if module.startswith(within)]
    longest = max(chains, key=len)
    assert len(longest) <= 5, " -> ".join(name.rsplit(".", 1)[-1] for name in longest)
    assert len(longest) >= 4  # the walk sees the chains: explorer -> panels -> a panel -> base
