"""The fake Huawei sticks behave like the real ones, quirks included (no udev needed)."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from tests.support.at_wire import at, opener, read_until_final
from tests.support.modemsim import (
    E171_LAYOUT_21_USB,
    E171_LAYOUT_32_USB,
    E173,
    E173_USB,
    E1550,
    E1550_USB,
    E1612,
    E1750_USB,
    K3765_USB,
    PtyModem,
    Role,
    StickSim,
    pty_modem,
    served_port_count,
    server_thread,
)

IMEI = "356789012345675"
IMSI = "250011234567890"


@pytest.fixture
def modem() -> Iterator[tuple[StickSim, PtyModem, int]]:
    sim = E1550(IMEI, IMSI)
    with pty_modem(sim) as pm:
        fd = opener(pm.path)
        try:
            yield sim, pm, fd
        finally:
            os.close(fd)


def test_echo_is_on_after_power_up_and_ate0_turns_it_off(
    modem: tuple[StickSim, PtyModem, int],
) -> None:
    sim, _, fd = modem
    assert at(fd, "AT+CGSN") == b"AT+CGSN\r\r\n" + IMEI.encode() + b"\r\n\r\nOK\r\n"
    assert at(fd, "ATE0") == b"ATE0\r\r\nOK\r\n"
    assert sim.echo is False
    assert at(fd, "AT+CGSN") == b"\r\n" + IMEI.encode() + b"\r\n\r\nOK\r\n"
    assert at(fd, "ATE1") == b"\r\nOK\r\n"
    assert at(fd, "AT") == b"AT\r\r\nOK\r\n"


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("AT", b"\r\nOK\r\n"),
        ("AT+GSN", b"\r\n" + IMEI.encode() + b"\r\n\r\nOK\r\n"),
        ("AT+CIMI", b"\r\n" + IMSI.encode() + b"\r\n\r\nOK\r\n"),
        ("at+cgmi", b"\r\nhuawei\r\n\r\nOK\r\n"),
        ("AT+CGMM", b"\r\nE1550\r\n\r\nOK\r\n"),
        ("AT+CGMR", b"\r\n11.608.12.02.21\r\n\r\nOK\r\n"),
        ("AT^CVOICE?", b"\r\n^CVOICE:0,8000,16,1\r\n\r\nOK\r\n"),
        ("AT+CPIN?", b"\r\n+CPIN: READY\r\n\r\nOK\r\n"),
        ("AT+CSQ", b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n"),
        ("AT+CREG?", b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"),
        ("AT+CMEE=1", b"\r\nOK\r\n"),
        ("AT+CNUM", b"\r\nOK\r\n"),
    ],
)
def test_answers(command: str, answer: bytes) -> None:
    with pty_modem(E1550(IMEI, IMSI, echo=False)) as pm:
        fd = opener(pm.path)
        try:
            assert at(fd, command) == answer
        finally:
            os.close(fd)


def test_ati_block_has_the_imei(modem: tuple[StickSim, PtyModem, int]) -> None:
    _, _, fd = modem
    answer = at(fd, "ATI")
    assert answer.startswith(b"ATI\r\r\nManufacturer: huawei\r\nModel: E1550\r\n")
    assert f"\r\nIMEI: {IMEI}\r\n".encode() in answer
    assert answer.endswith(b"\r\n\r\nOK\r\n")


def test_quirk_imei_only_in_ati() -> None:
    with pty_modem(E1612(IMEI, IMSI, echo=False)) as pm:
        fd = opener(pm.path)
        try:
            assert at(fd, "AT+CGSN") == b"\r\nERROR\r\n"
            assert f"IMEI: {IMEI}".encode() in at(fd, "ATI")
        finally:
            os.close(fd)


def test_quirks_memory_failure_no_sim_no_voice() -> None:
    sim = StickSim(IMEI, None, echo=False, cgsn_memory_failure=True, voice=False)
    with pty_modem(sim) as pm:
        fd = opener(pm.path)
        try:
            assert at(fd, "AT+CGSN") == b"\r\n+CME ERROR: memory failure\r\n"
            assert at(fd, "AT+CIMI") == b"\r\n+CME ERROR: SIM not inserted\r\n"
            assert at(fd, "AT+CPIN?") == b"\r\n+CME ERROR: SIM not inserted\r\n"
            assert at(fd, "AT^CVOICE?") == b"\r\nERROR\r\n"
        finally:
            os.close(fd)


def test_state_changing_commands_are_violations_answered_ok() -> None:
    sim = E1550(IMEI, IMSI, echo=False)
    bad = ["ATZ", "AT+CFUN=1,1", "AT^CURC=0", "AT^U2DIAG=0", "AT^SETPORT=A1,A2"]
    with pty_modem(sim) as pm:
        fd = opener(pm.path)
        try:
            for command in ["AT+CGSN", *bad]:
                at(fd, command)
        finally:
            os.close(fd)
    assert [v.command for v in sim.violations] == bad
    assert all(v.port == pm.path for v in sim.violations)


def test_silent_port_swallows_and_records() -> None:
    sim = E1550(IMEI, IMSI)
    with pty_modem(sim, role=Role.SILENT) as pm:
        fd = opener(pm.path)
        try:
            assert at(fd, "AT", timeout=0.2) == b""
            assert at(fd, "ATZ", timeout=0.2) == b""
        finally:
            os.close(fd)
        assert pm.received == b"AT\rATZ\r"
        assert pm.commands == ["AT", "ATZ"]
    assert [v.command for v in sim.violations] == ["ATZ"]  # recorded on any port


def test_modem_port_answers_at_too() -> None:
    sim = E1550(IMEI, IMSI, echo=False)
    with pty_modem(sim, role="modem") as pm:
        fd = opener(pm.path)
        try:
            assert at(fd, "AT+CGSN") == b"\r\n" + IMEI.encode() + b"\r\n\r\nOK\r\n"
        finally:
            os.close(fd)


def test_echo_state_is_per_stick_across_ports() -> None:
    sim = E1550(IMEI, IMSI)
    with pty_modem(sim, Role.MODEM) as a, pty_modem(sim, Role.PCUI) as b:
        fa, fb = opener(a.path), opener(b.path)
        try:
            assert at(fa, "ATE0") == b"ATE0\r\r\nOK\r\n"
            assert at(fb, "AT") == b"\r\nOK\r\n"
        finally:
            os.close(fa)
            os.close(fb)
    assert len(sim.ports) == 2


def test_mute_stick_never_answers() -> None:
    with pty_modem(StickSim(IMEI, IMSI, mute=True)) as pm:
        fd = opener(pm.path)
        try:
            assert at(fd, "AT", timeout=0.2) == b""
        finally:
            os.close(fd)
        assert pm.received == b"AT\r"


def test_a_booting_stick_is_deaf_until_its_boot_delay_has_passed() -> None:
    sim = StickSim(IMEI, IMSI, boot_delay=0.5)
    with pty_modem(sim) as pm:
        fd = opener(pm.path)
        try:
            assert at(fd, "AT", timeout=0.2) == b""  # no echo, no answer while booting
            time.sleep(max(0.0, sim.booted_at - time.monotonic()))
            assert at(fd, "AT").endswith(b"\r\nOK\r\n")
        finally:
            os.close(fd)


def test_unsolicited_lines_come_between_answer_lines_and_before_the_final() -> None:
    urcs = ("^RSSI:17", "^BOOT:20952084,0,0,0,72", "^MODE:5,4", "RING", '+CLIP: "+79001234567",145')
    sim = StickSim(IMEI, IMSI, echo=False, unsolicited=urcs)
    with pty_modem(sim) as pm:
        fd = opener(pm.path)
        try:
            for _ in range(5):
                lines = [x for x in at(fd, "AT+CGSN").split(b"\r\n") if x]
                assert lines[-1] == b"OK"
                assert sorted(lines[:-1]) == sorted([IMEI.encode(), *(u.encode() for u in urcs)])
        finally:
            os.close(fd)


def test_garbage_between_answers() -> None:
    sim = StickSim(IMEI, IMSI, echo=False, garbage=True)
    with pty_modem(sim) as pm:
        fd = opener(pm.path)
        try:
            answer = at(fd, "AT+CGSN")
        finally:
            os.close(fd)
    noise, _, rest = answer.partition(b"\r\n")
    assert noise
    assert all(b >= 0x80 for b in noise)
    assert rest == IMEI.encode() + b"\r\n\r\nOK\r\n"


def test_slow_answers_arrive_after_the_delay_echo_at_once() -> None:
    with pty_modem(StickSim(IMEI, IMSI, answer_delay=0.3)) as pm:
        fd = opener(pm.path)
        try:
            start = time.monotonic()
            os.write(fd, b"AT\r")
            assert read_until_final(fd, timeout=0.15) == b"AT\r"
            assert read_until_final(fd, timeout=1.0) == b"\r\nOK\r\n"
            assert time.monotonic() - start >= 0.29
        finally:
            os.close(fd)


def test_answers_pending_at_last_close_are_lost_like_on_a_real_tty() -> None:
    with pty_modem(StickSim(IMEI, IMSI, answer_delay=0.1)) as pm:
        fd = opener(pm.path)
        os.write(fd, b"AT+CGSN\r")
        time.sleep(0.02)
        os.close(fd)  # echo is unread, the answer still pending
        time.sleep(0.2)
        with serial.Serial(pm.path, 115200, timeout=0.2) as port:
            assert port.in_waiting == 0
            assert port.read(100) == b""
            port.write(b"AT\r")
            assert port.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"


def test_unplug_mid_answer() -> None:
    with pty_modem(StickSim(IMEI, IMSI, echo=False, unplug_on="AT+CGSN")) as pm:
        port = serial.Serial(pm.path, 115200, timeout=1.0)
        try:
            assert port.write(b"AT\r") == 3
            assert port.read_until(b"OK\r\n") == b"\r\nOK\r\n"
            port.write(b"AT+CGSN\r")
            partial = port.read(6)
            assert partial == b"\r\n3567"
            with pytest.raises(serial.SerialException):
                port.read(100)
            assert pm.port.gone.wait(1.0)
        finally:
            port.close()


def test_unplug_hangs_the_opener_up() -> None:
    with pty_modem(E1550(IMEI, IMSI)) as pm:
        fd = opener(pm.path)
        try:
            pm.unplug()
            assert select.select([fd], [], [], 1.0)[0] == [fd]
            assert os.read(fd, 10) == b""  # hung-up tty: EOF
            with pytest.raises(OSError, match="Input/output error"):
                os.write(fd, b"AT\r")
        finally:
            os.close(fd)
        assert not os.path.exists(pm.path)


def test_received_bytes_are_timestamped() -> None:
    with pty_modem(StickSim(IMEI, IMSI)) as pm:
        fd = opener(pm.path)
        try:
            before = time.monotonic()
            at(fd, "AT")
            at(fd, "ATI")
        finally:
            os.close(fd)
        chunks = pm.chunks
    assert b"".join(c.data for c in chunks) == b"AT\rATI\r"
    assert all(before <= c.time <= time.monotonic() for c in chunks)
    assert [c.time for c in chunks] == sorted(c.time for c in chunks)


def test_usb_models_as_data() -> None:
    assert (E1550_USB.vid_pid, E1550_USB.data_interface, E1550_USB.audio_interface) == (
        "12d1:1001",
        2,
        1,
    )
    assert (E173_USB.vid_pid, E173_USB.data_interface, E173_USB.audio_interface) == (
        "12d1:1436",
        4,
        3,
    )
    assert E1750_USB.interfaces == E173_USB.interfaces
    assert E171_LAYOUT_32_USB.vid_pid == E171_LAYOUT_21_USB.vid_pid == "12d1:1506"
    assert (E171_LAYOUT_32_USB.data_interface, E171_LAYOUT_32_USB.audio_interface) == (3, 2)
    assert (E171_LAYOUT_21_USB.data_interface, E171_LAYOUT_21_USB.audio_interface) == (2, 1)
    assert (K3765_USB.vid_pid, K3765_USB.data_interface) == ("12d1:1465", 2)
    assert E173(IMEI).usb is E173_USB
    for model in (E1550_USB, E173_USB, K3765_USB, E171_LAYOUT_21_USB):
        assert model.interfaces[0] == (0, Role.MODEM)


def test_sixty_ports_one_thread_parallel_answers_idle_cpu() -> None:
    sims = [StickSim(f"35678901234{i:04d}", IMSI, echo=False, answer_delay=0.03) for i in range(20)]
    with contextlib.ExitStack() as stack:
        modems = [
            stack.enter_context(pty_modem(sim, role))
            for sim in sims
            for role in (Role.MODEM, Role.SILENT, Role.PCUI)
        ]
        assert served_port_count() >= 60
        assert [t.name for t in threading.enumerate()].count("modemsim") == 1
        assert server_thread().is_alive()
        pcui = [m for m in modems if m.port.role is Role.PCUI]
        fds = [opener(m.path) for m in pcui]
        try:
            start = time.monotonic()
            for fd in fds:
                os.write(fd, b"AT+CGSN\r")
            answers = [read_until_final(fd) for fd in fds]
            elapsed = time.monotonic() - start
        finally:
            for fd in fds:
                os.close(fd)
        assert [a.split(b"\r\n")[1].decode() for a in answers] == [s.imei for s in sims]
        assert elapsed < 0.5  # answered concurrently, not 20 x 0.03 s one after another
        cpu = time.process_time()
        time.sleep(0.5)
        assert time.process_time() - cpu < 0.05  # idle: the thread sleeps in select()
