"""The TLS side of ``--web.config.file``: exporter-toolkit's names mapped onto Python's ssl module.

Kept apart from the file's models (``opsloop.webconfig``, pydantic and PyYAML) so that a process
which validates its web config in a child (``load_in_child``, the exporter) builds its TLS contexts
from plain records without loading either.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.snapshot import Record, SnapshotError, validate_in_child

if TYPE_CHECKING:
    from opsloop.webconfig import WebConfig

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


class WebConfigError(ValueError):
    """The web config file or a file it names cannot be used; the message says which and why."""


def _join(base: Path, name: str | None) -> Path | None:
    """Relative file names are relative to the web config file, as in exporter-toolkit."""
    return None if not name else base / name


class LoadedWebConfig:
    """A parsed web config file and the files it names, resolved against the file's folder."""

    def __init__(self, path: Path, config: WebConfig | Record) -> None:
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
        if not tls_enabled(tls):
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


def tls_enabled(tls: Any) -> bool:
    """exporter-toolkit's IsEnabled: any certificate, key or client-CA setting turns TLS on."""
    fields = (tls.cert, tls.key, tls.cert_file, tls.key_file, tls.client_ca, tls.client_ca_file)
    return any(fields) or bool(tls.client_auth_type)


def load_in_child(path: str | Path) -> LoadedWebConfig:
    """``load_web_config`` run in a child process: the same checks, without pydantic in this one.

    The certificates are loaded again here (``ssl_context``), since the files may change between the
    child's check and this process's use of them.
    """
    path = Path(path)
    try:
        config, problems = validate_in_child("opsloop.webconfig", path)
    except SnapshotError as exc:
        raise WebConfigError(f"{path}: {exc}") from exc
    if config is None:
        raise WebConfigError("; ".join(problems))
    loaded = LoadedWebConfig(path, config)
    loaded.ssl_context()
    return loaded
