from __future__ import annotations

import pytest

from dongled.modem.identity import (
    Identity,
    iccid_from_answer,
    imei_from_cgsn,
    imei_problem,
    limitations,
    parse_ati,
    valid_imei,
)

GOOD = "351234567890124"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (GOOD, True),
        # wrong Luhn digit: some operators rewrite IMEIs so; matched by its exact digits
        ("351234567890126", True),
        ("000000000000000", False),  # clone sticks
        ("35123456789012", False),
        ("3512345678901240", False),
        ("35123456789012a", False),
        ("351234567890124\n[x]", False),
        ("351234567890124\n", False),
        ("\u0663" * 15, False),  # Arabic-Indic digits are digits to \\d, not to a modem
    ],
)
def test_imei_validation(value: str, ok: bool) -> None:
    assert valid_imei(value) is ok


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (GOOD, None),
        ("351234567890126", "check digit wrong"),
        ("000000000000000", "all zeros"),
        ("35123456789012", "not 15 digits"),
        ("3512345678901260", "not 15 digits"),
    ],
)
def test_imei_problem_in_words(value: str, problem: str | None) -> None:
    said = imei_problem(value)
    assert said == problem if problem is None else said is not None and problem in said


def test_identity_refuses_invalid_imei() -> None:
    with pytest.raises(ValueError, match="not a valid IMEI"):
        Identity(imei="35123456789012")


def test_a_rewritten_imei_is_accepted_with_a_warning() -> None:
    ident = Identity(imei="351234567890126")
    assert imei_from_cgsn(("351234567890126",)) == "351234567890126"
    said = limitations(ident, "asterisk")
    assert len(said) == 1 and said[0].startswith("IMEI check digit wrong")
    assert limitations(Identity(imei=GOOD), "asterisk") == []


def test_cgsn_injection_is_not_an_imei() -> None:
    assert imei_from_cgsn(("351234567890124;data=/dev/x",)) is None
    assert imei_from_cgsn(("+CGSN: 351234567890124",)) == GOOD


ICCID = "8970250011234567890"  # 19 digits, as on most SIM cards


def swapped(iccid: str) -> str:
    """The SIM's raw EF_ICCID bytes as some firmwares print them: F-padded, nibbles swapped."""
    padded = iccid + "F" * (len(iccid) % 2)
    return "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))


@pytest.mark.parametrize(
    ("lines", "iccid"),
    [
        ((f"^ICCID: {ICCID}",), ICCID),
        ((f'^ICCID: "{ICCID}"',), ICCID),
        ((f"^ICCID: {ICCID}F",), ICCID),  # padded, not swapped
        ((f"^ICCID: {swapped(ICCID)}",), ICCID),
        ((f"^ICCID: {ICCID}0",), ICCID + "0"),  # 20 digits
        (("^RSSI: 17", f"^ICCID: {ICCID}"), ICCID),
        ((f"{ICCID}",), None),  # not the ^ICCID answer
        (("^ICCID: 1234567890123456789",), None),  # not a telecom number (89...)
        (("^ICCID: 8970",), None),
        ((f"^ICCID: {ICCID}\n[dongle0]",), None),
        ((f"^ICCID: {ICCID};data=/dev/x",), None),
    ],
)
def test_iccid_answers(lines: tuple[str, ...], iccid: str | None) -> None:
    assert iccid_from_answer(lines) == iccid


def test_identity_refuses_invalid_iccid() -> None:
    with pytest.raises(ValueError, match="not a valid ICCID"):
        Identity(imei=GOOD, iccid="8970x")


def test_ati_fields() -> None:
    info = parse_ati(("Manufacturer: huawei", "Model: E1550", "Revision: 11.608", f"IMEI: {GOOD}"))
    assert info["model"] == "E1550" and info["imei"] == GOOD


def test_limitations_say_what_to_do() -> None:
    from dongled.modem.identity import limitations

    bare = Identity(imei=GOOD, imsi=None, voice=False)
    said = limitations(bare, "probe")
    assert any("no SIM" in w and "insert" in w for w in said)
    assert any("no voice" in w and "firmware" in w for w in said)
    assert limitations(Identity(imei=GOOD, imsi="250011234567890", voice=True), "probe") == []
    assert limitations(bare, "asterisk") == []  # chan_dongle runs it: nothing missing
