"""The test Asterisk's personalities: chan_dongle, one chan_quectel fork, or both.

Both forks register the `quectel` CLI and channel type, so a box runs one of them, with or
without chan_dongle: `make_fake_asterisk(personality)` builds any of `PERSONALITIES`, looked up
in `PERSONALITY` (what each one loads). docs/chan_quectel.md says what the forks do; the model
is in `fake_asterisk_quectel_chan` and `fake_asterisk_quectel_module`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fake_asterisk import FakeAsterisk, HostedDriver
from .fake_asterisk_dongle_module import DongleModule
from .fake_asterisk_quectel_chan import ChanQuectel, QuectelJournal
from .fake_asterisk_quectel_module import IM, RE, Fork, QuectelModule


@dataclass(frozen=True)
class Personality:
    """What one Asterisk personality loads: chan_dongle, a chan_quectel fork, or both."""

    name: str
    chan_dongle: bool
    fork: Fork | None
    dongled_driver: str  # what dongled's `driver =` says for this Asterisk

    @property
    def mixed(self) -> bool:
        """chan_dongle beside a fork: two files, two lanes."""
        return self.chan_dongle and self.fork is not None

    @property
    def parts(self) -> list[str]:
        """The channel drivers it loads, as the real tier names them."""
        fork = [f"quectel-{self.fork.name}"] if self.fork is not None else []
        return (["chan_dongle"] if self.chan_dongle else []) + fork

    @property
    def cli_only(self) -> bool:
        """A fork with no AMI action of its own (RE): driven by CLI commands over AMI."""
        return self.fork is not None and not self.fork.actions

    @property
    def opens_on_timer(self) -> bool:
        """A fork whose first connect waits for its [general] interval timer (RE)."""
        return self.fork is not None and not self.fork.model.opens_at_load


PERSONALITY = {
    p.name: p
    for p in (
        Personality("chan_dongle", True, None, "chan_dongle"),
        Personality("quectel-im", False, IM, "chan_quectel-im"),
        Personality("quectel-re", False, RE, "chan_quectel-re"),
        Personality("chan_dongle+quectel-im", True, IM, "chan_dongle+chan_quectel-im"),
        Personality("chan_dongle+quectel-re", True, RE, "chan_dongle+chan_quectel-re"),
    )
}
PERSONALITIES = tuple(PERSONALITY)


class FakeAsteriskQuectel(FakeAsterisk):
    """The test Asterisk with one chan_quectel fork, and chan_dongle too if `conf_path` is set.

    A FakeAsterisk hosting those drivers, plus the fork's test hooks. `quectel_conf_path` is
    its quectel.conf; `quectel_interval` replaces its [general] interval= (RE's first connect
    waits that long after load). After `crashes` grows, the Asterisk is down: `restart()`
    then `come_up()` is systemd starting it again.
    """

    def __init__(
        self,
        conf_path: str | None,
        *,
        quectel_conf_path: str,
        fork: Fork,
        lock_dir: str,
        quectel_interval: float = 2.0,
        **kwargs: Any,
    ) -> None:
        self.quectel = QuectelModule(fork, quectel_conf_path, quectel_interval)
        drivers: list[HostedDriver] = [] if conf_path is None else [DongleModule(self.chan_class)]
        drivers.append(self.quectel)
        self._qjournal = QuectelJournal()
        super().__init__(
            conf_path or "", lock_dir=lock_dir, drivers=drivers, journal=self._qjournal, **kwargs
        )
        self.fork = fork.name

    @property
    def alsa_cards(self) -> dict[str, str]:
        """ALSA card name -> IMEI of the module owning it (see ChanQuectel.alsa_cards)."""
        return self.quectel.alsa_cards

    @property
    def alsa_opens(self) -> list[tuple[str, str]]:
        """(device, alsadev) each time a device with USB audio opened its ALSA device."""
        return self._qjournal.alsa_opens

    def quectel_cli(self, command: str) -> list[str]:
        """What `command` prints at the Asterisk console (no crash check: test use only)."""
        return self.cli(command)


def make_fake_asterisk(
    personality: str,
    *,
    lock_dir: str,
    dongle_conf: str | None = None,
    quectel_conf: str | None = None,
    **kwargs: Any,
) -> FakeAsterisk:
    """A (not yet started) test Asterisk with the channel drivers `personality` names."""
    chosen = PERSONALITY.get(personality)
    if chosen is None:
        raise ValueError(
            f"unknown personality {personality!r}; the two chan_quectel forks register the same "
            f"CLI and channel type and cannot be loaded together. Known: {PERSONALITIES}"
        )
    if chosen.chan_dongle and dongle_conf is None:
        raise ValueError(f"{personality} needs dongle_conf")
    if chosen.fork is None:
        assert dongle_conf is not None
        return FakeAsterisk(dongle_conf, lock_dir=lock_dir, **kwargs)
    if quectel_conf is None:
        raise ValueError(f"{personality} needs quectel_conf")
    return FakeAsteriskQuectel(
        dongle_conf if chosen.chan_dongle else None,
        quectel_conf_path=quectel_conf,
        fork=chosen.fork,
        lock_dir=lock_dir,
        **kwargs,
    )


__all__ = [
    "PERSONALITIES",
    "PERSONALITY",
    "ChanQuectel",
    "FakeAsteriskQuectel",
    "Personality",
    "QuectelJournal",
    "make_fake_asterisk",
]
