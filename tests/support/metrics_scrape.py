"""A daemon's Prometheus metrics as a scraper sees them: samples by name and labels."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    # untyped in prometheus-client 0.16 (Debian 12), typed in later releases
    families = text_string_to_metric_families(text)  # type: ignore[no-untyped-call,unused-ignore]
    for family in families:
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    return samples(body.decode())
