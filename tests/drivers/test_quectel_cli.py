"""dongled.drivers.quectel_cli reads the RoEdAl fork's `quectel show devices` as it really is.

The fork prints rows with `%-12.12s %-5d %-10.10s %-4d %-4d %-7s %-14.14s %-17.17s %-16.16s
%-16.16s %-14.14s` under a 9-column header (docs/chan_quectel.md); the rows here are built
with that format, and a few are spelled out by hand.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dongled.drivers.quectel_cli import ID_WIDTH, CliDevice, parse_row, parse_show_devices
from dongled.modem.identity import luhn_ok

ROW = "%-12.12s %-5d %-10.10s %-4d %-4d %-7s %-14.14s %-17.17s %-16.16s %-16.16s %-14.14s"
HEADER_FORMAT = "%-12.12s %-5.5s %-10.10s %-4.4s %-4.4s %-7.7s %-14.14s %-17.17s %-14.14s"
HEADER_WORDS = ("ID", "Group", "State", "RSSI", "Mode", "Provider Name", "Model", "Firmware")
HEADER = HEADER_FORMAT % (*HEADER_WORDS, "Number")
IMEI = "866758041234564"
IMEI_2 = "861234567890127"
IMSI = "250011234567890"


def test_sample_imeis_are_valid() -> None:
    assert luhn_ok(IMEI)
    assert luhn_ok(IMEI_2)


def row(*values: object) -> str:
    return ROW % values


def test_header_misleads_and_is_skipped() -> None:
    assert HEADER.rstrip() == (
        "ID           Group State      RSSI Mode Provide Model          Firmware          Number"
    )
    assert HEADER.index("Number") == 81  # where a row's IMEI starts: "Number" heads the IMEIs
    listing = parse_show_devices([HEADER])
    assert listing.header_seen
    assert listing.devices == ()
    assert listing.unparsed == ()


def test_a_free_device_spelled_out() -> None:
    line = (
        "quectel0     0     Free       17   7    MegaFon EC25           EC25EFAR06A06M4G  "
        "866758041234564  250011234567890  +79991234567  "
    )
    assert line == row("quectel0", 0, "Free", 17, 7, "MegaFon", "EC25",
                       "EC25EFAR06A06M4G", IMEI, IMSI, "+79991234567")  # fmt: skip
    assert parse_row(line) == CliDevice(
        device="quectel0",
        group=0,
        state="Free",
        rssi=17,
        mode=7,
        provider="MegaFon",
        model="EC25",
        firmware="EC25EFAR06A06M4G",
        imei=IMEI,
        imsi=IMSI,
        number="+79991234567",
    )


def test_a_long_provider_shifts_the_columns() -> None:
    line = row("sim7600", 1, "Free", 20, 7, "T-Mobile Deutschland", "SIMCOM_SIM7600E-H",
               "LE20B04SIM7600M22", IMEI_2, IMSI, "")  # fmt: skip
    assert line.index(IMEI_2) == 81 + len("T-Mobile Deutschland") - 7
    parsed = parse_row(line)
    assert parsed is not None
    assert (parsed.provider, parsed.model, parsed.firmware) == (
        "T-Mobile Deutschland",
        "SIMCOM_SIM7600",  # cut to 14
        "LE20B04SIM7600M22",
    )
    assert (parsed.imei, parsed.imsi, parsed.number) == (IMEI_2, IMSI, "")


def test_cut_states_names_and_a_never_connected_device() -> None:
    lines = [
        HEADER,
        row("quectel-modem-one", 0, "Not connected", 0, 0, "", "", "", "", "", ""),
        row("q2", 0, "GSM not registered", 0, 0, "", "EC25", "EC25EFAR06A06M4G", IMEI, IMSI, ""),
        row("q3", 0, "Not initialized", 0, 0, "", "EC25", "EC25EFAR06A06M4G", IMEI_2, "", ""),
        row("q4", 0, "Stopped", 0, 0, "", "", "", "", "", ""),
    ]
    listing = parse_show_devices([line.rstrip() for line in lines])  # AMI clients may strip
    assert [(d.device, d.state, d.imei) for d in listing.devices] == [
        ("quectel-mode", "Not connected", ""),
        ("q2", "GSM not registered", IMEI),
        ("q3", "Not initialized", IMEI_2),
        ("q4", "Stopped", ""),
    ]
    first = listing.devices[0]
    assert first.device_cut
    assert first.names("quectel-modem-one")
    assert listing.find("quectel-modem-two") == [first]  # 12 chars cannot tell them apart
    assert not first.connected
    assert listing.devices[1].connected
    # Which section a row stands for: a cut ID that fits one section names it; one that fits
    # two names neither (both are returned, to be told); an uncut ID is the name itself.
    assert first.section_of(["quectel-modem-one", "q2"]) == ("quectel-modem-one", [])
    both = ["quectel-modem-one", "quectel-modem-two"]
    assert first.section_of(both) == ("quectel-mode", both)
    assert first.section_of(["q2"]) == ("quectel-mode", [])
    assert listing.devices[1].section_of(["q2", "q2-other"]) == ("q2", [])


def test_output_prefixes_newlines_and_empty_tables() -> None:
    text = "Output: " + HEADER + "\nOutput: " + row("q", 0, "Free", 9, 7, "MTS", "EC25", "x",
                                                       IMEI, IMSI, "")  # fmt: skip
    assert [d.device for d in parse_show_devices([text]).devices] == ["q"]
    empty = parse_show_devices([])
    assert (empty.devices, empty.header_seen) == ((), False)
    assert parse_show_devices(["", HEADER, ""]).devices == ()


def test_garbage_is_set_aside() -> None:
    junk = [
        "No such command 'quectel show devices' (type 'core show help quectel show devices' "
        "for other possible commands)",
        "--END COMMAND--",
        "\x00\xff garbage",
        "quectel0",
        "quectel0     x     Free       17   7",
        "quectel0     0      Free      17   7",
        "            0     Free       17   7",
    ]
    listing = parse_show_devices(junk)
    assert listing.devices == ()
    assert listing.unparsed == tuple(junk)


def test_a_provider_with_digits_and_a_digit_only_firmware() -> None:
    line = row("q", 0, "Free", 9, 7, "Beeline 2", "EC25", "123456789012345", IMEI, IMSI, "123")
    parsed = parse_row(line)
    assert parsed is not None
    assert (parsed.provider, parsed.firmware, parsed.imei, parsed.number) == (
        "Beeline 2",
        "123456789012345",
        IMEI,
        "123",
    )


# --- any row the format can print ---------------------------------------------------------


@st.composite
def imeis(draw: st.DrawFn) -> str:
    body = draw(st.text("0123456789", min_size=14, max_size=14).filter(lambda s: s.strip("0")))
    return body + next(d for d in "0123456789" if luhn_ok(body + d))


_NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=20)
_WORDS = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh -._", max_size=22)
_FIRMWARE = st.from_regex(r"\A[A-Z]{1,3}[A-Z0-9_.]{0,18}\Z")


@st.composite
def rows(draw: st.DrawFn) -> tuple[str, CliDevice]:
    imei = draw(st.one_of(st.just(""), imeis()))
    imsi = draw(st.from_regex(r"\A[0-9]{15}\Z")) if imei else ""
    number = draw(st.from_regex(r"\A\+?[0-9]{0,16}\Z")) if imei else ""
    device, provider = draw(_NAME), draw(_WORDS)
    model, firmware = draw(_WORDS), draw(_FIRMWARE)
    group, rssi, mode = (
        draw(st.integers(0, 99999)),
        draw(st.integers(0, 99)),
        draw(st.integers(0, 7)),
    )
    state = draw(st.sampled_from(["Free", "Not connected", "GSM not registered", "Stopped"]))
    line = row(device, group, state, rssi, mode, provider, model, firmware, imei, imsi, number)
    if draw(st.booleans()):
        line = line.rstrip()
    expected = CliDevice(
        device=device[:ID_WIDTH],
        group=group,
        state=state,
        rssi=rssi,
        mode=mode,
        provider=provider.strip(),
        model=model[:14].strip(),
        firmware=firmware[:17].strip(),
        imei=imei,
        imsi=imsi,
        number=number[:14],
    )
    return line, expected


@given(rows())
def test_every_printed_row_reads_back(sample: tuple[str, CliDevice]) -> None:
    line, expected = sample
    if not expected.imei and len(expected.provider) > 7:
        return  # no IMEI to find the shifted columns by (a provider comes after the IMEI)
    assert parse_row(line) == expected


@given(st.lists(rows(), max_size=6), st.lists(st.text(max_size=60), max_size=4))
def test_listing_keeps_rows_in_order_among_noise(
    samples: list[tuple[str, CliDevice]], noise: list[str]
) -> None:
    listing = parse_show_devices([HEADER, *(line for line, _ in samples), *noise])
    if all(e.imei or len(e.provider) <= 7 for _, e in samples):
        assert list(listing.devices[: len(samples)]) == [e for _, e in samples]
    assert len(listing.devices) + len(listing.unparsed) >= len(samples)


@given(st.text(max_size=200))
def test_never_raises_on_any_text(text: str) -> None:
    parse_show_devices([text])
