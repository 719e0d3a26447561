"""An admin saves dongle.conf while dongled is between reading it and writing it.

dongled reads the file, then asks Asterisk for its devices, then writes. The test Asterisk is
reached through a proxy that sits on that answer (tests/support/amiproxy.py), so the admin's
save lands exactly in that window, every time. Their edit must survive, and dongled must still
bring the stick back on its device from the file as the admin left it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.amiproxy import AmiProxy, proxy_for
from tests.support.marks import needs_umockdev
from tests.support.rig import Rig, rig, wait_until

pytestmark = [
    pytest.mark.e2e,
    needs_umockdev,
]

NOTE = b"; 03:12 moved the Paris line to the new trunk -- admin\n"


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Rig, AmiProxy]]:
    with rig(tmp_path, 2) as r, proxy_for(r) as proxy:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.wait_all_right(timeout=15)
        yield r, proxy


@pytest.mark.parametrize("how", ["in place", "rename"])
def test_an_admins_save_during_a_pass_is_kept(proxied: tuple[Rig, AmiProxy], how: str) -> None:
    r, proxy = proxied
    proxy.hold_list_once()
    r.unplug(0)
    assert proxy.holding.wait(10), "dongled never asked Asterisk for its devices"
    # dongled has read the file and waits for Asterisk: now the admin saves.
    theirs = r.conf.read_bytes() + NOTE
    if how == "in place":
        r.conf.write_bytes(theirs)
    else:  # how editors that keep a backup save
        tmp = r.conf.with_name("dongle.conf.swp")
        tmp.write_bytes(theirs)
        tmp.replace(r.conf)
    proxy.release()

    wait_until(lambda: "/dev/null/dongled-stick-absent" in r.conf.read_text(), 10, "parked")
    assert r.conf.read_bytes().endswith(NOTE), "the admin's edit was overwritten"
    # Since removal passes park without a listing (issue 21's passes), the held answer is
    # no longer always inside the pass's read-list-write window: the edit must survive
    # either way; test_atomicfile pins the window itself (the write refuses a changed file).
    r.replug(0)
    r.wait_all_right(timeout=15)
    r.original = theirs  # from here on, the admin's file is the hand-written one
    r.assert_only_ports_changed()
    r.assert_never_foreign()
    r.assert_daemon_alive()
