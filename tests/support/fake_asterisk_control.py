"""Starting and stopping the test chan_dongle's devices (AMI/CLI), with the delay of a real
one's monitor thread letting go of the ttys. Runs on the FakeAsterisk loop thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .fake_asterisk_dongle import ChanDongle, Device


class DeviceControl:
    """DongleStop/DongleStart/DongleRestart (and the forks' own) on the devices of `chan`."""

    def __init__(self, chan: ChanDongle) -> None:
        self._chan = chan

    def stop(self, name: str) -> bool:
        device = self._chan.devices.get(name)
        if device is None:
            return False
        device.desired = "stop"
        self._begin_close(device, "stopped")
        return True

    def start(self, name: str) -> bool:
        device = self._chan.devices.get(name)
        if device is None:
            return False
        device.desired = "start"
        if device.closing is not None:
            return True  # re-opened the moment its monitor lets go (see _finish_close)
        if device.state == "Stopped":
            device.state = "Not connected"
        self._chan.open_device(device)
        return True

    def restart(self, name: str) -> bool:
        device = self._chan.devices.get(name)
        if device is None:
            return False
        device.desired = "start"
        if device.port is None:
            self._chan.open_device(device)
        else:
            self._begin_close(device, "restart")
        return True

    def _begin_close(self, device: Device, reason: str) -> None:
        """DongleStop/DongleRestart answer at once, but the device's monitor thread lets go
        of its ttys only later (a real one was still closing 8 ms after the stop): until
        `close_delay` has passed its ttys stay open and locked and its entry still shows
        them, with CurrentDeviceState start."""
        if device.port is None:
            if device.desired == "stop":
                device.state = "Stopped"
            return
        if device.closing is not None:
            return
        task, device.init_task = device.init_task, None
        if task is not None:
            task.cancel()
        device.port.stop_reading()
        device.closing = self._chan.loop.call_later(
            self._chan.close_delay, self._finish_close, device, reason
        )

    def _finish_close(self, device: Device, reason: str) -> None:
        device.closing = None
        if self._chan.devices.get(device.name) is not device:
            return
        self._chan.release(device, reason)
        if device.desired == "start":
            # Started again (reload, DongleStart, DongleRestart) while it was closing: the
            # re-open follows the close at once, with the last keep-alive still in flight.
            # (Not seen on a real DongleRestart; modelled as the same hazard, the safe side.)
            self._chan.journal.hazard(
                f"[{device.name}] re-opened as its monitor closes: a stopped device's last "
                "command is still in flight"
            )
            self._chan.open_device(device, still_closing=True)
