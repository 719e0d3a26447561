"""The ports a driver whose listing shows none (chan_quectel RE) is taken to run.

Such a driver's listing names a device but not its ttys, so dongled keeps what the driver
read at dongled's last reload (a start re-reads nothing) and forgets it at any sign that the
driver read another file (an admin's edit, maybe reloaded). Separate from the steps that set
and read it: the reload sets it, the read of the file and the binding checks forget it, and
the driver's control (which answers the listing) asks it.
"""

from __future__ import annotations

from collections.abc import Mapping

from dongled.conf.dongleconf import DeviceSection, sections_now
from dongled.drivers.base import Driver
from dongled.reconcile.seen import Seen


def section_ttys(sec: DeviceSection, driver: Driver) -> tuple[str, str]:
    """The (data, audio) ttys `driver` opens for `sec`: no audio tty when its voice is an ALSA
    card (an old audio= line there is not read, so it is neither held nor compared)."""
    alsa = driver.uses_uac(sec) or driver.uses_ext_uac(sec)
    return sec.data or "", "" if alsa else sec.audio or ""


def file_ports(path: str, driver: Driver) -> dict[str, tuple[str, str]]:
    """Each section's (data, audio) as the file names them now; {} when it cannot be read."""
    sections = sections_now(path) or {}
    return {name: section_ttys(sec, driver) for name, sec in sections.items()}


class DriverPorts:
    def __init__(self, seen: Seen, conf_path: str, driver: Driver) -> None:
        self._seen = seen
        self._conf_path = conf_path
        self._driver = driver
        # What the driver read at dongled's last reload; None: not known (dongled started;
        # the file may have changed since its last reload).
        self._reloaded: dict[str, tuple[str, str]] | None = None
        self._settings_trusted = True  # see trusted()

    @property
    def known(self) -> bool:
        """Whether dongled knows what the driver read (it reloaded it since the last sign
        that the driver read another file)."""
        return self._reloaded is not None

    def reloaded(self) -> None:
        """dongled just reloaded the driver with the file as it last saw it."""
        self._reloaded = self.named(self._seen.sections)

    def driver_read_unknown(self) -> None:
        """The driver may have read another file than dongled last reloaded it with (an
        admin's edit, maybe reloaded): the ports a listing without ports (RE) is taken to run
        are unknown until dongled's next reload. Nor is the driver's own word on them taken
        any more (`quectel show device settings`): a reload updates what it prints before a
        device restarts on the new ports (up to 10 s for RE), so it could pair a device's
        IMEI with ports it does not run yet."""
        self._reloaded = None
        self._settings_trusted = False

    def trusted(self) -> bool:
        """Whether a device's unknown ports may be asked of the driver itself: only until
        dongled sees a sign that the driver read a file it did not give it."""
        return self._reloaded is None and self._settings_trusted

    def named(
        self, sections: Mapping[str, DeviceSection] | None = None
    ) -> dict[str, tuple[str, str]]:
        """Each section's (data, audio) as a driver whose listing shows no ports (RE) runs
        them: what it read at dongled's last reload (a start re-reads nothing). Before that
        they are unknown, ("", ""): the file may have been edited since the driver read it,
        and a module named after the wrong section stays wrong (its ports look right to every
        later pass). Unknown ports make the plan reload, and a module RE holds is not named by
        the listing but probed once its device is stopped. Every section is named (the listing
        cuts names to 12 characters), and every one the driver read at that reload."""
        if sections is not None:
            return {name: section_ttys(sec, self._driver) for name, sec in sections.items()}
        names = self._seen.sections or file_ports(self._conf_path, self._driver)
        return {**dict.fromkeys(names, ("", "")), **(self._reloaded or {})}
