"""The landing page at ``/`` of both services, as Prometheus exporters have one: name, version, links."""

from __future__ import annotations

import html

from opsloop import __version__


def landing_page(title: str, telemetry_path: str, sections: str = "") -> str:
    """``sections`` is HTML the caller has already escaped."""
    metrics = html.escape(telemetry_path.lstrip("/"))
    return (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)} {html.escape(__version__)}</h1>"
        f'<p><a href="{metrics}">Metrics</a> · <a href="-/healthy">Health</a> · <a href="-/ready">Ready</a></p>'
        f"{sections}</body></html>"
    )
