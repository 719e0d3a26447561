"""The verifier's two decisions, pure: which devices a pass verifies (none twice while a
verification already waits for the same IMEI), and which verified devices a pass no longer
counts as verified (status shows them unverified until they are seen again)."""

from __future__ import annotations

from dongled.asterisk.device import DeviceEntry
from dongled.reconcile.plan import Expect, Plan
from dongled.reconcile.verifier import stale, to_verify

A, B = "356938030000005", "356938030000013"


def entry(name: str, imei: str, state: str = "Free") -> DeviceEntry:
    return DeviceEntry.from_fields(
        {"Device": name, "State": state, "IMEIState": imei, "DataState": "/dev/ttyUSB2"}
    )


def test_a_device_already_waited_for_is_not_verified_twice() -> None:
    waiting = {"dongle0": Expect(imei=A), "dongle1": Expect(imei=B)}
    expect = {"dongle0": Expect(imei=A), "dongle1": Expect(imei=B), "dongle2": Expect(imei=A)}
    # dongle2 is not waited for yet; dongle1 was started by this pass: both verified again
    assert to_verify(Plan(expect=expect, start=["dongle1"]), waiting) == {
        "dongle1": Expect(imei=B),
        "dongle2": Expect(imei=A),
    }
    # another IMEI than the one waited for (the file changed) is verified anew
    assert to_verify(Plan(expect={"dongle0": Expect(imei=B)}), waiting) == {
        "dongle0": Expect(imei=B)
    }
    # a reload restarts every device: each one is verified again
    assert to_verify(Plan(expect=expect, reload=True), waiting) == expect


def test_a_verified_device_stays_verified_only_while_it_runs_its_stick() -> None:
    verified = {"dongle0": A, "dongle1": B, "dongle2": A, "dongle3": B}
    listing = {
        "dongle0": entry("dongle0", A),
        "dongle1": entry("dongle1", A),  # another stick now
        "dongle2": entry("dongle2", A, state="Not connected"),
        "dongle3": entry("dongle3", B),
    }
    p = Plan(port_changes={"dongle3": ("/dev/ttyUSB5", "/dev/ttyUSB4")})
    assert stale(verified, p, listing) == ["dongle1", "dongle2", "dongle3"]
    # Asterisk unreachable: only what the pass itself changes or stops
    assert stale(verified, Plan(stop=["dongle0"]), None) == ["dongle0"]
