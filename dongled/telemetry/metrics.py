"""Prometheus metrics for the fleet view (off by default): an HTTP endpoint on loopback
and/or a node_exporter textfile. The exposition comes from prometheus_client, not by hand.

The endpoint is prometheus_client's WSGI app in a server of our own: its start_http_server
returns the server (so it can be closed) only from 0.20 on, and Debian 12 ships 0.16."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Mapping
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    write_to_textfile,
)

log = logging.getLogger(__name__)


class LineReading(Protocol):
    """What the gauges read of a device (Asterisk's `DeviceEntry` is one)."""

    @property
    def rssi_dbm(self) -> int | None: ...
    @property
    def registered(self) -> bool: ...


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.sticks_present = Gauge("dongled_sticks_present", "Sticks plugged in", registry=r)
        self.sticks_given_up = Gauge(
            "dongled_sticks_given_up", "Sticks the recovery ladder has given up on", registry=r
        )
        self.sticks_identified = Gauge(
            "dongled_sticks_identified", "Sticks whose IMEI is known", registry=r
        )
        self.devices_verified = Gauge(
            "dongled_devices_verified", "Devices seen running their own IMEI", registry=r
        )
        self.rssi = Gauge(
            "dongled_device_rssi_dbm", "Signal per device, from AMI", ["device"], registry=r
        )
        self.registered = Gauge(
            "dongled_device_registered",
            "1 when the device is registered to a network (home or roaming)",
            ["device"],
            registry=r,
        )
        self.reenumerations = Counter(
            "dongled_reenumerations", "Sticks that vanished from USB", registry=r
        )
        self.recoveries = Counter(
            "dongled_recoveries", "Recovery steps taken, by step", ["step"], registry=r
        )
        self.recovery_seconds = Histogram(
            "dongled_recovery_seconds",
            "From a stick vanishing to its device verified again",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.conf_writes = Counter(
            "dongled_conf_writes",
            "writes of the driver's file (dongle.conf, quectel.conf)",
            registry=r,
        )
        self.reloads = Counter("dongled_reloads", "DongleReload actions sent", registry=r)
        self.ami_errors = Counter("dongled_ami_errors", "Failed AMI connects/actions", registry=r)
        self.lines_down = Counter(
            "dongled_lines_down",
            "Lines handed to recovery: down past offline_after with their stick plugged in",
            registry=r,
        )
        self.probe_failures = Counter(
            "dongled_probe_failures", "Sticks that could not be identified", registry=r
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.textfile = ""

    def serve(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._server = _http_server(host.strip("[]") or "127.0.0.1", int(port), self.registry)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()
        log.info("metrics on http://%s/metrics", listen)

    def why_not_serving(self) -> str | None:
        """None unless the metrics server should run and its thread has ended."""
        if self._thread is not None and not self._thread.is_alive():
            return "the metrics server thread has ended"
        return None

    def devices(self, entries: Mapping[str, LineReading]) -> None:
        for name, entry in entries.items():
            if entry.rssi_dbm is None:  # unknown now: no stale reading left behind
                # prometheus-client 0.16 (Debian 12) raises for a series never set; 0.26
                # does not.
                with contextlib.suppress(KeyError):
                    self.rssi.remove(name)
            else:
                self.rssi.labels(device=name).set(entry.rssi_dbm)
            self.registered.labels(device=name).set(1.0 if entry.registered else 0.0)

    def flush(self) -> None:
        """Write the textfile (atomically: prometheus_client renames a temp file)."""
        if self.textfile:
            try:
                write_to_textfile(self.textfile, self.registry)
            except OSError as exc:
                log.warning("cannot write metrics textfile %s: %s", self.textfile, exc)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                server.shutdown()
                server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """One line per scrape on stderr would flood the journal."""


def _http_server(host: str, port: int, registry: CollectorRegistry) -> WSGIServer:
    """A thread per request (a slow scraper holds up no other), IPv4 or IPv6 by `host`."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True

    return make_server(host, port, make_wsgi_app(registry), Server, handler_class=_QuietHandler)
