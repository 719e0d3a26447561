"""dongle.conf round trip, effective values as chan_dongle reads them, and minimal edits."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dongled.conf.dongleconf import DeviceSection, DongleConf, inherited_message, sections_now
from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA
from dongled.core.errors import ConfError

# Shaped like chan_dongle's shipped sample: nearly every line has a trailing comment.
MAIN = b"""\
; dongle.conf for the office: three sticks here, two more in dongle-branch.conf
; caf\xe9 \xabstick\xbb notes in Latin-1, as old editors left them

[general]
interval=15			; Number of seconds between trying to connect to devices
;smsdb=/var/lib/asterisk/smsdb	; where the SMS database lives
csmsttl=600			; time to live of an incoming multipart SMS

;------------------------------ JITTER BUFFER CONFIGURATION --------------------------
;jbenable = yes			; Enables the use of a jitterbuffer on the receiving side
jbmaxsize = 200			; Max length of the jitterbuffer in milliseconds.
jbimpl = fixed			; Jitterbuffer implementation, used on the receiving side

[defaults]
; settings shared by every device, may be overridden per device
context=default			; context for incoming calls
group=0				; calling group
rxgain=0			; increase the incoming volume; may be negative
txgain=0			; increase the outgoing volume; may be negative
autodeletesms=yes		; auto delete incoming sms
resetdongle=yes			; reset dongle during initialization with ATZ command
u2diag=-1			; set ^U2DIAG parameter on device (0 = disable everything except modem function)
usecallingpres=yes		; use the caller ID presentation or not
callingpres=allowed_passed_screen ; set caller ID presentation
disablesms=no			; disable of SMS reading from device
language=en			; set channel default language
mindtmfgap=45			; minimal interval from end of previous DTMF to begin of next
mindtmfduration=80		; minimal DTMF tone duration
mindtmfinterval=200		; minimal interval between ends of DTMF of same digits
callwaiting=auto		; if 'yes' allow incoming calls waiting; if 'no' disallow
initstate=start			; specified initial state of device, must be one of 'stop' 'start' 'remove'
exten=+1234567890		; exten for incoming calls when the SIM has no number
dtmf=relax			; control of incoming DTMF detection

[city](!)			; a template: never a device
context=from-city		; incoming calls go to the city queue
group=1

[dongle0]
audio=/dev/ttyUSB1		; tty port for audio connection; 	no default value
data=/dev/ttyUSB2		; tty port for AT commands; 		no default value
imei=351234567890123		; IMEI of the stick, informational here
imsi=250011234567890		; IMSI of the SIM

[dongle1](city)
imei=351234567890131 ; second stick
audio = /dev/ttyUSB4 ; voice
data = /dev/ttyUSB5 ; AT port

[Dongle2](city)			; names are case-sensitive handles for Dial()
IMEI=351234567890149
Audio => /dev/ttyUSB7
Data => /dev/ttyUSB8
#include dongle-branch.conf
"""

BRANCH = b"""\
; sticks at the branch office hub
[branch0]
imei=351234567890156
data=/dev/ttyUSB10	; AT
audio=/dev/ttyUSB9	; voice

[branch1]
imei=351234567890164
audio=/dev/ttyUSB12
data=/dev/ttyUSB13
"""

VARIANTS = {
    "lf": (MAIN, BRANCH),
    "crlf": (MAIN.replace(b"\n", b"\r\n"), BRANCH.replace(b"\n", b"\r\n")),
    "bom": (b"\xef\xbb\xbf" + MAIN, b"\xef\xbb\xbf" + BRANCH),
    "mixed-no-final-newline": (MAIN.replace(b"\n[", b"\r\n["), BRANCH.rstrip(b"\n")),
}


def _tree(tmp_path: Path, main: bytes, branch: bytes = BRANCH) -> Path:
    (tmp_path / "dongle-branch.conf").write_bytes(branch)
    path = tmp_path / "dongle.conf"
    path.write_bytes(main)
    return path


def _parse(text: bytes, **more: bytes) -> DongleConf:
    files = {"/etc/asterisk/dongle.conf": text}
    files.update({f"/etc/asterisk/{name}.conf": data for name, data in more.items()})
    return DongleConf.parse(files, "/etc/asterisk/dongle.conf")


def _diff(old: bytes, new: bytes) -> list[str]:
    """Removed then added lines, hunk by hunk (latin-1 keeps every byte)."""
    a = old.decode("latin-1").splitlines(keepends=True)
    b = new.decode("latin-1").splitlines(keepends=True)
    diff = difflib.unified_diff(a, b, n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("---", "+++")]


def _errors(exc: pytest.ExceptionInfo[ConfError]) -> tuple[str, int | None]:
    return exc.value.path, exc.value.line


# --- round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_load_render_is_byte_identical(tmp_path: Path, variant: str) -> None:
    main, branch = VARIANTS[variant]
    path = _tree(tmp_path, main, branch)
    conf = DongleConf.load(path)
    assert conf.render() == {str(path): main, str(tmp_path / "dongle-branch.conf"): branch}
    assert list(conf.devices()) == ["dongle0", "dongle1", "Dongle2", "branch0", "branch1"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_sample_effective_values(tmp_path: Path, variant: str) -> None:
    main, branch = VARIANTS[variant]
    path = _tree(tmp_path, main, branch)
    devices = DongleConf.load(path).devices()
    assert devices["dongle0"] == DeviceSection(
        name="dongle0",
        imei="351234567890123",
        imsi="250011234567890",
        data="/dev/ttyUSB2",
        audio="/dev/ttyUSB1",
        data_inherited=False,
        audio_inherited=False,
        path=str(path),
        line=MAIN.split(b"\n").index(b"[dongle0]") + 1,
    )
    assert (devices["Dongle2"].data, devices["Dongle2"].audio) == ("/dev/ttyUSB8", "/dev/ttyUSB7")
    assert devices["Dongle2"].imei == "351234567890149"
    assert devices["branch0"].path == str(tmp_path / "dongle-branch.conf")
    assert devices["branch0"].line == 2
    assert (devices["branch1"].data, devices["branch1"].audio) == ("/dev/ttyUSB13", "/dev/ttyUSB12")


def test_empty_file_has_no_devices() -> None:
    conf = _parse(b"")
    assert conf.devices() == {}
    assert conf.render() == {"/etc/asterisk/dongle.conf": b""}


# --- effective values -------------------------------------------------------------------


def test_template_value_comes_first_and_wins() -> None:
    conf = _parse(b"[tpl](!)\ndata=/dev/tpl\n[d](tpl)\ndata=/dev/own\naudio=/dev/a\n")
    d = conf.devices()["d"]
    assert (d.data, d.data_inherited, d.audio, d.audio_inherited) == (
        "/dev/tpl",
        True,
        "/dev/a",
        False,
    )


def test_template_chain_and_several_templates() -> None:
    text = b"[a](!)\nimsi=1\n[b](!,a)\naudio=/dev/b\n[c](!)\naudio=/dev/c\ndata=/dev/c\n[d](b,c)\n"
    d = _parse(text).devices()["d"]
    assert (d.imsi, d.audio, d.data) == ("1", "/dev/b", "/dev/c")
    assert list(_parse(text).devices()) == ["d"]


def test_first_data_line_wins() -> None:
    d = _parse(b"[d]\ndata=/dev/first\ndata=/dev/second\n").devices()["d"]
    assert d.data == "/dev/first"


def test_plus_continuation_comes_after_own_lines() -> None:
    text = b"[d]\naudio=/dev/a\n[e]\n[d](+)\naudio=/dev/late\ndata=/dev/d\n"
    d = _parse(text).devices()["d"]
    assert (d.audio, d.data) == ("/dev/a", "/dev/d")
    assert list(_parse(text).devices()) == ["d", "e"]


def test_keys_are_case_insensitive_and_arrow_is_equals() -> None:
    d = _parse(b"[d]\nDATA => /dev/x\nAuDiO=>/dev/y\nImEi = 35\n").devices()["d"]
    assert (d.data, d.audio, d.imei) == ("/dev/x", "/dev/y", "35")


def test_empty_value_counts_as_absent_and_still_shadows() -> None:
    d = _parse(b"[d]\ndata=\ndata=/dev/later\naudio = ; none\n").devices()["d"]
    assert (d.data, d.audio) == (None, None)


def test_general_defaults_and_templates_are_not_devices() -> None:
    text = b"[GENERAL]\ninterval=1\n[Defaults]\ncontext=x\n[t](!)\n[real]\n"
    assert list(_parse(text).devices()) == ["real"]


def test_comments_escapes_and_block_comments() -> None:
    text = (
        b"[d]\n"
        b";-- data=/dev/commented\n"
        b"  ;-- nested --; still in the outer comment\n"
        b"audio=/dev/hidden --;\n"
        b"audio=/dev/a;-- inline --;ignored? no: joined\n"
        b"data=/dev/x\\;y ; the escaped one is literal\n"
    )
    d = _parse(text).devices()["d"]
    assert d.data == "/dev/x;y"
    assert d.audio == "/dev/aignored? no: joined"


def test_settings_after_block_comment_end_are_read() -> None:
    d = _parse(b"[d];-- open\nclose --; data=/dev/x\n").devices()["d"]
    assert d.data == "/dev/x"


def test_line_without_equals_is_kept_and_ignored() -> None:
    text = b"[d]\njust some words\ndata=/dev/x\n"
    conf = _parse(text)
    assert conf.devices()["d"].data == "/dev/x"
    assert conf.render()["/etc/asterisk/dongle.conf"] == text


def test_overlong_line_is_kept_but_never_a_setting() -> None:
    long = b"data=/dev/" + b"x" * 8200
    text = b"[d]\n" + long + b"\naudio=/dev/a\n"
    conf = _parse(text)
    assert conf.devices()["d"].data is None
    assert conf.render()["/etc/asterisk/dongle.conf"] == text
    # Asterisk's limit: 8190 bytes plus the newline still fit in its buffer.
    fits = b"data=/dev/" + b"x" * (8190 - 10)
    assert _parse(b"[d]\n" + fits + b"\n").devices()["d"].data == fits[5:].decode()


def test_settings_after_include_belong_to_the_including_section() -> None:
    conf = _parse(b"[d]\n#include other.conf\ndata=/dev/d\n", other=b"[e]\ndata=/dev/e\n")
    assert conf.devices()["d"].data == "/dev/d"
    assert conf.devices()["e"].data == "/dev/e"


def test_included_file_continues_current_section() -> None:
    conf = _parse(b"[d]\n#include <other.conf>\n", other=b"data=/dev/from-include\n")
    assert conf.devices()["d"].data == "/dev/from-include"


def test_tryinclude_missing_is_fine_and_quotes_absolute_paths(tmp_path: Path) -> None:
    extra = tmp_path / "abs.conf"
    extra.write_bytes(b"[x]\ndata=/dev/x\n")
    main = tmp_path / "dongle.conf"
    main.write_bytes(b'#tryinclude "nothere.conf"\n#include "' + str(extra).encode() + b'"\n')
    conf = DongleConf.load(main)
    assert conf.devices()["x"].path == str(extra)
    assert set(conf.render()) == {str(main), str(extra)}


def test_glob_include_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "dongle.d").mkdir()
    (tmp_path / "dongle.d" / "b.conf").write_bytes(b"[b]\n")
    (tmp_path / "dongle.d" / "a.conf").write_bytes(b"[a]\n")
    main = tmp_path / "dongle.conf"
    main.write_bytes(b"#include dongle.d/*.conf\n")
    conf = DongleConf.load(main)
    assert list(conf.devices()) == ["a", "b"]
    again = DongleConf.parse(conf.render(), str(main))
    assert list(again.devices()) == ["a", "b"]


# --- malformed files --------------------------------------------------------------------

MAIN_PATH = "/etc/asterisk/dongle.conf"
OTHER_PATH = "/etc/asterisk/other.conf"

MALFORMED = {
    "key before section": (b"; c\ndata=/dev/x\n[d]\n", {}, MAIN_PATH, 2, "before the first"),
    "words before section": (b"\nhello\n", {}, MAIN_PATH, 2, "before the first"),
    "no ]": (b"[general]\n[d\n", {}, MAIN_PATH, 2, "']'"),
    "no )": (b"[t](!)\n[d](t\n", {}, MAIN_PATH, 2, "')'"),
    "unknown template": (b"[d](nope)\n", {}, MAIN_PATH, 1, "nope"),
    "template defined later": (b"[d](t)\n[t](!)\n", {}, MAIN_PATH, 1, "not defined above"),
    "(+) of nothing": (b"[d]\n[e](+)\n", {}, MAIN_PATH, 2, "not defined above"),
    "(+) of a template": (b"[t](!)\n[t](+)\n", {}, MAIN_PATH, 2, "not defined above"),
    "duplicate device": (b"[d]\n[e]\n\n[d]\n", {}, MAIN_PATH, 4, "already defined"),
    "duplicate, other case": (b"[dongle0]\n[Dongle0]\n", {}, MAIN_PATH, 2, "already defined"),
    "duplicate in include": (
        b"[d]\n#include other.conf\n",
        {"other": b"\n[d]\n"},
        OTHER_PATH,
        2,
        "already defined",
    ),
    "duplicate imei": (
        b"[a]\nimei=351234567890123\n[b]\nimei = 351234567890123 ; oops\n",
        {},
        MAIN_PATH,
        4,  # the imei= line of [b], not its header
        "imei",
    ),
    "imei shared via template": (b"[t](!)\nimei=1\n[a](t)\n[b](t)\n", {}, MAIN_PATH, 4, "imei"),
    "name over 30": (b"[" + b"d" * 31 + b"]\n", {}, MAIN_PATH, 1, "1-30"),
    "empty name": (b"[general]\n[]\n", {}, MAIN_PATH, 2, "1-30"),
    "missing include": (b"[d]\n\n#include gone.conf\n", {}, MAIN_PATH, 3, "does not exist"),
    "include loop": (
        b"[d]\n#include other.conf\n",
        {"other": b"; loop\n#include dongle.conf\n"},
        OTHER_PATH,
        2,
        "loop",
    ),
    "exec": (b"[d]\n#exec /usr/local/bin/gen-dongles\n", {}, MAIN_PATH, 2, "#exec"),
    "append to data": (b"[d]\ndata=/dev/a\ndata += b\n", {}, MAIN_PATH, 3, "+="),
    "stray block end": (b"[d]\ndata=/dev/x--;\n", {}, MAIN_PATH, 2, "never opened"),
    "nul byte": (b"[d]\ndata=/dev/x\x00\n", {}, MAIN_PATH, 2, "NUL"),
    "bad escape": (b"[d]\n\\ x=1\n", {}, MAIN_PATH, 2, "escape"),
    "filtered plus": (b"[d]\n[d](+type=x)\n", {}, MAIN_PATH, 2, "filtered"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_raises_with_file_and_line(case: str) -> None:
    text, more, path, line, words = MALFORMED[case]
    with pytest.raises(ConfError, match=re.escape(words)) as exc:
        _parse(text, **more)
    assert _errors(exc) == (path, line)


def test_missing_main_file(tmp_path: Path) -> None:
    with pytest.raises(ConfError) as exc:
        DongleConf.load(tmp_path / "nope.conf")
    assert _errors(exc) == (str(tmp_path / "nope.conf"), None)


def test_include_of_a_directory_is_missing(tmp_path: Path) -> None:
    (tmp_path / "dir.conf").mkdir()
    main = tmp_path / "dongle.conf"
    main.write_bytes(b"[d]\n#include dir.conf\n")
    with pytest.raises(ConfError, match="does not exist") as exc:
        DongleConf.load(main)
    assert _errors(exc) == (str(main), 2)


# --- editing ----------------------------------------------------------------------------


def test_with_ports_changes_only_the_value_spans(tmp_path: Path) -> None:
    path = _tree(tmp_path, MAIN)
    conf = DongleConf.load(path)
    new, changed = conf.with_ports(
        {"dongle0": ("/dev/ttyUSB20", "/dev/ttyUSB19"), "Dongle2": ("/dev/ttyUSB3", PARKED_AUDIO)}
    )
    assert set(changed) == {str(path)}
    assert _diff(MAIN, changed[str(path)]) == [
        "-audio=/dev/ttyUSB1\t\t; tty port for audio connection; \tno default value\n",
        "-data=/dev/ttyUSB2\t\t; tty port for AT commands; \t\tno default value\n",
        "+audio=/dev/ttyUSB19\t\t; tty port for audio connection; \tno default value\n",
        "+data=/dev/ttyUSB20\t\t; tty port for AT commands; \t\tno default value\n",
        "-Audio => /dev/ttyUSB7\n",
        "-Data => /dev/ttyUSB8\n",
        f"+Audio => {PARKED_AUDIO}\n",
        "+Data => /dev/ttyUSB3\n",
    ]
    assert new.render() == {**conf.render(), **changed}
    assert new.devices()["dongle0"].data == "/dev/ttyUSB20"
    assert new.devices()["Dongle2"].audio == PARKED_AUDIO
    assert new.devices()["dongle1"] == conf.devices()["dongle1"]


def test_with_ports_edits_the_include_file_and_keeps_crlf(tmp_path: Path) -> None:
    main, branch = VARIANTS["crlf"]
    path = _tree(tmp_path, main, branch)
    conf = DongleConf.load(path)
    _, changed = conf.with_ports({"branch0": (PARKED_DATA, PARKED_AUDIO)})
    branch_path = str(tmp_path / "dongle-branch.conf")
    assert list(changed) == [branch_path]
    assert _diff(branch, changed[branch_path]) == [
        "-data=/dev/ttyUSB10\t; AT\r\n",
        "-audio=/dev/ttyUSB9\t; voice\r\n",
        f"+data={PARKED_DATA}\t; AT\r\n",
        f"+audio={PARKED_AUDIO}\t; voice\r\n",
    ]


def test_with_ports_same_values_changes_nothing(tmp_path: Path) -> None:
    conf = DongleConf.load(_tree(tmp_path, MAIN))
    same, changed = conf.with_ports({"dongle1": ("/dev/ttyUSB5", "/dev/ttyUSB4")})
    assert changed == {}
    assert same.render() == conf.render()


def test_with_ports_only_one_value_changed() -> None:
    conf = _parse(b"[d]\ndata=/dev/a\naudio=/dev/b\n[e]\ndata=/dev/c\naudio=/dev/d\n")
    _, changed = conf.with_ports({"d": ("/dev/a", "/dev/z"), "e": ("/dev/c", "/dev/d")})
    assert changed == {
        MAIN_PATH: b"[d]\ndata=/dev/a\naudio=/dev/z\n[e]\ndata=/dev/c\naudio=/dev/d\n"
    }


def test_with_ports_edits_first_line_only_and_plus_lines() -> None:
    text = b"[d]\ndata=/dev/a\ndata=/dev/shadowed\n[d](+)\naudio = /dev/b ; later\n"
    _, changed = _parse(text).with_ports({"d": ("/dev/x", "/dev/y")})
    assert _diff(text, changed[MAIN_PATH]) == [
        "-data=/dev/a\n",
        "+data=/dev/x\n",
        "-audio = /dev/b ; later\n",
        "+audio = /dev/y ; later\n",
    ]


def test_with_ports_fills_an_empty_value() -> None:
    text = b"[d]\ndata = ; to be set\naudio=\r\n"
    new, changed = _parse(text).with_ports({"d": ("/dev/x", "/dev/y")})
    assert changed[MAIN_PATH] == b"[d]\ndata = /dev/x; to be set\naudio=/dev/y\r\n"
    assert (new.devices()["d"].data, new.devices()["d"].audio) == ("/dev/x", "/dev/y")


def test_with_ports_inserts_missing_keys_after_the_last_setting() -> None:
    text = b"[d]\r\n; about d\r\ncontext=x ; c\r\n\r\n; next one\r\n[e]\r\n"
    new, changed = _parse(text).with_ports({"d": ("/dev/x", "/dev/y"), "e": ("/dev/p", "/dev/q")})
    assert changed[MAIN_PATH] == (
        b"[d]\r\n; about d\r\ncontext=x ; c\r\ndata=/dev/x\r\naudio=/dev/y\r\n"
        b"\r\n; next one\r\n[e]\r\ndata=/dev/p\r\naudio=/dev/q\r\n"
    )
    assert new.devices()["e"].data == "/dev/p"


def test_with_ports_insert_keeps_missing_final_newline() -> None:
    new, changed = _parse(b"[a]\n[d]").with_ports({"d": ("/dev/x", "/dev/y")})
    assert changed[MAIN_PATH] == b"[a]\n[d]\ndata=/dev/x\naudio=/dev/y"
    assert new.devices()["d"].audio == "/dev/y"


def test_with_ports_refuses_inherited_value() -> None:
    conf = _parse(b"[general]\n[tpl](!)\n\naudio=/dev/t\n[d](tpl)\ndata=/dev/x\naudio=/dev/own\n")
    assert conf.devices()["d"].audio_inherited
    with pytest.raises(ConfError, match=r"template \[tpl\]") as exc:
        conf.with_ports({"d": ("/dev/x", "/dev/y")})
    assert _errors(exc) == (MAIN_PATH, 4)


def test_with_ports_refuses_value_with_inline_comment() -> None:
    conf = _parse(b"[d]\ndata=/dev/a;-- x --;b\naudio=/dev/c\n")
    assert conf.devices()["d"].data == "/dev/ab"
    with pytest.raises(ConfError, match="comment or escape") as exc:
        conf.with_ports({"d": ("/dev/x", "/dev/c")})
    assert _errors(exc) == (MAIN_PATH, 2)


def test_with_ports_refuses_when_insert_would_land_in_a_comment() -> None:
    conf = _parse(b"[d]\ncontext=x ;-- comment starts\nand ends --;\n")
    with pytest.raises(ConfError, match="refusing the edit"):
        conf.with_ports({"d": ("/dev/x", "/dev/y")})


def test_with_ports_unknown_section() -> None:
    with pytest.raises(ConfError, match=r"no device section \[general\]"):
        _parse(b"[general]\n[d]\n").with_ports({"general": ("/dev/a", "/dev/b")})


@pytest.mark.parametrize(
    "value",
    [
        "/dev/ttyUSB0\n[evil]",
        "/dev/ttyUSB0\r",
        "/dev/ttyUSB0;x",
        "/dev/ttyUSB0 ; x",
        "[evil]",
        "dev/ttyUSB0",
        "",
        "/dev/tty USB0",
        "/dev/\\;",
        "/dev/ttyUSB0=x",
        "/dev/é",
        "/" + "a" * 255,
        "/dev/ttyUSB1--",  # before "; comment" it would close a block comment never opened
        "/dev/ttyUSB1-",
    ],
)
def test_with_ports_refuses_unsafe_values(value: str) -> None:
    conf = _parse(b"[d]\ndata=/dev/a\naudio=/dev/b\n")
    with pytest.raises(ValueError, match="refusing"):
        conf.with_ports({"d": (value, "/dev/b")})
    with pytest.raises(ValueError, match="refusing"):
        conf.with_ports({"d": ("/dev/a", value)})


def test_with_ports_accepts_longest_allowed_and_by_id_paths() -> None:
    longest = "/" + "a" * 254
    by_id = "/dev/serial/by-id/usb-HUAWEI_Technology_HUAWEI_Mobile-if02-port0:1.2+x"
    new, _ = _parse(b"[d]\n").with_ports({"d": (longest, by_id)})
    assert (new.devices()["d"].data, new.devices()["d"].audio) == (longest, by_id)


def test_with_imei_sets_and_adds() -> None:
    text = b"[a]\nimei = 351234567890123 ; old\n[b]\ndata=/dev/b\n"
    conf = _parse(text)
    new, changed = conf.with_imei("a", "351234567890131")
    assert changed[MAIN_PATH] == text.replace(b"351234567890123", b"351234567890131")
    new, changed = new.with_imei("b", "351234567890149")
    assert changed[MAIN_PATH].endswith(b"[b]\ndata=/dev/b\nimei=351234567890149\n")
    assert new.devices()["b"].imei == "351234567890149"


def test_with_imei_refuses_bad_and_duplicate() -> None:
    conf = _parse(b"[a]\nimei=351234567890123\n[b]\n")
    for bad in ("35123456789012", "3512345678901234", "35123456789012x", "351234567890123\n"):
        with pytest.raises(ValueError, match="15 digits"):
            conf.with_imei("b", bad)
    with pytest.raises(ConfError, match="also set in"):
        conf.with_imei("b", "351234567890123")


def test_imei_messages_point_at_the_imei_line_not_the_section_header() -> None:
    """An admin fixes an imei= by its line: every message about one names that line."""
    from dongled.reconcile.plan import check_digit_message, unmanaged_message

    text = (
        b"[general]\n"
        b"[a]\ncontext=x\ndata=/dev/ttyUSB1\nimei=351234567890126\n"  # [a] 2, imei 5
        b"[b]\ncontext=x\nimei=35123456789012\n"  # [b] 6, imei 8
    )
    devices = _parse(text).devices()
    assert check_digit_message(devices["a"]).startswith(f"{MAIN_PATH}:5: [a] imei=")
    assert unmanaged_message(devices["b"]).startswith(f"{MAIN_PATH}:8: [b] imei=")
    with pytest.raises(ConfError) as info:
        _parse(text + b"[c]\ncontext=x\n\nimei=351234567890126\n").devices()  # imei 12
    assert info.value.line == 12
    assert f"also set in [a] at {MAIN_PATH}:5" in str(info.value)


# --- property tests ---------------------------------------------------------------------

_NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12).filter(
    lambda n: n not in ("general", "defaults")
)
_SPACE = st.sampled_from(["", " ", "\t", "  ", " \t"])
_EOL = st.sampled_from(["\n", "\r\n"])
_COMMENT = st.sampled_from(["", "; note", ";-- inline --;", "; data=/dev/nope [x]", ";"])
# As dongled writes them: a value ending in '-' would turn a following "; c" into "--;".
_PORT = st.from_regex(r"/dev/[A-Za-z0-9_.:+-]{0,19}[A-Za-z0-9_.:+]", fullmatch=True)
_LEADING = st.sampled_from(["", "; top comment", "  \t", ";-- one-line block --;"])
_FREE = st.sampled_from(
    [
        "",
        "; a comment",
        ";---------------- banner ----------------",
        "   ",
        "no equals sign here",
        "context=from-gsm ; where calls go",
        "group => 1",
        ";-- block\nstill comment\ndata=/dev/ignored --;",
        "rxgain=-5\t; quieter",
    ]
)


@st.composite
def _documents(draw: st.DrawFn) -> tuple[bytes, dict[str, tuple[int, int]], list[str]]:
    """A valid document, where each device's data/audio line is, and the device names."""
    lines: list[tuple[str, str]] = []  # (text, eol); text may be a value-line template

    def free() -> None:
        for text in draw(st.lists(_FREE, max_size=3)):
            for part in text.split("\n"):
                lines.append((part, draw(_EOL)))

    for text in draw(st.lists(_LEADING, max_size=3)):
        lines.append((text, draw(_EOL)))
    lines.append(("[general]", draw(_EOL)))
    free()
    names = draw(st.lists(_NAMES, min_size=1, max_size=6, unique_by=str.lower))
    where: dict[str, tuple[int, int]] = {}
    for n, name in enumerate(names):
        lines.append((f"[{name}]{draw(_SPACE)}{draw(_COMMENT)}", draw(_EOL)))
        free()
        spots = {}
        for key in draw(st.permutations(["data", "audio", "imei"])):
            value = f"3500000000000{n:02d}" if key == "imei" else draw(_PORT)
            spelled = draw(st.sampled_from([key, key.upper(), key.capitalize()]))
            sep = draw(st.sampled_from(["=", "=>"]))
            pre, mid, post = draw(_SPACE), draw(_SPACE), draw(_SPACE)
            trail = draw(_SPACE) + draw(_COMMENT)
            spots[key] = len(lines)
            lines.append((f"{pre}{spelled}{mid}{sep}{post}{value}{trail}", draw(_EOL)))
            free()
        if draw(st.booleans()):  # a later duplicate, which chan_dongle ignores
            lines.append((f"data=/dev/dup{n}", draw(_EOL)))
        where[name] = (spots["data"], spots["audio"])
        free()
    text = "".join(t + e for t, e in lines)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    return text.encode(), where, names


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_documents())
def test_random_documents_round_trip(
    doc: tuple[bytes, dict[str, tuple[int, int]], list[str]],
) -> None:
    text, _, names = doc
    conf = _parse(text)
    assert conf.render() == {MAIN_PATH: text}
    assert list(conf.devices()) == names


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_documents(), data=st.data())
def test_random_with_ports_touches_only_target_values(
    doc: tuple[bytes, dict[str, tuple[int, int]], list[str]], data: st.DataObject
) -> None:
    text, where, names = doc
    conf = _parse(text)
    targets = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    changes = {name: (data.draw(_PORT), data.draw(_PORT)) for name in targets}
    new, changed = conf.with_ports(changes)

    old_lines = text.splitlines(keepends=True)
    expected = list(old_lines)
    before = conf.devices()
    for name, (port_data, port_audio) in changes.items():
        data_at, audio_at = where[name]
        old_data, old_audio = before[name].data, before[name].audio
        assert old_data is not None
        assert old_audio is not None
        # The value is the first occurrence of itself on its line: keys and spaces precede it.
        expected[data_at] = expected[data_at].replace(old_data.encode(), port_data.encode(), 1)
        expected[audio_at] = expected[audio_at].replace(old_audio.encode(), port_audio.encode(), 1)
    want = b"".join(expected)
    assert changed == ({MAIN_PATH: want} if want != text else {})
    after = new.devices()
    for name in names:
        if name in changes:
            assert (after[name].data, after[name].audio) == changes[name]
        else:
            assert after[name] == before[name]


def test_with_ports_keeps_bom_and_edits_first_line_header_section() -> None:
    text = b"\xef\xbb\xbf[d]\r\ndata=/dev/a\r\n"
    _, changed = _parse(text).with_ports({"d": ("/dev/y", "/dev/z")})
    assert changed[MAIN_PATH] == b"\xef\xbb\xbf[d]\r\ndata=/dev/y\r\naudio=/dev/z\r\n"


def test_inherited_ports_name_the_section_and_the_template_lines() -> None:
    # the template in an #included file, the device in the main file
    files = {
        MAIN_PATH: b"[general]\n#include tpl.conf\n\n[d](tpl)\nimei=356938035643809\n",
        "/etc/asterisk/tpl.conf": b"[tpl](!)\ncontext=x\ndata=/dev/ttyUSB2\naudio=/dev/ttyUSB1\n",
    }
    d = DongleConf.parse(files, MAIN_PATH).devices()["d"]
    assert [(o.key, o.template, o.path, o.line) for o in d.inherited] == [
        ("data", "tpl", "/etc/asterisk/tpl.conf", 3),
        ("audio", "tpl", "/etc/asterisk/tpl.conf", 4),
    ]
    assert inherited_message(d) == (
        f"{MAIN_PATH}:4: [d] takes data= from template [tpl] at /etc/asterisk/tpl.conf:3; "
        "audio= from template [tpl] at /etc/asterisk/tpl.conf:4: dongled will not edit a "
        "template (that would move every device using it); move data= and audio= into [d] itself"
    )
    with pytest.raises(ConfError, match=rf"data= of \[d\] \({MAIN_PATH}:4\) comes from") as exc:
        DongleConf.parse(files, MAIN_PATH).with_ports({"d": ("/dev/x", "/dev/y")})
    assert _errors(exc) == ("/etc/asterisk/tpl.conf", 3)


def test_own_ports_inherit_nothing() -> None:
    d = _parse(b"[tpl](!)\ndata=/dev/t\n[d](tpl)\naudio=/dev/a\n").devices()["d"]
    assert [o.key for o in d.inherited] == ["data"]
    assert _parse(b"[d]\ndata=/dev/x\naudio=/dev/y\n").devices()["d"].inherited == ()


def test_sections_now_tells_an_unreadable_file_from_an_empty_one(tmp_path: Path) -> None:
    """What the binding check, the status and the pass read between passes: None (the
    caller keeps what it knew) for a file gone or mid-edit, {} for a file with no device."""
    path = tmp_path / "dongle.conf"
    assert sections_now(str(path)) is None  # gone
    path.write_text("[general]\ninterval=15\n")
    assert sections_now(str(path)) == {}
    path.write_text("[dongle0\ndata=/dev/ttyUSB2\n")  # an editor's half-written save
    assert sections_now(str(path)) is None
    path.write_text("[dongle0]\ndata=/dev/ttyUSB2\naudio=/dev/ttyUSB1\n")
    assert list(sections_now(str(path)) or {}) == ["dongle0"]
