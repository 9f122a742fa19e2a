"""Pieces the exporter and the receiver share: config loading, durations, secrets and logging."""

__version__ = "0.1.0"
