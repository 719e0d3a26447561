"""Command line: `dongled run | status | scan | adopt`. main(argv) -> exit code, testable."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from dongled import __version__
from dongled.config import settings
from dongled.core.errors import ConfError, SettingsError
from dongled.modem.portlock import pid_alive
from dongled.reconcile.plan import check_digit_message, unmanaged_message
from dongled.status import check as statuscheck
from dongled.status.document import FILENAME, STALE_AFTER
from dongled.status.reader import exit_ok, problems, render_table
from dongled.telemetry import notify

if TYPE_CHECKING:
    from dongled.conf.dongleconf import DeviceSection as DongleSection
    from dongled.drivers.base import Driver
    from dongled.reconcile.plan import Plan

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3

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


def _read_snapshot(conf: settings.Settings) -> tuple[dict[str, Any] | None, str]:
    """The running daemon's status document, or None and why there is none."""
    path = os.path.join(conf.state_dir, FILENAME)
    try:
        with open(path, encoding="utf-8") as fh:
            snap = json.load(fh)
    except FileNotFoundError:
        return None, f"dongled is not running (no live state in {path})"
    except OSError as exc:
        return None, f"dongled's status is unreadable: {path}: {exc.strerror}"
    except ValueError:
        return None, f"dongled's status is unreadable: {path} is not a JSON document"
    pid = snap.get("pid") if isinstance(snap, dict) else None
    if not isinstance(snap, dict) or not isinstance(pid, int) or isinstance(pid, bool):
        return None, f"dongled's status is unreadable: {path} is not a status document"
    if not pid_alive(snap["pid"]):
        return None, f"dongled is not running (no live state in {path})"
    return snap, ""


def _snapshot(conf: settings.Settings) -> dict[str, Any] | None:
    """The running daemon's status document, or None when it does not run."""
    return _read_snapshot(conf)[0]


def _stale(snap: dict[str, Any]) -> str | None:
    """Why the snapshot is not current, or None. The daemon rewrites it every
    `publish_every` s: one much older comes from a daemon that hangs or cannot write."""
    at, every = snap.get("published_at"), snap.get("publish_every")
    if not isinstance(at, (int, float)) or not isinstance(every, (int, float)):
        return "it says nothing of when it was written"
    age = time.time() - at
    if age > max(STALE_AFTER, 3 * every):
        return f"it was written {age:.0f} s ago, and the daemon rewrites it every {every:g} s"
    return None


def _status(conf: settings.Settings, as_json: bool, check: bool = False) -> int:
    snap, why = _read_snapshot(conf)
    path = os.path.join(conf.state_dir, FILENAME)
    if snap is None:
        if check:
            print(statuscheck.unknown(why).line)
        elif as_json:
            print(json.dumps({"schema": 1, "running": False, "message": why}, sort_keys=True))
        else:
            print(why, file=sys.stderr)
        return statuscheck.UNKNOWN if check else EXIT_NOT_RUNNING
    stale = _stale(snap)
    if stale is not None:
        msg = (
            f"dongled's status in {path} is not current: {stale}; the daemon (pid "
            f"{snap['pid']}) hangs or cannot write it (see its journal)"
        )
        if check:
            print(statuscheck.unknown(msg).line)
            return statuscheck.UNKNOWN
        if as_json:
            doc = {"schema": 1, "running": True, "stale": True, "message": msg}
            print(json.dumps(doc, sort_keys=True))
        else:
            print(msg, file=sys.stderr)
        return EXIT_PROBLEM
    if check:
        # A plugin's output: the verdict line first, then the problems in words.
        found = statuscheck.verdict(snap)
        print("\n".join([found.line, *problems(snap)]))
        return found.code
    ok = exit_ok(snap)
    if as_json:
        print(json.dumps(snap, indent=2, sort_keys=True))
    else:
        print("\n".join(render_table(snap)))
    return EXIT_OK if ok else EXIT_PROBLEM


def _report(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def _refuse_if_running(conf: settings.Settings, what: str, path: str) -> bool:
    snap = _snapshot(conf)
    if snap is None:
        return False
    _report(
        f"dongled: the daemon runs (pid {snap.get('pid')}) and owns {path}; stop it "
        f"before `dongled {what} --apply` (systemctl stop dongled)"
    )
    return True


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


async def _scan(conf: settings.Settings, apply: bool, driver: Driver) -> int:
    from dongled import scan
    from dongled.conf.dongleconf import inherited_message

    path = settings.conf_path(conf, driver.conf_key)
    if apply and _refuse_if_running(conf, "scan", path):
        return EXIT_PROBLEM
    asterisk = await scan.connect_asterisk(conf, driver)
    try:
        result = await scan.scan(conf, asterisk, driver)
        if asterisk.devices is None:
            _report(f"Asterisk: not reachable ({asterisk.error}); the file alone is planned")
        else:
            _report(f"Asterisk: {len(asterisk.devices)} {driver.name} devices")
        for st in result.sticks:
            if st.identity is not None:
                _report(
                    f"stick USB {st.usb_port} ({st.model}): IMEI {st.identity.imei} on "
                    f"{st.data} / {st.audio}{f', ALSA card {st.card}' if st.card else ''} "
                    f"(by {st.source})"
                )
            else:
                _report(f"stick USB {st.usb_port} ({st.model}): not identified: {st.error}")
        p = result.plan
        for imei in p.unbound:
            _report(f"IMEI {imei}: plugged in, but no section has imei={imei}")
        devices = result.change.conf.devices()
        for name in p.unmanaged:
            _report(unmanaged_message(devices[name]))
        for name in p.check_digit:
            _report(check_digit_message(devices[name]))
        for name, foreign in p.mismatched.items():
            _report(f"[{name}]: Asterisk runs IMEI {foreign} on it: it must be stopped")
        unidentified = any(st.identity is None for st in result.sticks)
        for name, (data, _voice) in sorted(p.port_changes.items()):
            if data == driver.parked[0]:  # the diff parks it: say why
                _report(f"[{name}]: parked: {_parked_why(result.sections[name], p, unidentified)}")
        for name, why in p.ambiguous.items():
            if name not in p.port_changes:
                _report(f"[{name}]: no stick chosen: {why}")
        for name in p.inherited:
            _report(inherited_message(devices[name]))
        actions = [f"stop {n}" for n in p.stop]
        actions += ["reload"] if p.reload else []
        actions += [f"start {n}" for n in p.start]
        sys.stdout.write(result.change.diff)
        if not result.change.files and not actions:
            if asterisk.devices is None:
                # Nothing to write; what Asterisk runs is unknown, so not "all right".
                _report(f"{path} is right for the sticks found; Asterisk was not asked")
                return EXIT_PROBLEM
            _report(f"{path} and Asterisk are right: nothing to do")
            trouble = unidentified or p.unbound or p.ambiguous or p.inherited
            return EXIT_PROBLEM if trouble else EXIT_OK
        if actions:
            _report(f"Asterisk actions: {', '.join(actions)}")
        if not apply:
            _report("dry run: nothing written (add --apply)")
            return EXIT_PROBLEM
        wrote, problems = await scan.apply_scan(conf, result, asterisk, driver)
        if wrote:
            names = ", ".join(sorted(p.port_changes))
            voice = {
                "alsadev=" if name in p.alsa else "audio="
                for name in p.port_changes
                if name not in p.data_only  # an external card's section: data= alone
            }
            keys = "/".join(["data=", *sorted(voice)])
            _report(f"written: {', '.join(sorted(result.change.files))} ({keys} of {names})")
        _report(*problems)
        if problems:
            _report("not done: see above")
            return EXIT_PROBLEM
        _report("applied and verified" if p.expect else "applied")
        return EXIT_OK
    finally:
        await scan.close(asterisk)


def _parked_why(sec: DongleSection, p: Plan, unidentified: bool) -> str:
    """Why scan's diff parks a section (its data= and voice on paths that cannot open)."""
    if sec.name in p.ambiguous:
        return p.ambiguous[sec.name]
    why = f"no plugged stick reports IMEI {sec.imei}"
    if unidentified:
        why += " (a stick above was not identified: it may be this one)"
    return f"{why}; nothing may start it on a port another stick may have meanwhile"


async def _adopt(conf: settings.Settings, apply: bool, driver: Driver) -> int:
    from dongled import scan

    if apply and _refuse_if_running(conf, "adopt", settings.conf_path(conf, driver.conf_key)):
        return EXIT_PROBLEM
    asterisk = await scan.connect_asterisk(conf, driver)
    try:
        if asterisk.devices is None:
            _report(f"Asterisk: not reachable ({asterisk.error}); probing free ports only")
        result = await scan.adopt(conf, asterisk, driver)
    finally:
        await scan.close(asterisk)
    for name, (imei, source) in sorted(result.learned.items()):
        _report(f"[{name}]: IMEI {imei} (by {source})")
    for name, why in sorted(result.skipped.items()):
        _report(f"[{name}]: skipped: {why}")
    sys.stdout.write(result.change.diff)
    if not result.change.files:
        _report("nothing to adopt")
        return EXIT_PROBLEM if result.skipped else EXIT_OK
    if not apply:
        _report("dry run: nothing written (add --apply)")
        return EXIT_PROBLEM
    scan.write_change(result.change)
    _report(f"written: imei= added to {len(result.learned)} sections")
    return EXIT_PROBLEM if result.skipped else EXIT_OK


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
        return _status(conf, args.json, args.check)
    driver = _driver(conf, args.driver)
    if driver is None:
        return EXIT_USAGE
    try:
        if args.command == "scan":
            return _in_loop(_scan(conf, args.apply, driver))
        return _in_loop(_adopt(conf, args.apply, driver))
    except ConfError as exc:
        print(f"dongled: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
