"""Contract tests: the test Asterisk held to the real one.

Each behaviour the test Asterisk models is driven by the same AMI sequence against both, one
stick, no dongled: the listing's fields for a free device, a stopped one and one whose stick
is gone, the lock files at each step, the answers to stop, reload and an unknown device, what
a reload does to a stopped device, and RE's CLI answers. Every observation is compared field
by field; a difference fails the test, naming the step and the field (and the model changes to
match the real one). docs/asterisk-behaviour.md has the table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from dongled.drivers.quectel_cli import parse_device_settings, parse_show_devices
from tests.real.drivers import real_rig
from tests.support.real_asterisk import AmiSession
from tests.support.rig import Rig

Observations = dict[str, str]

# The listing fields dongled reads (DeviceEntry), compared at each step.
FIELDS = (
    "Device",
    "DataSetting",
    "AudioSetting",
    "IMEISetting",
    "State",
    "DataState",
    "AudioState",
    "IMEIState",
    "IMSIState",
    "Model",
    "Voice",
    "GSMRegistrationStatus",
    "RSSI",
    "CurrentDeviceState",
    "DesiredDeviceState",
)


def _session(r: Rig) -> AmiSession:
    port = r.real.ami_port if r.real is not None else r.asterisk.port
    return AmiSession(port)


def _asterisk_pid(r: Rig) -> int:
    """The process that writes the driver's lock files: the real Asterisk, or the test
    Asterisk's own process (it runs in the test's)."""
    return r.real.pid or 0 if r.real is not None else os.getpid()


def _locks(r: Rig, step: str, out: Observations) -> None:
    """Which ttys are locked, and by whom (the driver's process or another)."""
    names = sorted(os.listdir(r.lock_dir))
    out[f"{step}: lock files"] = " ".join(names) or "-"
    owners = set()
    for name in names:
        text = (r.lock_dir / name).read_text(errors="replace").split()
        pid = int(text[0]) if text and text[0].isdigit() else None
        owners.add("asterisk" if pid == _asterisk_pid(r) else f"other ({pid})")
    out[f"{step}: lock owner"] = " ".join(sorted(owners)) or "-"


def _entry(r: Rig, ami: AmiSession, prefix: str) -> dict[str, str]:
    replies = ami.action({"Action": f"{prefix}ShowDevices"}, until=f"{prefix}ShowDevicesComplete")
    entries = [m for m in replies if m.get("Event") == f"{prefix}DeviceEntry"]
    assert len(entries) == 1, replies
    return entries[0]


def _fields(step: str, entry: dict[str, str], out: Observations) -> None:
    for key in FIELDS:
        out[f"{step}: {key}"] = entry.get(key, "<absent>")


def _answer(step: str, reply: dict[str, str], out: Observations) -> None:
    out[f"{step}: Response"] = reply.get("Response", "")
    out[f"{step}: Message"] = reply.get("Message", "")


def _wait(r: Rig, ami: AmiSession, prefix: str, pred: Callable[[dict[str, str]], bool]) -> None:
    r.asterisk.wait_for(lambda: pred(_entry(r, ami, prefix)), 20, what="the device's state")


def observe_manager_driver(r: Rig, prefix: str) -> Observations:
    """chan_dongle (`Dongle*` actions) and IM (`Quectel*`)."""
    out: Observations = {}
    ami = _session(r)
    try:
        _wait(r, ami, prefix, lambda e: e["State"] == "Free")
        _fields("free", _entry(r, ami, prefix), out)
        _locks(r, "free", out)

        _answer("reload without When", ami.action({"Action": f"{prefix}Reload"})[0], out)
        stop = {"Action": f"{prefix}Stop", "Device": "nope", "When": "now"}
        _answer("stop of an unknown device", ami.action(stop)[0], out)

        stop["Device"] = "dongle0"
        _answer("stop", ami.action(stop)[0], out)
        _wait(r, ami, prefix, lambda e: e["CurrentDeviceState"] == "stop")
        _fields("stopped", _entry(r, ami, prefix), out)
        _locks(r, "stopped", out)

        reload = {"Action": f"{prefix}Reload", "When": "now"}
        _answer("reload (file unchanged)", ami.action(reload)[0], out)
        _wait(r, ami, prefix, lambda e: e["State"] == "Free")
        _fields("after the reload", _entry(r, ami, prefix), out)

        r.unplug(0)
        _wait(r, ami, prefix, lambda e: e["State"] == "Not connected")
        _fields("stick gone", _entry(r, ami, prefix), out)
        _locks(r, "stick gone", out)
    finally:
        ami.close()
    return out


def _re_row(ami: AmiSession) -> dict[str, str]:
    listing = parse_show_devices(ami.command("quectel show devices").splitlines())
    assert len(listing.devices) == 1 and not listing.unparsed, listing
    row = listing.devices[0]
    return {"device": row.device, "state": row.state, "imei": row.imei, "imsi": row.imsi,
            "rssi": str(row.rssi), "model": row.model}  # fmt: skip


def observe_re(r: Rig) -> Observations:
    """RE: its CLI over `Action: Command`."""
    out: Observations = {}
    ami = _session(r)

    def row(step: str) -> None:
        for key, value in _re_row(ami).items():
            out[f"{step}: {key}"] = value
        said = ami.command("quectel show device settings dongle0")
        out[f"{step}: settings (data, audio)"] = repr(parse_device_settings(said.splitlines()))

    def state(want: str) -> Callable[[], bool]:
        return lambda: _re_row(ami)["state"] == want

    def free_and_read() -> bool:
        # RE lists a device Free before its first +CSQ is read (RSSI 0: seen under load);
        # the model has read it by then. Both are compared once the signal is known.
        now = _re_row(ami)
        return now["state"] == "Free" and now["rssi"] != "0"

    try:
        r.asterisk.wait_for(free_and_read, 30, what="Free, its signal read")
        row("free")
        out["locks while free"] = " ".join(sorted(os.listdir(r.lock_dir))) or "-"
        out["stop of an unknown device"] = ami.command("quectel stop now nope").strip()
        out["settings of an unknown device"] = ami.command(
            "quectel show device settings nope"
        ).strip()
        out["stop"] = ami.command("quectel stop now dongle0").strip()
        r.asterisk.wait_for(state("Stopped"), 20, what="Stopped")
        row("stopped")
        out["reload"] = ami.command("quectel reload now").strip() or "(nothing)"
        out["start"] = ami.command("quectel start dongle0").strip()
        r.asterisk.wait_for(free_and_read, 30, what="Free again, its signal read")
        row("started")
        r.unplug(0)
        r.asterisk.wait_for(lambda: _re_row(ami)["state"] != "Free", 20, what="down")
        row("stick gone")
    finally:
        ami.close()
    return out


def _observe(tmp: Path, driver: str, real: bool) -> Observations:
    with real_rig(tmp / ("real" if real else "model"), driver, 1, real=real) as r:
        if driver == "quectel-re":
            return observe_re(r)
        return observe_manager_driver(r, "Dongle" if driver == "chan_dongle" else "Quectel")


def _normalized(obs: Observations, tmp: Path) -> Observations:
    """The rigs' temp dirs differ ('real' and 'model'): compare paths below them alike."""
    out = {}
    for key, value in obs.items():
        out[key] = re.sub(r"/(real|model)/", "/RIG/", value.replace(str(tmp), "TMP"))
    return out


@pytest.mark.parametrize("driver", ["chan_dongle", "quectel-im", "quectel-re"])
def test_the_model_answers_as_the_real_driver(tmp_path: Path, driver: str) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "model").mkdir()
    real = _normalized(_observe(tmp_path, driver, True), tmp_path)
    model = _normalized(_observe(tmp_path, driver, False), tmp_path)
    rows = [f"{key}: real {real.get(key)!r}, model {model.get(key)!r}" for key in real]
    print(f"\n[contract] {driver}\n" + "\n".join(rows))
    differ = {k: (real.get(k), model.get(k)) for k in real.keys() | model.keys()
              if real.get(k) != model.get(k)}  # fmt: skip
    assert differ == {}, "\n".join(f"{k}: real {v[0]!r}, model {v[1]!r}" for k, v in differ.items())
