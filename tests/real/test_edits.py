"""An admin's hand edits against the real drivers: the file watch and the foreign-binding
watch (DongleStatus/QuectelStatus events; RE's polled listing) set each right."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.real.drivers import SINGLE, real_rig
from tests.support.edits import foreign_ended_by_stop, save_by_rename, swapped_ports
from tests.support.rig import section_text, wait_until

STOP = {"chan_dongle": "DongleStop", "quectel-im": "QuectelStop", "quectel-re": "quectel stop"}


@pytest.mark.parametrize("driver", SINGLE)
def test_an_admins_swap_and_reload_is_set_right(tmp_path: Path, driver: str) -> None:
    """With every device verified, an admin swaps two sections' data=/audio= by hand and
    reloads the driver at once. The real chan_quectel forks then run each device on the
    other's SIM; the real chan_dongle leaves both down (each port still held by the other).
    dongled puts the ports back, stops every device that came up foreign, and brings each
    back on its own stick."""
    with real_rig(tmp_path, driver, 2) as r:
        r.wait_all_right(timeout=30)
        assert r.real is not None
        pid = r.real.pid
        r.start_daemon()
        r.wait_notification("STATUS=2 sticks, 2 on their devices", 20)
        save_by_rename(r.conf, swapped_ports(r, 0, 1))
        r.asterisk.admin_reload()
        # RE's own stop of a device can take 10 s (its monitor thread sleeps out a read), and
        # dongled sends RE the next command only once the last is done.
        wait_until(lambda: r.conf.read_bytes() == r.original, 30, "the ports put back")
        r.wait_all_right(timeout=30)
        print(f"\n[real] {driver}: swap and reload: {len(r.asterisk.foreign_bindings)} foreign")
        assert foreign_ended_by_stop(r, STOP[driver]) == []
        assert r.real.pid == pid and r.asterisk.hazards == []


# Not RE: after a reload that removed an RE device, its module's port stayed held
# (TIOCEXCL) for 30 s and more in this rig (docs/real-drivers.md: not yet explained).
@pytest.mark.parametrize("driver", ["chan_dongle", "quectel-im"])
def test_a_section_added_by_hand_gets_its_stick(tmp_path: Path, driver: str) -> None:
    """An admin adds a section with imei= and a port nobody checked (another stick's), and
    does not reload: the file watch sees the save, and dongled parks the section or names its
    own stick, before any later reload could start it on the wrong one."""
    with real_rig(tmp_path, driver, 2) as r:
        r.wait_all_right(timeout=30)
        text = r.conf.read_text()
        own = section_text(1, r.imeis[1], r.sticks[1].data_port.devnode,
                           r.sticks[1].audio_port.devnode)  # fmt: skip
        assert own in text
        # dongled starts with section 1 gone from the file and from Asterisk
        r.conf.write_text(text.replace(own, ""))
        r.asterisk.admin_reload()
        r.asterisk.wait_for(
            lambda: "dongle1" not in r.asterisk.devices_snapshot(), 20, what="dongle1 removed"
        )
        r.start_daemon()
        # the admin adds it back, pointing at stick 0's ports, and does not reload
        wrong = section_text(1, r.imeis[1], r.sticks[0].data_port.devnode,
                             r.sticks[0].audio_port.devnode)  # fmt: skip
        save_by_rename(r.conf, r.conf.read_text() + wrong)
        wait_until(lambda: own in r.conf.read_text(), 30, "the section's own ports")
        r.wait_all_right(timeout=30)
        r.asterisk.admin_reload()  # a later reload by anyone starts nobody on a wrong port
        r.wait_all_right(timeout=30)
        r.assert_never_foreign()
        assert r.asterisk.hazards == []
