"""The house has one-way layers: entry points → flows → tasks → expectations → core, and no import cycle;
inside tasks, one package per stage, and between stages only the arrows declared in STAGE_ARROWS.

Every import of the package's own modules is read from the source (also those inside functions), so an
arrow that runs back up, or a circle of modules, fails here with the modules named.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRY = ("challenge.app", "challenge.example_algorithms")  # the entry points: the command, the demo, init, the
# local server; and the example algorithms (programs a sandbox runs)
LAYERS = ["core", "expectations", "tasks", "flows", "entry"]  # an import may only point at its own layer or one below
# The stage packages of tasks/ and the stages each may import (its own aside); tasks/artifacts.py and
# tasks/retry.py serve every stage and import none.
STAGE_ARROWS = {
    "intake": set(),
    "release": {"intake"},  # a release is built from the staged tasks
    "scoring": {"release"},  # against the current release's answer keys
    "corrections": {"release", "scoring"},  # a new answer key, then rescoring
    "boards": {"release", "scoring"},  # from the result records of the release's tasks
    "baselines": {"scoring"},  # submitted and checked like any team's file
    "participant": {"scoring"},  # the scorer's own checks before upload
    "algorithms": {"scoring"},  # a run's predictions get the scorer's checks
}
SHARED = {"challenge.tasks.artifacts", "challenge.tasks.retry"}


def package_modules() -> dict[str, Path]:
    """Module name → source file, through pyproject's package-dir (flows/ installs as challenge.flows, ...)."""
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules = {}
    for package, folder in package_dirs.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((package, *parts))] = path
    return modules


def layer(module: str) -> str:
    if any(module == entry or module.startswith(f"{entry}.") for entry in ENTRY):
        return "entry"
    for name in ("flows", "tasks", "expectations"):
        if module == f"challenge.{name}" or module.startswith(f"challenge.{name}."):
            return name
    return "core"


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package modules it imports (at the top or inside functions)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            found |= {name for name in names if name in modules and name != module}
        graph[module] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_every_package_folder_is_read() -> None:
    modules = package_modules()
    assert {"challenge.app.cli", "challenge.flows.score_submissions", "challenge.tasks.scoring.score",
            "challenge.expectations.custom_checks", "challenge.core.config"} <= set(modules)


def test_imports_only_point_down_the_layers() -> None:
    graph = imports(package_modules())
    upward = [f"{source} ({layer(source)}) imports {target} ({layer(target)})"
              for source, targets in sorted(graph.items()) for target in sorted(targets)
              if LAYERS.index(layer(target)) > LAYERS.index(layer(source))]
    assert not upward, "imports that run back up the layers:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules_or_layers() -> None:
    graph = imports(package_modules())
    assert not cycles(graph)
    layer_graph: dict[str, set[str]] = {name: set() for name in LAYERS}
    for source, targets in graph.items():
        layer_graph[layer(source)] |= {layer(t) for t in targets if layer(t) != layer(source)}
    assert not cycles(layer_graph)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def stage(module: str) -> str | None:
    """The stage package of a module of tasks/ (None outside them)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["challenge", "tasks"] else None


def test_every_module_of_tasks_is_in_a_stage_or_shared() -> None:
    modules = {m for m in package_modules() if m.startswith("challenge.tasks.")}
    loose = sorted(m for m in modules if stage(m) is None and m not in SHARED and m.count(".") == 2
                   and m.split(".")[2] not in STAGE_ARROWS)
    assert not loose, f"modules of tasks/ outside a stage package: {loose}"
    assert {stage(m) for m in modules} - {None} == set(STAGE_ARROWS)


def test_stages_import_only_the_stages_they_declare() -> None:
    graph = imports(package_modules())
    wrong = [f"{source} imports {target}: add '{stage(target)}' to STAGE_ARROWS['{stage(source)}'] if it belongs"
             for source, targets in sorted(graph.items()) for target in sorted(targets)
             if stage(source) and stage(target) and stage(target) != stage(source)
             and stage(target) not in STAGE_ARROWS[stage(source)]]
    shared = [f"{source} imports {target}" for source in sorted(SHARED) for target in sorted(graph.get(source, ()))
              if target.startswith("challenge.tasks.")]
    assert not wrong and not shared, "\n".join(wrong + shared)


def calls_of(name: str, modules: dict[str, Path]) -> dict[str, int]:
    """Module → how many calls of a function called `name` (plain or as an attribute) its source makes."""
    found = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        count = sum(isinstance(node, ast.Call) and name in (getattr(node.func, "id", None), getattr(node.func, "attr", None))
                    for node in ast.walk(tree))
        if count:
            found[module] = count
    return found


def test_locations_are_opened_only_by_a_run_context() -> None:
    # one way to open a storage location: a RunContext made once per flow run or command, passed down
    assert set(calls_of("open_location", package_modules())) == {"challenge.core.run_context"}


def test_the_call_finder_finds_a_call(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("from x import open_location\nopen_location(1, 2)\nstorage.open_location(3)\n")
    assert calls_of("open_location", {"m": tmp_path / "m.py"}) == {"m": 2}
