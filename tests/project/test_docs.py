"""The manual's shape: a short README for an admin, links that resolve, and no pointer at
material outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dongled.conf.dongleconf import DongleConf
from dongled.config import settings
from dongled.modem.identity import valid_imei

ROOT = Path(__file__).resolve().parents[2]
MANUAL = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
SETUP = (
    "```sh\n"
    "sudo ./install.sh     # installs dongled and starts it (systemd service, or `dongled run`"
    " in the foreground)\n"
    "sudo bash .ci/run     # installs what the tests need (apt + pip), lints, and runs every test\n"
    "```"
)


def test_readme_starts_with_the_setup_and_the_exact_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.startswith("# dongled\n\n" + SETUP + "\n")
    command = re.search(r"ends with, exactly:\n\n```sh\n(.+)\n```", readme)
    assert command is not None
    ci = (ROOT / ".ci" / "run").read_text().rstrip().splitlines()[-1]
    assert command.group(1) == ci == "umockdev-wrapper .venv/bin/python -m pytest"


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("doc", MANUAL, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (doc.parent / target).exists(), f"{doc.name}: {target}"
    for anchor_doc, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", text):
        linked = doc.parent / anchor_doc if anchor_doc else doc
        headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
        slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
        assert anchor in slugs, f"{doc.name}: #{anchor} not a heading of {linked.name}"


def test_nothing_points_outside_the_repository() -> None:
    """What a reader needs is in docs/, in the project's own words. Only .ci/run may hand the
    real-driver tier the real Asterisk's sources from beside the checkout."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"shared/spec|\.\./shared|real-asterisk\.md|platform\.md")
    offenders = [
        f
        for f in files
        if f != "tests/project/test_docs.py"
        and f.endswith((".py", ".md", ".sh", ".toml", ".service", ".rules", "run"))
        and pattern.search((ROOT / f).read_text(errors="replace"))
    ]
    assert offenders == [".ci/run"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert pattern.findall(ci) == ["../shared"]
    assert "DONGLED_REAL_SOURCES:-../shared/realasterisk}" in ci


def test_the_quick_start_section_is_one_dongled_manages(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```ini\n(\[dongle0\]\n.*?)```", readme, re.S)
    assert block is not None
    conf = tmp_path / "dongle.conf"
    conf.write_text(block.group(1))
    section = DongleConf.load(str(conf)).devices()["dongle0"]
    assert section.imei is not None and valid_imei(section.imei)
    assert (section.data, section.audio) == ("/dev/ttyUSB2", "/dev/ttyUSB1")


def test_the_quick_start_settings_step_edits_the_installed_template(tmp_path: Path) -> None:
    """Step 2 done as the README says, on the file install.sh puts in place: its keys set under
    the template's own `[ami]`, not a second `[ami]` appended (which is not valid TOML and
    once crash-looped the unit)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```toml\n\[ami\][^\n]*\n(.*?)```", readme, re.S)
    assert block is not None
    step = readme[: block.start()].rsplit("**2.", 1)[1]
    assert "under the existing\n`[ami]`" in step or "under the existing `[ami]`" in step
    keys = dict(re.findall(r"^(\w+) = (.*?)(?:\s+#.*)?$", block.group(1), re.M))
    assert set(keys) == {"username", "secret_file"}
    edited, table = [], ""
    for line in (ROOT / "etc" / "dongled.toml").read_text().splitlines():
        if line.startswith("["):
            table = line
        m = re.match(r"# (\w+) = ", line)
        if table == "[ami]" and m and m.group(1) in keys:
            line = f"{m.group(1)} = {keys.pop(m.group(1))}"
        edited.append(line)
    assert keys == {}, "keys the template does not list under [ami]"
    path = tmp_path / "dongled.toml"
    path.write_text("\n".join(edited) + "\n")
    s = settings.load(str(path), secret=False)
    assert (s.ami.username, s.ami.secret_file) == ("dongled", "/etc/dongled/ami-secret")


def test_the_udev_section_lists_every_id_the_rules_match() -> None:
    rules = (ROOT / "udev" / "77-dongled.rules").read_text()
    pairs = {
        (vid, pid)
        for vid, pids in re.findall(
            r'ATTR\{idVendor\}=="(\w+)", ATTR\{idProduct\}=="([\w|]+)", GOTO="dongled_modem"',
            rules,
        )
        for pid in pids.split("|")
    }
    assert {("2c7c", "0121"), ("05c6", "9215"), ("1e0e", "9001")} <= pairs
    ops = (ROOT / "docs" / "operations.md").read_text()
    section = " ".join(ops.split("## udev rules", 1)[1].split("\n## ", 1)[0].split())
    for vid, pid in sorted(pairs):
        listed = re.search(rf"{vid}:[\w, ]*\b{pid}\b", section)
        assert listed is not None, f"{vid}:{pid} is matched by the rules, not in operations.md"


def test_the_ami_user_s_write_classes_are_given_for_every_driver() -> None:
    ops = (ROOT / "docs" / "operations.md").read_text()
    rows = dict(re.findall(r"^\| `([\w+-]+)` \| .* \| `([\w,]+)` \|$", ops, re.M))
    assert rows == {
        "chan_dongle": "config,reporting",
        "chan_quectel-im": "config,reporting",
        "chan_quectel-re": "command",
        "chan_dongle+chan_quectel-im": "config,reporting",
        "chan_dongle+chan_quectel-re": "config,reporting,command",
    }


def test_status_json_names_every_driver_value() -> None:
    doc = " ".join((ROOT / "docs" / "status-json.md").read_text().split())
    for value in ("chan_quectel-re", "chan_dongle+chan_quectel-re", "chan_dongle+chan_quectel-im"):
        assert value in doc


def test_the_troubleshooting_table_quotes_what_status_prints() -> None:
    """The README's symptom for a config problem is the line `dongled status` prints."""
    from dongled.status.reader import problems

    said = problems({"ami_connected": True, "conf_error": "/etc/asterisk/dongle.conf:3: x"})
    assert said == ["config problem: /etc/asterisk/dongle.conf:3: x"]
    assert (
        "| `config problem: FILE:LINE: ...` under the table |" in (ROOT / "README.md").read_text()
    )
