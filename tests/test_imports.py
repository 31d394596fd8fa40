"""The package's import graph has no cycle, counting imports inside functions (a cycle hidden in a
function is still a cycle); imports under TYPE_CHECKING are only for annotations."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "harness"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, modules: set[str]) -> set[str]:
    """The package's modules a module imports, anywhere but under `if TYPE_CHECKING:`."""
    annotations_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                        and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            # `from package import submodule` needs the submodule, not the package's __init__ finished
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out & modules


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts]
    modules = {module_name(p) for p in paths}
    graph = {}
    for path in paths:
        name = module_name(path)
        graph[name] = {m for m in imported(ast.parse(path.read_text()), modules) if m != name}
    return graph


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "harness.routes" in graph["harness.stage"]  # the graph is the package's
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None


def test_a_hidden_cycle_is_found():
    """The check sees an import inside a function, as the one from config to routes was."""
    tree = ast.parse("def f():\n    from harness.routes import ROUTES\n")
    assert imported(tree, {"harness.routes"}) == {"harness.routes"}
    graph = import_graph() | {"harness.config": {"harness.routes"}}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return
    raise AssertionError("a cycle through config and routes went unseen")
