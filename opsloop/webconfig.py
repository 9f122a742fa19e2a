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

import os
import re
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opsloop.configfile import describe_errors
from opsloop.durations import Duration

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's cipher suite names (tls.CipherSuites()) -> OpenSSL's. TLS 1.3 suites are not configurable in
# Go either: they are accepted and have no effect.
CIPHERS = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
# exporter-toolkit's curve names (Go's tls.CurveID) -> OpenSSL's group names.
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireClientCert": ssl.CERT_REQUIRED,  # exporter-toolkit's older name for RequireAnyClientCert
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go accepts any certificate for these; Python's ssl module verifies every certificate it gets, so
# they need a client CA to verify against (then they behave as their verifying counterparts).
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# The headers exporter-toolkit lets a file set, with the values it allows (None: any value).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_BCRYPT = re.compile(r"^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$")


class WebConfigError(ValueError):
    """The web config file or a file it names cannot be used; the message says which and why."""


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
        """exporter-toolkit's IsEnabled: any certificate, key or client-CA setting turns TLS on."""
        fields = (self.cert, self.key, self.cert_file, self.key_file, self.client_ca, self.client_ca_file)
        return any(fields) or bool(self.client_auth_type)

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


def _join(base: Path, name: str | None) -> Path | None:
    """Relative file names are relative to the web config file, as in exporter-toolkit."""
    return None if not name else base / name


class LoadedWebConfig:
    """A parsed web config file and the files it names, resolved against the file's folder."""

    def __init__(self, path: Path, config: WebConfig) -> None:
        self.path = path
        self.config = config
        tls = config.tls_server_config
        base = path.parent
        self.cert_file = _join(base, tls.cert_file)
        self.key_file = _join(base, tls.key_file)
        self.client_ca_file = _join(base, tls.client_ca_file)
        self.openssl_ciphers = ":".join(c for c in (CIPHERS[name] for name in tls.cipher_suites) if c)

    @property
    def files(self) -> list[Path]:
        """Every file whose change means a reload."""
        return [p for p in (self.path, self.cert_file, self.key_file, self.client_ca_file) if p is not None]

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server SSLContext, or None for plain HTTP; WebConfigError when a file cannot be used."""
        tls = self.config.tls_server_config
        if not tls.enabled:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[tls.min_version]
        ctx.maximum_version = TLS_VERSIONS[tls.max_version]
        if self.openssl_ciphers:
            ctx.set_ciphers(self.openssl_ciphers)
        if tls.prefer_server_cipher_suites:
            ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        for curve in tls.curve_preferences:
            ctx.set_ecdh_curve(CURVES[curve])
        with (
            _pem_file(self.path, tls.cert, self.cert_file, "cert") as cert,
            _pem_file(self.path, tls.key, self.key_file, "key") as key,
        ):
            try:
                ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise WebConfigError(f"{self.path}: cannot load the certificate and key: {_reason(exc)}") from exc
        ctx.verify_mode = CLIENT_AUTH[tls.client_auth_type]
        try:
            if self.client_ca_file is not None:
                ctx.load_verify_locations(cafile=str(self.client_ca_file))
            elif tls.client_ca:
                ctx.load_verify_locations(cadata=tls.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"{self.path}: cannot load the client CA: {_reason(exc)}") from exc
        return ctx


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


@contextmanager
def _pem_file(config: Path, inline: str | None, path: Path | None, what: str) -> Iterator[str]:
    """The PEM file to load: the named file, or the inline text in a private temporary file."""
    if path is not None:
        if not os.access(path, os.R_OK):
            raise WebConfigError(f"{config}: cannot read {what}_file {path}")
        yield str(path)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as tmp:  # created 0600
        tmp.write(inline or "")
        tmp.flush()
        yield tmp.name


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
