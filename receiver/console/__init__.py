"""The web console under ``/ui/``: server-rendered pages for people on call (see docs/console.md).

``routes.add_console`` mounts it; this package file stays empty so the config can import
``console.config`` without the web parts.
"""
