"""Put this directory first on PYTHONPATH of a `dongled run` subprocess (with
DONGLED_TASKS_FILE set) and SIGUSR1 makes the daemon write its live asyncio task names
to that file as a JSON list. dongled's code is not touched: asyncio.run is wrapped so
the handler runs on the daemon's own loop. Used by the soak and AMI campaigns. With
DONGLED_FAULTS set, tests/support/faults.py's faults are put in at start-up.

Always: installs tests/support/devguard.py's hook, so a daemon under test cannot open a
device node outside its testbed either (the rig puts this directory on every daemon's path)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any


def _install_devguard() -> None:
    # loaded by file: this directory, not the repository, is what the path is sure to hold
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "devguard.py")
    spec = importlib.util.spec_from_file_location("_dongled_test_devguard", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.install()


_install_devguard()


def _install_faults() -> None:
    # DONGLED_FAULTS: the faults of tests/support/faults.py, put in before dongled runs
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "faults.py")
    spec = importlib.util.spec_from_file_location("_dongled_test_faults", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.install()


if os.environ.get("DONGLED_FAULTS"):
    _install_faults()

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
