"""One exception tree; every error carries the data an admin needs to act on it."""

from __future__ import annotations


class DongledError(Exception):
    """Base of every error dongled raises on purpose."""


class SettingsError(DongledError):
    """dongled's own settings file is unusable; `key` names the offending key."""

    def __init__(self, path: str, key: str | None, message: str) -> None:
        self.path = path
        self.key = key
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {message}")


class ConfError(DongledError):
    """dongle.conf (or a file it includes) cannot be used; names file and line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class ConfChangedError(ConfError):
    """The file changed on disk between dongled's read and its write: nothing was written,
    so the other writer's edit (an admin's editor, a provisioning tool) is not lost."""


class ProbeError(DongledError):
    """A port could not be identified; `port` is the tty path."""

    def __init__(self, port: str, message: str) -> None:
        self.port = port
        super().__init__(f"{port}: {message}")


class PortBusyError(ProbeError):
    """Another live process holds the port's lock: not a byte was sent."""


class ProbeTimeoutError(ProbeError, TimeoutError):
    """The modem did not finish an answer in time."""


class AmiError(DongledError):
    """Talking to Asterisk's manager interface failed."""


class AmiAuthError(AmiError):
    """Asterisk refused the login (wrong user or secret); the secret is never included."""


class AmiTimeoutError(AmiError, TimeoutError):
    """Asterisk accepted the connection but did not answer in time."""
