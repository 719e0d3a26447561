"""The repository and CI themselves: what a fresh checkout holds, how CI installs, and that
the suite's output is pytest's own."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tracked() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()


def test_no_tracked_symlink_points_outside_the_checkout() -> None:
    """A symlink to someone's virtualenv (`.venv-main`) is broken in every other checkout."""
    links = [line.split("\t", 1)[1] for line in _tracked() if line.startswith("120000 ")]
    for link in links:
        target = (ROOT / link).parent / Path(str((ROOT / link).readlink()))
        assert target.resolve().is_relative_to(ROOT), f"{link} -> {target}"


def test_every_apt_get_of_ci_waits_for_the_dpkg_lock() -> None:
    """Another apt holding the lock (unattended-upgrades on a fresh machine) must not fail
    the run at once: every apt-get of .ci/run (directly, or through its `apt` array) waits."""
    ci = (ROOT / ".ci" / "run").read_text()
    code = [line.split("#", 1)[0] for line in ci.splitlines()]
    calls = [line for line in code if re.search(r"\bapt-get\b", line)]
    assert calls, "no apt-get in .ci/run?"
    for line in calls:
        assert "-o DPkg::Lock::Timeout=600" in line, line
    through_array = [line for line in code if '"${apt[@]}"' in line]
    assert not through_array or re.search(r"^apt=\(apt-get [^)]*DPkg::Lock::Timeout=600", ci, re.M)


def test_no_test_writes_past_pytest_s_capture() -> None:
    """Output such as "Asterisk was NOT told ..." among the progress dots reads like a
    failure: a test prints into pytest's capture (shown with its failure), never around it."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != "test_repository.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"capsys\.disabled|capfd\.disabled|sys\.__std(out|err)__", line)
    ]
    assert offenders == []
