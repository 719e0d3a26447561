"""The shape of the package: sub-packages in layers that read as the flow, each importing only
from those below it; no import cycle inside dongled/; no module but the CLI imports the wiring
(dongled.daemon); rooms small enough to hold in mind. Imports are read from the source (ast),
type-only ones (`if TYPE_CHECKING:`) included: a cycle there is a cycle of knowledge too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dongled"


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_import_graph_is_read() -> None:
    graph = _imports()
    assert "dongled.daemon" in graph and "dongled.reconcile.executor" in graph["dongled.daemon"]


def test_no_import_cycle_inside_the_package() -> None:
    cycle = _cycle(_imports())
    assert cycle is None, " -> ".join(cycle or [])


def test_only_the_cli_imports_the_wiring() -> None:
    importers = sorted(n for n, deps in _imports().items() if "dongled.daemon" in deps)
    assert importers == ["dongled.cli"]


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


# Bottom to top: a module may import from its own sub-package and those listed before it. The
# top-level modules (the CLI, the daemon's wiring, the one-shot commands) may import anything.
LAYERS = (
    "telemetry",  # journal events, sd_notify, metrics: anyone may report
    "core",  # errors, backoff, rate limits, inotify, task supervision
    "modem",  # USB layouts, locks, fences, the AT conversation, USB resets
    "conf",  # the channel driver's config file
    "drivers",  # what each channel driver is: its file, keys, verbs, listing
    "config",  # dongled's own settings
    "asterisk",  # the device view, AMI, its supervisor, device polls
    "hotplug",  # udev, sound cards, sticks, the registry, fleet health
    "reconcile",  # plan, release wait, write, tell Asterisk, verify; what asks for a pass
    "recovery",  # the ladder, its runner, the line-down watch
    "status",  # the status document, line status, the status file, the check
)
TOP = {"dongled", "dongled.__main__", "dongled.cli", "dongled.daemon", "dongled.scan"}
TOP |= {"dongled.manpage", "dongled.loops", "dongled.oneshot"}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if module in TOP or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for name, deps in graph.items():
        mine = _layer(name)
        if mine is None:
            continue
        for dep in deps:
            if dep == "dongled":  # the version, nothing else
                continue
            theirs = _layer(dep)
            if theirs is None or theirs > mine:
                wrong.append(f"{name} imports {dep}")
    return sorted(wrong)


def test_every_module_sits_in_a_layer() -> None:
    loose = [n for n in _imports() if n not in TOP and n.count(".") < 2 and n != "dongled"]
    loose = [n for n in loose if n.split(".")[1] not in LAYERS]
    assert loose == [], "modules outside the sub-packages: " + ", ".join(loose)


def test_each_layer_imports_only_those_below_it() -> None:
    assert layer_violations(_imports()) == []


def test_the_layer_check_sees_an_upward_import() -> None:
    graph = {"dongled.modem.probe": {"dongled.reconcile.plan"}, "dongled.reconcile.plan": set()}
    assert layer_violations(graph) == ["dongled.modem.probe imports dongled.reconcile.plan"]


# Rooms one person can hold in mind (issue "A house you can read from the door").
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def oversized(root: Path, max_module: int, max_class: int) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > max_module:
            found.append(f"{path.relative_to(root.parent)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > max_class:
                    found.append(f"{path.relative_to(root.parent)}: class {node.name} {size} lines")
    return found


def test_no_room_is_too_big() -> None:
    assert oversized(PACKAGE, MAX_MODULE_LINES, MAX_CLASS_LINES) == []


def test_the_size_check_sees_a_big_class(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "big.py").write_text("class Big:\n" + "    x = 1\n" * 5)
    assert oversized(pkg, 100, 3) == ["pkg/big.py: class Big 6 lines"]
    assert oversized(pkg, 5, 10) == ["pkg/big.py: 6 lines"]


def design_table(text: str) -> dict[str, set[str]]:
    """docs/design.md's map of the rooms: sub-package (or "top") -> the modules it lists."""
    rows: dict[str, set[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 3 and (cells[0] == "top" or cells[0].endswith("/`")):
            rows[cells[0].strip("`/")] = set(re.findall(r"`([a-z_]+)`", cells[1]))
    return rows


def test_the_design_doc_lists_every_module_where_it_is() -> None:
    """The table a newcomer reads first stays the tree (a module moved or added says so)."""
    listed = design_table((PACKAGE.parent / "docs" / "design.md").read_text(encoding="utf-8"))
    actual: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.stem in ("__init__", "__main__"):
            continue
        place = "top" if path.parent == PACKAGE else path.parent.name
        actual.setdefault(place, set()).add(path.stem)
    assert listed == actual
