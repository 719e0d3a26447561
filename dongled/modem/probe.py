"""A short, harmless AT conversation that tells which stick sits behind a port.

Only read-only commands are sent (the daemon's lean probe sends nothing else; `scan`'s full
one starts with ATE0, which only changes echo, as chan_dongle's own init does);
never ATZ, CFUN or anything else that changes the modem's state. A port another live
process owns (UUCP lock, TIOCEXCL, flock) is left alone before a single byte is sent.
The port's handling is in port.py, what is said on it in conversation.py.
"""

from __future__ import annotations

import os

from dongled.core.errors import PortBusyError, ProbeError
from dongled.modem import conversation
from dongled.modem.conversation import ProbeTimeouts
from dongled.modem.identity import Identity
from dongled.modem.lte import Family
from dongled.modem.port import AtChannel, check_not_owned, open_serial
from dongled.modem.portlock import holder, uucp_lock


async def identify_port(
    port: str,
    lock_dir: str,
    timeouts: ProbeTimeouts,
    family: Family | None = None,
    *,
    lean: bool = False,
) -> Identity:
    """Identify the stick whose AT port is `port`; ProbeError says why not. `lean`: only what
    binding needs (the daemon's probe of a returning stick, see `conversation.lean`)."""
    owner = holder(lock_dir, port)
    if owner is not None and owner != os.getpid():
        raise PortBusyError(port, f"locked by pid {owner}; not touched")
    check_not_owned(port)
    with uucp_lock(lock_dir, port):
        chan = AtChannel(port, open_serial(port))
        try:
            if lean:
                return await conversation.lean(chan, timeouts, family)
            if family is not None:
                return await conversation.lte_module(chan, timeouts, family)
            return await conversation.huawei(chan, timeouts)
        finally:
            await chan.close()


async def answers_at(port: str, lock_dir: str, limit: float) -> bool:
    """Whether the modem on `port` answers a bare `AT` with OK within `limit` seconds (the
    gentlest command there is). False when it does not, or when another program holds the
    port (nothing is sent then)."""
    if holder(lock_dir, port) not in (None, os.getpid()):
        return False
    try:
        check_not_owned(port)
        with uucp_lock(lock_dir, port):
            chan = AtChannel(port, open_serial(port))
            try:
                return (await chan.command("AT", limit)).ok
            finally:
                await chan.close()
    except ProbeError:
        return False
