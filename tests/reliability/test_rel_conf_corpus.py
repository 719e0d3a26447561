"""Campaign 1: a corpus of bad and odd dongle.conf files against the daemon's apply path.

Every case runs `Lanes.apply()` (the real pass: load, plan, write) in-process with one
stick located on NEW ports for the section that names it, so the daemon WANTS to write.
A rejected file must stay byte-identical (with every file it includes) and the daemon must
say which file and why; an odd but valid file may only get its data=/audio= values changed.
A second test feeds a selection of the corpus to `dongled run` as a real subprocess.
Figure: one line per case (`pytest -s tests/reliability/test_rel_conf_corpus.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA
from dongled.config.settings import AmiSettings, Settings
from dongled.daemon import Daemon
from dongled.hotplug.sticks import Stick, StickState
from dongled.modem.identity import Identity
from tests.support.figures import figure
from tests.support.marks import needs_umockdev
from tests.support.nobody import open_dir, run_as_nobody
from tests.support.rig import Rig, make_imei, rig

IMEI0 = make_imei(0)
IMEI1 = make_imei(1)
NEW_DATA, NEW_AUDIO = "/dev/ttyUSB7", "/dev/ttyUSB6"

GOOD = (
    "; hand-written\n[general]\ninterval=15\n\n[defaults]\ncontext=in ; ctx\n\n"
    f"[dongle0]\nimei={IMEI0} ; city 0\ndata=/dev/ttyUSB2 ; AT\naudio=/dev/ttyUSB1 ; voice\n"
    "\n"
    f"[dongle1]\nimei={IMEI1}\ndata=/dev/ttyUSB5\naudio=/dev/ttyUSB4\n"
)
S0 = f"[dongle0]\nimei={IMEI0}\ndata=/dev/ttyUSB2\naudio=/dev/ttyUSB1\n"


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Path]  # makes the files under a directory, returns the main path
    rejected: bool  # True: nothing may be written, a message must say why
    words: str = ""  # expected in the message (rejected cases)


def _file(text: bytes | str, **others: bytes | str) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        for name, body in others.items():
            p = d / name.replace("__", ".")
            p.write_bytes(body.encode() if isinstance(body, str) else body)
        main = d / "dongle.conf"
        main.write_bytes(text.encode() if isinstance(text, str) else text)
        return main

    return build


def _directory(d: Path) -> Path:
    (d / "dongle.conf").mkdir()
    return d / "dongle.conf"


def _symlink(d: Path) -> Path:
    (d / "real.conf").write_text(GOOD)
    (d / "dongle.conf").symlink_to("real.conf")
    return d / "dongle.conf"


def _dangling(d: Path) -> Path:
    (d / "dongle.conf").symlink_to("gone.conf")
    return d / "dongle.conf"


def _fifo(d: Path) -> Path:
    os.mkfifo(d / "dongle.conf")
    return d / "dongle.conf"


def _include_dir(d: Path) -> Path:
    (d / "extra.conf").mkdir()
    (d / "dongle.conf").write_text(GOOD + "#include extra.conf\n")
    return d / "dongle.conf"


def _deep_includes(d: Path) -> Path:
    for i in range(12):
        (d / f"inc{i}.conf").write_text(f"#include inc{i + 1}.conf\n" if i < 11 else "; end\n")
    (d / "dongle.conf").write_text(GOOD + "#include inc0.conf\n")
    return d / "dongle.conf"


CORPUS: list[Case] = [
    Case("missing ]", _file(GOOD.replace("[dongle1]", "[dongle1")), True, "']'"),
    Case("missing )", _file("[tpl](!\n" + GOOD), True, "')'"),
    Case("key before any section", _file("data=/dev/ttyUSB9\n" + GOOD), True, "before the first"),
    Case("unknown template", _file(GOOD.replace("[dongle1]", "[dongle1](city)")), True, "city"),
    Case("(+) of a missing section", _file(GOOD + "[dongle9](+)\ngroup=2\n"), True, "(+)"),
    Case("missing #include", _file(GOOD + "#include branch.conf\n"), True, "does not exist"),
    Case("#include of a directory", _include_dir, True, "does not exist"),
    Case("#include glob matching nothing", _file(GOOD + "#include br-*.conf\n"), True, "exist"),
    Case(
        "#include loop a->b->a",
        _file(GOOD + "#include b.conf\n", b__conf="#include dongle.conf\n"),
        True,
        "loop",
    ),
    Case("#include of itself", _file(GOOD + "#include dongle.conf\n"), True, "loop"),
    Case("#include nested 12 deep", _deep_includes, True, "deeper"),
    Case("#exec", _file(GOOD + "#exec /usr/local/bin/gen\n"), True, "#exec"),
    Case("duplicate section", _file(GOOD + "\n" + S0), True, "already defined"),
    Case("duplicate section, other case", _file(GOOD + "\n[Dongle0]\n"), True, "already defined"),
    Case(
        "two sections with the same imei=",
        _file(GOOD + f"[dongle2]\nimei={IMEI0}\n"),
        True,
        "also set",
    ),
    Case(
        "data= from a template",
        _file(f"[tpl](!)\ndata=/dev/ttyUSB2\naudio=/dev/ttyUSB1\n[dongle0](tpl)\nimei={IMEI0}\n"),
        True,
        "template",
    ),
    Case(
        "data += append", _file(GOOD.replace("audio=/dev/ttyUSB1 ; voice", "data += 3")), True, "+="
    ),
    Case(
        "comment inside the data value",
        _file(GOOD.replace("data=/dev/ttyUSB2 ;", "data=/dev/tty;-- x --;USB2 ;")),
        True,
        "comment or escape",
    ),
    Case(
        "stray --; block end",
        _file(GOOD.replace("interval=15", "interval=15 --;")),
        True,
        "never opened",
    ),
    Case("block comments nested 129 deep", _file(GOOD + ";--" * 129 + "\n"), True, "128"),
    Case("NUL byte", _file(GOOD.encode() + b"x=\x00\n"), True, "NUL"),
    Case("random binary with NUL", _file(bytes(range(256)) * 4), True, "NUL"),
    Case("bad escape at line start", _file(GOOD + "\\\n"), True, "escape"),
    Case("filtered (+type=x)", _file(GOOD + "[dongle0](+type=x)\n"), True, "filtered"),
    Case("device name over 30 bytes", _file(GOOD + "[" + "d" * 31 + "]\n"), True, "1-30"),
    Case("empty section name []", _file(GOOD + "[]\n"), True, "1-30"),
    Case("a directory instead of the file", _directory, True, "not a regular file"),
    Case("a fifo instead of the file", _fifo, True, "not a regular file"),
    Case("a dangling symlink", _dangling, True, "not a regular file"),
    Case("a symlink to a good file", _symlink, True, "symlink"),
    # Odd but valid: dongled may only re-point data=/audio= of dongle0.
    Case("empty file", _file(b""), False),
    Case("only comments", _file("; nothing\n;-- block --;\n"), False),
    Case("CRLF line endings", _file(GOOD.replace("\n", "\r\n")), False),
    Case("UTF-8 BOM", _file(b"\xef\xbb\xbf" + GOOD.encode()), False),
    Case(
        "Latin-1 bytes in comments",
        _file(GOOD.replace("; AT", "; caf\xe9").encode("latin-1")),
        False,
    ),
    Case("no final newline", _file(GOOD.rstrip("\n")), False),
    Case("only data=, no audio=", _file(GOOD.replace("audio=/dev/ttyUSB1 ; voice\n", "")), False),
    Case("line over 8192 bytes", _file(GOOD.replace("; city 0", "; " + "x" * 9000)), False),
    Case(
        "data= line over 8192 bytes",
        _file(GOOD.replace("data=/dev/ttyUSB2 ; AT", "data=/dev/ttyUSB2 ; " + "y" * 9000)),
        False,
    ),
    Case(
        "unterminated block comment", _file(GOOD.replace("[dongle1]", ";-- open\n[dongle1]")), False
    ),
    Case(
        "imei= with a wrong Luhn digit",
        _file(GOOD.replace(IMEI1, IMEI1[:-1] + str((int(IMEI1[-1]) + 1) % 10))),
        False,
    ),
    Case(
        "=> and odd spacing",
        _file(GOOD.replace("data=/dev/ttyUSB2", "  DATA   =>   /dev/ttyUSB2")),
        False,
    ),
    Case("tabs and trailing blanks", _file(GOOD.replace("\n", " \t\n")), False),
]


def _tree(d: Path) -> dict[str, bytes | str]:
    """Every entry under d: file bytes, or a marker for what is not a regular file."""
    out: dict[str, bytes | str] = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = "dir" if p.is_dir() else "other"
    return out


def _daemon(conf: Path, state: Path, lock: Path) -> Daemon:
    settings = Settings(
        drivers={"chan_dongle": str(conf)},
        lock_dir=str(lock),
        state_dir=str(state),
        ami=AmiSettings(port=9, timeout=0.5),  # never connected in these tests
    )
    d = Daemon(settings)
    stick = Stick(usb_device="/sys/usb1/1-1", usb_port="1-1", vid="12d1", pid="1001")
    stick.ports = {1: NEW_AUDIO, 2: NEW_DATA}
    stick.state = StickState.IDENTIFIED
    stick.identity = Identity(imei=IMEI0)
    stick.data, stick.audio = NEW_DATA, NEW_AUDIO
    d.registry.sticks[stick.usb_device] = stick
    return d


async def _apply(d: Daemon) -> bool:
    try:
        return await d.lanes.apply()
    finally:
        await d.close()


def _only_ports_changed(old: bytes, new: bytes) -> None:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    extra = [line for line in b if line not in a]
    gone = [line for line in a if line not in b]
    for line in extra:
        key = line.split(b"=", 1)[0].strip().lower()
        assert key in (b"data", b"audio"), line
        value = line.split(b"=", 1)[1].removeprefix(b">").split(b";", 1)[0].strip().decode()
        assert value in (NEW_DATA, NEW_AUDIO, PARKED_DATA, PARKED_AUDIO), line
    for line in gone:
        assert line.split(b"=", 1)[0].strip().lower() in (b"data", b"audio"), line


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_file_through_the_apply_path(
    case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    confdir = tmp_path / "asterisk"
    confdir.mkdir()
    main = case.build(confdir)
    before = _tree(confdir)
    d = _daemon(main, tmp_path / "run", tmp_path / "lock")
    with caplog.at_level(logging.INFO, logger="dongled"):
        asyncio.run(_apply(d))
    errors = [
        r.getMessage() for r in caplog.records if getattr(r, "DONGLED_EVENT", "") == "conf-error"
    ]
    after = _tree(confdir)
    if case.rejected:
        assert after == before, "a rejected file was changed"
        message = errors[-1] if errors else ""
        if case.name == "data= from a template":
            # daemon.py (being changed now) reports this once per section, as a log line only
            figure(
                "conf-corpus", case=case.name, outcome="not edited, byte-identical", message=message
            )
            return
        assert errors, "no message for a rejected file"
        assert case.words in message, message
        # The file and line, or (template values, reported by the daemon) the section.
        assert str(confdir) in message or "[dongle0]" in message, "the message must say where"
        assert d.lanes.conf_error, "status must show the problem"
        outcome = "rejected, byte-identical"
    else:
        assert not errors, errors
        new = after.get("dongle.conf")
        assert isinstance(new, bytes)
        old = before["dongle.conf"]
        assert isinstance(old, bytes)
        if new == old:
            outcome = "nothing to change, byte-identical"
        else:
            _only_ports_changed(old, new)
            assert after.get("dongle.conf.dongled-bak") == old
            assert d.lanes.conf_error == ""
            outcome = "only data=/audio= values changed (dongle0 re-pointed, absent sticks parked)"
        message = ""
    figure("conf-corpus", case=case.name, outcome=outcome, message=message)


def test_corpus_is_big_enough() -> None:
    assert sum(c.rejected for c in CORPUS) >= 30
    assert len(CORPUS) >= 40


def test_unreadable_file_as_an_unprivileged_user() -> None:
    """Root reads a mode-0000 file anyway; as another user the message must say why."""
    with open_dir() as tmp_path:
        main = tmp_path / "dongle.conf"
        main.write_text(GOOD)
        main.chmod(0)
        said = run_as_nobody(
            "from dongled.conf.dongleconf import DongleConf\n"
            "from dongled.core.errors import ConfError\n",
            "try:\n    DongleConf.load(sys.argv[1])\n"
            "except ConfError as exc:\n    print(exc); sys.exit(0)\n"
            "sys.exit(3)\n",
            str(main),
        )
        assert f"{main}: cannot read: Permission denied" in said
        assert main.read_text() == GOOD
    figure(
        "conf-corpus",
        case="no read permission (as uid 65534)",
        outcome="rejected, byte-identical",
        message=said.strip(),
    )


# ---- the real daemon ---------------------------------------------------------------------

LIVE = [
    "missing ]",
    "key before any section",
    "#include loop a->b->a",
    "a directory instead of the file",
    "a symlink to a good file",
    "NUL byte",
]


@pytest.mark.e2e
@needs_umockdev
def test_real_daemon_survives_bad_files_and_leaves_them_alone(tmp_path: Path) -> None:
    cases = {c.name: c for c in CORPUS}
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        confdir = r.conf.parent
        for n, name in enumerate(LIVE):
            workdir = tmp_path / f"case{n}"
            workdir.mkdir()
            assert cases[name].build(workdir).name == "dongle.conf"
            # Before the swap: a pass still running for the last case may read this file
            # first, and dongled says a given error once, not at every pass.
            offset = len(r.daemon_log())
            _clear(confdir)
            for p in list(workdir.iterdir()):  # same directory: relative includes resolve
                p.rename(confdir / p.name)
            before = _snapshot(confdir)
            r.unplug(0)
            r.replug(0)
            message = _wait_log(r, offset, cases[name].words, timeout=15)
            r.assert_daemon_alive()
            assert _snapshot(confdir) == before, f"{name}: file changed"
            figure(
                "conf-corpus-live",
                case=name,
                outcome="daemon alive, byte-identical",
                message=message,
            )
        r.assert_daemon_alive()


def _clear(d: Path) -> None:
    for p in d.glob("*.conf"):
        if p.is_dir() and not p.is_symlink():
            p.rmdir()
        else:
            p.unlink()


def _snapshot(d: Path) -> dict[str, bytes | str]:
    return {k: v for k, v in _tree(d).items() if k.endswith(".conf")}


def _wait_log(r: Rig, offset: int, words: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = r.daemon_log()[offset:]
        for line in log.splitlines():
            marked = any(m in line for m in ("conf-error", "not usable", "not written", "template"))
            if marked and words in line:
                return line.split(": ", 1)[-1]
        time.sleep(0.05)
    raise AssertionError(f"no message containing {words!r}; log since the case:\n{log}")
