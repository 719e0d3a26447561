"""Faults for a rig's daemon (tests/support/faults.py puts them in): where a test arms them
and reads how often they fired."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.faults import ENV
from tests.support.rig import Rig


def faults(r: Rig, *specs: dict[str, Any]) -> tuple[Path, Path]:
    """Arm-file and fire-log paths; the faults go into the daemon's environment."""
    armed, fired = r.tmp / "armed", r.tmp / "fired"
    r.extra_env[ENV] = json.dumps(
        [{"armed": str(armed), "log": str(fired), **spec} for spec in specs]
    )
    return armed, fired


def fired(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0
