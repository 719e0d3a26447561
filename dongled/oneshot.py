"""The one-shot commands' bodies: `dongled status` (read the running daemon's snapshot and
say it as a table, JSON or a monitoring plugin's verdict), `dongled scan` and `dongled adopt`
(run dongled.scan and report what it found, would write and did).

Apart from the command line (cli.py), which parses arguments and dispatches, so that what
each command prints and which exit code it gives reads in one place.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from dongled.config import settings
from dongled.modem.portlock import pid_alive
from dongled.reconcile.plan import check_digit_message, unmanaged_message
from dongled.status import check as statuscheck
from dongled.status.document import FILENAME, STALE_AFTER
from dongled.status.reader import exit_ok, problems, render_table

if TYPE_CHECKING:
    from dongled.conf.dongleconf import DeviceSection
    from dongled.drivers.base import Driver
    from dongled.reconcile.plan import Plan

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3


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


def status(conf: settings.Settings, as_json: bool, check: bool = False) -> int:
    """`dongled status`: the running daemon's view; its exit code."""
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


async def scan(conf: settings.Settings, apply: bool, driver: Driver) -> int:
    """`dongled scan [--apply]` for `driver`'s file; its exit code."""
    from dongled import scan as scanning
    from dongled.conf.dongleconf import inherited_message

    path = settings.conf_path(conf, driver)
    if apply and _refuse_if_running(conf, "scan", path):
        return EXIT_PROBLEM
    asterisk = await scanning.connect_asterisk(conf, driver)
    try:
        result = await scanning.scan(conf, asterisk, driver)
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
        wrote, problems = await scanning.apply_scan(conf, result, asterisk, driver)
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
        await scanning.close(asterisk)


def _parked_why(sec: DeviceSection, p: Plan, unidentified: bool) -> str:
    """Why scan's diff parks a section (its data= and voice on paths that cannot open)."""
    if sec.name in p.ambiguous:
        return p.ambiguous[sec.name]
    why = f"no plugged stick reports IMEI {sec.imei}"
    if unidentified:
        why += " (a stick above was not identified: it may be this one)"
    return f"{why}; nothing may start it on a port another stick may have meanwhile"


async def adopt(conf: settings.Settings, apply: bool, driver: Driver) -> int:
    """`dongled adopt [--apply]` for `driver`'s file; its exit code."""
    from dongled import scan as scanning

    if apply and _refuse_if_running(conf, "adopt", settings.conf_path(conf, driver)):
        return EXIT_PROBLEM
    asterisk = await scanning.connect_asterisk(conf, driver)
    try:
        if asterisk.devices is None:
            _report(f"Asterisk: not reachable ({asterisk.error}); probing free ports only")
        result = await scanning.adopt(conf, asterisk, driver)
    finally:
        await scanning.close(asterisk)
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
    scanning.write_change(result.change)
    _report(f"written: imei= added to {len(result.learned)} sections")
    return EXIT_PROBLEM if result.skipped else EXIT_OK
