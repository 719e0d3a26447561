"""The AT parser, fed byte by byte, with garbage, echo and unsolicited lines around answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dongled.core.errors import TooLongAnswer
from dongled.modem import at
from dongled.modem.identity import imei_from_cgsn

IMEI = "351234567890124"


def collect(command: str, stream: bytes, chunk: int = 1) -> at.Reply | None:
    splitter = at.LineSplitter()
    collector = at.ReplyCollector(command)
    for i in range(0, len(stream), chunk):
        for line in splitter.feed(stream[i : i + chunk]):
            reply = collector.add(line)
            if reply is not None:
                return reply
    return None


def test_echo_and_unsolicited_lines_are_skipped_byte_by_byte() -> None:
    stream = b"AT+CGSN\r\r\n^RSSI:17\r\n" + IMEI.encode() + b"\r\n^BOOT:1,0,0,4,0\r\n\r\nOK\r\n"
    reply = collect("AT+CGSN", stream)
    assert reply is not None and reply.ok
    assert reply.lines == (IMEI,)
    assert imei_from_cgsn(reply.lines) == IMEI


def test_cme_error_is_final() -> None:
    reply = collect("AT+CGSN", b"\r\n+CME ERROR: memory failure\r\n")
    assert reply is not None and not reply.ok
    assert reply.final == "+CME ERROR: memory failure"


def test_creg_answer_is_not_unsolicited_for_creg_query() -> None:
    reply = collect("AT+CREG?", b"\r\n+CREG: 2,1\r\n\r\nOK\r\n")
    assert reply is not None and reply.lines == ("+CREG: 2,1",)
    assert at.is_unsolicited("+CREG: 1", "AT+CGSN")


def test_garbage_lines_dropped_and_endless_line_bounded() -> None:
    splitter = at.LineSplitter()
    assert splitter.feed(b"\xff\xfe\x00junk\r\n") == []
    assert splitter.feed(b"A" * 100_000) == []  # no newline ever: memory stays bounded
    assert len(splitter._buf) <= at.MAX_LINE
    assert splitter.feed(b"\r\nOK\r\n") == ["OK"]


def test_answer_without_final_is_cut_off() -> None:
    collector = at.ReplyCollector("ATI")
    for i in range(at.MAX_LINES):
        assert collector.add(f"line {i}") is None
    with pytest.raises(TooLongAnswer) as info:
        collector.add("one line too many")
    assert (info.value.command, info.value.lines) == ("ATI", at.MAX_LINES + 1)


@settings(max_examples=300, deadline=None)
@given(
    noise=st.lists(
        st.sampled_from([b"^RSSI:9", b"RING", b'+CLIP: "123",129', b"\xfa\xfb"]), max_size=4
    ),
    chunk=st.integers(min_value=1, max_value=17),
)
def test_fragmentation_and_noise_never_change_the_answer(noise: list[bytes], chunk: int) -> None:
    junk = b"".join(n + b"\r\n" for n in noise)
    stream = b"AT+CGSN\r\r\n" + junk + IMEI.encode() + b"\r\n" + junk + b"OK\r\n"
    reply = collect("AT+CGSN", stream, chunk)
    assert reply is not None and reply.ok
    assert imei_from_cgsn(reply.lines) == IMEI


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_and_never_yield_a_bad_imei(data: bytes) -> None:
    splitter = at.LineSplitter()
    collector = at.ReplyCollector("AT+CGSN")
    try:
        for line in splitter.feed(data):
            assert "\r" not in line and "\n" not in line
            reply = collector.add(line)
            if reply is not None:
                imei = imei_from_cgsn(reply.lines)
                assert imei is None or (len(imei) == 15 and imei.isdigit())
                break
    except TooLongAnswer:
        pass
