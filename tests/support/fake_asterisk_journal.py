"""What the test Asterisk did, for the tests: every list is guarded and read as a copy (the
test thread reads it while the loop thread writes it)."""

from __future__ import annotations

import logging
import threading
import time

_LOGGER = logging.getLogger(__name__)

Headers = list[tuple[str, str]]


class Journal:
    """What happened, for the tests: every list is guarded and read as a copy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bindings: list[tuple[float, str, str, str]] = []
        self._foreign: list[tuple[float, str, str, str]] = []
        self._actions: list[tuple[float, str, dict[str, str]]] = []
        self._events: list[tuple[float, str, dict[str, str]]] = []
        self._hazards: list[str] = []
        self._crashes: list[str] = []
        self._log: list[str] = []
        self._reloads = 0

    def binding(self, device: str, data: str, imei_read: str, foreign: bool) -> None:
        entry = (time.monotonic(), device, data, imei_read)
        with self._lock:
            self._bindings.append(entry)
            if foreign:
                self._foreign.append(entry)

    def action(self, name: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._actions.append((time.monotonic(), name, dict(headers)))

    def event(self, name: str, headers: Headers) -> None:
        with self._lock:
            self._events.append((time.monotonic(), name, dict(headers)))

    def hazard(self, text: str) -> None:
        _LOGGER.warning("hazard: %s", text)
        with self._lock:
            self._hazards.append(text)

    def crash(self, text: str) -> None:
        """Where the real chan_dongle segfaults Asterisk; also a hazard."""
        self.hazard(f"Asterisk crashed: {text}")
        with self._lock:
            self._crashes.append(text)

    def log(self, text: str) -> None:
        _LOGGER.info("%s", text)
        with self._lock:
            self._log.append(text)

    def count_reload(self) -> None:
        with self._lock:
            self._reloads += 1

    @property
    def bindings(self) -> list[tuple[float, str, str, str]]:
        with self._lock:
            return list(self._bindings)

    @property
    def foreign(self) -> list[tuple[float, str, str, str]]:
        with self._lock:
            return list(self._foreign)

    @property
    def actions(self) -> list[tuple[float, str, dict[str, str]]]:
        with self._lock:
            return [(t, n, dict(h)) for t, n, h in self._actions]

    @property
    def events(self) -> list[tuple[float, str, dict[str, str]]]:
        with self._lock:
            return [(t, n, dict(h)) for t, n, h in self._events]

    @property
    def hazards(self) -> list[str]:
        with self._lock:
            return list(self._hazards)

    @property
    def crashes(self) -> list[str]:
        with self._lock:
            return list(self._crashes)

    @property
    def messages(self) -> list[str]:
        with self._lock:
            return list(self._log)

    @property
    def reload_count(self) -> int:
        with self._lock:
            return self._reloads
