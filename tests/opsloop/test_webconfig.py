"""Loading exporter-toolkit web config files: what is accepted, and each problem named with its key.

Each case runs on both ways of reading the file: in this process and in a child process (the
exporter's, ``load_in_child``), which must agree to the letter.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from opsloop.webconfig import WebConfigError, load_web_config
from opsloop.webtls import LoadedWebConfig, load_in_child
from tests.opsloop.conftest import Certs, bcrypt_hash, write_web_config


@pytest.fixture(params=[load_web_config, load_in_child], ids=["in_process", "in_child"])
def load(request: pytest.FixtureRequest) -> Callable[[Path], LoadedWebConfig]:
    return request.param


def test_exporter_toolkit_example_file_loads_with_relative_paths(
    certs: Certs, load: Callable[[Path], LoadedWebConfig]
) -> None:
    # Paths relative to the web config file, as exporter-toolkit resolves them.
    path = write_web_config(certs.dir / "web.yml", {
        "tls_server_config": {
            "cert_file": "server.pem", "key_file": "server-key.pem", "client_ca_file": "ca.pem",
            "client_auth_type": "RequireAndVerifyClientCert", "min_version": "TLS13",
            "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        },
        "http_server_config": {
            "http2": False, "headers": {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000"},
        },
        "basic_auth_users": {"prometheus": bcrypt_hash("pw")},
    })  # fmt: skip
    loaded = load(path)
    assert loaded.config.basic_auth_users == {"prometheus": load_web_config(path).config.basic_auth_users["prometheus"]}
    assert loaded.config.http_server_config.headers["X-Frame-Options"] == "deny"
    assert loaded.cert_file == certs.server_cert
    assert loaded.client_ca_file == certs.ca_file
    ctx = loaded.ssl_context()
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    # The CA store holds exactly the client CA file's certificate.
    assert len(ctx.get_ca_certs()) == 1


def test_no_tls_section_means_plain_http(tmp_path: Path) -> None:
    loaded = load_web_config(write_web_config(tmp_path / "web.yml", {"basic_auth_users": {"u": bcrypt_hash("p")}}))
    assert loaded.ssl_context() is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"tls_server_config": {"cert_file": "server.pem"}}, "missing one of key or key_file"),
        ({"tls_server_config": {"key_file": "server-key.pem"}}, "missing one of cert or cert_file"),
        ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem", "client_ca_file": "ca.pem"}},
         "client CA's have been configured without a Client Auth Policy"),
        ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem",
                                "client_auth_type": "RequestClientCert"}}, "needs client_ca_file or client_ca"),
        ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem",
                                "client_auth_type": "Whatever"}}, "invalid ClientAuth: Whatever"),
        ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem", "client_ca_file": "ca.pem",
                                "client_auth_type": "VerifyClientCertIfGiven", "client_allowed_sans": ["x"]}},
         "client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert"),
        ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem",
                                "cipher_suites": ["TLS_RC4_IS_FINE"]}}, "unknown cipher: TLS_RC4_IS_FINE"),
        ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem",
                                "curve_preferences": ["X25519", "CurveP256"]}}, "curve_preferences: list one curve"),
        ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem",
                                "curve_preferences": ["P256"]}}, "unknown curve: P256"),
        ({"rate_limit": {"interval": "1s"}}, "rate_limit: burst must be at least 1"),
        ({"rate_limit": {"interval": "soon", "burst": 1}}, "rate_limit.interval: "),
        ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server-key.pem",
                                "min_version": "TLS13", "max_version": "TLS12"}}, "min_version is above max_version"),
        ({"tls_server_config": {"cert_file": "nope.pem", "key_file": "server-key.pem"}}, "cannot read cert_file"),
        ({"tls_server_config": {"cert_file": "server-key.pem", "key_file": "server-key.pem"}},
         "cannot load the certificate and key"),
        ({"http_server_config": {"headers": {"Set-Cookie": "x"}}}, "HTTP header 'Set-Cookie' can not be configured"),
        ({"http_server_config": {"headers": {"X-Frame-Options": "allow"}}}, "invalid value for X-Frame-Options"),
        ({"basic_auth_users": {"alice": "plaintext"}}, "basic_auth_users: user 'alice': the password must be a bcrypt"),
        ({"basic_auth_user": {}}, "basic_auth_user: unknown key"),
    ],
)  # fmt: skip
def test_each_problem_is_named(
    certs: Certs, config: dict, message: str, load: Callable[[Path], LoadedWebConfig]
) -> None:
    path = write_web_config(certs.dir / "web.yml", config)
    with pytest.raises(WebConfigError) as raised:
        load(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_inline_cert_and_key_and_missing_file(certs: Certs, tmp_path: Path) -> None:
    path = write_web_config(tmp_path / "web.yml", {"tls_server_config": {
        "cert": certs.server_cert.read_text(), "key": certs.server_key.read_text(),
        "client_ca": certs.ca_file.read_text(), "client_auth_type": "VerifyClientCertIfGiven",
    }})  # fmt: skip
    ctx = load_web_config(path).ssl_context()
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    with pytest.raises(WebConfigError, match="cannot read file"):
        load_web_config(tmp_path / "missing.yml")


@pytest.mark.parametrize(
    ("auth_type", "mode"),
    [("RequestClientCert", ssl.CERT_OPTIONAL), ("RequireAnyClientCert", ssl.CERT_REQUIRED),
     ("RequireClientCert", ssl.CERT_REQUIRED)],
)  # fmt: skip
def test_client_auth_types_without_verification_in_go_verify_against_the_client_ca(
    certs: Certs, auth_type: str, mode: ssl.VerifyMode
) -> None:
    path = write_web_config(certs.dir / "web.yml", {"tls_server_config": {
        "cert_file": "server.pem", "key_file": "server-key.pem", "client_ca_file": "ca.pem",
        "client_auth_type": auth_type, "curve_preferences": ["CurveP384"],
    }})  # fmt: skip
    ctx = load_web_config(path).ssl_context()
    assert ctx is not None
    assert ctx.verify_mode == mode
    assert len(ctx.get_ca_certs()) == 1  # the client CA, which every client certificate must chain to
