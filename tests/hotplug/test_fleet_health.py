"""Storage-mode sticks and hub-wide drops, seen by the real daemon under umockdev."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.marks import needs_umockdev
from tests.support.rig import rig, wait_until

pytestmark = needs_umockdev


def test_sticks_dropping_together_are_one_hub_event(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(0, 1, 2)
        wait_until(lambda: "dropped together" in r.daemon_log(), 5, "a hub event")
        time.sleep(0.3)
        hub_lines = [ln for ln in r.daemon_log().splitlines() if "dropped together" in ln]
        assert len(hub_lines) == 1, hub_lines
        assert "3 sticks on hub 1-1 dropped together" in hub_lines[0]
        r.assert_never_foreign()


def test_one_stick_dropping_is_not_a_hub_event(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(1)
        wait_until(lambda: "is gone" in r.daemon_log(), 5, "the gone event")
        time.sleep(0.3)
        assert "dropped together" not in r.daemon_log()


def test_storage_mode_stick_is_shown_and_flagged_when_stuck(tmp_path: Path) -> None:
    with rig(tmp_path, 1) as r:
        r.write_settings(switch_limit=0.5)
        r.start_daemon()
        r.tb.add_cdrom(usb_port="9")
        wait_until(lambda: "storage (CD-ROM) mode 12d1:1446" in r.daemon_log(), 5, "switching")
        wait_until(lambda: "still in storage mode" in r.daemon_log(), 5, "stuck flag")
        assert "usb_modeswitch" in r.daemon_log()
        r.wait_all_right()  # the other stick is untouched

        def stuck_in_status() -> bool:  # the snapshot is written just after the journal line
            switching = r.status().get("switching")
            return isinstance(switching, list) and bool(switching) and switching[0]["stuck"]

        wait_until(stuck_in_status, 5, "status to show the stick stuck")
        doc = r.status()
        switching = doc["switching"]
        assert isinstance(switching, list)
        assert switching[0]["usb_port"] == "1-1.9" and switching[0]["stuck"] is True
        assert doc["ok"] is False
