"""Rigs for the real-driver tier: one per driver set, the sticks each driver runs."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from tests.support.modemsim import E1550_USB, EC25, EC25_USB, StickSim, UsbModel
from tests.support.rig import Rig, make_imei, rig
from tests.support.scenarios import action_name, cli_verb

SINGLE = ["chan_dongle", "quectel-im", "quectel-re"]
MIXED = ["chan_dongle+quectel-im", "chan_dongle+quectel-re"]
MIXED_MODELS = [E1550_USB, EC25_USB, E1550_USB, EC25_USB]


def real_rig(
    tmp: Path, driver: str, n: int = 0, *, real: bool = True
) -> AbstractContextManager[Rig]:
    """`n` sticks of the driver's kind (Huawei E1550 for chan_dongle, Quectel EC25 for a
    fork; alternating on a mixed box) against the real Asterisk with `driver` loaded.
    `n` 0: 3 sticks, 4 on a mixed box (two of each kind). `real` False: the same rig
    against the test Asterisk (for contract tests)."""
    n = n or (4 if "+" in driver else 3)
    if "+" in driver:
        models: list[UsbModel] = [MIXED_MODELS[i % len(MIXED_MODELS)] for i in range(n)]
    else:
        models = [E1550_USB if driver == "chan_dongle" else EC25_USB] * n
    sims: list[StickSim] = [
        (EC25 if m is EC25_USB else StickSim)(make_imei(i), f"2500100000{i:05d}")
        for i, m in enumerate(models)
    ]
    return rig(tmp, n, models=models, sims=sims, personality=driver, real=real)


def stop_verb(r: Rig, name: str, headers: dict[str, str]) -> str:
    """An action as a verb both kinds of driver share: stop, start, reload (or the name)."""
    if name == "Command":
        return cli_verb(name, headers).removeprefix("quectel ")
    for prefix in ("Dongle", "Quectel"):
        if name.startswith(prefix):
            return name.removeprefix(prefix).lower()
    return action_name(name, headers)


def verbs(r: Rig) -> list[tuple[float, str]]:
    return [(t, stop_verb(r, name, h)) for t, name, h in r.asterisk.actions]
