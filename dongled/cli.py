"""Command line: `dongled run`, `dongled status`. main(argv) -> exit code, testable."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from dongled import __version__, eventlog, settings
from dongled.errors import SettingsError
from dongled.statusfile import FILENAME

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dongled",
        description="Keeps chan_dongle devices bound to the USB GSM stick whose IMEI they name.",
    )
    p.add_argument("--version", action="version", version=f"dongled {__version__}")
    p.add_argument(
        "--config",
        metavar="FILE",
        help=f"dongled settings (TOML; default {settings.DEFAULT_PATH}, missing = defaults)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="watch udev and keep dongle.conf and Asterisk right")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    st = sub.add_parser("status", help="show the IMEI-to-port table of the running daemon")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _run(conf: settings.Settings, verbose: bool) -> int:
    from dongled import daemon, notify

    eventlog.setup(verbose)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await daemon.run(conf, stop)
        notify.stopping()

    asyncio.run(main())
    return EXIT_OK


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _status(conf: settings.Settings, as_json: bool) -> int:
    path = os.path.join(conf.state_dir, FILENAME)
    try:
        with open(path, encoding="utf-8") as fh:
            snap: dict[str, Any] = json.load(fh)
    except (OSError, ValueError):
        snap = {}
    if not snap or not _pid_alive(int(snap.get("pid", 0))):
        msg = f"dongled is not running (no live state in {path})"
        if as_json:
            print(json.dumps({"schema": 1, "running": False, "message": msg}))
        else:
            print(msg, file=sys.stderr)
        return EXIT_NOT_RUNNING
    snap["running"] = True
    problem = bool(snap.get("conf_error")) or any(
        s.get("imei") is None for s in snap.get("sticks", [])
    )
    if as_json:
        print(json.dumps(snap, indent=2, sort_keys=True))
        return EXIT_PROBLEM if problem else EXIT_OK
    rows = [("USB", "IMEI", "DATA", "AUDIO", "MODEL", "STATE", "VERIFIED BY")]
    for s in snap.get("sticks", []):
        rows.append(
            (
                s["usb_port"],
                s.get("imei") or "-",
                s.get("data") or "-",
                s.get("audio") or "-",
                s.get("model") or "-",
                s.get("state", "-"),
                s.get("verified_by") or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(snap.get("summary", ""))
    if snap.get("conf_error"):
        print(f"dongle.conf problem: {snap['conf_error']}")
    return EXIT_PROBLEM if problem else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        conf = settings.load(args.config)
    except SettingsError as exc:
        print(f"dongled: bad settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "run":
        return _run(conf, args.verbose)
    return _status(conf, args.json)
