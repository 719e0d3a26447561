"""Command line: `dongled run | status | scan | adopt`. main(argv) -> exit code, testable.

Argument parsing and dispatch; `run` starts the daemon (dongled.daemon), the one-shot
commands' bodies are in dongled.oneshot.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from dongled import __version__, oneshot
from dongled.config import settings
from dongled.core.errors import ConfError, SettingsError
from dongled.oneshot import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from dongled.status import check as statuscheck
from dongled.telemetry import notify

if TYPE_CHECKING:
    from dongled.drivers.base import Driver

_EPILOG = (
    "exit codes: 0 done / all right, 1 a problem (see the message), 2 bad settings or usage, "
    "3 (status only) the daemon is not running. Full manual: README.md."
)


_DRIVER_HELP = (
    'on a box with two drivers (`driver = "chan_dongle+chan_quectel-im"`): whose file; '
    "default the first"
)


def _common(default: object) -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (`dongled --config F run` and
    `dongled run --config F`)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help=f"dongled settings (TOML; default {settings.DEFAULT_PATH}, missing = defaults)",
    )
    return p


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="dongled",
        description=(
            "Keeps chan_dongle and chan_quectel devices bound to the USB GSM/LTE stick whose "
            "IMEI they name."
        ),
        epilog=_EPILOG,
        parents=[_common(None)],
    )
    p.add_argument("--version", action="version", version=f"dongled {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # SUPPRESS: a subcommand that is not given --config keeps the value given before it.
    common = [_common(argparse.SUPPRESS)]
    run = sub.add_parser(
        "run",
        parents=common,
        help="the daemon: watch udev and keep dongle.conf / quectel.conf and Asterisk right",
        description=(
            "Run the daemon in the foreground (systemd starts it as `dongled run`).\n"
            "Watches udev for USB sticks, identifies each by IMEI, keeps every section of\n"
            "the driver's file (chan_dongle's dongle.conf, chan_quectel's quectel.conf) on the\n"
            "ports of the stick whose imei= it names, parks sections whose stick is gone,\n"
            "tells Asterisk over AMI and verifies the result. Sends READY=1, STATUS= and\n"
            "WATCHDOG=1 to systemd. Stops on SIGTERM or SIGINT."
        ),
        formatter_class=fmt,
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    st = sub.add_parser(
        "status",
        parents=common,
        help="show the IMEI-to-port table of the running daemon",
        description=(
            "Show the running daemon's view: one row per device section (IMEI, data and audio\n"
            "port, USB port of the stick, model, voice, Asterisk's state, verified, last\n"
            "change) and a row per plugged stick that no section names. Reads the daemon's\n"
            "snapshot in state_dir (/run/dongled/status.json); needs no root and no AMI\n"
            "secret. A monitoring check (Nagios/Icinga plugin exit codes).\n\n"
            "exit codes: 0 every managed line is verified on its own stick and Asterisk is\n"
            "connected, 1 a line is absent (parked), pending, foreign, ambiguous or given up,\n"
            "Asterisk is not connected, a stick is unidentified or unbound, or the driver's\n"
            "file has a problem, 2 bad settings, 3 the daemon is not running."
        ),
        formatter_class=fmt,
    )
    view = st.add_mutually_exclusive_group()
    view.add_argument("--json", action="store_true", help="the documented JSON document (schema 1)")
    view.add_argument(
        "--check",
        action="store_true",
        help="a monitoring plugin's output: first line `OK: 3 of 3 lines on their own stick` "
        "or `CRITICAL: dongle1 absent, AMI down`; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN "
        "(docs/monitoring.md)",
    )
    sc = sub.add_parser(
        "scan",
        parents=common,
        help="one-shot, without the daemon: find the sticks and show the config file's diff",
        description=(
            "Without the daemon: list the USB sticks plugged in now, identify each (Asterisk's\n"
            "IMEIState for ports the driver holds, else a short read-only AT probe of a free\n"
            "port) and print the unified diff of the driver's file (dongle.conf or\n"
            "quectel.conf) that dongled would apply, plus\n"
            "what it would ask Asterisk. Nothing is written without --apply. The diff goes to\n"
            "stdout, the report to stderr.\n\n"
            "exit codes: 0 nothing to change (or, with --apply, applied and verified), 1\n"
            "changes pending or a problem, 2 bad settings."
        ),
        formatter_class=fmt,
    )
    sc.add_argument("--driver", metavar="NAME", help=_DRIVER_HELP)
    sc.add_argument(
        "--apply",
        action="store_true",
        help="write the change atomically, stop/reload/start the devices over AMI, verify",
    )
    ad = sub.add_parser(
        "adopt",
        parents=common,
        help="add imei= to sections that have data=/audio= but no imei=",
        description=(
            "For an existing install: every section with data= and audio= but no imei= gets\n"
            "the IMEI of the stick it runs now: from Asterisk's IMEIState when chan_dongle runs\n"
            "it on the port the section names, else from a read-only AT probe when the port is\n"
            "free. Prints the diff; --apply writes it (atomically; Asterisk is not reloaded,\n"
            "its next reload restarts each adopted device once). Sections whose stick cannot\n"
            "be told, or whose IMEI another section already names, are listed and left alone.\n\n"
            "exit codes: 0 nothing left to adopt (or applied), 1 changes pending or sections\n"
            "skipped, 2 bad settings."
        ),
        formatter_class=fmt,
    )
    ad.add_argument("--driver", metavar="NAME", help=_DRIVER_HELP)
    ad.add_argument("--apply", action="store_true", help="write the imei= lines")
    return p


def _run(conf: settings.Settings, verbose: bool) -> int:
    # Imported here: `dongled status` must not pay for asyncio and the daemon's modules.
    import asyncio
    import signal

    from dongled import daemon
    from dongled.drivers.known import drivers_for
    from dongled.telemetry import eventlog, notify

    eventlog.setup(verbose, conf.driver)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await daemon.run(conf, stop, drivers=drivers_for(conf.driver))
        notify.stopping()

    try:
        asyncio.run(main())
    except daemon.DaemonFailed as exc:
        print(f"dongled: {exc}; exiting for systemd to restart it", file=sys.stderr)
        return EXIT_PROBLEM
    return EXIT_OK


def _driver(conf: settings.Settings, name: str | None) -> Driver | None:
    """The driver `--driver` names (default: the first of `driver =`); None, said, if the
    settings do not name it."""
    from dongled.drivers.known import drivers_for

    drivers = drivers_for(conf.driver)
    for driver in drivers:
        if name is None or driver.name == name:
            return driver
    known = ", ".join(d.name for d in drivers)
    print(f"dongled: --driver {name}: the settings name {known}", file=sys.stderr)
    return None


def _in_loop(coro: Coroutine[Any, Any, int]) -> int:
    import asyncio

    return asyncio.run(coro)


EXIT_PIPE_CLOSED = 128 + 13  # what a shell reports for a writer killed by SIGPIPE


def main(argv: list[str] | None = None) -> int:
    """The command's exit code. A reader that closes the pipe early (`dongled status --json |
    head`) ends the command quietly, as SIGPIPE ends other CLIs, not with a traceback."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside: a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # Python's own last flush at exit would fail again and print "Exception ignored".
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE_CLOSED
    return code


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        # `status` never reads the AMI secret: an admin who may not read it can still look.
        conf = settings.load(args.config, secret=args.command != "status")
    except SettingsError as exc:
        if args.command == "status" and args.check:  # a plugin: UNKNOWN, said on stdout
            print(statuscheck.unknown(f"bad settings: {exc.errors[0]}").line)
            return statuscheck.UNKNOWN
        for error in exc.errors:
            print(f"dongled: bad settings: {error}", file=sys.stderr)
        if args.command == "run":
            # Under systemd: `systemctl status` shows STATUS= as well as the journal's tail.
            more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
            notify.status(f"bad settings: {exc.errors[0]}{more}")
        return EXIT_USAGE
    if args.command == "run":
        return _run(conf, args.verbose)
    if args.command == "status":
        return oneshot.status(conf, args.json, args.check)
    driver = _driver(conf, args.driver)
    if driver is None:
        return EXIT_USAGE
    try:
        if args.command == "scan":
            return _in_loop(oneshot.scan(conf, args.apply, driver))
        return _in_loop(oneshot.adopt(conf, args.apply, driver))
    except ConfError as exc:
        print(f"dongled: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
