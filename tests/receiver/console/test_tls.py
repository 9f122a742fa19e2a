"""The console served over TLS by the receiver itself (``--web.config.file``): its cookies are ``Secure``."""

from __future__ import annotations

import ssl
import sys
import urllib.request
from pathlib import Path

from opsloop.testsupport.servers import LOOPBACK, ManagedProcess, free_port, port_open

from tests.opsloop.conftest import write_certs, write_web_config
from tests.receiver.harness import write_config


def test_cookies_are_secure_over_tls(tmp_path: Path) -> None:
    certs = write_certs(tmp_path / "certs")
    web = write_web_config(
        tmp_path / "web.yml",
        {"tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}},
    )
    port = free_port()
    receiver = ManagedProcess("receiver", tmp_path)
    receiver.spawn([sys.executable, "-m", "opsloop.receiver", "--config.file", str(write_config(tmp_path)),
                    "--web.listen-address", f"{LOOPBACK}:{port}", "--web.config.file", str(web)])  # fmt: skip
    try:
        receiver.wait_ready(lambda: port_open(port))
        context = ssl.create_default_context(cafile=str(certs.ca_file))
        with urllib.request.urlopen(f"https://{LOOPBACK}:{port}/ui/login", context=context, timeout=10) as resp:
            cookies = resp.headers.get_all("Set-Cookie")
            headers = resp.headers
        assert cookies
        assert all("Secure" in cookie and "HttpOnly" in cookie for cookie in cookies)
        assert headers["X-Frame-Options"] == "DENY"
    finally:
        receiver.stop()
