"""The config keys that say which kind of Redis deployment a section points into (see ``opsloop.redis_connect``).

Kept apart from ``opsloop.redis_connect`` so a process that serves from validated values (the exporter)
builds its clients without importing pydantic.
"""

from __future__ import annotations

from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from opsloop.redis_connect import CLUSTER_SCHEMES, Mode, effective_mode, host_port, url_mode
from opsloop.secrets import OptionalSecret, SecretEnv, SecretFile, SecretsModel


class RedisTopology(SecretsModel):
    """The keys that say which kind of Redis deployment a URL points into."""

    mode: Mode | None = None
    """standalone, cluster or sentinel; unset means cluster for redis+cluster:// URLs, else standalone."""
    seeds: list[str] = []
    """Cluster only: more node URLs to learn the slot map from when the first one is down."""
    sentinels: list[str] = []
    """Sentinel only: ``host:port`` of each sentinel."""
    primary_name: str | None = Field(None, min_length=1)
    """Sentinel only: the name the sentinels monitor the primary under."""
    sentinel_password: OptionalSecret = None
    sentinel_password_env: SecretEnv = None
    sentinel_password_file: SecretFile = None

    @model_validator(mode="after")
    def _topology(self) -> Self:
        mode = self.mode
        if mode is not None and mode != "cluster" and url_mode(self.topology_url()) == "cluster":
            raise ValueError(f"a redis+cluster:// URL cannot be used with mode {mode}")
        mode = mode or url_mode(self.topology_url())
        if mode != "cluster" and self.seeds:
            raise ValueError("seeds apply to mode: cluster only")
        for seed in self.seeds:
            if urlsplit(seed).scheme not in ("redis", "rediss", *CLUSTER_SCHEMES):
                raise ValueError(f"seed {seed!r} is not a redis:// or redis+cluster:// URL")
        sentinel_keys = [self.primary_name, self.sentinel_password, self.sentinel_password_env]
        if mode != "sentinel" and (self.sentinels or any(v is not None for v in sentinel_keys)):
            raise ValueError("sentinels, primary_name and sentinel_password apply to mode: sentinel only")
        if mode == "sentinel":
            if not self.sentinels or self.primary_name is None:
                raise ValueError("mode: sentinel needs sentinels (host:port list) and primary_name")
            for address in self.sentinels:
                host_port(address)
        return self

    def topology_url(self) -> str | None:
        """The inline URL, when the section has one (secret URLs are checked when resolved)."""
        return None

    def effective_mode(self, url: str | None) -> Mode:
        return effective_mode(self, url)
