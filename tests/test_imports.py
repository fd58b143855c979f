"""The package's import graph: no cycles (imports inside functions count too) and
dependencies that point one way, bin -> training/decoding/scoring/inference ->
models/data/text -> the base (asrkit.config and the top-level modules)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "asrkit"
LAYERS = {"bin": 3, "training": 2, "decoding": 2, "scoring": 2, "inference": 2,
          "models": 1, "data": 1, "text": 1, "config": 0}
BASE = 0  # asrkit.config and the package's top-level modules (arg types, file helpers)
# sideways imports that are allowed (the importer needs the other's search, scoring or
# tokenizer): MWER training makes N-best lists with the decoding code's beam search and
# counts their word errors with the scorer; the data loader tokenizes transcripts.
SIDEWAYS = {("training", "decoding"), ("training", "scoring"), ("decoding", "scoring"),
            ("inference", "decoding"), ("data", "text")}


def module_names() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def absolute(module: str, path: Path, level: int, target: str | None) -> str:
    """The module a (relative) ``from`` import in ``module`` (file ``path``) names."""
    if level == 0:
        return target or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{target}" if target else package


def test_relative_imports_resolve_to_the_module_they_name():
    root = Path("asrkit/decoding")
    assert absolute("asrkit.decoding.run", root / "run.py", 1, "plan") == "asrkit.decoding.plan"
    assert absolute("asrkit.decoding.run", root / "run.py", 2, "models.mask") == \
        "asrkit.models.mask"
    assert absolute("asrkit.decoding", root / "__init__.py", 1, None) == "asrkit.decoding"
    assert absolute("asrkit.decoding.run", root / "run.py", 0, "torch") == "torch"


def import_graph() -> dict[str, set[str]]:
    modules = module_names()

    def owner(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # ``from pkg import mod`` runs pkg/__init__.py first: an edge to pkg too
                source = absolute(name, path, node.level, node.module)
                targets = [source, *(f"{source}.{alias.name}" for alias in node.names)]
            for target in targets:
                if target.startswith("asrkit"):
                    graph[name].add(owner(target))
        graph[name].discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def layer_of(module: str) -> tuple[str, int] | None:
    """(its part, its layer) of an asrkit module; None for the package and ``__main__``."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] == "__main__":
        return None
    if parts[1] in LAYERS:
        return parts[1], LAYERS[parts[1]]
    return module, BASE  # a top-level module: base, each its own part


def test_dependencies_point_one_way():
    wrong = []
    for name, targets in import_graph().items():
        if (mine := layer_of(name)) is None:
            continue
        for target in targets:
            other = layer_of(target)
            if other is None or other[0] == mine[0] or mine[1] == other[1] == BASE:
                continue  # the base's modules may use each other (cycles are checked above)
            upward = other[1] > mine[1]
            sideways = other[1] == mine[1] and (mine[0], other[0]) not in SIDEWAYS
            if upward or sideways:
                wrong.append(f"{name} -> {target}")
    assert wrong == []
