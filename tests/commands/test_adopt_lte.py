"""`dongled adopt` probes an LTE module in its own dialect: never a Huawei `^` command (the
rule for every probe of a Quectel or SIMCom module). The CLI as its own process against
umockdev EC25 modules and the test Asterisk's chan_quectel (IM) personality."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev
from tests.support.modemsim import E1550, E1550_USB, EC25, EC25_USB
from tests.support.rig import make_imei, rig, section_text

pytestmark = [pytest.mark.e2e, needs_umockdev]


def test_adopt_speaks_quectel_to_a_quectel_module(tmp_path: Path) -> None:
    sims = [EC25(make_imei(0), "250010000000000")]
    with rig(tmp_path, 1, model=EC25_USB, sims=sims, personality="quectel-im") as r:
        r.wait_all_right(timeout=10)
        # a module Asterisk does not run: adopt must probe it to learn its IMEI
        imei = make_imei(50)
        extra = r.tb.add_stick(
            EC25_USB, EC25(imei), r.take_ttys(len(EC25_USB.interfaces)), usb_port="5"
        )
        text = section_text(9, "", extra.data_port.devnode, extra.audio_port.devnode)
        r.conf.write_text(r.conf.read_text() + text.replace("imei=        ; SIM of city 9\n", ""))

        done = r.cli("adopt")
        assert f"+imei={imei}\n" in done.stdout, done.stderr
        sent = extra.data_port.sim_port.commands
        assert sent and not [c for c in sent if c.upper().startswith(("AT^", "ATI"))], sent


def test_adopt_for_chan_quectel_leaves_a_port_udev_shows_as_no_module(tmp_path: Path) -> None:
    """A quectel.conf section naming a Huawei stick's tty (udev's VID:PID is no LTE
    module's): chan_quectel runs LTE modules only, so dongled cannot tell the dialect and
    sends nothing there (its fallback is Huawei's); the admin is told why."""
    sims = [EC25(make_imei(0), "250010000000000")]
    with rig(tmp_path, 1, model=EC25_USB, sims=sims, personality="quectel-im") as r:
        r.wait_all_right(timeout=10)
        huawei = r.tb.add_stick(
            E1550_USB, E1550(make_imei(51)), r.take_ttys(len(E1550_USB.interfaces)), usb_port="6"
        )
        text = section_text(9, "", huawei.data_port.devnode, huawei.audio_port.devnode)
        r.conf.write_text(r.conf.read_text() + text.replace("imei=        ; SIM of city 9\n", ""))

        done = r.cli("adopt")
        assert "cannot tell which LTE module" in done.stdout + done.stderr, done.stdout
        assert huawei.data_port.sim_port.commands == []
