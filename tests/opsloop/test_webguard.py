"""The exporter as a process behind a web config file: TLS, basic auth, headers, reloads, listeners."""

from __future__ import annotations

import base64
import os
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from opsloop.testsupport.servers import LOOPBACK, free_port

from tests.opsloop.conftest import PASSWORD, Certs, Service, bcrypt_hash, write_certs, write_web_config


def client_context(ca_file: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def get(
    url: str, ctx: ssl.SSLContext | None = None, user: str | None = None, password: str = ""
) -> tuple[int, dict, str]:
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=ctx, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def tls_config(certs: Certs, **extra: object) -> dict:
    return {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key), **extra}


def test_https_with_basic_auth_and_headers(
    certs: Certs, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    web = write_web_config(tmp_path / "web.yml", {
        "tls_server_config": tls_config(certs),
        "http_server_config": {"headers": {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}},
        "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
    })  # fmt: skip
    port = free_port()
    exporter = services("exporter", "--config.file", str(exporter_config), "--web.listen-address",
                        f"{LOOPBACK}:{port}", "--web.config.file", str(web))  # fmt: skip
    exporter.wait_listening(port)
    base, ctx = f"https://{LOOPBACK}:{port}", client_context(certs.ca_file)
    status, headers, body = get(f"{base}/metrics", ctx, "prometheus", PASSWORD)
    assert status == 200
    assert 'opsloop_source_up{source="redis/main"} 0.0' in body or 'opsloop_source_up{source="redis/main"} 0' in body
    assert headers["X-Frame-Options"] == "deny"
    assert headers["X-Content-Type-Options"] == "nosniff"
    for user, password in ((None, ""), ("prometheus", "wrong"), ("nobody", PASSWORD)):
        status, headers, _ = get(f"{base}/metrics", ctx, user, password)
        assert status == 401
        assert headers["WWW-Authenticate"] == "Basic"
        assert headers["X-Frame-Options"] == "deny"
    # Health endpoints are behind the web config too, as exporter-toolkit leaves them.
    assert get(f"{base}/-/healthy", ctx)[0] == 401
    assert get(f"{base}/-/ready", ctx, "prometheus", PASSWORD)[0] == 200
    # Plain HTTP on the TLS port gets no answer.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5)


def served_cert_issuer(port: int, ca_file: Path) -> bool:
    """True when the server's certificate verifies against ``ca_file``."""
    try:
        get(f"https://{LOOPBACK}:{port}/-/healthy", client_context(ca_file))
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            return False
        raise
    return True


def tls_exporter(
    certs: Certs, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> tuple[Service, Path, int]:
    """An exporter serving TLS from a web config file it re-reads; the service, the file's path, the port."""
    web = write_web_config(tmp_path / "web.yml", {"tls_server_config": tls_config(certs)})
    port = free_port()
    exporter = services("exporter", "--config.file", str(exporter_config), "--web.listen-address",
                        f"{LOOPBACK}:{port}", "--web.config.file", str(web))  # fmt: skip
    exporter.wait_listening(port)
    return exporter, web, port


def test_renewed_certificate_and_changed_password_apply_without_restart(
    certs: Certs, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    exporter, web, port = tls_exporter(certs, services, exporter_config, tmp_path)
    assert served_cert_issuer(port, certs.ca_file)
    # A renewed certificate from another CA, written over the same files: the next connection gets it.
    renewed = write_certs(tmp_path / "renewed")
    certs.server_cert.write_bytes(renewed.server_cert.read_bytes())
    certs.server_key.write_bytes(renewed.server_key.read_bytes())
    assert served_cert_issuer(port, renewed.ca_file)
    assert not served_cert_issuer(port, certs.ca_file)
    # Users added to the file apply to the next request.
    write_web_config(web, {"tls_server_config": tls_config(certs), "basic_auth_users": {"p": bcrypt_hash("one")}})
    ctx = client_context(renewed.ca_file)
    assert get(f"https://{LOOPBACK}:{port}/metrics", ctx)[0] == 401
    assert get(f"https://{LOOPBACK}:{port}/metrics", ctx, "p", "one")[0] == 200
    # A broken file fails closed (the handshake fails, as exporter-toolkit's GetConfigForClient makes it)
    # with an error line, and SIGHUP re-reads a fixed one.
    web.write_text("basic_auth_users: [not, a, mapping]\n")
    with pytest.raises(urllib.error.URLError):
        get(f"https://{LOOPBACK}:{port}/metrics", ctx, "p", "one")
    assert "cannot use the web config file" in exporter.log
    good = {"tls_server_config": tls_config(certs), "basic_auth_users": {"p": bcrypt_hash("two")}}
    write_web_config(web, good)
    stamp = time.time() - 60
    os.utime(web, (stamp, stamp))  # same size and an old time: only SIGHUP notices
    exporter.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "web config file reloaded" not in exporter.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(f"https://{LOOPBACK}:{port}/metrics", ctx, "p", "two")[0] == 200
    assert get(f"https://{LOOPBACK}:{port}/metrics", ctx, "p", "one")[0] == 401


def test_client_certificates_required(
    certs: Certs, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    web = write_web_config(tmp_path / "web.yml", {"tls_server_config": tls_config(
        certs, client_ca_file=str(certs.ca_file), client_auth_type="RequireAndVerifyClientCert")})  # fmt: skip
    port = free_port()
    exporter = services("exporter", "--config.file", str(exporter_config), "--web.listen-address",
                        f"{LOOPBACK}:{port}", "--web.config.file", str(web))  # fmt: skip
    exporter.wait_listening(port)
    url = f"https://{LOOPBACK}:{port}/metrics"
    assert get(url, client_context(certs.ca_file, certs.client_cert, certs.client_key))[0] == 200
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        get(url, client_context(certs.ca_file))
    stranger = write_certs(tmp_path / "stranger")
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        get(url, client_context(certs.ca_file, stranger.client_cert, stranger.client_key))


def test_several_listen_addresses(services: Callable[..., Service], exporter_config: Path) -> None:
    ports = [free_port(), free_port()]
    args = [arg for port in ports for arg in ("--web.listen-address", f"{LOOPBACK}:{port}")]
    exporter = services("exporter", "--config.file", str(exporter_config), *args)
    for port in ports:
        exporter.wait_listening(port)
        assert get(f"http://{LOOPBACK}:{port}/-/healthy")[0] == 200


@pytest.mark.parametrize("program", ["exporter", "receiver"])
def test_port_in_use_and_unreadable_certificate_end_with_one_line(
    program: str, certs: Certs, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    from tests.receiver.harness import write_config

    config = exporter_config if program == "exporter" else write_config(tmp_path)
    port = free_port()
    first = services(program, "--config.file", str(config), "--web.listen-address", f"{LOOPBACK}:{port}")
    first.wait_listening(port)
    second = services(program, "--config.file", str(config), "--web.listen-address", f"{LOOPBACK}:{port}")
    assert second.wait_exit() == 1
    lines = [line for line in second.log.splitlines() if "level=error" in line]
    assert len(lines) == 1, second.log
    assert 'msg="cannot listen"' in lines[0]
    assert f"address={LOOPBACK}:{port}" in lines[0]
    assert "Traceback" not in second.log
    certs.server_key.chmod(0)
    web = write_web_config(tmp_path / "web.yml", {"tls_server_config": tls_config(certs)})
    if os.geteuid() == 0:  # root reads any file: make it unreadable by removing it
        certs.server_key.unlink()
    third = services(program, "--config.file", str(config), "--web.listen-address", f"{LOOPBACK}:{free_port()}",
                     "--web.config.file", str(web))  # fmt: skip
    assert third.wait_exit() == 1
    assert "Traceback" not in third.log
    errors = [line for line in third.log.splitlines() if "level=error" in line]
    assert len(errors) == 1, third.log
    assert "cannot read key_file" in errors[0]


def test_plain_http_basic_auth_and_a_broken_file_fails_closed(
    services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    web = write_web_config(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)}})
    port = free_port()
    exporter = services("exporter", "--config.file", str(exporter_config), "--web.listen-address",
                        f"{LOOPBACK}:{port}", "--web.config.file", str(web))  # fmt: skip
    exporter.wait_listening(port)
    url = f"http://{LOOPBACK}:{port}/metrics"
    assert get(url, None, "prometheus", PASSWORD)[0] == 200
    assert get(url)[0] == 401
    web.write_text("basic_auth_users: {prometheus: not-a-bcrypt-hash}\n")
    assert get(url, None, "prometheus", PASSWORD)[0] == 500
    errors = [line for line in exporter.log.splitlines() if "level=error" in line]
    assert len(errors) == 1
    assert "the password must be a bcrypt hash" in errors[0]
    assert PASSWORD not in exporter.log


def handshake_ok(url: str, ctx: ssl.SSLContext) -> bool:
    """True when a TLS connection (and the request on it) succeeds, False when the handshake is refused."""
    try:
        return get(url, ctx)[0] == 200
    except (urllib.error.URLError, ConnectionError, ssl.SSLError):
        return False


def test_a_client_auth_change_applies_to_the_connection_that_notices_it(
    certs: Certs, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    _, web, port = tls_exporter(certs, services, exporter_config, tmp_path)
    url = f"https://{LOOPBACK}:{port}/-/healthy"
    anonymous = client_context(certs.ca_file)
    with_cert = client_context(certs.ca_file, certs.client_cert, certs.client_key)
    assert handshake_ok(url, anonymous)
    write_web_config(web, {"tls_server_config": tls_config(
        certs, client_ca_file=str(certs.ca_file), client_auth_type="RequireAndVerifyClientCert")})  # fmt: skip
    assert not handshake_ok(url, anonymous)  # the first connection after the change already requires one
    assert handshake_ok(url, with_cert)
    write_web_config(web, {"tls_server_config": tls_config(certs)})
    assert handshake_ok(url, anonymous)


def test_require_any_client_cert_and_one_curve(
    certs: Certs, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    web = write_web_config(tmp_path / "web.yml", {"tls_server_config": tls_config(
        certs, client_ca_file=str(certs.ca_file), client_auth_type="RequireAnyClientCert",
        curve_preferences=["CurveP384"])})  # fmt: skip
    port = free_port()
    exporter = services("exporter", "--config.file", str(exporter_config), "--web.listen-address",
                        f"{LOOPBACK}:{port}", "--web.config.file", str(web))  # fmt: skip
    exporter.wait_listening(port)
    url = f"https://{LOOPBACK}:{port}/-/healthy"

    def client(curve: str, cert: bool = True) -> ssl.SSLContext:
        ctx = client_context(certs.ca_file, *((certs.client_cert, certs.client_key) if cert else ()))
        ctx.set_ecdh_curve(curve)  # the client offers this one curve only
        return ctx

    assert handshake_ok(url, client("secp384r1"))
    assert not handshake_ok(url, client("secp384r1", cert=False))
    assert not handshake_ok(url, client("prime256v1"))
    assert not handshake_ok(url, client("X25519"))
    # Go's RequireAnyClientCert would take any certificate; here it must chain to the client CA.
    stranger = write_certs(tmp_path / "stranger")
    ctx = client_context(certs.ca_file, stranger.client_cert, stranger.client_key)
    ctx.set_ecdh_curve("secp384r1")
    assert not handshake_ok(url, ctx)


def test_rate_limit_answers_429_beyond_the_burst(
    services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    web = write_web_config(tmp_path / "web.yml", {"rate_limit": {"interval": "1h", "burst": 3}})
    port = free_port()
    exporter = services("exporter", "--config.file", str(exporter_config), "--web.listen-address",
                        f"{LOOPBACK}:{port}", "--web.config.file", str(web))  # fmt: skip
    exporter.wait_listening(port)
    url = f"http://{LOOPBACK}:{port}/-/healthy"
    assert [get(url)[0] for _ in range(5)] == [200, 200, 200, 429, 429]
    assert get(f"http://{LOOPBACK}:{port}/metrics")[:1] == (429,)
    # Removing the limit applies on reload, like every other key of the file.
    write_web_config(web, {})
    assert [get(url)[0] for _ in range(5)] == [200] * 5
