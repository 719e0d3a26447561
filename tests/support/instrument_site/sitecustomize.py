"""Put this directory first on PYTHONPATH of a `dongled run` subprocess (with
DONGLED_TASKS_FILE set) and SIGUSR1 makes the daemon write its live asyncio task names
to that file as a JSON list. dongled's code is not touched: asyncio.run is wrapped so
the handler runs on the daemon's own loop. Used by the soak and AMI campaigns."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Coroutine
from typing import Any

_real_run = asyncio.run


def _run(main: Coroutine[Any, Any, Any], **kw: Any) -> Any:
    async def wrapped() -> Any:
        loop = asyncio.get_running_loop()

        def dump() -> None:
            names = sorted(t.get_name() for t in asyncio.all_tasks(loop))
            path = os.environ["DONGLED_TASKS_FILE"]
            with open(path + ".tmp", "w", encoding="utf-8") as fh:
                json.dump(names, fh)
            os.replace(path + ".tmp", path)

        loop.add_signal_handler(signal.SIGUSR1, dump)
        return await main

    return _real_run(wrapped(), **kw)


if os.environ.get("DONGLED_TASKS_FILE"):
    asyncio.run = _run
