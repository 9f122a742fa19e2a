"""Parse ``--web.listen-address`` values the way Prometheus tools write them."""

from __future__ import annotations


def parse_listen_address(value: str) -> tuple[str | None, int]:
    """``HOST:PORT``, ``[::1]:PORT`` or ``:PORT`` (every interface) -> (host or None, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"--web.listen-address: expected HOST:PORT, got {value!r}")
    host = host.strip("[]")
    return (host or None), int(port_text)
