"""install.sh on a production-like PBX, without changing this machine: a directory stands in
for /, and the system tools it calls (apt-get, systemctl, runuser, chown, ...) are fakes first
in PATH that log what they were asked. So is `python3`: a pyenv-style interpreter first in
root's PATH, which install.sh must never use. The venv is real (built with the distribution's
/usr/bin/python3, dongled installed without its dependencies) and the asterisk user's
`dongled --version` really runs it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")

pytestmark = pytest.mark.skipif(
    not SYSTEM_PYTHON.exists() or shutil.which("bash") is None, reason="needs /usr/bin/python3"
)

_LOG = 'echo "$(basename "$0") $*" >> "$FAKE_LOG"\n'
FAKES = {
    # pyenv's shim, first in root's PATH: calling it is the bug this installer must not have
    "python3": _LOG + "echo 'pyenv python3 3.11.7 called' >&2\nexit 1\n",
    "apt-get": _LOG + 'case " $* " in *" -s "*) printf "%s\\n" "${FAKE_APT_SIM:-}" ;; esac\n',
    "systemctl": _LOG,
    "udevadm": _LOG,
    "usermod": _LOG,
    "chown": _LOG,
    "chgrp": _LOG,
    "getent": '[ -z "${FAKE_NO_ASTERISK:-}" ] && echo "asterisk:x:113:120::/var/lib/asterisk"\n',
    "id": '[ "$1" = -u ] && { echo 0; exit 0; }\n[ "$1" = -nG ] && { echo asterisk; exit 0; }\n'
    'exec /usr/bin/id "$@"\n',
    # runuser -u asterisk -- CMD...: run CMD (this test's user stands in for asterisk), except
    # the daemon itself, and a --version that FAKE_VERSION_FAILS makes fail as on a pyenv box
    "runuser": _LOG + 'shift 3\ncase "$*" in\n'
    '  *" run") exit 0 ;;\n'
    '  *" --version") [ -n "${FAKE_VERSION_FAILS:-}" ] && '
    '{ echo "$1: Permission denied" >&2; exit 126; } ;;\nesac\nexec "$@"\n',
}


@dataclass
class Box:
    root: Path
    log: Path
    env: dict[str, str]

    def install(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(ROOT / "install.sh"), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**self.env, **env},
            check=False,
        )

    def calls(self, tool: str) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [
            line.split(" ", 1)[1] if " " in line else ""
            for line in lines
            if line.split()[0] == tool
        ]

    @property
    def venv(self) -> Path:
        return self.root / "opt/dongled"


@pytest.fixture
def box(tmp_path: Path) -> Box:
    root = tmp_path / "root"
    (root / "etc/asterisk").mkdir(parents=True)
    (root / "etc/asterisk/dongle.conf").write_text("[general]\n")
    (root / "run/systemd/system").mkdir(parents=True)
    fakes = tmp_path / "pyenv-shims"
    fakes.mkdir()
    for name, body in FAKES.items():
        f = fakes / name
        f.write_text("#!/bin/bash\n" + body)
        f.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{fakes}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "DONGLED_TEST_ROOT": str(root),
        "DONGLED_TEST_PIP_OPTIONS": "--no-deps",  # dongled itself; --version needs no more
        # what `apt-get -s install` prints on an up-to-date box
        "FAKE_APT_SIM": "Inst python3-systemd (235-1+b2 Debian:12/stable [amd64])",
    }
    # pip's own settings of this machine (index, wheel cache) still apply
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return Box(root, log, env)


def test_install_with_pyenv_first_in_path_uses_the_distribution_python(box: Box) -> None:
    # an earlier install, made by another interpreter (root's pyenv 3.11.7)
    (box.venv / "bin").mkdir(parents=True)
    (box.venv / "bin/python").symlink_to("/root/.pyenv/versions/3.11.7/bin/python3.11")
    (box.venv / "pyvenv.cfg").write_text("home = /root/.pyenv/versions/3.11.7/bin\n")
    etc = box.root / "etc/dongled"
    etc.mkdir(parents=True)
    (etc / "ami-secret").write_text("s3cret\n")
    (box.root / "etc/asterisk/quectel.conf").write_text("[general]\n")  # an LTE site too

    out = box.install()
    print(f"\n$ sudo ./install.sh   (exit {out.returncode})\n{out.stdout}{out.stderr}")
    assert out.returncode == 0, out.stderr
    assert box.calls("python3") == []  # the pyenv shim was never run
    assert "was made by /root/.pyenv/versions/3.11.7/bin/python3.11; rebuilding it" in out.stdout
    python = (box.venv / "bin/python").resolve()
    assert python == SYSTEM_PYTHON.resolve()
    assert "include-system-site-packages = true" in (box.venv / "pyvenv.cfg").read_text()
    # the asterisk user was made to run it before the service was started
    assert f"-u asterisk -- {box.venv}/bin/dongled --version" in box.calls("runuser")
    assert box.calls("systemctl") == [
        "daemon-reload",
        "enable dongled.service",
        "restart dongled.service",
        "--no-pager status dongled.service",
    ]
    # distribution packages only: no compiler, no libsystemd-dev, no upgrade
    installs = [c for c in box.calls("apt-get") if c.startswith("install")]
    assert installs == [
        "install -y -q --no-install-recommends python3 python3-venv python3-systemd"
    ]
    # settings readable for `dongled status`; the secret for root and asterisk only
    assert stat.S_IMODE((etc / "dongled.toml").stat().st_mode) == 0o644
    assert stat.S_IMODE((etc / "ami-secret").stat().st_mode) == 0o640
    assert f"root:asterisk {etc}/ami-secret" in box.calls("chown")
    # dongled replaces each driver's file, keeping its owner: the service user's
    for conf in ("dongle.conf", "quectel.conf"):
        assert f"asterisk:asterisk {box.root}/etc/asterisk/{conf}" in box.calls("chown")
    assert "no /etc/asterisk/" not in out.stderr  # both there: nothing to say
    assert os.readlink(box.root / "usr/local/bin/dongled") == f"{box.venv}/bin/dongled"
    version = subprocess.run(
        [str(box.root / "usr/local/bin/dongled"), "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("dongled ")


def test_a_systemd_upgrade_is_refused(box: Box) -> None:
    sim = "Inst libsystemd0 [252.30-1~deb12u2] (252.39-1~deb12u2 Debian:12/stable [amd64])\n"
    sim += "Inst systemd [252.30-1~deb12u2] (252.39-1~deb12u2 Debian:12/stable [amd64])"
    out = box.install(FAKE_APT_SIM=sim)
    assert out.returncode == 1
    assert "would upgrade libsystemd0 systemd; upgrade the box first" in out.stderr
    assert [c for c in box.calls("apt-get") if c.startswith("install")] == []
    assert not box.venv.exists() and box.calls("systemctl") == []


def test_a_service_user_that_cannot_run_dongled_stops_the_install(box: Box) -> None:
    out = box.install(FAKE_VERSION_FAILS="1")
    assert out.returncode == 1
    assert f"the asterisk user cannot run {box.venv}/bin/dongled --version" in out.stderr
    assert "Permission denied" in out.stderr
    assert box.calls("systemctl") == []  # nothing started that would fail with 203/EXEC


def test_without_systemd_it_runs_as_asterisk(box: Box) -> None:
    shutil.rmtree(box.root / "run/systemd")
    etc = box.root / "etc/dongled"
    etc.mkdir(parents=True)
    (etc / "dongled.toml").write_text('[ami]\nsecret = "s3cret"\n')  # an inline secret
    out = box.install()
    assert out.returncode == 0, out.stderr
    assert "running dongled as asterisk in the foreground" in out.stdout
    assert box.calls("runuser")[-1] == f"-u asterisk -- {box.root}/usr/local/bin/dongled run"
    assert f"asterisk:asterisk {box.root}/run/dongled" in box.calls("chown")
    # the secret is in the settings themselves: they stay private, and the admin is told
    assert stat.S_IMODE((etc / "dongled.toml").stat().st_mode) == 0o640
    assert "holds the AMI secret itself" in out.stderr and "secret_file" in out.stderr
    # no quectel.conf yet: one created later as root could not be replaced by dongled
    assert (
        "no /etc/asterisk/quectel.conf yet; if you create it later, make it the asterisk "
        "user's: chown asterisk:asterisk /etc/asterisk/quectel.conf"
    ) in out.stderr
    assert "no /etc/asterisk/dongle.conf" not in out.stderr


def test_without_an_asterisk_user_it_changes_nothing_and_says_what_to_do(box: Box) -> None:
    for systemd in (True, False):
        if not systemd:
            shutil.rmtree(box.root / "run/systemd")
        out = box.install(FAKE_NO_ASTERISK="1")
        assert out.returncode == 1
        assert "no asterisk user: install Asterisk (and chan_dongle) first" in out.stderr
        assert box.calls("apt-get") == [] and box.calls("runuser") == []  # never as root
        assert not box.venv.exists()


def test_install_script_is_clean_for_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (.ci/run installs it)")
    subprocess.run(["shellcheck", str(ROOT / "install.sh")], check=True, timeout=60)


def test_uninstall_removes_only_what_install_made(box: Box) -> None:
    (box.venv / "bin").mkdir(parents=True)
    (box.venv / "bin/dongled").write_text("")
    bin_dir = box.root / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "dongled").symlink_to(box.venv / "bin/dongled")
    etc = box.root / "etc/dongled"
    etc.mkdir(parents=True)
    (etc / "dongled.toml").write_text("")
    out = box.install("--uninstall")
    assert out.returncode == 0, out.stderr
    assert not box.venv.exists() and not (bin_dir / "dongled").is_symlink()
    assert (etc / "dongled.toml").exists() and "Settings kept in /etc/dongled" in out.stdout
    assert (box.root / "etc/asterisk/dongle.conf").read_text() == "[general]\n"
    assert box.calls("systemctl") == ["disable --now dongled.service", "daemon-reload"]
    # what stays behind, for both drivers' files, and that parked sections stay parked
    said = " ".join(out.stdout.split())
    assert "dongle.conf and quectel.conf are left as they are" in said
    assert "dongle.conf.dongled-bak and quectel.conf.dongled-bak" in said
    assert "stays parked on /dev/null/dongled-stick-absent-* paths" in said
    assert box.install("--purge").returncode == 0 and not etc.exists()
