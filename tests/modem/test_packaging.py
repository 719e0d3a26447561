"""The unit file (systemd-analyze) and the udev rules (a lint and a small evaluator of our own,
since `udevadm verify` needs systemd 254+ and CI has 252)."""

from __future__ import annotations

import configparser
import dataclasses
import fnmatch
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dongled import cli, oneshot
from dongled.modem import models

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "dongled.service"
RULES = ROOT / "udev" / "77-dongled.rules"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (apt: systemd)"
)


# ---- the unit -----------------------------------------------------------------------------


def _unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    exe = Path(sys.executable).parent / "dongled"
    target = str(exe) if exe.exists() else "/bin/true"
    text = UNIT.read_text().replace("ExecStart=/usr/local/bin/dongled", f"ExecStart={target}")
    assert f"ExecStart={target} run" in text
    copy = tmp_path / "dongled.service"
    copy.write_text(text)
    return copy


def _unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@needs_analyze
def test_unit_verifies_with_empty_stderr(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(_unit_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=30,
    )
    # v252 exits 0 even on parse errors: stderr is the verdict.
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == 0


@needs_analyze
def test_unit_verify_catches_a_typo(tmp_path: Path) -> None:
    """The check above would notice a mistake (guards against a silently useless test)."""
    copy = _unit_copy(tmp_path)
    copy.write_text(copy.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectHom=yes"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=30
    )
    assert "ProtectHom" in proc.stderr


@needs_analyze
def test_unit_exposure_score(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(_unit_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=30,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", proc.stdout)
    assert match is not None, proc.stdout + proc.stderr
    score, verdict = float(match.group(1)), match.group(2)
    print(f"systemd-analyze security --offline=true: {score} {verdict}")
    assert score <= 2.0, proc.stdout
    assert verdict in ("OK", "SAFE", "PERFECT")


def test_the_unit_help_and_package_name_both_drivers(capsys: pytest.CaptureFixture[str]) -> None:
    """An admin on chan_quectel reads its name wherever dongled describes itself."""
    import tomllib

    assert "chan_quectel" in _unit_settings()["Description"][0]
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "chan_quectel" in meta["description"] and "quectel.conf" in meta["description"]
    for argv in (["--help"], ["run", "--help"], ["scan", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert "quectel" in capsys.readouterr().out, argv


def test_unit_has_the_hardening_the_readme_promises() -> None:
    s = _unit_settings()
    assert s["Type"] == ["notify"]
    assert s["Restart"] == ["on-failure"]
    # bad settings: a restart never fixes them
    assert s["RestartPreventExitStatus"] == [str(oneshot.EXIT_USAGE)]
    assert s["WatchdogSec"] and s["NotifyAccess"] == ["main"]
    assert s["ProtectSystem"] == ["strict"]
    rw = s["ReadWritePaths"][0].split()
    assert "/etc/asterisk" in rw and "/var/lock" in rw
    assert "/sys/devices" in rw  # the ladder's `authorized` write
    assert s["RuntimeDirectory"] == ["dongled"]
    assert s["DevicePolicy"] == ["closed"]
    assert s["DeviceAllow"] == ["char-ttyUSB rw", "char-usb_device rw"]
    assert set(s["RestrictAddressFamilies"][0].split()) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["User"] == ["asterisk"] and s["SupplementaryGroups"] == ["dialout"]
    assert "@system-service" in s["SystemCallFilter"]
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    assert parser.sections() == ["Unit", "Service", "Install"]


# ---- the udev rules -----------------------------------------------------------------------

# key -> (needs {attribute}: True / False / None = optional, allowed operators)
_MATCH = ("==", "!=")
_ASSIGN = ("=", "+=", "-=", ":=")
UDEV_KEYS: dict[str, tuple[bool | None, tuple[str, ...]]] = {
    "ACTION": (False, _MATCH),
    "DEVPATH": (False, _MATCH),
    "KERNEL": (False, _MATCH),
    "KERNELS": (False, _MATCH),
    "SUBSYSTEM": (False, _MATCH),
    "SUBSYSTEMS": (False, _MATCH),
    "DRIVER": (False, _MATCH),
    "DRIVERS": (False, _MATCH),
    "ATTR": (True, _MATCH + _ASSIGN),
    "ATTRS": (True, _MATCH),
    "SYSCTL": (True, _MATCH + _ASSIGN),
    "ENV": (True, _MATCH + _ASSIGN),
    "CONST": (True, _MATCH),
    "TAG": (False, _MATCH + _ASSIGN),
    "TAGS": (False, _MATCH),
    "TEST": (None, _MATCH),
    "PROGRAM": (False, _MATCH),
    "RESULT": (False, _MATCH),
    "NAME": (False, _MATCH + _ASSIGN),
    "SYMLINK": (False, _MATCH + _ASSIGN),
    "OWNER": (False, _ASSIGN),
    "GROUP": (False, _ASSIGN),
    "MODE": (False, _ASSIGN),
    "SECLABEL": (True, _ASSIGN),
    "OPTIONS": (False, _ASSIGN),
    "IMPORT": (True, _MATCH + _ASSIGN),
    "RUN": (None, ("=", "+=", ":=")),
    "LABEL": (False, ("=",)),
    "GOTO": (False, ("=",)),
}
_TOKEN = re.compile(
    r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^{}"]+)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*'
    r'"(?P<value>(?:[^"\\]|\\.)*)"\s*(?P<sep>,|$)'
)


@dataclass(frozen=True, slots=True)
class Token:
    key: str
    attr: str | None
    op: str
    value: str


@dataclass(slots=True)
class Rule:
    lineno: int
    tokens: list[Token] = field(default_factory=list)


def parse_rules(text: str) -> list[Rule]:
    """Each logical line: `KEY[{attr}] OP "value"` comma-separated; raises on anything else."""
    rules: list[Rule] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        lineno, line = i + 1, lines[i]
        while line.endswith("\\"):  # continuation
            i += 1
            line = line[:-1] + lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        rule = Rule(lineno)
        pos = 0
        while pos < len(line):
            m = _TOKEN.match(line, pos)
            if m is None:
                raise ValueError(f"line {lineno}: cannot parse at column {pos + 1}: {line!r}")
            key, attr, op = m.group("key"), m.group("attr"), m.group("op")
            if key not in UDEV_KEYS:
                raise ValueError(f"line {lineno}: unknown key {key}")
            needs_attr, ops = UDEV_KEYS[key]
            if needs_attr is True and attr is None:
                raise ValueError(f"line {lineno}: {key} needs {{attribute}}")
            if needs_attr is False and attr is not None:
                raise ValueError(f"line {lineno}: {key} takes no {{attribute}}")
            if op not in ops:
                raise ValueError(f"line {lineno}: {key} does not take {op}")
            rule.tokens.append(Token(key, attr, op, m.group("value")))
            pos = m.end()
            if m.group("sep") == "," and not line[pos:].strip():
                raise ValueError(f"line {lineno}: trailing comma")
        rules.append(rule)
    return rules


def test_rules_parse_as_udev_syntax() -> None:
    rules = parse_rules(RULES.read_text())
    assert rules, "no rules"
    for rule in rules:
        keys = [t.key for t in rule.tokens]
        if "LABEL" in keys:
            assert keys == ["LABEL"], f"line {rule.lineno}: LABEL must stand alone"
        for t in rule.tokens:
            if t.key == "MODE":
                assert re.fullmatch(r"0[0-7]{3}", t.value), t
            if t.key == "GROUP":
                assert t.value == "dialout", t  # Debian's group of serial ports (asterisk in it)


def test_rules_goto_targets_exist_after_the_jump() -> None:
    rules = parse_rules(RULES.read_text())
    labels: dict[str, int] = {}
    for index, rule in enumerate(rules):
        for t in rule.tokens:
            if t.key == "LABEL":
                assert t.value not in labels, f"duplicate LABEL {t.value}"
                assert t.value.startswith("dongled_"), "labels are global: prefix them"
                labels[t.value] = index
    used = set()
    for index, rule in enumerate(rules):
        for t in rule.tokens:
            if t.key == "GOTO":
                assert t.value in labels, f"line {rule.lineno}: GOTO {t.value} has no LABEL"
                assert labels[t.value] > index, f"line {rule.lineno}: udev only jumps forward"
                used.add(t.value)
    assert used == set(labels), f"unused labels: {set(labels) - used}"
    assert rules[-1].tokens == [Token("LABEL", None, "=", "dongled_end")]


def test_rules_action_filter_comes_first() -> None:
    first = parse_rules(RULES.read_text())[0].tokens
    assert first[0].key == "ACTION" and first[0].op in _MATCH
    assert first[-1] == Token("GOTO", None, "=", "dongled_end")


def test_rules_name_exactly_the_model_table() -> None:
    text = RULES.read_text()
    found: set[tuple[str, str]] = set()
    for rule in parse_rules(text):
        vid = [t.value for t in rule.tokens if t.key in ("ATTR", "ATTRS") and t.attr == "idVendor"]
        pids = [
            t.value for t in rule.tokens if t.key in ("ATTR", "ATTRS") and t.attr == "idProduct"
        ]
        if vid and pids:
            found |= {(vid[0], pid) for pid in pids[0].split("|")}
    assert found == set(models.KNOWN) | models.STORAGE_MODE


@pytest.mark.parametrize("bad", ['KERNAL=="ttyUSB*"', 'ENV="x"', 'GROUP=="dialout"', "MODE=0660"])
def test_rules_lint_rejects_mistakes(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per mistake
        parse_rules(bad)


# A tiny evaluator: enough of udev's semantics to run the file over sample devices.


@dataclass(frozen=True, slots=True, kw_only=True)
class Dev:
    action: str
    subsystem: str
    kernel: str
    env: dict[str, str]
    attrs: dict[str, str]
    parents: tuple[dict[str, str], ...] = ()  # each: SUBSYSTEM + attributes


def _glob(pattern: str, value: str) -> bool:
    """udev matches with fnmatch(3), `|` separating alternatives."""
    return any(fnmatch.fnmatchcase(value, p) for p in pattern.split("|"))


def evaluate(rules: list[Rule], dev: Dev) -> dict[str, str]:
    """What the rules assign to `dev` (ENV{...} and GROUP/MODE)."""
    out: dict[str, str] = {}
    skip_to: str | None = None
    for rule in rules:
        toks = rule.tokens
        if skip_to is not None:
            if toks[0].key == "LABEL" and toks[0].value == skip_to:
                skip_to = None
            continue
        ok = True
        parent_tokens = [t for t in toks if t.key in ("SUBSYSTEMS", "ATTRS")]
        for t in toks:
            if t.op not in _MATCH or t.key in ("SUBSYSTEMS", "ATTRS"):
                continue
            value = {
                "ACTION": dev.action,
                "SUBSYSTEM": dev.subsystem,
                "KERNEL": dev.kernel,
                "ENV": dev.env.get(t.attr or "", ""),
                "ATTR": dev.attrs.get(t.attr or "", ""),
            }[t.key]
            if _glob(t.value, value) != (t.op == "=="):
                ok = False
        if parent_tokens and ok:  # all of them must match on one and the same parent
            ok = any(
                all(
                    _glob(
                        t.value, p.get("SUBSYSTEM" if t.key == "SUBSYSTEMS" else t.attr or "", "")
                    )
                    for t in parent_tokens
                )
                for p in dev.parents
            )
        if not ok:
            continue
        for t in toks:
            if t.key == "GOTO":
                skip_to = t.value
            elif t.op in _ASSIGN and t.key != "LABEL":
                key = f"ENV{{{t.attr}}}" if t.key == "ENV" else t.key
                if t.op == "+=" and key in out:  # RUN+= lists programs, one a line here
                    out[key] += "\n" + t.value
                else:
                    out[key] = t.value
    return out


def _tty(vid: str, pid: str, action: str = "add", kernel: str = "ttyUSB3") -> Dev:
    usb = {"SUBSYSTEM": "usb", "idVendor": vid, "idProduct": pid}
    return Dev(
        action=action,
        subsystem="tty",
        kernel=kernel,
        env={},
        attrs={},
        parents=({"SUBSYSTEM": "usb-serial"}, {"SUBSYSTEM": "usb"}, usb),
    )


def test_rules_give_managed_ttys_to_asterisk_and_hide_them_from_modemmanager() -> None:
    rules = parse_rules(RULES.read_text())
    for vid, pid in models.KNOWN:
        got = evaluate(rules, _tty(vid, pid))
        assert got == {"ENV{ID_MM_DEVICE_IGNORE}": "1", "GROUP": "dialout", "MODE": "0660"}
        assert evaluate(rules, _usb_device(vid, pid)) == {
            "ENV{ID_MM_DEVICE_IGNORE}": "1",
            **RESETTABLE,
        }


# The recovery ladder (as the asterisk user) may reset the stick: its usbfs node and its
# `authorized` attribute, by two programs udev runs without a shell.
RESETTABLE = {
    "GROUP": "dialout",
    "MODE": "0660",
    "RUN": "/bin/chgrp dialout /sys%p/authorized\n/bin/chmod g+w /sys%p/authorized",
}


def _usb_device(vid: str, pid: str) -> Dev:
    return Dev(
        action="add",
        subsystem="usb",
        kernel="1-1.2",
        env={"DEVTYPE": "usb_device"},
        attrs={"idVendor": vid, "idProduct": pid},
    )


def test_rules_let_the_ladder_reset_a_stick_stuck_in_storage_mode() -> None:
    rules = parse_rules(RULES.read_text())
    for vid, pid in models.STORAGE_MODE:
        assert evaluate(rules, _usb_device(vid, pid)) == RESETTABLE  # ModemManager: no modem
        assert evaluate(rules, _tty(vid, pid)) == {}


def test_rules_leave_everything_else_alone() -> None:
    rules = parse_rules(RULES.read_text())
    assert evaluate(rules, _tty("12d1", "1001", action="remove")) == {}
    assert evaluate(rules, _tty("12d1", "1446")) == {}  # still in CD-ROM mode
    assert evaluate(rules, _tty("1199", "9071")) == {}  # a Sierra modem: ModemManager's
    assert evaluate(rules, _tty("12d1", "1001", kernel="ttyACM0")) == {}
    other = Dev(
        action="add",
        subsystem="usb",
        kernel="1-1.3",
        env={"DEVTYPE": "usb_interface"},
        attrs={"idVendor": "12d1", "idProduct": "1001"},
    )
    assert evaluate(rules, other) == {}
    assert evaluate(rules, _usb_device("1199", "9071")) == {}
    assert evaluate(rules, dataclasses.replace(_usb_device("12d1", "1001"), action="remove")) == {}


# ---- install.sh ---------------------------------------------------------------------------


def test_install_script_parses_and_documents_uninstall() -> None:
    script = ROOT / "install.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)
    out = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    assert "--uninstall" in out and "--purge" in out
    bad = subprocess.run([str(script), "--bogus"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2
