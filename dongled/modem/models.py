"""Which USB interface of which stick is the AT (data) and which the voice (audio) port.

A table can only propose: the same VID:PID can have different layouts (the E171's depend on
its AT^SETPORT setting), so every candidate's data port is confirmed by an AT answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from dongled.modem import lte


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    data: int  # bInterfaceNumber of the AT (PCUI) port
    audio: int  # bInterfaceNumber of the voice port


@dataclass(frozen=True, slots=True, kw_only=True)
class Model:
    name: str
    layouts: tuple[Layout, ...]  # tried in order; the first whose data port answers AT wins


def _m(name: str, *pairs: tuple[int, int]) -> Model:
    return Model(name=name, layouts=tuple(Layout(data=d, audio=a) for d, a in pairs))


# chan_dongle's own table (wdoekes), plus the models it never finds (E173, K3765) and the
# second E171 layout.
KNOWN: dict[tuple[str, str], Model] = {
    ("12d1", "1001"): _m("E1550/E1750 (12d1:1001)", (2, 1)),
    ("12d1", "140c"): _m("E17xx (12d1:140c)", (3, 2)),
    ("12d1", "14ac"): _m("E153Du-1 (12d1:14ac)", (4, 3)),
    ("12d1", "1436"): _m("E173/E1750 (12d1:1436)", (4, 3), (2, 1)),
    ("12d1", "1506"): _m("E171 (12d1:1506)", (3, 2), (2, 1)),
    ("12d1", "1465"): _m("K3765 (12d1:1465)", (2, 1)),
    ("12d1", "14c9"): _m("K3770 (12d1:14c9)", (2, 1)),
}
# The LTE modules (chan_quectel), from their one table: serial voice port where they have one,
# else the data port stands for both (voice then comes over their USB sound card).
KNOWN.update(
    {
        key: _m(
            f"{mod.name} ({key[0]}:{key[1]})",
            (
                mod.layout.data,
                mod.layout.audio if mod.layout.audio is not None else mod.layout.data,
            ),
        )
        for key, mod in lte.KNOWN.items()
    }
)


def family(vid: str, pid: str) -> lte.Family | None:
    """The AT dialect of an LTE module; None for the Huawei sticks."""
    mod = lte.module_for(vid, pid)
    return mod.family if mod is not None else None


# Sticks still presenting their driver CD (usb_modeswitch has not switched them yet).
STORAGE_MODE: frozenset[tuple[str, str]] = frozenset(
    {("12d1", pid) for pid in ("1446", "1f01", "14fe", "1505", "1c0b", "1da1", "1520", "1521")}
)


def model_for(vid: str, pid: str) -> Model | None:
    return KNOWN.get((vid.lower(), pid.lower()))


def candidates(vid: str, pid: str, interfaces: frozenset[int]) -> tuple[Layout, ...]:
    """Layouts worth probing given the interfaces present; unknown models get a guess:
    each interface, highest first, as data with the next lower one as audio."""
    model = model_for(vid, pid)
    if model is not None:
        return tuple(
            lay for lay in model.layouts if lay.data in interfaces and lay.audio in interfaces
        )
    ordered = sorted(interfaces, reverse=True)
    return tuple(Layout(data=d, audio=d - 1) for d in ordered if d - 1 in interfaces)


def used(vid: str, pid: str, interface: int) -> bool:
    """Whether a layout of the model puts its data or voice on `interface` (an unknown model's
    every port may be)."""
    model = model_for(vid, pid)
    if model is None:
        return True
    return any(interface in (lay.data, lay.audio) for lay in model.layouts)


def complete(vid: str, pid: str, interfaces: frozenset[int]) -> bool:
    """All ports a known model needs are there (probing half a stick finds the wrong port)."""
    model = model_for(vid, pid)
    if model is None:
        return False  # unknown models are probed after a quiet period instead
    needed = max(max(lay.data, lay.audio) for lay in model.layouts)
    return all(i in interfaces for i in range(needed + 1))
