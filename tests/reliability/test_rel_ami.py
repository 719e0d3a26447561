"""Campaign 4: Asterisk manager faults, against `dongled run` as a real subprocess.

dongled talks to the test Asterisk through a counting proxy (tests/support/amiproxy.py),
so every connection attempt is counted, even while Asterisk is down. For each fault: the
end state once Asterisk is healthy (every device on its own stick), the connections made
while it was unhealthy (bounded by the backoff), no foreign binding at any moment, and the
daemon's asyncio tasks, fds and RSS afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dongled.asterisk.ami import AmiClient
from dongled.config.settings import AmiSettings
from dongled.core.errors import AmiError
from tests.support.amiproxy import AmiProxy, proxy_for
from tests.support.figures import figure
from tests.support.marks import needs_umockdev, rel_child_only
from tests.support.procstats import start_instrumented, stats
from tests.support.rig import PARKED_DATA, Rig, rig

pytestmark = [
    pytest.mark.e2e,
    rel_child_only,
    needs_umockdev,
]

BACKOFF_MAX = 1.0  # the rig's [ami] backoff_max
# The daemon's own (the main task, ami, reconcile, lines, status, the stop and fatal waits,
# the watchdog) and a verify or a probe in flight: no task may pile up beyond them.
BASE_TASKS = 10


@pytest.fixture
def ar(tmp_path: Path) -> Iterator[tuple[Rig, AmiProxy]]:
    with rig(tmp_path, 3) as r, proxy_for(r) as proxy:
        r.wait_all_right(timeout=10)
        start_instrumented(r, tmp_path)
        r.wait_all_right(timeout=15)
        yield r, proxy


def _storm(r: Rig) -> None:
    """A hub power dip: every stick drops and comes back on new numbers."""
    r.unplug(0, 1, 2)
    time.sleep(0.3)
    for i in range(3):
        r.replug(i)


def _conf_points_at_new_ports(r: Rig) -> bool:
    body = r.conf.read_text()
    return all(f"data={s.data_port.devnode} " in body for s in r.sticks)


def _finish(
    r: Rig, proxy: AmiProxy, fault: str, unhealthy_s: float, conns: int, **more: object
) -> None:
    took = r.wait_all_right(timeout=30)
    r.assert_never_foreign()
    r.assert_daemon_alive()
    assert r.daemon is not None
    time.sleep(0.5)  # let a verify task end
    st = stats(r.daemon.pid, r.tmp)
    assert len(st.tasks) <= BASE_TASKS, st.tasks
    # Backoff: starts at 0.5 s, doubles to backoff_max; plus one connect per healthy spell.
    bound = int(unhealthy_s / 0.5) + 3
    assert conns <= bound, f"{conns} connections in {unhealthy_s:.1f} s (bound {bound})"
    figure(
        "ami-fault",
        fault=fault,
        end_state="every device right",
        right_after_healthy_s=round(took, 2),
        unhealthy_s=round(unhealthy_s, 1),
        connections_while_unhealthy=conns,
        connection_bound=bound,
        foreign_bindings=0,
        tasks=st.tasks,
        fds=st.fds,
        rss_kib=st.rss_kib,
        **more,
    )


def test_asterisk_down_at_start(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r, proxy_for(r) as proxy:
        r.wait_all_right(timeout=10)
        r.asterisk.go_down()
        t0 = time.monotonic()
        start_instrumented(r, tmp_path)  # READY without Asterisk
        _storm(r)
        r.asterisk.wait_for(lambda: _conf_points_at_new_ports(r), 15, what="file re-pointed")
        time.sleep(2.0)
        down = time.monotonic() - t0
        conns = proxy.connections
        r.asterisk.come_up()
        _finish(r, proxy, "Asterisk down at start, storm while down", down, conns)


def test_down_during_a_storm_and_back_later(ar: tuple[Rig, AmiProxy]) -> None:
    r, proxy = ar
    r.asterisk.go_down()
    c0, t0 = proxy.connections, time.monotonic()
    _storm(r)
    r.asterisk.wait_for(lambda: _conf_points_at_new_ports(r), 15, what="file re-pointed")
    time.sleep(3.0)
    down, conns = time.monotonic() - t0, proxy.connections - c0
    r.asterisk.come_up()
    _finish(r, proxy, "down during a storm, back 3 s later", down, conns)


def test_asterisk_restarts_mid_action(ar: tuple[Rig, AmiProxy]) -> None:
    r, proxy = ar
    c0, t0 = proxy.connections, time.monotonic()
    old = [list(s.tty_numbers) for s in r.sticks]
    r.unplug(0, 1, 2)
    time.sleep(0.3)
    for i in range(3):  # onto each other's old numbers: the dangerous case
        r.replug(i, old[(i + 1) % 3])
    time.sleep(0.15)  # the daemon is writing / reloading / verifying now
    r.asterisk.restart()
    _finish(
        r,
        proxy,
        "Asterisk restart mid-action (sticks rotated)",
        time.monotonic() - t0,
        proxy.connections - c0,
        restarts=r.asterisk.restart_count,
    )


def test_accepting_but_never_answering(ar: tuple[Rig, AmiProxy]) -> None:
    r, proxy = ar
    r.asterisk.never_answer = True
    r.asterisk.drop_sessions()
    c0, t0 = proxy.connections, time.monotonic()
    _storm(r)
    r.asterisk.wait_for(lambda: _conf_points_at_new_ports(r), 15, what="file re-pointed")
    time.sleep(4.0)
    silent, conns = time.monotonic() - t0, proxy.connections - c0
    r.asterisk.never_answer = False
    r.asterisk.drop_sessions()
    _finish(r, proxy, "accepts, never answers", silent, conns)


def test_wrong_secret(ar: tuple[Rig, AmiProxy]) -> None:
    r, proxy = ar
    right = r.asterisk.secret
    r.asterisk.secret = "not-what-dongled-has"
    r.asterisk.drop_sessions()
    logins0 = sum(1 for _, a, _ in r.asterisk.actions if a.lower() == "login")
    c0, t0 = proxy.connections, time.monotonic()
    _storm(r)
    time.sleep(4.0)
    refused, conns = time.monotonic() - t0, proxy.connections - c0
    logins = sum(1 for _, a, _ in r.asterisk.actions if a.lower() == "login") - logins0
    assert "refused the login" in r.daemon_log()
    r.asterisk.secret = right
    _finish(r, proxy, "wrong secret (then fixed)", refused, conns, refused_logins=logins)


def test_missing_permission_class(ar: tuple[Rig, AmiProxy]) -> None:
    r, proxy = ar
    classes = r.asterisk.write_classes
    r.asterisk.write_classes = frozenset({"reporting"})  # may list devices, not stop/reload
    a0 = len(r.asterisk.actions)
    c0, t0 = proxy.connections, time.monotonic()
    _storm(r)
    time.sleep(4.0)
    denied_s = time.monotonic() - t0
    tries = [
        a for _, a, _ in r.asterisk.actions[a0:] if a.lower() in ("donglestop", "donglereload")
    ]
    assert "Permission denied" in r.daemon_log()
    # The reconcile loop retries with backoff too: a storm of refused actions is a defect.
    assert len(tries) <= 3 * (int(denied_s / 0.5) + 3), len(tries)
    r.asterisk.write_classes = classes
    _finish(
        r,
        proxy,
        "write class missing (then granted)",
        denied_s,
        proxy.connections - c0,
        refused_actions=len(tries),
    )


def test_garbage_on_the_socket(ar: tuple[Rig, AmiProxy]) -> None:
    r, proxy = ar
    r.asterisk.garbage_mode = True
    r.asterisk.drop_sessions()
    c0, t0 = proxy.connections, time.monotonic()
    _storm(r)
    time.sleep(4.0)
    bad, conns = time.monotonic() - t0, proxy.connections - c0
    r.asterisk.garbage_mode = False
    r.asterisk.drop_sessions()
    _finish(r, proxy, "garbage on the socket", bad, conns)


def test_connection_reset_mid_list(ar: tuple[Rig, AmiProxy]) -> None:
    r, proxy = ar
    c0, t0 = proxy.connections, time.monotonic()
    proxy.cut_list_once()
    _storm(r)
    r.asterisk.wait_for(lambda: proxy.cuts == 1, 15, what="a DongleShowDevices cut")
    _finish(
        r,
        proxy,
        "connection reset mid DongleShowDevices",
        time.monotonic() - t0,
        proxy.connections - c0,
        cuts=proxy.cuts,
    )


def test_admin_reload_and_restart_while_sticks_missing(ar: tuple[Rig, AmiProxy]) -> None:
    r, proxy = ar
    c0, t0 = proxy.connections, time.monotonic()
    old = [list(s.tty_numbers) for s in r.sticks]
    r.unplug(0, 1, 2)
    time.sleep(0.5)
    r.replug(0, old[1])  # stick 0 on stick 1's old numbers; 1 and 2 still missing
    r.asterisk.wait_for(lambda: r.device_right(0), 15, what="dongle0 right")
    r.asterisk.admin_reload()
    time.sleep(1.2)  # past chan_dongle's interval: it tries whatever the file names
    r.assert_never_foreign()
    r.asterisk.restart()
    time.sleep(1.2)
    r.assert_never_foreign()
    body = r.conf.read_text()
    assert body.count(f"data={PARKED_DATA}") == 2, body
    r.replug(1, old[2])
    r.replug(2)
    _finish(
        r,
        proxy,
        "admin dongle reload + Asterisk restart with 2 of 3 sticks missing",
        time.monotonic() - t0,
        proxy.connections - c0,
    )


def test_connection_closed_during_login_fails_fast() -> None:
    async def main() -> tuple[float, str]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"Asterisk Call Manager/9.0.0\r\n")
            await writer.drain()
            await reader.readline()  # the Login is on its way: hang up
            writer.transport.abort()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = AmiClient(AmiSettings(port=port, secret="x", timeout=3.0))
        start = time.monotonic()
        try:
            await client.connect()
        except AmiError as exc:
            message = str(exc)
        else:
            message = "connected?"
        took = time.monotonic() - start
        await client.close()
        server.close()
        await server.wait_closed()
        return took, message

    took, message = asyncio.run(main())
    assert took < 1.0, f"took {took:.2f} s: {message}"
    assert "did not answer" not in message
