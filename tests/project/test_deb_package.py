"""The Debian package under a real systemd: install, status, upgrade, remove and purge with apt.

A throw-away box (tests/support/systemd_box.py, an overlay of this machine whose upper layer
is a tmpfs) gets an asterisk user and a dongle.conf, then `apt-get install ./dongled_*.deb`, as
an admin would. Debian's python3-* libraries come from this machine (.ci/run installs them).
The sticks are this process's umockdev testbed, reaching the packaged unit through the same
test-only drop-in as tests/project/test_systemd_unit.py; the test Asterisk listens on loopback.

The packages are built outside the test (building is not what is tested): DONGLED_TEST_DEB
names the package to install, DONGLED_TEST_DEB_UPGRADE a later version of it (.ci/run builds
both with build-deb.sh). Without them the tests skip. The tests run in file order.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.box_asterisk import show_devices
from tests.support.box_site import APT_ENV, DROPIN_TESTBED, BoxAsterisk
from tests.support.marks import needs_umockdev
from tests.support.modemsim import E1550_USB, StickSim
from tests.support.rig import HEADER, make_imei, section_text
from tests.support.systemd_box import (
    TESTBED_MOUNT,
    SystemdBox,
    SystemdBoxError,
    box_unavailable_reason,
)
from tests.support.testbed import FakeStick, Testbed

DEB = os.environ.get("DONGLED_TEST_DEB", "")
DEB_UPGRADE = os.environ.get("DONGLED_TEST_DEB_UPGRADE", "")
BUILD_HINT = "build them with ./build-deb.sh (and --version V for the upgrade); .ci/run does"

pytestmark = [
    pytest.mark.systemd,
    needs_umockdev,
    pytest.mark.skipif(
        box_unavailable_reason() is not None, reason=f"systemd box: {box_unavailable_reason()}"
    ),
    pytest.mark.skipif(
        not os.path.isfile(DEB), reason=f"DONGLED_TEST_DEB names no .deb; {BUILD_HINT}"
    ),
    pytest.mark.timeout(300),
]

N_STICKS = 2
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]
SETTINGS = "/etc/dongled/dongled.toml"
# What purge leaves on purpose (docs/install.md, "The Debian package"): dongled's last backup of
# dongle.conf (when it wrote one) and man-db's cache of a page that was read (man-db's own,
# expired by its daily job).
KEPT = {"/etc/asterisk/dongle.conf.dongled-bak", "/var/cache/man/cat5/dongled.toml.5.gz"}


@dataclass
class Site:
    box: SystemdBox
    tb: Testbed
    sticks: list[FakeStick]
    imeis: list[str]
    asterisk: BoxAsterisk | None = None
    before: set[str] = field(default_factory=set)  # named after dongled before the install

    def apt(self, *args: str) -> str:
        """apt-get's output, without dpkg's progress lines."""
        proc = self.box.run(*APT, *args, cwd="/root", env=APT_ENV, timeout=600)
        lines = (proc.stdout + proc.stderr).splitlines()
        return "\n".join(ln for ln in lines if not ln.startswith("(Reading database ... "))

    def state(self) -> dict[str, str]:
        return self.box.show(
            "dongled.service", "ActiveState", "SubState", "MainPID", "StatusText", "LoadState"
        )

    def device_right(self, i: int) -> bool:
        assert self.asterisk is not None
        entry = show_devices(self.asterisk.port).get(f"dongle{i}")
        return (
            entry is not None
            and entry["State"] == "Free"
            and entry["IMEIState"] == self.imeis[i]
            and entry["DataState"] == self.sticks[i].data_port.devnode
        )

    def wait_all_right(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.device_right(i) for i in range(N_STICKS)):
            if time.monotonic() > deadline:
                raise AssertionError(self.box.journal("-u", "dongled", "-n", "60"))
            time.sleep(0.1)

    def status(self) -> tuple[int, str]:
        """`dongled status` as an unprivileged user: needs no root and no secret."""
        proc = self.box.run("runuser", "-u", "nobody", "--", "dongled", "status", check=False)
        return proc.returncode, proc.stdout + proc.stderr


def _named_dongled(box: SystemdBox) -> set[str]:
    """Every path named after dongled where a package or its service could put something."""
    return set(
        box.run(
            "find", "/etc", "/usr", "/var/lib", "/var/log", "/var/cache", "/opt", "/run", "-xdev",
            "-iname", "*dongled*", "-not", "-path", f"{TESTBED_MOUNT}*", check=False,
        ).stdout.split()
    )  # fmt: skip


def _deb_into_box(box: SystemdBox, deb: str) -> str:
    inside = f"/root/{Path(deb).name}"
    box.path(inside).write_bytes(Path(deb).read_bytes())
    return f"./{Path(deb).name}"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Testbed() as tb:
        os.chmod(tb.root_dir, 0o1777)
        os.chmod(os.path.join(tb.root_dir, "ioctl", "_default"), 0o666)
        imeis = [make_imei(800 + i) for i in range(N_STICKS)]
        sticks = [
            tb.add_stick(
                E1550_USB,
                StickSim(imei, f"25001000008{i:04d}"),
                [3 * i, 3 * i + 1, 3 * i + 2],
                usb_port=str(i + 1),
            )
            for i, imei in enumerate(imeis)
        ]
        box = SystemdBox(tb.root_dir)
        s = Site(box, tb, sticks, imeis)
        try:
            # Docker's policy-rc.d (exit 101: start no service during an image build) is no
            # part of a booted machine; with it, no package could start its service here.
            box.run("rm", "-f", "/usr/sbin/policy-rc.d")
            # what Asterisk's packaging leaves: its user (not yet in dialout) and its files,
            # dongle.conf still root's as an editor leaves it
            box.run("useradd", "--system", "--user-group", "--home-dir", "/var/lib/asterisk",
                    "asterisk")  # fmt: skip
            for home in ("/etc/asterisk", "/var/lib/asterisk"):
                box.run("install", "-d", "-o", "asterisk", "-g", "asterisk", home)
            box.write(
                "/etc/asterisk/dongle.conf",
                HEADER
                + "".join(
                    section_text(i, imeis[i], st.data_port.devnode, st.audio_port.devnode)
                    for i, st in enumerate(sticks)
                ),
            )
            # what udev/77-dongled.rules does for a stick's ttys
            dialout = int(box.run("getent", "group", "dialout").stdout.split(":")[2])
            for stick in sticks:
                for port in stick.ports.values():
                    tty = os.path.join(tb.root_dir, "dev", f"ttyUSB{port.tty_number}")
                    pty = os.readlink(tty)
                    os.chown(pty, -1, dialout)
                    os.chmod(pty, 0o660)
            s.before = _named_dongled(box)
            box.write("/etc/systemd/system/dongled.service.d/50-testbed.conf", DROPIN_TESTBED)
            yield s
        except SystemdBoxError as exc:
            pytest.fail(f"{exc}\nboot log:\n{box.boot_log()}")
        finally:
            if s.asterisk is not None:
                s.asterisk.close()
            box.close()


def test_install_enables_and_starts_the_unit(site: Site) -> None:
    box = site.box
    out = site.apt("install", "--no-install-recommends", _deb_into_box(box, DEB))
    print(f"\n$ apt-get install ./{Path(DEB).name}\n{out}")
    # Debian's libraries only: apt fetched nothing (they are installed on this machine)
    assert "Need to get" not in out or "Need to get 0 B" in out, out
    state = site.state()
    print(f"$ systemctl status dongled\n{box.systemctl('status', 'dongled', check=False).stdout}")
    assert state["ActiveState"] == "active", (state, box.journal("-u", "dongled", "-n", "40"))
    assert re.fullmatch(r"\d+ sticks?, \d+ on their devices.*", state["StatusText"]), state
    assert box.systemctl("is-enabled", "dongled").stdout.strip() == "enabled"
    unit = box.show("dongled.service", "FragmentPath", "ExecStart")
    assert unit["FragmentPath"] == "/lib/systemd/system/dongled.service"
    assert "path=/usr/bin/dongled" in unit["ExecStart"], unit
    # the service user, as install.sh sets it up
    assert "dialout" in box.run("id", "-nG", "asterisk").stdout.split()
    assert box.run("stat", "-c", "%U:%G", "/etc/asterisk/dongle.conf").stdout.strip() == (
        "asterisk:asterisk"
    )
    conffiles = box.run("dpkg-query", "-W", "-f=${Conffiles}", "dongled").stdout
    assert SETTINGS in conffiles, conffiles
    for page in ("/usr/share/man/man8/dongled.8.gz", "/usr/share/man/man5/dongled.toml.5.gz"):
        assert box.path(page).is_file(), page
    # the unit's Documentation= points at the manual as it is, links between pages intact
    docs = box.show("dongled.service", "Documentation")["Documentation"].split()
    readme = next(d for d in docs if d.startswith("file://")).removeprefix("file://")
    assert box.path(readme).is_file(), docs
    assert box.path("/usr/share/doc/dongled/docs/install.md").is_file()
    shown = box.run("man", "-P", "cat", "5", "dongled.toml", env={"MANWIDTH": "80"}).stdout
    assert "secret_file" in shown
    # the runtime libraries are Debian's (/usr/lib/python3/dist-packages), none from PyPI
    where = box.run(
        "/usr/bin/python3", "-c",
        "import pyudev, serial, panoramisk, prometheus_client, systemd.journal as j;"
        "print(pyudev.__file__, serial.__file__, panoramisk.__file__,"
        " prometheus_client.__file__, j.__file__)",
    ).stdout.split()  # fmt: skip
    assert all(p.startswith("/usr/lib/python3/dist-packages/") for p in where), where


def test_configured_it_verifies_every_device_and_status_answers(site: Site) -> None:
    """README's steps 2 and 3: the AMI user's secret in /etc/dongled/ami-secret, named in the
    settings, then a restart."""
    box = site.box
    site.asterisk = BoxAsterisk(box, site.tb)
    box.run("install", "-m", "0640", "-g", "asterisk", "/dev/null", "/etc/dongled/ami-secret")
    box.path("/etc/dongled/ami-secret").write_text("s3cret\n")
    # the admin's edit of the template: three keys of its [ami] table uncommented and set
    settings = box.path(SETTINGS)
    text = settings.read_text()
    for line, value in (
        ("# port = 5038", f"port = {site.asterisk.port}"),
        ('# username = "dongled"', 'username = "dongled"'),
        ('# secret_file = ""', 'secret_file = "/etc/dongled/ami-secret"'),
    ):
        assert text.count(f"\n{line}\n") == 1, line
        text = text.replace(f"\n{line}\n", f"\n{value}\n")
    settings.write_text(text)
    box.systemctl("restart", "dongled")
    site.wait_all_right()
    code, table = site.status()
    print(f"\n$ dongled status   (as nobody)\n{table}")
    assert code == 0, table
    for imei in site.imeis:
        assert imei in table
    state = site.state()
    assert state["StatusText"].startswith(f"{N_STICKS} sticks, {N_STICKS} on their devices"), state


@pytest.mark.skipif(
    not os.path.isfile(DEB_UPGRADE),
    reason=f"DONGLED_TEST_DEB_UPGRADE names no .deb; {BUILD_HINT}",
)
def test_upgrade_keeps_the_edited_settings_and_restarts_the_unit(site: Site) -> None:
    box = site.box
    edited = box.path(SETTINGS).read_bytes()
    before = site.state()
    out = site.apt("install", "--no-install-recommends", _deb_into_box(box, DEB_UPGRADE))
    print(f"\n$ apt-get install ./{Path(DEB_UPGRADE).name}\n{out}")
    version = box.run("dpkg-query", "-W", "-f=${Version}", "dongled").stdout
    assert version in Path(DEB_UPGRADE).name, version
    assert box.path(SETTINGS).read_bytes() == edited
    leftovers = [p.name for p in box.path("/etc/dongled").iterdir()]
    assert sorted(leftovers) == ["ami-secret", "dongled.toml"], leftovers  # no .dpkg-new/-dist
    after = site.state()
    assert after["ActiveState"] == "active", after
    assert after["MainPID"] != before["MainPID"], (before, after)  # restarted on upgrade
    site.wait_all_right()
    code, table = site.status()
    print(f"$ dongled status   (after the upgrade)\n{table}")
    assert code == 0, table


def test_remove_stops_the_unit_and_keeps_the_settings(site: Site) -> None:
    box = site.box
    pid = site.state()["MainPID"]
    out = site.apt("remove", "dongled")
    print(f"\n$ apt-get remove dongled\n{out}")
    assert site.state()["LoadState"] == "not-found"
    assert not box.path(f"/proc/{pid}").exists()  # the daemon is gone, not just forgotten
    assert box.run("pgrep", "-f", "dongled run", check=False).returncode == 1
    assert not os.path.lexists(box.path("/usr/bin/dongled"))
    status = box.run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "dongled").stdout
    assert status.strip() == "rc", status  # removed, its configuration kept
    assert box.path(SETTINGS).is_file()
    stopped = box.journal("-u", "dongled", "-n", "5", "-o", "cat")
    print(f"$ journalctl -u dongled -n 5\n{stopped}")
    assert "Stopped " in stopped


def test_purge_leaves_nothing_of_dongled(site: Site) -> None:
    box = site.box
    out = site.apt("purge", "dongled")
    print(f"\n$ apt-get purge dongled\n{out}")
    assert box.run("dpkg-query", "-W", "dongled", check=False).returncode != 0
    assert not os.path.lexists(box.path("/etc/dongled"))
    # the test's own drop-in goes the way an admin's `systemctl edit` drop-in would
    box.run("rm", "-r", "/etc/systemd/system/dongled.service.d")
    left = _named_dongled(box) - site.before
    print("$ find / -iname '*dongled*'   (after purge, new since before the install)")
    print("\n".join(sorted(left)) or "(nothing)")
    assert left - KEPT == set(), left
    # what postinst changed for the asterisk user stays: chan_dongle needs it as well
    assert "dialout" in box.run("id", "-nG", "asterisk").stdout.split()


def test_without_an_asterisk_user_it_installs_and_says_what_to_do(site: Site) -> None:
    """Installed before Asterisk: the package installs, changes nothing of the service user's,
    and names the next step, which then sets the user up and starts the unit."""
    box = site.box
    box.run("userdel", "asterisk")
    box.write("/etc/systemd/system/dongled.service.d/50-testbed.conf", DROPIN_TESTBED)
    out = site.apt("install", "--no-install-recommends", _deb_into_box(box, DEB))
    print(f"\n$ apt-get install ./{Path(DEB).name}   (no asterisk user)\n{out}")
    assert "no asterisk user: install Asterisk" in out, out
    assert "dpkg-reconfigure dongled" in out
    status = box.run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "dongled").stdout
    assert status.strip() == "ii", status
    assert site.state()["ActiveState"] != "active"  # User=asterisk: nobody to run it as
    # Asterisk installed (its user again, in no group but its own), then the step named
    box.run("useradd", "--system", "--user-group", "--home-dir", "/var/lib/asterisk", "asterisk")
    box.run("chown", "-R", "asterisk:asterisk", "/etc/asterisk", "/var/lib/asterisk")
    told = box.run("dpkg-reconfigure", "dongled", env=APT_ENV)
    print(f"$ dpkg-reconfigure dongled\n{told.stdout}{told.stderr}")
    assert "dialout" in box.run("id", "-nG", "asterisk").stdout.split()
    assert site.state()["ActiveState"] == "active", box.journal("-u", "dongled", "-n", "20")
    site.apt("purge", "dongled")
    box.run("rm", "-r", "/etc/systemd/system/dongled.service.d")
    assert not os.path.lexists(box.path("/etc/dongled"))
