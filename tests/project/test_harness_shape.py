"""The test harness gets the care of the product (issue 19): no class of tests/support over
MAX_CLASS_LINES, and no test module imports from another test module (shared fixtures live in
a conftest.py, shared helpers in tests/support/). Sizes are measured as test_architecture
measures the package's: end_lineno - lineno + 1 of each ast.ClassDef."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = TESTS / "support"
BENCH = TESTS.parent / "bench"
MAX_CLASS_LINES = 300


def oversized_classes(root: Path, max_class: int) -> dict[str, int]:
    """ "<file>:<class>" -> its lines, for each class in root/*.py over `max_class` lines."""
    found: dict[str, int] = {}
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > max_class:
                    found[f"{path.name}:{node.name}"] = size
    return found


def _is_test_module(name: str) -> bool:
    return name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")


def imports_of_test_modules(roots: list[Path], base: Path) -> set[str]:
    """ "<importer> -> <imported test module>" for every import of a test module under roots."""
    found: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            where = path.relative_to(base).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                found.update(f"{where} -> {n}" for n in names if _is_test_module(n))
    return found


def test_no_support_class_is_too_big() -> None:
    assert oversized_classes(SUPPORT, MAX_CLASS_LINES) == {}


def test_no_test_module_imports_another() -> None:
    assert sorted(imports_of_test_modules([TESTS, BENCH], TESTS.parent)) == []


def test_the_shape_checks_see_a_big_class_and_a_test_import(tmp_path: Path) -> None:
    (tmp_path / "big.py").write_text("class Big:\n" + "    x = 1\n" * 5)
    assert oversized_classes(tmp_path, 3) == {"big.py:Big": 6}
    assert oversized_classes(tmp_path, 6) == {}
    (tmp_path / "user.py").write_text(
        "from tests.harness import test_x as tx\nfrom tests.harness.test_y import Y\n"
        "import tests.support.rig\n"
    )
    assert imports_of_test_modules([tmp_path], tmp_path) == {
        "user.py -> tests.harness.test_x",
        "user.py -> tests.harness.test_y",
    }
