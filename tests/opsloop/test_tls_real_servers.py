"""A real Prometheus scrapes the exporter over HTTPS with basic auth; a real Alertmanager posts to the
receiver over HTTPS with a client certificate. Certificates are made by the test (trustme)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from opsloop.testsupport.servers import LOOPBACK, AlertmanagerServer, PrometheusServer, free_port

from tests.opsloop.conftest import PASSWORD, Certs, Service, bcrypt_hash, write_web_config
from tests.opsloop.test_webguard import client_context, get
from tests.receiver.harness import TOKEN, write_config

pytestmark = pytest.mark.slow


def query(prometheus: PrometheusServer, promql: str) -> list[dict]:
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)["data"]["result"]


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_prometheus_scrapes_the_exporter_over_https_with_basic_auth(
    certs: Certs, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    web = write_web_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)},
        "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
    })  # fmt: skip
    port = free_port()
    exporter = services("exporter", "--config.file", str(exporter_config), "--web.listen-address",
                        f"{LOOPBACK}:{port}", "--web.config.file", str(web))  # fmt: skip
    exporter.wait_listening(port)
    (tmp_path / "scrape-password").write_text(PASSWORD)
    secure = {
        "job_name": "opsloop", "scheme": "https", "static_configs": [{"targets": [f"{LOOPBACK}:{port}"]}],
        "tls_config": {"ca_file": str(certs.ca_file)},
        "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "scrape-password")},
    }  # fmt: skip
    wrong = {**secure, "job_name": "wrong-password", "basic_auth": {"username": "prometheus", "password": "nope"}}
    with PrometheusServer({}, scrape_configs=[secure, wrong], workdir=tmp_path / "prometheus") as prometheus:
        up = wait_for(lambda: query(prometheus, 'up{job="opsloop"} == 1'), 30, "the HTTPS scrape to succeed")
        assert up[0]["metric"]["instance"] == f"{LOOPBACK}:{port}"
        info = query(prometheus, 'opsloop_build_info{job="opsloop"}')
        assert info[0]["metric"]["version"]
        # The same target with a wrong password is down: the credentials are really checked.
        assert wait_for(lambda: query(prometheus, 'up{job="wrong-password"} == 0'), 30, "the wrong password")


def test_alertmanager_posts_to_the_receiver_over_https_with_a_client_certificate(
    certs: Certs, services: Callable[..., Service], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    web = write_web_config(tmp_path / "web.yml", {"tls_server_config": {
        "cert_file": str(certs.server_cert), "key_file": str(certs.server_key),
        "client_ca_file": str(certs.ca_file), "client_auth_type": "RequireAndVerifyClientCert",
    }})  # fmt: skip
    port = free_port()
    receiver = services("receiver", "--config.file", str(config), "--web.listen-address", f"{LOOPBACK}:{port}",
                        "--web.config.file", str(web))  # fmt: skip
    receiver.wait_listening(port)
    am_config = {
        "route": {"receiver": "opsloop", "group_by": ["..."], "group_wait": "0s", "group_interval": "1s"},
        "receivers": [{"name": "opsloop", "webhook_configs": [{
            "url": f"https://{LOOPBACK}:{port}/alerts", "send_resolved": True,
            "http_config": {
                "authorization": {"type": "Bearer", "credentials_file": str(tmp_path / "token")},
                "tls_config": {"ca_file": str(certs.ca_file), "cert_file": str(certs.client_cert),
                               "key_file": str(certs.client_key)},
            },
        }]}],
    }  # fmt: skip
    with AlertmanagerServer(am_config, workdir=tmp_path / "alertmanager") as alertmanager:
        alert = [{"labels": {"alertname": "TlsCheck", "severity": "warning"}, "annotations": {}}]
        request = urllib.request.Request(
            f"{alertmanager.url}/api/v2/alerts", data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=10).close()
        ctx = client_context(certs.ca_file, certs.client_cert, certs.client_key)

        def accepted() -> bool:
            body = get(f"https://{LOOPBACK}:{port}/metrics", ctx)[2]
            return 'opsloop_receiver_webhooks_total{outcome="accepted"} 1.0' in body

        wait_for(accepted, 30, "Alertmanager's webhook over HTTPS")
    assert TOKEN not in receiver.log
