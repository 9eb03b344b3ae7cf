"""The package layout's rules, checked on the source.

- Data flows one way: ``cli -> serve -> pipeline -> {report, eda, sparkengine} -> models ->
  evaluation -> data``; the leaf modules (errors, atomic, config, display, result,
  jsontypes) may be imported from anywhere and import no package.
- No import circle anywhere in the package, between any two modules.
- No module imports another module's private (``_underscore``) name.
- Adding a model is one module plus one registry line: no registered model's name is a
  string literal outside ``models/`` (a few words that also name something else, each
  listed with what it names there).

Every import statement counts, the ones inside functions and under TYPE_CHECKING too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "kuairec"

LEAVES = {
    "errors", "atomic", "config", "display", "result", "jsontypes", "__init__", "__main__",
}  # fmt: skip
RANK = {"data": 0, "evaluation": 1, "models": 2, "report": 3, "eda": 3, "sparkengine": 3}
RANK |= {"pipeline": 4}
RANK |= {"serve": 5, "cli": 6}


def _unit(module: str) -> str:
    """``kuairec.data.load`` -> ``data``; ``kuairec`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``kuairec...`` module imported by ``path`` (absolute or relative), with line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("kuairec")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if not mod.startswith("kuairec"):
                continue
            for a in node.names:  # `from pkg import submodule` names the submodule
                sub = f"{mod}.{a.name}"
                is_module = _is_module(sub) or mod == "kuairec"
                out.append((sub if is_module else mod, node.lineno))
    return out


def _is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_package_has_a_rank() -> None:
    units = {_unit(".".join(p.relative_to(SRC.parent).with_suffix("").parts)) for p in _modules()}
    assert units <= LEAVES | set(RANK), units - LEAVES - set(RANK)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_one_way(path: Path) -> None:
    me = _unit(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
    bad = []
    for mod, line in _imports(path):
        other = _unit(mod)
        if mod == "kuairec.__version__":
            continue
        if other == me or other in LEAVES and other not in ("__init__", "__main__"):
            continue
        if me in LEAVES:
            if me == "__main__" and other == "cli":
                continue
            if me == "__init__":  # the lazy top-level API may point anywhere below cli
                if other in RANK and other != "cli":
                    continue
            bad.append(f"line {line}: {mod}")
        elif other not in RANK or RANK[other] >= RANK[me]:
            bad.append(f"line {line}: {mod}")
    assert not bad, f"{path.relative_to(SRC)} imports against the flow: {bad}"


def _data_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in (SRC / "data").rglob("*.py"):
        name = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        deps = set()
        for mod, _ in _imports(path):
            if mod.startswith("kuairec.data."):
                deps.add(mod)
        graph[name] = deps
    return graph


def test_data_package_has_no_import_cycle() -> None:
    graph = _data_graph()
    # resolve `from kuairec.data import cache` style entries to module names
    known = set(graph) | {n.removesuffix(".__init__") for n in graph}
    graph = {k: {d for d in v if d in known} for k, v in graph.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for dep in graph.get(node, set()) | graph.get(f"{node}.__init__", set()):
            if state.get(dep) == 1:
                cycle.extend([*stack, node, dep])
                return True
            if state.get(dep) is None and visit(dep, [*stack, node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_dataset_module_imports_no_loader() -> None:
    deps = {m for m, _ in _imports(SRC / "data" / "dataset.py")}
    assert not deps & {"kuairec.data.load", "kuairec.data.cache", "kuairec.data.describe"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name imported from a module counts
    as that module)."""
    modules = {_module_name(p) for p in _modules()}

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for path in _modules():
        me = _module_name(path)
        deps = {owner(mod) for mod, _ in _imports(path)} - {None, me}
        graph[me] = {d for d in deps if d is not None}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (empty when there is none)."""
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str]:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep] if dep in stack else [node, dep]
            if dep not in state and (found := visit(dep, [*stack, dep])):
                return found
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return []


def test_no_import_circle_anywhere() -> None:
    circle = _cycle(_package_graph())
    assert not circle, " -> ".join(circle)


def test_the_circle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kuairec"):
            for a in node.names:
                private = a.name.startswith("_") and not a.name.startswith("__")
                if private and not _is_module(f"{node.module}.{a.name}"):
                    bad.append(f"line {node.lineno}: {a.name} from {node.module}")
    return bad


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_name_is_imported_from_another_module(path: Path) -> None:
    bad = _private_imports(path)
    assert not bad, f"{path.relative_to(SRC)} imports private names: {bad}"


# A registered model's name may appear outside models/ only where the word names
# something else; each such word, where, and what it names there.
OTHER_MEANINGS = {
    ("random", "cli/run.py"): "the random validation split",
    ("random", "evaluation/validation.py"): "the random validation split",
    ("random", "pipeline/config.py"): "the random validation split",
    ("random", "pipeline/sections/validity/compute.py"): "the random logged split",
    ("random", "pipeline/sections/validity/render.py"): "the random logged split",
    ("random", "sparkengine/config.py"): "the random validation split",
    ("random", "sparkengine/protocols.py"): "the random validation split",
    ("popularity", "eda/report.py"): "the item popularity statistic",
    ("popularity", "eda/sections.py"): "the item popularity statistic",
    ("popularity", "serve/catalogue.py"): "a video's popularity field",
    ("popularity", "serve/scoring.py"): "a video's popularity field (the fallback's score)",
}


def _model_name_literals() -> set[tuple[str, str]]:
    from kuairec.models.registry import available_models

    names = set(available_models())
    found = set()
    for path in _modules():
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("models/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.add((node.value, rel))
    return found


def test_no_model_name_is_written_outside_models() -> None:
    found = _model_name_literals()
    unexplained = sorted(found - set(OTHER_MEANINGS))
    assert not unexplained, (
        f"registered model names written as literals outside models/: {unexplained}; read "
        "the model's declarations (reference, cost, hooks) instead"
    )
    stale = sorted(set(OTHER_MEANINGS) - found)
    assert not stale, f"OTHER_MEANINGS lists words no longer there: {stale}"
