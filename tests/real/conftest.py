"""The real-driver tier: every test here runs dongled against the real Asterisk and driver(s).

Marked `real`; builds (or finds cached) the real Asterisk once per session. Without its
sources the tier skips with a message saying how to get them (never under CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.real_asterisk import require_build


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real)


@pytest.fixture(autouse=True)
def _real_asterisk_built() -> None:
    require_build()
