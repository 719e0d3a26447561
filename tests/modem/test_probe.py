"""The probe against the pty modem simulator: one test per real stick quirk."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from dongled.core.errors import PortBusyError, ProbeError, ProbeTimeoutError
from dongled.modem.conversation import ProbeTimeouts
from dongled.modem.identity import Identity
from dongled.modem.portlock import lock_path
from dongled.modem.probe import identify_port
from tests.support.modemsim import E173, E1550, E1612, Role, StickSim, pty_modem

IMEI = "351234567890124"
IMSI = "250011234567890"
FAST = ProbeTimeouts(first=0.5, command=0.5)
STATE_CHANGING = ("ATZ", "AT+CFUN", "AT^CURC", "AT^U2DIAG", "AT^SETPORT", "AT&F")


def identify(path: str, lock_dir: Path, timeouts: ProbeTimeouts = FAST) -> Identity:
    return asyncio.run(identify_port(path, str(lock_dir), timeouts))


def assert_harmless(commands: list[str]) -> None:
    for cmd in commands:
        assert not cmd.upper().startswith(STATE_CHANGING), f"probe sent {cmd}"


def test_e1550_identified_with_echo_on(tmp_path: Path) -> None:
    sim = E1550(IMEI, IMSI)
    with pty_modem(sim) as port:
        ident = identify(port.path, tmp_path)
        assert ident.imei == IMEI and ident.imsi == IMSI
        assert ident.model == "E1550" and ident.manufacturer == "huawei" and ident.voice is True
        assert ident.iccid == sim.iccid and sim.iccid.startswith("89")
        assert port.commands[0] == "ATE0"
        assert_harmless(port.commands)
    assert sim.violations == []
    assert not list(tmp_path.iterdir()), "our lock must be released"


def test_iccid_as_raw_sim_bytes_is_read_back(tmp_path: Path) -> None:
    iccid = "8970250011234567890"
    raw = "".join((iccid + "F")[i + 1] + (iccid + "F")[i] for i in range(0, 20, 2))
    with pty_modem(StickSim(IMEI, IMSI, iccid=raw)) as port:
        assert identify(port.path, tmp_path).iccid == iccid


def test_imei_only_in_ati(tmp_path: Path) -> None:
    with pty_modem(E1612(IMEI, IMSI)) as port:
        assert identify(port.path, tmp_path).imei == IMEI


def test_cme_error_on_cgsn_falls_back_to_ati(tmp_path: Path) -> None:
    with pty_modem(StickSim(IMEI, IMSI, cgsn_memory_failure=True)) as port:
        assert identify(port.path, tmp_path).imei == IMEI


def test_no_sim_still_identified_without_imsi(tmp_path: Path) -> None:
    with pty_modem(E173(IMEI, None)) as port:
        ident = identify(port.path, tmp_path)
        assert ident.imei == IMEI and ident.imsi is None and ident.iccid is None
        assert "AT^ICCID?" not in port.commands  # no SIM, no card number to ask for


def test_no_voice(tmp_path: Path) -> None:
    with pty_modem(StickSim(IMEI, IMSI, voice=False)) as port:
        assert identify(port.path, tmp_path).voice is False


def test_unsolicited_lines_and_garbage(tmp_path: Path) -> None:
    sim = StickSim(IMEI, IMSI, unsolicited=("^RSSI:17", "RING", "^BOOT:1,0,0,4,0"), garbage=True)
    with pty_modem(sim) as port:
        assert identify(port.path, tmp_path).imei == IMEI


def test_silent_port_times_out_quickly(tmp_path: Path) -> None:
    with (
        pty_modem(StickSim(IMEI, IMSI), role=Role.SILENT) as port,
        pytest.raises(ProbeTimeoutError, match="ATE0"),
    ):
        identify(port.path, tmp_path)
    assert not list(tmp_path.iterdir())


def test_slow_stick_times_out(tmp_path: Path) -> None:
    with (
        pty_modem(StickSim(IMEI, IMSI, answer_delay=2.0)) as port,
        pytest.raises(ProbeTimeoutError),
    ):
        identify(port.path, tmp_path)


def test_unplugged_mid_answer(tmp_path: Path) -> None:
    with (
        pty_modem(StickSim(IMEI, IMSI, unplug_on="AT+CGSN")) as port,
        pytest.raises(ProbeError, match="vanished"),
    ):
        identify(port.path, tmp_path)
    assert not list(tmp_path.iterdir())


def test_wrong_luhn_imei_is_taken_exactly(tmp_path: Path) -> None:
    # some operators rewrite IMEIs without a valid check digit: taken as the 15 digits said
    with pty_modem(StickSim("351234567890126", IMSI)) as port:
        assert identify(port.path, tmp_path).imei == "351234567890126"


def test_an_all_zero_imei_is_refused(tmp_path: Path) -> None:
    with (
        pty_modem(StickSim("000000000000000", IMSI)) as port,
        pytest.raises(ProbeError, match="no valid IMEI"),
    ):
        identify(port.path, tmp_path)


@pytest.mark.parametrize("answer", ["35123456789012\n[evil]", "351234567890124;x", "#include x"])
def test_injection_never_becomes_an_imei(tmp_path: Path, answer: str) -> None:
    with pty_modem(StickSim(answer, IMSI)) as port, pytest.raises(ProbeError):
        identify(port.path, tmp_path)


def test_locked_port_gets_not_a_byte(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pty_modem(E1550(IMEI, IMSI)) as port:
            Path(lock_path(str(tmp_path), port.path)).write_text(f"{holder.pid} 5")
            with pytest.raises(PortBusyError):
                identify(port.path, tmp_path)
            assert port.received == b""
    finally:
        holder.kill()
        holder.wait()


def test_port_with_tiocexcl_gets_not_a_byte(tmp_path: Path) -> None:
    import fcntl
    import os
    import termios

    with pty_modem(E1550(IMEI, IMSI)) as port:
        fd = os.open(port.path, os.O_RDWR | os.O_NOCTTY)
        try:
            fcntl.ioctl(fd, termios.TIOCEXCL)
            with pytest.raises(PortBusyError, match="TIOCEXCL"):
                identify(port.path, tmp_path)
            assert port.received == b""
        finally:
            os.close(fd)


def test_port_flocked_by_another_program_gets_not_a_byte(tmp_path: Path) -> None:
    with pty_modem(E1550(IMEI, IMSI)) as port:
        other = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, os, sys, time\n"
                f"fd = os.open({port.path!r}, os.O_RDWR | os.O_NOCTTY)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(30)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "locked"
            with pytest.raises(PortBusyError, match="flock"):
                identify(port.path, tmp_path)
            assert port.received == b""
        finally:
            other.kill()
            other.communicate()


# ---- what the probe says when it cannot tell, and what it reads past ------------------------


def test_a_masked_ati_imei_is_said_as_such_not_as_none(tmp_path: Path) -> None:
    """Some firmwares print `IMEI: 35693803*******` in ATI: the error names that line."""
    sim = StickSim(IMEI, IMSI, imei_only_in_ati=True, ati_imei="35123456*******")
    with pty_modem(sim) as port, pytest.raises(ProbeError) as info:
        identify(port.path, tmp_path)
    said = str(info.value)
    assert "ATI has none" not in said
    assert "no valid IMEI (AT+CGSN: ERROR; ATI's IMEI: line is '35123456*******'" in said
    nothing = StickSim(IMEI, IMSI, imei_only_in_ati=True, ati_imei="")
    with pty_modem(nothing) as port, pytest.raises(ProbeError, match="ATI has no IMEI: line"):
        identify(port.path, tmp_path)


def test_the_no_voice_warning_quotes_the_stick_s_own_answer(tmp_path: Path) -> None:
    from dongled.modem.identity import limitations

    sim = StickSim(IMEI, IMSI, voice=False, voice_answer="COMMAND NOT SUPPORT")
    with pty_modem(sim) as port:
        ident = identify(port.path, tmp_path)
    assert ident.voice is False
    (said,) = limitations(ident, "probe")
    assert said.startswith("no voice (AT^CVOICE? answered COMMAND NOT SUPPORT): ")
    with pty_modem(StickSim(IMEI, IMSI, voice=False)) as port:
        (said,) = limitations(identify(port.path, tmp_path), "probe")
    assert said.startswith("no voice (AT^CVOICE? answered ERROR): ")


def _lte(sim: StickSim, lock_dir: Path) -> Identity:
    from dongled.modem import lte

    module = lte.module_for(*sim.usb.vid_pid.split(":"))
    assert module is not None
    with pty_modem(sim) as port:
        return asyncio.run(identify_port(port.path, str(lock_dir), FAST, module.family))


def test_the_lte_probe_falls_back_to_ati_s_imei_line(tmp_path: Path) -> None:
    """AT+CGSN and AT+GSN both ERROR: a module whose ATI prints `IMEI:` (SIMCom) is still
    named, as a Huawei stick is; Quectel's ATI has none, and the error says so."""
    from tests.support.modemsim import EC25, SIM7600

    assert _lte(SIM7600(IMEI, IMSI, imei_only_in_ati=True), tmp_path).imei == IMEI
    with pytest.raises(ProbeError, match=r"AT\+CGSN: ERROR; ATI has no IMEI: line"):
        _lte(EC25(IMEI, IMSI, imei_only_in_ati=True), tmp_path)


@pytest.mark.parametrize("module", ["EC25", "SIM7600"])
def test_the_lte_probe_reads_maker_model_firmware_past_boot_messages(
    tmp_path: Path, module: str
) -> None:
    """A module that has just started prints `RDY`, `+QIND: PB DONE`... into the first
    answers: skipped by their shape, never taken as maker, model or firmware."""
    from tests.support import modemsim

    cls = getattr(modemsim, module)
    boot = ("RDY", "+QIND: PB DONE", "+CPIN: READY", "SMS DONE", "+QUSIM: 1")
    sim = cls(IMEI, IMSI, leading=boot)
    ident = _lte(sim, tmp_path)
    assert (ident.manufacturer, ident.model, ident.firmware) == (
        sim.manufacturer,
        sim.model,
        sim.firmware,
    )


def test_the_daemons_lean_probe_asks_only_what_binding_needs(tmp_path: Path) -> None:
    """A returning line waits for every answer of the daemon's probe: IMEI, IMSI and the
    ICCID (3 commands, was 6: no ATE0, no ATI, no AT^CVOICE?; the model and voice of a
    device Asterisk runs come from its listing). A SIM-less stick is asked its voice instead
    of its ICCID: it never comes up in chan_dongle, so nothing else would tell."""
    lean = ProbeTimeouts(first=0.5, command=0.5)
    sim = E1550(IMEI, IMSI)
    with pty_modem(sim) as port:
        ident = asyncio.run(identify_port(port.path, str(tmp_path), lean, lean=True))
        assert (ident.imei, ident.imsi, ident.iccid) == (IMEI, IMSI, sim.iccid)
        assert ident.voice is None and ident.model == ""
        assert port.commands == ["AT+CGSN", "AT+CIMI", "AT^ICCID?"]
    with pty_modem(StickSim(IMEI, None, voice=False)) as port:
        ident = asyncio.run(identify_port(port.path, str(tmp_path), lean, lean=True))
        assert ident.imsi is None and ident.voice is False
        assert port.commands == ["AT+CGSN", "AT+CIMI", "AT^CVOICE?"]
    assert sim.violations == []
