"""Campaign 2: lying and failing modems.

Property-based: the AT parser with arbitrary bytes and arbitrary fragmentation, and the whole
probe (`identify_port`) against a scripted pty modem whose every answer hypothesis draws:
garbage, unsolicited lines, endless lines, no final result, a tty that vanishes (EIO)
mid-answer. The probe may only return an Identity whose IMEI is valid and was really sent
as an answer line, or raise ProbeError; anything else counts as a crash.
Injection: sticks answering AT+CGSN with newlines, `[section]`, `#include`, `;` or a wrong
Luhn digit, against `dongled run` as a real subprocess; nothing of it may reach the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dongled.core.errors import ProbeError, TooLongAnswer
from dongled.modem import at
from dongled.modem.conversation import ProbeTimeouts
from dongled.modem.identity import Identity, valid_imei
from dongled.modem.probe import identify_port
from tests.support.figures import figure
from tests.support.marks import needs_umockdev
from tests.support.modemsim import StickSim
from tests.support.rig import make_imei, rig

GOOD_IMEI = make_imei(42)
BAD_LUHN = GOOD_IMEI[:-1] + str((int(GOOD_IMEI[-1]) + 1) % 10)
COMMANDS = ("ATE0", "ATI", "AT+CGSN", "AT+CIMI", "AT^CVOICE?")

# ---- the parser alone ---------------------------------------------------------------------


@st.composite
def _chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(st.binary(max_size=3000))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=40)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return data, pieces


def test_line_splitter_any_bytes_any_fragmentation() -> None:
    runs = 0

    @settings(max_examples=400, deadline=None)
    @given(_chunked())
    def check(sample: tuple[bytes, list[bytes]]) -> None:
        nonlocal runs
        runs += 1
        data, pieces = sample
        whole = at.LineSplitter().feed(data)
        split = at.LineSplitter()
        got: list[str] = []
        for piece in pieces:
            got += split.feed(piece)
            assert len(split._buf) <= at.MAX_LINE  # bounded whatever arrives
        assert got == whole  # fragmentation never changes what is read
        for line in got:
            assert 0 < len(line) <= at.MAX_LINE and line.isprintable() and line.isascii()

    check()
    figure("at-parser", examples=runs, crashes=0, property="fragmentation-invariant, bounded")


_LINES = st.one_of(
    st.sampled_from(
        [
            "OK",
            "ERROR",
            "+CME ERROR: 10",
            "RING",
            "^RSSI:17",
            "^BOOT:1,0,0,4,0",
            "+CREG: 1",
            GOOD_IMEI,
            BAD_LUHN,
            "000000000000000",
            "ATE0",
            "AT+CGSN",
            "Manufacturer: huawei",
            f"IMEI: {GOOD_IMEI}",
            f"IMEI: {BAD_LUHN}",
            "[dongle0]",
            "#include /etc/passwd",
            f"{GOOD_IMEI};x",
            f"+CGSN: {GOOD_IMEI}",
            '+CGSN: "' + GOOD_IMEI + '"',
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=40),
)


def test_reply_collector_only_ever_returns_what_the_modem_sent() -> None:
    runs = 0

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(COMMANDS), st.lists(_LINES, max_size=80))
    def check(command: str, lines: list[str]) -> None:
        nonlocal runs
        runs += 1
        collector = at.ReplyCollector(command)
        reply = None
        try:
            for line in lines:
                reply = collector.add(line)
                if reply is not None:
                    break
        except TooLongAnswer:
            return
        if reply is not None:
            assert at.is_final(reply.final)
            assert len(reply.lines) <= at.MAX_LINES
            assert all(line in lines for line in reply.lines)
            assert not any(at.is_unsolicited(line, command) for line in reply.lines)

    check()
    figure("at-collector", examples=runs, crashes=0)


# ---- the whole probe against a scripted pty modem -------------------------------------------

_SEPS = st.sampled_from([b"\r\n", b"\r", b"\n", b"\r\r\n", b""])
_FINALS = st.sampled_from([b"OK", b"ERROR", b"+CME ERROR: memory failure", b"", b"NO CARRIER"])


@st.composite
def _answer(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["lines", "binary", "endless", "mixed"]))
    if kind == "binary":
        return draw(st.binary(max_size=600))
    if kind == "endless":  # one line that never ends, then maybe a final
        return b"A" * draw(st.integers(600, 5000)) + draw(st.sampled_from([b"", b"\r\nOK\r\n"]))
    parts: list[bytes] = []
    for line in draw(st.lists(_LINES, max_size=8)):
        parts.append(draw(_SEPS) + line.encode("latin-1") + draw(_SEPS))
    if kind == "mixed":
        parts.insert(draw(st.integers(0, len(parts))), draw(st.binary(max_size=50)))
    parts.append(b"\r\n" + draw(_FINALS) + b"\r\n")
    return b"".join(parts)


@dataclass
class Script:
    answers: dict[str, bytes]
    chunk: int
    vanish_at: tuple[str, int] | None  # (command, byte count): close the master there
    sent: dict[str, bytes] = field(default_factory=dict)


@st.composite
def _script(draw: st.DrawFn) -> Script:
    answers = {cmd: draw(_answer()) for cmd in COMMANDS}
    if draw(st.booleans()):  # often an honest IMEI, so the success path is exercised too
        answers["ATE0"] = b"\r\nOK\r\n"
        plain = st.sampled_from([b"\r\nOK\r\n", b"\r\nERROR\r\n", b"\r\n^RSSI:5\r\n\r\nOK\r\n"])
        for cmd in ("ATI", "AT+CIMI", "AT^CVOICE?"):
            answers[cmd] = draw(st.one_of(plain, _answer()))
        answers["AT+CGSN"] = draw(st.sampled_from([GOOD_IMEI, BAD_LUHN])).encode()
        honest_end = st.sampled_from([b"\r\nOK\r\n", b"\r\n^RSSI:5\r\n\r\nOK\r\n"])
        answers["AT+CGSN"] += b"\r\n" + draw(st.one_of(honest_end, _answer()))
        answers["AT+CGSN"] = b"\r\n" + answers["AT+CGSN"]
    vanish = None
    if draw(st.integers(0, 4)) == 0:
        cmd = draw(st.sampled_from(COMMANDS))
        vanish = (cmd, draw(st.integers(0, len(answers[cmd]))))
    return Script(answers, draw(st.integers(1, 64)), vanish)


async def _serve(master: int, script: Script, done: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    buf = bytearray()

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except OSError:
            data = b""
        if not data:
            return
        buf.extend(data)
        while b"\r" in buf:
            raw, _, rest = bytes(buf).partition(b"\r")
            buf[:] = rest
            cmd = raw.decode("ascii", "replace").strip()
            answer = script.answers.get(cmd, b"\r\nOK\r\n")
            if script.vanish_at is not None and script.vanish_at[0] == cmd:
                answer = answer[: script.vanish_at[1]]
                script.sent[cmd] = answer
                _write(master, answer, script.chunk)
                loop.remove_reader(master)
                os.close(master)
                done.set()
                return
            script.sent[cmd] = answer
            _write(master, answer, script.chunk)

    loop.add_reader(master, readable)


def _write(fd: int, data: bytes, chunk: int) -> None:
    for i in range(0, len(data), chunk):
        with contextlib.suppress(OSError):
            os.write(fd, data[i : i + chunk])


def _answer_lines(data: bytes) -> set[str]:
    return set(at.LineSplitter().feed(data + b"\r\n"))


def test_probe_against_arbitrary_modems(tmp_path: Path) -> None:
    stats = {"examples": 0, "identified": 0, "refused": 0, "vanished": 0, "crashes": 0}
    lock_dir = tmp_path / "lock"
    lock_dir.mkdir()
    fast = ProbeTimeouts(first=0.05, command=0.05)

    @settings(
        max_examples=int(os.environ.get("DONGLED_PROBE_EXAMPLES", "120")),
        deadline=None,
        derandomize=True,  # the same examples on every run: CI cannot flake on the mix
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_script())
    def check(script: Script) -> None:
        stats["examples"] += 1
        master, slave = os.openpty()
        tty.setraw(slave)
        path = os.ttyname(slave)
        closed = asyncio.Event()

        async def go() -> Identity | ProbeError:
            await _serve(master, script, closed)
            try:
                return await asyncio.wait_for(identify_port(path, str(lock_dir), fast), 5)
            except ProbeError as exc:
                return exc
            finally:
                if not closed.is_set():
                    asyncio.get_running_loop().remove_reader(master)

        try:
            result = asyncio.run(go())
        except BaseException:
            stats["crashes"] += 1
            raise
        finally:
            os.close(slave)
            if not closed.is_set():
                os.close(master)
        assert list(lock_dir.iterdir()) == [], "the probe's lock must be gone"
        if script.vanish_at is not None:
            stats["vanished"] += 1
        if isinstance(result, ProbeError):
            stats["refused"] += 1
            return
        stats["identified"] += 1
        assert valid_imei(result.imei)
        said = _answer_lines(script.sent.get("AT+CGSN", b""))
        ati = _answer_lines(script.sent.get("ATI", b""))
        assert (
            result.imei in said
            or f"+CGSN: {result.imei}" in said
            or f'+CGSN: "{result.imei}"' in said
            or any(line.split(":", 1)[-1].strip() == result.imei for line in ati)
        ), "an IMEI the modem never sent as a line"

    check()
    figure("probe-arbitrary-modems", invalid_identities_accepted=0, **stats)
    assert stats["identified"] > 0 and stats["refused"] > 0


# ---- injection through AT+CGSN against the real daemon -------------------------------------

LIES = [
    f"{make_imei(1)}\r\n[dongle0]\r\ndata=/dev/ttyS0",  # a valid line, then config text
    "#include /etc/passwd",
    make_imei(2)[:-1] + str((int(make_imei(2)[-1]) + 1) % 10),  # wrong Luhn digit
    f"{make_imei(3)};\r\naudio=/dev/ttyS1",  # ';' glued to the digits
    "35693803\r\n0000039",  # the digits split over two lines
]
INJECTED = (b"[dongle0]\r", b"ttyS0", b"ttyS1", b"/etc/passwd", b"#include")


@pytest.mark.e2e
@needs_umockdev
def test_injection_through_cgsn_never_reaches_the_file(tmp_path: Path) -> None:
    sims = [StickSim(make_imei(0), "250010000000000")] + [
        StickSim(lie, f"25001000000000{i}") for i, lie in enumerate(LIES, 1)
    ]
    with rig(tmp_path, len(sims), sims=sims) as r:
        # The test Asterisk loads first and, like chan_dongle, runs the liars on the paths the
        # file names (it never checks an IMEI); dongled must stop that and never redo it.
        before = len(r.asterisk.foreign_bindings)
        r.start_daemon()
        r.wait_all_right([0])
        r.asterisk.wait_for(
            lambda: all(
                e["IMEIState"] in ("", e["IMEISetting"])
                for e in r.asterisk.devices_snapshot().values()
            ),
            15,
            what="no device running a foreign IMEI",
        )
        settled = len(r.asterisk.foreign_bindings)
        r.asterisk.admin_reload()  # an admin's reload must not bring a liar back
        time.sleep(1.5)
        status = r.status()
        body = r.conf.read_bytes()
        for bad in INJECTED:
            assert bad not in body, bad
        devnodes = {p.devnode for s in r.sticks for p in s.ports.values()}
        for line in body.splitlines():
            key, sep, value = line.partition(b"=")
            if sep and key.strip() in (b"data", b"audio"):
                path = value.split(b";")[0].strip().decode()
                assert path in devnodes or path.startswith("/dev/null/dongled-"), line
        assert len(r.asterisk.foreign_bindings) == settled
        r.assert_daemon_alive()
        sticks = status.get("sticks", [])
        assert isinstance(sticks, list)
        text = repr(status).encode()
        assert b"/etc/passwd" not in text and b"ttyS0" not in text
        identified = [s.get("imei") for s in sticks if s.get("imei")]
        # Stick 1's CGSN answer holds a whole valid IMEI line: that, and only that, is kept;
        # stick 3 says 15 digits with a wrong check digit: kept as said (a rewritten IMEI)
        assert sorted(identified) == sorted([make_imei(0), make_imei(1), LIES[2]])
        figure(
            "cgsn-injection",
            lying_sticks=len(LIES),
            identified=len(identified),
            injected_bytes_in_file=0,
            foreign_before_dongled=before,
            foreign_until_dongled_stopped_them=settled,
            foreign_after_admin_reload=len(r.asterisk.foreign_bindings) - settled,
            note="stick 1 is identified by the one valid IMEI line of its answer",
        )
