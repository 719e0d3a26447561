"""Skip conditions shared by the test files (CI runs everything: none of them skip there)."""

from __future__ import annotations

import os

import pytest

from tests.support.testbed import Testbed

# umockdev testbeds need the preload in this process: pytest under umockdev-wrapper.
needs_umockdev = pytest.mark.skipif(
    not Testbed.available(), reason="needs umockdev-wrapper (CI runs it)"
)

# The rig-heavy campaigns fill umockdev's 50-entry fd table of a process: each runs in a
# fresh one, started by tests/reliability/test_rel_runner.py with DONGLED_REL_CHILD=1.
rel_child_only = pytest.mark.skipif(
    os.environ.get("DONGLED_REL_CHILD") != "1",
    reason="run in a fresh process by tests/reliability/test_rel_runner.py (umockdev's fd table)",
)
