"""The test Asterisk's own event loop in a background thread, and the calls into it from the
test thread (each waits for its result, at most CALL_TIMEOUT seconds)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CALL_TIMEOUT = 10.0


class LoopThread:
    """An asyncio loop run by a daemon thread named `name`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FakeAsterisk already started")
        self._thread = threading.Thread(target=self.loop.run_forever, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, last: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `last()` on the loop, then stop and join the thread and close the loop."""
        thread = self._thread
        if thread is None or self.loop.is_closed():
            return
        try:
            self.run(last())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            thread.join(CALL_TIMEOUT)
            self.loop.close()

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the loop thread (at once when called from it)."""
        if threading.current_thread() is self._thread:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(CALL_TIMEOUT)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT)
