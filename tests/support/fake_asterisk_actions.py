"""The test Asterisk's AMI actions: login and its classes, the core actions (Ping, Logoff,
Reload, Command) and the dispatch of the rest to the channel drivers it hosts.

A channel driver (`ChannelDriver`) names its actions with the write classes they need, answers
them, says which `Reload Module:` names are its own, answers its CLI commands, and may name a
command that kills Asterisk. Runs on the FakeAsterisk loop thread.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from .fake_asterisk_ami import Handler, Message, Session
from .fake_asterisk_journal import Headers, Journal

WHEN = ("now", "gracefully", "when convenient")
ALL_CLASSES = frozenset(
    ("system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
     "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
     "message")
)  # fmt: skip
# Action -> write classes of which the user needs one (None: allowed to any logged-in user).
CORE_ACTION_CLASSES: dict[str, tuple[str, ...] | None] = {
    "ping": None,
    "logoff": None,
    "reload": ("system", "config"),
    "command": ("command",),
}
# A CLI command's answer: (known, output lines, what to do after answering).
CliAnswer = tuple[bool, list[str], Callable[[], object] | None]


class ChannelDriver(Protocol):
    """A channel driver module as the AMI sees it (chan_dongle, a chan_quectel fork)."""

    @property
    def action_classes(self) -> Mapping[str, tuple[str, ...] | None]: ...

    def handle(self, session: Session, msg: Message) -> bool:
        """Answer one of its actions; False hangs up the session."""
        ...

    def reload_source(self, module: str) -> str | None:
        """The reload's journal text if `Reload Module: <module>` reloads it, else None."""
        ...

    def reload(self, source: str) -> None: ...

    def cli(self, command: str) -> CliAnswer | None:
        """Its answer to a CLI command; None when the command is not its own."""
        ...

    def fatal_command(self, command: str) -> str | None:
        """Why `command` kills Asterisk (a segfault of the real one), or None."""
        ...


def no_such_command(command: str) -> CliAnswer:
    """Asterisk's answer to a CLI command nobody registered."""
    return (
        False,
        [f"No such command '{command}' (type 'core show help {command}' for other possible "
         "commands)"],
        None,
    )  # fmt: skip


def send_device_list(
    session: Session, msg: Message, prefix: str, entries: list[dict[str, str]]
) -> bool:
    """A ShowDevices answer: the list start, one <prefix>DeviceEntry each, the Complete."""
    action_id = msg.get("ActionID")
    tail: Headers = [("ActionID", action_id)] if action_id is not None else []
    out = [
        msg.reply(
            "Success",
            None,
            ("EventList", "start"),
            ("Message", "Device status list will follow"),
        )
    ]
    for entry in entries:
        out.append([("Event", f"{prefix}DeviceEntry"), *tail, *entry.items()])
    out.append(
        [
            ("Event", f"{prefix}ShowDevicesComplete"),
            *tail,
            ("EventList", "Complete"),
            ("ListItems", str(len(entries))),
        ]
    )
    for pairs in out:
        session.send(pairs)
    return True


class AmiUser(Protocol):
    """The one AMI user of manager.conf (a test may change it while Asterisk runs)."""

    username: str
    secret: str
    write_classes: frozenset[str]
    read_classes: frozenset[str]


class AmiActions:
    """What each action does. `drivers` in load order; `uptime` is seconds since (re)start;
    `schedule` runs a callable after the answer is written; `crash` takes Asterisk down."""

    def __init__(
        self,
        user: AmiUser,
        journal: Journal,
        drivers: Sequence[ChannelDriver],
        *,
        uptime: Callable[[], int],
        schedule: Callable[[Callable[[], object]], None],
        crash: Callable[[], None],
    ) -> None:
        self.user = user
        self._journal = journal
        self._drivers = list(drivers)
        self._uptime = uptime
        self._schedule = schedule
        self._crash = crash
        self._classes = dict(CORE_ACTION_CLASSES)
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "logoff": self._logoff,
            "reload": self._reload,
            "command": self._command,
        }
        for driver in self._drivers:
            self._classes.update(driver.action_classes)
            self._handlers.update(dict.fromkeys(driver.action_classes, driver.handle))

    def handle(self, session: Session, msg: Message) -> bool:
        """Answer one action; False hangs up the session."""
        action = (msg.get("Action") or "").strip()
        headers = {k: v for k, v in msg.pairs}
        self._journal.action(action, headers)
        key = action.lower()
        if not action:
            session.send(msg.reply("Error", "Missing action in request"))
            return True
        if key == "login":
            return self._login(session, msg)
        if not session.authenticated:
            session.send(msg.reply("Error", "Permission denied"))
            return True
        if key not in self._classes:
            session.send(msg.reply("Error", "Invalid/unknown command"))
            return True
        needed = self._classes[key]
        if needed is not None and not self.user.write_classes.intersection(needed):
            session.send(msg.reply("Error", "Permission denied"))
            return True
        return self._handlers[key](session, msg)

    def cli(self, command: str) -> CliAnswer:
        """A CLI command: the last-loaded driver that knows it answers (chan_quectel's
        `module reload` is looked at before chan_dongle's)."""
        for driver in reversed(self._drivers):
            answer = driver.cli(command)
            if answer is not None:
                return answer
        return no_such_command(command)

    def _login(self, session: Session, msg: Message) -> bool:
        user = self.user
        if msg.get("Username") != user.username or msg.get("Secret") != user.secret:
            session.send(msg.reply("Error", "Authentication failed"))
            return False
        session.authenticated = True
        wanted = (msg.get("Events") or "on").strip().lower()
        if wanted in ("on", "yes", "true", "1", "all"):
            session.events = user.read_classes
        elif wanted in ("off", "no", "false", "0", ""):
            session.events = frozenset()
        else:
            asked = {c.strip() for c in wanted.split(",")}
            if "all" in asked:
                asked = set(ALL_CLASSES)
            session.events = user.read_classes.intersection(asked)
        session.send(msg.reply("Success", "Authentication accepted"))
        if "system" in session.events:
            uptime = str(self._uptime())
            session.send(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", uptime),
                    ("LastReload", uptime),
                    ("Status", "Fully Booted"),
                ]
            )
        return True

    def _ping(self, session: Session, msg: Message) -> bool:
        session.send(
            msg.reply("Success", None, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))
        )
        return True

    def _logoff(self, session: Session, msg: Message) -> bool:
        session.send(msg.reply("Goodbye", "Thanks for all the fish."))
        return False

    def _reload(self, session: Session, msg: Message) -> bool:
        """`Reload` of one module, or of all (no Module:): last-loaded driver first."""
        module = (msg.get("Module") or "").strip()
        hits = [(d, d.reload_source(module)) for d in reversed(self._drivers)]
        reloads = [(d, source) for d, source in hits if source is not None]
        if not reloads and module != "":
            session.send(msg.reply("Error", "No such module"))
            return True
        session.send(msg.reply("Success", "Module Reloaded"))
        for driver, source in reloads:
            self._schedule(functools.partial(driver.reload, source))
        return True

    def _command(self, session: Session, msg: Message) -> bool:
        command = " ".join((msg.get("Command") or "").split())
        for driver in self._drivers:
            fatal = driver.fatal_command(command)
            if fatal is not None:
                self._journal.crash(fatal)
                self._crash()
                return False
        ok, lines, later = self.cli(command)
        response = "Success" if ok else "Error"
        outputs = [("Output", line) for line in lines] or [("Output", "")]
        session.send(msg.reply(response, "Command output follows", *outputs))
        if later is not None:
            self._schedule(later)
        return True
