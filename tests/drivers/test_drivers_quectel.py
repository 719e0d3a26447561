"""chan_quectel's modules and forks: the LTE module table, probe commands, the forks' Driver
values (CLI lines, never-send list, RE's interval rule), the parked card, ALSA card discovery.
Pure functions; the fakes they must agree with are named where used."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dongled.conf import alsadev
from dongled.conf.parked import PARKED_ALSADEV
from dongled.drivers.base import AmiVerbs, CliVerbs
from dongled.drivers.chan_quectel import QUECTEL_IM, QUECTEL_RE, interval_from
from dongled.drivers.quectel_cli import acknowledged
from dongled.hotplug import soundcards as alsa
from dongled.modem import lte
from dongled.modem.conversation import ProbeTimeouts
from dongled.modem.lte import Family
from dongled.modem.probe import identify_port
from tests.support.modemsim import (
    EC25,
    EC25_USB,
    SIM7600,
    SIM7600_USB,
    Role,
    UsbModel,
    pty_modem,
    read_only,
)

IMEI = "866758041234564"
SYS = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1"


# --- the module table agrees with the simulators' USB layouts ------------------------------------


@pytest.mark.parametrize("usb", [EC25_USB, SIM7600_USB])
def test_table_matches_the_simulated_layouts(usb: UsbModel) -> None:
    module = lte.module_for(usb.vid.upper(), usb.pid)
    assert module is not None
    assert module.layout.data == usb.data_interface
    assert module.layout.audio == usb.audio_interface
    second = module.layout.second_at
    assert second is not None
    assert dict(usb.interfaces)[second] is Role.MODEM  # answers AT too: never chosen
    assert lte.complete(module, frozenset(n for n, _ in usb.interfaces))
    assert not lte.complete(module, frozenset({0, 1, 2}))


def test_table_entries() -> None:
    families = {f"{v}:{p}": (m.family, m.confirmed) for (v, p), m in lte.KNOWN.items()}
    assert families == {
        "2c7c:0125": (Family.QUECTEL, True),
        "2c7c:0121": (Family.QUECTEL, True),
        "05c6:9215": (Family.QUECTEL, False),
        "1e0e:9001": (Family.SIMCOM, True),
    }
    assert lte.module_for("12d1", "1001") is None


# --- probing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(Family))
def test_probe_commands_only_read(family: Family) -> None:
    commands = (
        *lte.PROBE_COMMANDS[family],
        lte.IMEI_FALLBACK,
        lte.ATI_FALLBACK,
        lte.VOICE_QUERY[family],
    )
    assert all(read_only(c) for c in commands), commands
    assert "ATZ" not in commands


@pytest.mark.parametrize(
    "command",
    ["ATZ", "AT&F", "AT+CFUN=1,1", 'AT+QCFG="usbnet",0', "AT+QPCMV=1,2", "AT+CPCMREG=1",
     "AT+QPOWD", "AT+CRESET", "AT^CURC=0", "at+cnmi=2,1,0,2,0", "ATE0;+CFUN=0"],
)  # fmt: skip
def test_state_changing_commands_are_not_read_only(command: str) -> None:
    assert not read_only(command)


@pytest.mark.parametrize(
    ("sim", "family"), [(EC25(IMEI), Family.QUECTEL), (SIM7600(IMEI), Family.SIMCOM)]
)
def test_answers_of_the_simulators_parse(sim: EC25 | SIM7600, family: Family) -> None:
    def ask(cmd: str) -> tuple[str, ...]:
        lines = sim.answer(cmd)
        assert lines is not None
        assert lines[-1] == "OK", (cmd, lines)
        return tuple(lines[:-1])

    probe = lte.PROBE_COMMANDS[family]
    assert ask(probe[1])[0].lower().startswith(family.value)  # what chan_quectel matches
    assert lte.firmware_from_cgmr(ask("AT+CGMR")) == sim.firmware
    assert lte.iccid_from_lte_answer(ask(probe[-1])) == sim.iccid
    assert ask(lte.VOICE_QUERY[family])


@pytest.mark.parametrize("sim", [EC25(IMEI), SIM7600(IMEI)])
def test_the_probe_asks_an_lte_module_in_its_own_dialect(
    tmp_path: Path, sim: EC25 | SIM7600
) -> None:
    """Given the module's family (from its VID:PID), the probe reads IMEI, IMSI, ICCID, model
    and voice with the family's read-only commands, and sends no Huawei `^` command (the
    Huawei conversation asked AT^CVOICE?, got ERROR and called the module voiceless)."""
    family = lte.module_for(*sim.usb.vid_pid.split(":"))
    assert family is not None
    with pty_modem(sim) as port:
        fast = ProbeTimeouts(first=0.5, command=0.5)
        ident = asyncio.run(identify_port(port.path, str(tmp_path), fast, family.family))
        assert (ident.imei, ident.imsi, ident.iccid) == (IMEI, sim.imsi, sim.iccid)
        assert ident.voice is True and ident.model == sim.model
        assert not [c for c in port.commands if c.upper().startswith("AT^")]
        assert all(read_only(c) for c in port.commands)
    assert sim.violations == []


def test_info_lines_skip_result_codes_and_boot_messages_by_shape() -> None:
    lines = ("RDY", "+QIND: PB DONE", "+CPIN: READY", "^RSSI:17", "SMS DONE", "Quectel")
    assert lte.info_lines(lines, "AT+CGMI") == ("Quectel",)
    # the command's own prefix is the answer (SIMCom's `+CGMR: ...`), not a result code
    assert lte.info_lines(("+QIND: SMS DONE", "+CGMR: LE20B04"), "AT+CGMR") == ("LE20B04",)
    assert lte.info_lines(("EC25EFAR06A06M4G",), "AT+CGMR") == ("EC25EFAR06A06M4G",)
    assert lte.info_lines(("POWERED DOWN",), "AT+CGMM") == ()


def test_answer_parsers_edge_cases() -> None:
    assert lte.iccid_from_lte_answer(("+QCCID: 8970101234567890123F",)) == "8970101234567890123"
    assert lte.iccid_from_lte_answer(("89701012345678901234",)) == "89701012345678901234"
    assert lte.iccid_from_lte_answer(("+CME ERROR: 10",)) is None
    assert lte.firmware_from_cgmr(("", "+CGMR: LE20B04SIM7600M22")) == "LE20B04SIM7600M22"


# --- the forks -----------------------------------------------------------------------------------


def test_the_forks_as_drivers() -> None:
    """IM is chan_dongle renamed: manager actions, lock files, devices opened at once. RE has
    only its CLI, marks its ttys without lock files, opens devices on its timer, and the lines
    that crash Asterisk are on its never-send list, which none of its own lines is on."""
    im, re = QUECTEL_IM, QUECTEL_RE
    assert isinstance(im.ami, AmiVerbs) and im.lock_files and im.open_interval is None
    assert isinstance(re.ami, CliVerbs) and not re.lock_files and re.open_interval is not None
    assert re.open_interval("[general]\ninterval=7\n") == 7.0
    verbs = re.ami
    lines = {
        "show": verbs.show,
        "reload": verbs.reload.format(when="now"),
        "stop": verbs.stop.format(device="q0"),
        "start": verbs.start.format(device="q0"),
        "settings": verbs.settings.format(device="q0"),
    }
    assert lines == {
        "show": "quectel show devices",
        "reload": "quectel reload now",
        "stop": "quectel stop now q0",
        "start": "quectel start q0",
        "settings": "quectel show device settings q0",
    }
    assert "quectel show device state" in verbs.never
    assert not any(line.startswith(verbs.never) for line in lines.values())
    assert acknowledged("stop", "q0", ["[q0] Stop scheduled"])
    assert not acknowledged("stop", "q0", ["[q0] Device not found"])
    assert not acknowledged("start", "q0", ["[q0] Stop scheduled"])


def test_the_interval_is_read_from_general() -> None:
    text = "[general]\ninterval = 30 ; seconds\n[defaults]\ninterval=5\n[q0]\ndata=/dev/ttyUSB2\n"
    assert interval_from(text) == 30.0
    assert interval_from("[general]\ninterval => 7\n") == 7.0
    assert interval_from("[general]\n;interval=7\n") == 15.0  # RE's usual value
    assert interval_from("[general]\ninterval=soon\n", default=4.0) == 4.0
    assert interval_from("[q0]\ninterval=9\n") == 15.0


def test_the_parked_card_cannot_be_a_real_one() -> None:
    card = PARKED_ALSADEV.partition("CARD=")[2]
    assert len(card) > 15  # longer than any ALSA card id can be


# --- ALSA ----------------------------------------------------------------------------------------


def sound(port: str, number: int, card_id: str) -> tuple[str, dict[str, str]]:
    return f"{SYS}/1-1.{port}/1-1.{port}:1.5/sound/card{number}", {
        "id": card_id,
        "number": str(number),
    }


def test_cards_from_sysfs_and_which_is_whose() -> None:
    devices = dict(
        [
            sound("1", 1, "Android"),
            sound("2", 2, "Android_1"),
            (f"{SYS}/1-1.1/1-1.1:1.5/sound/card1/controlC1", {"dev": "116:0"}),
            ("/sys/devices/pci0000:00/0000:00:1f.3/sound/card0", {"id": "PCH", "number": "0"}),
            (f"{SYS}/1-1.3/1-1.3:1.5/sound/card3", {"id": "bad id!", "number": "3"}),
            (f"{SYS}/1-1.4/1-1.4:1.5/sound/card4", {"id": "X", "number": "5"}),
        ]
    )
    cards = alsa.cards_from_sysfs(devices)
    assert [(c.number, c.id) for c in cards] == [(0, "PCH"), (1, "Android"), (2, "Android_1")]
    second = alsa.card_of(f"{SYS}/1-1.2", cards)
    assert second is not None
    assert alsadev.alsadev_for(second.id) == "hw:CARD=Android_1"
    assert alsa.card_of(f"{SYS}/1-1", cards) is None  # the hub holds two: which one?
    assert alsa.card_of(f"{SYS}/1-1.9", cards) is None
    assert alsa.card_of(f"{SYS}/1-1.1", cards) != alsa.card_of(f"{SYS}/1-1.10", cards)


@pytest.mark.parametrize("sim", [EC25(IMEI), SIM7600(IMEI)])
def test_the_daemons_lean_probe_of_an_lte_module_stays_in_its_dialect(
    tmp_path: Path, sim: EC25 | SIM7600
) -> None:
    """The daemon's probe (only what binding needs) in the module's own dialect: IMEI, IMSI,
    its ICCID command, nothing else, and no `^` command."""
    family = lte.module_for(*sim.usb.vid_pid.split(":"))
    assert family is not None
    with pty_modem(sim) as port:
        fast = ProbeTimeouts(first=0.5, command=0.5)
        ident = asyncio.run(identify_port(port.path, str(tmp_path), fast, family.family, lean=True))
        assert (ident.imei, ident.imsi, ident.iccid) == (IMEI, sim.imsi, sim.iccid)
        assert port.commands == [
            "AT+CGSN",
            "AT+CIMI",
            lte.PROBE_COMMANDS[family.family][-1],
        ]
        assert all(read_only(c) for c in port.commands)
    assert sim.violations == []
