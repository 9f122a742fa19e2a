"""``--web.config.file``: exporter-toolkit's web configuration (TLS, basic auth, response headers).

The file has the format every official exporter reads (``tls_server_config``, ``http_server_config``,
``basic_auth_users`` with bcrypt hashes) and the same reload semantics: the file is read again for
each request and the certificates for each new TLS connection, so a renewed certificate or a changed
password applies without a restart. Reading is cached on the files' modification times; SIGHUP drops
the cache. A file that breaks while running fails closed, as exporter-toolkit does: requests get 500
and handshakes fail, with one error log line, until the file is fixed. Every endpoint is behind it,
health endpoints included, as exporter-toolkit leaves them.

Python's ssl module cannot do everything Go's crypto/tls does; what it cannot do is rejected with a
message rather than ignored. It cannot accept a client certificate without verifying it, so
``RequestClientCert`` and ``RequireAnyClientCert`` need a client CA and verify against it, and it can
restrict the key exchange to one curve only, so ``curve_preferences`` takes one curve.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opsloop.configfile import describe_errors
from opsloop.durations import Duration
from opsloop.webtls import (
    CIPHERS,
    CLIENT_AUTH,
    CURVES,
    TLS_VERSIONS,
    UNVERIFIED_CLIENT_AUTH,
    LoadedWebConfig,
    WebConfigError,
    tls_enabled,
)

__all__ = ["LoadedWebConfig", "WebConfig", "WebConfigError", "load_web_config"]

# The headers exporter-toolkit lets a file set, with the values it allows (None: any value).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_BCRYPT = re.compile(r"^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Section):
    cert: str | None = None
    key: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_ca: str | None = None
    client_ca_file: str | None = None
    client_auth_type: str = ""
    cipher_suites: list[str] = Field(default_factory=list)
    curve_preferences: list[str] = Field(default_factory=list)
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"
    prefer_server_cipher_suites: bool = True
    client_allowed_sans: list[str] | None = None

    @property
    def enabled(self) -> bool:
        return tls_enabled(self)

    @field_validator("cipher_suites")
    @classmethod
    def _known_ciphers(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in CIPHERS:
                raise ValueError(f"unknown cipher: {name}")
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _one_known_curve(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in CURVES:
                raise ValueError(f"unknown curve: {name} (known: {', '.join(CURVES)})")
        if len(value) > 1:
            raise ValueError("list one curve: Python's ssl module can restrict the key exchange to one curve only")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        if self.client_auth_type not in CLIENT_AUTH:
            raise ValueError(f"invalid ClientAuth: {self.client_auth_type}")
        if not self.enabled:
            return self
        if not (self.cert or self.cert_file):
            raise ValueError("missing one of cert or cert_file")
        if not (self.key or self.key_file):
            raise ValueError("missing one of key or key_file")
        if (self.client_ca or self.client_ca_file) and CLIENT_AUTH[self.client_auth_type] == ssl.CERT_NONE:
            raise ValueError("client CA's have been configured without a Client Auth Policy")
        if self.client_auth_type in UNVERIFIED_CLIENT_AUTH and not (self.client_ca or self.client_ca_file):
            raise ValueError(
                f"client_auth_type {self.client_auth_type} needs client_ca_file or client_ca: Python's ssl "
                "module cannot accept a client certificate without verifying it"
            )
        if self.client_allowed_sans is not None and CLIENT_AUTH[self.client_auth_type] != ssl.CERT_REQUIRED:
            raise ValueError(
                "client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert or "
                "RequireAndVerifyClientCert"
            )
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version is above max_version")
        return self


class HttpServerConfig(_Section):
    http2: bool = True  # accepted for compatibility; this server speaks HTTP/1.1
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _allowed_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            allowed = next((v for k, v in HEADERS.items() if k.lower() == name.lower()), "none")
            if allowed == "none":
                raise ValueError(f"HTTP header {name!r} can not be configured")
            if allowed is not None and header.lower() not in allowed:
                raise ValueError(f"invalid value for {name}: expected one of {list(allowed)}, got {header!r}")
        return value


class RateLimit(_Section):
    """exporter-toolkit's ``rate_limit``: one token every ``interval``, at most ``burst`` at once."""

    interval: Duration = 0.0
    burst: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _burst_with_interval(self) -> RateLimit:
        if self.interval and self.burst < 1:
            raise ValueError("burst must be at least 1 when interval is set (0 would refuse every request)")
        return self


class WebConfig(_Section):
    tls_server_config: TlsServerConfig = Field(default_factory=TlsServerConfig)
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, value: dict[str, str]) -> dict[str, str]:
        for user, hashed in value.items():
            if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
                raise ValueError(f"user {user!r}: the password must be a bcrypt hash ($2y$...)")
        return value


def load_web_config(path: str | Path) -> LoadedWebConfig:
    """Parse and check the file, its certificates included (exporter-toolkit's ``Validate``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: invalid YAML: {exc}") from exc
    try:
        config = WebConfig.model_validate(data or {})
    except ValidationError as exc:
        raise WebConfigError(f"{path}: " + "; ".join(describe_errors(exc))) from exc
    loaded = LoadedWebConfig(path, config)
    loaded.ssl_context()
    return loaded


if __name__ == "__main__":
    # The child of ``opsloop.webtls.load_in_child``: this file's problems, or its models as records.
    from opsloop.snapshot import answer

    answer(
        lambda path: load_web_config(path).config, lambda exc: [str(exc)] if isinstance(exc, WebConfigError) else None
    )
