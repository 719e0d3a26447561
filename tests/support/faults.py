"""Fault injection into a `dongled run` subprocess, for the supervision tests and the fault
campaign: what cannot be caused from outside (a bug's exception inside a task, a call that
hangs for seconds) is put at a named function of dongled by wrapping it.

DONGLED_FAULTS holds a JSON list of faults, each
    {"at": "dongled.asterisk.ami:AmiClient.connect", "kind": "raise" | "stall" | "block",
     "seconds": 3.0, "times": 1, "armed": "/tmp/x/armed", "log": "/tmp/x/fired"}
- raise: the call raises RuntimeError("injected fault at ...") (a bug, not an expected error);
- stall: a coroutine function first awaits asyncio.sleep(seconds) (an await that takes long);
- block: the call first blocks its thread in time.sleep(seconds) (a close() or fsync() that
  hangs in the kernel).
A fault fires only while the file `armed` exists (when given), only for a call one of whose
arguments' repr() holds `match` (when given), at most `times` times (default unlimited), and
appends a line to `log` each time it fires. dongled's code is not touched:
the sitecustomize of tests/support/instrument_site installs these at start-up."""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import os
import time
from collections.abc import Callable
from typing import Any

ENV = "DONGLED_FAULTS"


class InjectedFault(RuntimeError):
    """Raised by a `raise` fault: no dongled code expects it."""


def _fires(fault: dict[str, Any], state: dict[str, int], args: tuple[Any, ...] = ()) -> bool:
    match = fault.get("match")
    if match and not any(match in repr(a) for a in args):
        return False
    armed = fault.get("armed")
    if armed and not os.path.exists(armed):
        return False
    times = fault.get("times")
    if times is not None and state["n"] >= int(times):
        return False
    state["n"] += 1
    log = fault.get("log")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{fault['at']} {fault['kind']} {time.monotonic():.3f}\n")
    return True


def _wrap(fn: Callable[..., Any], fault: dict[str, Any]) -> Callable[..., Any]:
    state = {"n": 0}
    kind, seconds, at = fault["kind"], float(fault.get("seconds", 0)), fault["at"]

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kw: Any) -> Any:
            if _fires(fault, state, args):
                if kind == "raise":
                    raise InjectedFault(f"injected fault at {at}")
                if kind == "stall":
                    await asyncio.sleep(seconds)
                else:
                    time.sleep(seconds)  # noqa: ASYNC251 - the point: the loop is held
            return await fn(*args, **kw)

        return async_wrapper

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def gen_wrapper(*args: Any, **kw: Any) -> Any:
            if _fires(fault, state, args):
                if kind == "raise":
                    raise InjectedFault(f"injected fault at {at}")
                if kind == "stall":
                    await asyncio.sleep(seconds)
                else:
                    time.sleep(seconds)  # noqa: ASYNC251 - the point: the loop is held
            async for item in fn(*args, **kw):
                yield item

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        if _fires(fault, state, args):
            if kind == "raise":
                raise InjectedFault(f"injected fault at {at}")
            time.sleep(seconds)
        return fn(*args, **kw)

    return wrapper


def install(spec: str | None = None) -> None:
    text = spec if spec is not None else os.environ.get(ENV, "")
    if not text:
        return
    for fault in json.loads(text):
        module_name, _, path = fault["at"].partition(":")
        owner: Any = importlib.import_module(module_name)
        *parents, attr = path.split(".")
        for name in parents:
            owner = getattr(owner, name)
        raw = inspect.getattr_static(owner, attr)
        wrapped = _wrap(getattr(owner, attr), fault)
        setattr(owner, attr, staticmethod(wrapped) if isinstance(raw, staticmethod) else wrapped)
