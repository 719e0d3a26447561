"""One exception tree; every error carries the data an admin needs to act on it."""

from __future__ import annotations


class DongledError(Exception):
    """Base of every error dongled raises on purpose."""


class SettingsError(DongledError):
    """dongled's own settings file is unusable; `key` names the offending key (`ami.port`)
    and `line` the line that sets it, where known."""

    def __init__(
        self, path: str, key: str | None, message: str, *, line: int | None = None
    ) -> None:
        self.path = path
        self.key = key
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        where = f"{where}: {key}" if key else where
        super().__init__(f"{where}: {message}")

    @property
    def errors(self) -> tuple[SettingsError, ...]:
        """Every error found in the file, in file order (this one alone, here)."""
        return (self,)


class SettingsErrors(SettingsError):
    """Several keys are wrong: all of them, so that one round of edits fixes the file. `path`,
    `key` and `line` are the first one's; the message has one line per error."""

    def __init__(self, errors: list[SettingsError]) -> None:
        first = errors[0]
        self.path, self.key, self.line = first.path, first.key, first.line
        self._errors = tuple(errors)
        DongledError.__init__(self, "\n".join(str(e) for e in errors))

    @property
    def errors(self) -> tuple[SettingsError, ...]:
        return self._errors


class ConfError(DongledError):
    """A driver's config file (dongle.conf, quectel.conf, or a file it includes) cannot be
    used; names file and line."""

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
    """Talking to Asterisk's manager interface failed. `action` is the AMI action that failed
    and `reply` Asterisk's own message, where there was one (e.g. "Permission denied")."""

    def __init__(self, message: str, *, action: str = "", reply: str = "") -> None:
        self.action = action
        self.reply = reply
        super().__init__(message)


class AmiAuthError(AmiError):
    """Asterisk refused the login (wrong user or secret); the secret is never included."""


class AmiTimeoutError(AmiError, TimeoutError):
    """Asterisk accepted the connection but did not answer in time."""


class AtError(DongledError):
    """The modem broke the AT protocol; `command` is the AT command being answered."""

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        super().__init__(f"{command}: {message}")


class TooLongAnswer(AtError):
    """The modem keeps sending lines and never a final result; `lines` is how many it sent."""

    def __init__(self, command: str, lines: int) -> None:
        self.lines = lines
        super().__init__(command, f"{lines} lines and no final result")


class RecoveryError(DongledError):
    """A recovery step could not be carried out; the message says which and why. `step`
    (a ladder step's value, e.g. "usb_reset") and `target` (the sysfs path, device node or
    hub port acted on) are set where the step is known."""

    def __init__(self, message: str, *, step: str = "", target: str = "") -> None:
        self.step = step
        self.target = target
        super().__init__(message)
