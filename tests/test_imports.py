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
    assert len(graph) > 40 and "harness.train.routes" in graph["harness.run.stage"]  # the graph is the package's
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None


def test_a_hidden_cycle_is_found():
    """The check sees an import inside a function, as the one from config to routes was."""
    tree = ast.parse("def f():\n    from harness.train.routes import ROUTES\n")
    assert imported(tree, {"harness.train.routes"}) == {"harness.train.routes"}
    graph = import_graph() | {"harness.core.config": {"harness.train.routes"}}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return
    raise AssertionError("a cycle through config and routes went unseen")


LAYERS = ["core", "families", "lm", "train", "measure", "report", "run", "cli", "entry"]


def layer(module: str) -> int:
    """Where a module sits in the package's layers (docs/architecture.md); the package itself first."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else -1


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if layer(d) > layer(m))


def test_no_module_imports_a_layer_above_its_own():
    graph = import_graph()
    assert {m.split(".")[1] for m in graph if "." in m} == set(LAYERS)  # every subpackage has a layer
    assert upward_imports(graph) == []


def test_an_upward_import_is_found():
    graph = import_graph() | {"harness.core.store": {"harness.run.dag"}}
    assert upward_imports(graph) == ["harness.core.store -> harness.run.dag"]
