"""The whole loop on loopback: Redis, PostgreSQL, exporter, Prometheus, Alertmanager, receiver, sinks.

``LoopStack`` starts every part as a real process (the Slack and SMTP stand-ins run in threads) with
short intervals, renders the rules with thresholds tuned for a demo, and wires them together exactly as
``deploy/`` describes for production: Prometheus scrapes the exporter as job ``opsloop`` and fires the
rendered rules, Alertmanager posts to the receiver with a bearer token, and the receiver repairs and
notifies. The demo (``python -m demo``) and the end-to-end test drive the same stack.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml
from opsloop.demo.workload import SCHEMA_PATH
from opsloop.testsupport.servers import (
    LOOPBACK,
    AlertmanagerServer,
    ManagedProcess,
    PostgresServer,
    PrometheusServer,
    RedisServer,
    free_port,
    http_ok,
)
from opsloop.testsupport.sinks import SlackMessage, SlackSink, SmtpSink

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
EXPORTER_EXAMPLE = ROOT / "deploy" / "exporter.example.yml"
RQ_QUEUE = "reports"
"""The RQ queue of the rq-failures scenario, served by a real ``rq worker``."""

DEMO_THRESHOLDS: dict[str, Any] = {
    # The shipped thresholds wait minutes before paging; the demo shows the loop within two minutes.
    "dlq": {"increasing": {"window": "1m", "for": "10s"}},
    "queues": {"backlog": {"warning": {"threshold": 50, "for": "20s"}, "critical": {"threshold": 500, "for": "1m"}}},
    "sources": {"down": {"for": "15s"}},
}


@dataclass
class PlanSettings:
    """What the stack's recovery plan does; the failing variant proves escalation."""

    stages: list[str] = field(default_factory=lambda: ["0s", "10s", "20s"])
    verify_after: str = "3s"
    broken: bool = False
    """Requeue into a key of the wrong type, so every stage fails and the plan escalates."""


def external_notifiers(env: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Real Slack and e-mail targets for the demo, from environment variables, beside the local sinks.

    ``OPSLOOP_DEMO_SLACK_WEBHOOK_URL`` adds a Slack incoming webhook; ``OPSLOOP_DEMO_SMTP_HOST`` with
    ``OPSLOOP_DEMO_EMAIL_FROM`` and ``OPSLOOP_DEMO_EMAIL_TO`` (comma-separated) adds an SMTP server
    (``OPSLOOP_DEMO_SMTP_PORT``, default 587, STARTTLS required; ``OPSLOOP_DEMO_SMTP_USERNAME`` and
    ``OPSLOOP_DEMO_SMTP_PASSWORD`` when it needs a login). The receiver reads the secrets from its
    environment, so they never reach a file.
    """
    found: dict[str, list[dict[str, Any]]] = {"slack": [], "email": []}
    if env.get("OPSLOOP_DEMO_SLACK_WEBHOOK_URL"):
        found["slack"].append({"name": "team", "webhook_url_env": "OPSLOOP_DEMO_SLACK_WEBHOOK_URL"})
    if env.get("OPSLOOP_DEMO_SMTP_HOST"):
        smtp: dict[str, Any] = {
            "host": env["OPSLOOP_DEMO_SMTP_HOST"],
            "port": int(env.get("OPSLOOP_DEMO_SMTP_PORT", "587")),
        }
        if env.get("OPSLOOP_DEMO_SMTP_USERNAME"):
            smtp |= {"username": env["OPSLOOP_DEMO_SMTP_USERNAME"], "password_env": "OPSLOOP_DEMO_SMTP_PASSWORD"}
        to = [address.strip() for address in env.get("OPSLOOP_DEMO_EMAIL_TO", "").split(",") if address.strip()]
        found["email"].append({"name": "team", "smtp": smtp, "from": env.get("OPSLOOP_DEMO_EMAIL_FROM", ""), "to": to})
    return found


class LoopStack:
    """Every part of the loop, started in dependency order and stopped in reverse."""

    def __init__(
        self,
        workdir: Path,
        *,
        plan: PlanSettings | None = None,
        on_slack: Callable[[SlackMessage], None] | None = None,
        on_mail: Callable[[EmailMessage], None] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.chmod(0o711)  # PostgreSQL runs as its own user when we are root and must reach its data dir
        self.plan = plan or PlanSettings()
        self.secrets = workdir / "secrets"
        self.redis = RedisServer(workdir / "redis")
        self.postgres = PostgresServer(workdir / "postgres")
        self.slack = SlackSink(on_message=on_slack)
        self.smtp = SmtpSink(starttls=True, on_message=on_mail)
        self.exporter_port = free_port()
        self.receiver_port = free_port()
        self.prometheus_port = free_port()  # reserved now: the receiver, started first, must know it
        self.hook_port = free_port()
        """Where the demo serves its restart hook, which the ``restart-redis`` plan calls."""
        self.exporter = ManagedProcess("exporter", workdir)
        self.receiver = ManagedProcess("receiver", workdir)
        self.rq_worker = ManagedProcess("rq-worker", workdir)
        self.webhook_token = secrets.token_urlsafe(24)
        self.admin_token = secrets.token_urlsafe(24)
        self.alertmanager: AlertmanagerServer | None = None
        self.prometheus: PrometheusServer | None = None
        self._stoppers: list[Callable[[], None]] = []

    # -- addresses -------------------------------------------------------------------------------
    @property
    def exporter_url(self) -> str:
        return f"http://{LOOPBACK}:{self.exporter_port}"

    @property
    def receiver_url(self) -> str:
        return f"http://{LOOPBACK}:{self.receiver_port}"

    def urls(self) -> dict[str, str]:
        assert self.prometheus is not None
        assert self.alertmanager is not None
        return {
            "exporter": f"{self.exporter_url}/metrics",
            "prometheus": f"{self.prometheus.url}/alerts",
            "alertmanager": self.alertmanager.url,
            "receiver admin": f"{self.receiver_url}/api/incidents (Authorization: Bearer {self.admin_token})",
            "console": f"{self.receiver_url}/ui/ (sign in with any name and the admin token {self.admin_token})",
        }

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.secrets.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise

    def _start_all(self) -> None:
        self._started(self.redis.start(), self.redis.stop)
        self._started(self.postgres.start(), self.postgres.stop)
        self.postgres.psql(SCHEMA_PATH.read_text())  # before the exporter, so its queries never fail
        self._started(self.slack.start(), self.slack.stop)
        self._started(self.smtp.start(), self.smtp.stop)
        rules = self._render_rules()
        self._start_exporter()
        self._start_receiver()
        self.alertmanager = AlertmanagerServer(self._alertmanager_config(), workdir=self.workdir / "alertmanager")
        self._started(self.alertmanager.start(), self.alertmanager.stop)
        self.prometheus = PrometheusServer(
            {"opsloop": [f"{LOOPBACK}:{self.exporter_port}"], "opsloop-receiver": [f"{LOOPBACK}:{self.receiver_port}"]},
            rule_files=rules,
            alertmanager_port=self.alertmanager.port,
            workdir=self.workdir / "prometheus",
            port=self.prometheus_port,
        )
        self._started(self.prometheus.start(), self.prometheus.stop)

    def _started(self, _: object, stop: Callable[[], None]) -> None:
        self._stoppers.append(stop)

    def stop(self) -> None:
        """Stop everything that started, newest first; a failing stop does not keep the others running."""
        while self._stoppers:
            stop = self._stoppers.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                log.warning("stop failed", extra={"error": str(exc)})

    # -- parts -----------------------------------------------------------------------------------
    def _render_rules(self) -> list[Path]:
        thresholds = self.workdir / "thresholds.yml"
        thresholds.write_text(yaml.safe_dump(DEMO_THRESHOLDS))
        out = self.workdir / "rendered"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "opsloop.render",
                "--thresholds",
                str(thresholds),
                "--out",
                str(out),
                "--log.level",
                "error",
            ],
            check=True,
            cwd=ROOT,
        )
        return [out / "rules" / "opsloop-records.yml", out / "rules" / "opsloop-alerts.yml"]

    def _start_exporter(self) -> None:
        config = yaml.safe_load(EXPORTER_EXAMPLE.read_text())
        config["redis"][0]["url"] = self.redis.url
        config["workers"] = [
            {"redis": "main", "name": "emails", "heartbeat_pattern": "worker:emails:*", "queues": ["emails"]},
            {"redis": "main", "name": "render", "heartbeat_pattern": "worker:render:*", "queues": ["jobs:render"]},
        ]
        # The demo's DLQs are fixed keys: they read 0 before the first failure, so growth shows as delta.
        config["dlqs"] = [{"redis": "main", "key": f"dlq:{name}", "oldest_age": {"field": "failed_at"}}
                          for name in ("emails", "render")]  # fmt: skip
        # RQ's own layout: the failed registry rq:failed:reports is the DLQ of the rq-failures scenario.
        config["frameworks"] = [{"redis": "main", "kind": "rq", "queues": [RQ_QUEUE]}]
        config["redis"][0]["discovery_interval"] = "5s"
        for query in config["business"]["queries"]:
            query["interval"] = "5s"
        path = self.workdir / "exporter.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._secret("postgres-dsn", self.postgres.dsn)
        self.exporter.spawn(
            [sys.executable, "-m", "opsloop.exporter", "--config", str(path),
             "--web.listen-address", f"{LOOPBACK}:{self.exporter_port}"],
            env={"CREDENTIALS_DIRECTORY": str(self.secrets)},  # the example reads its DSN from postgres-dsn there
        )  # fmt: skip
        self._stoppers.append(self.exporter.stop)
        self.exporter.wait_ready(lambda: http_ok(f"{self.exporter_url}/-/ready"))

    def _secret(self, name: str, value: str) -> str:
        path = self.secrets / name
        path.write_text(value + "\n")
        path.chmod(0o600)
        return str(path)

    def receiver_config(self) -> dict[str, Any]:
        assert self.smtp.ca_file is not None
        requeue_to = "broken:{name}" if self.plan.broken else "queue:{name}"
        external = external_notifiers(os.environ)
        notify = ["slack/oncall", "email/oncall"] + [f"{kind}/team" for kind, entries in external.items() if entries]
        return {
            "auth": {"bearer_token_file": self._secret("webhook-token", self.webhook_token)},
            "admin": {"token_file": self._secret("admin-token", self.admin_token)},
            "store": f"sqlite:///{self.workdir / 'receiver.db'}",
            "prometheus_url": f"http://{LOOPBACK}:{self.prometheus_port}",
            "notifiers": {
                "slack": [
                    {"name": "oncall", "webhook_url_file": self._secret("slack-url", self.slack.url())},
                    *external["slack"],
                ],
                "email": [
                    *external["email"],
                    {
                        "name": "oncall",
                        "smtp": {
                            "host": self.smtp.host,
                            "port": self.smtp.port,
                            "starttls": "required",
                            "ca_file": str(self.smtp.ca_file),
                        },
                        "from": "opsloop@demo.invalid",
                        "to": ["oncall@demo.invalid"],
                    },
                ],
            },
            "routes": [{"match": {}, "notify": notify}],
            "recovery": [
                {
                    "name": "requeue-dlq",
                    "match": {"alertname": "DLQEntriesIncreasing"},
                    "labels": {"dlq": "^dlq:(?P<name>[a-z0-9_-]{1,64})$"},
                    "actions": [
                        {
                            "type": "dlq_requeue",
                            "redis": self.redis.url,
                            "from": "{dlq}",
                            "to": requeue_to,
                            "max_items": 1000,
                        }
                    ],
                    "stages": self.plan.stages,
                    "verify": 'opsloop_dlq_length{dlq="{dlq}"} < 10',
                    "verify_after": self.plan.verify_after,
                    "cooldown": "5m",
                    "max_runs": {"per_hour": 3, "per_day": 10},
                    "escalate": notify,
                },
                {
                    # RQ's failed registry: requeue the way RQ does (status, enqueued_at, queue, rq:queues).
                    "name": "requeue-rq",
                    "match": {"alertname": "DLQEntriesIncreasing", "framework": "rq"},
                    "labels": {"queue": "^[a-z0-9_-]{1,64}$"},
                    "actions": [
                        {
                            "type": "requeue_failed",
                            "framework": "rq",
                            "redis": self.redis.url,
                            "queue": "{queue}",
                            "max_items": 1000,
                        },
                    ],
                    "stages": self.plan.stages,
                    "verify": 'opsloop_dlq_length{framework="rq",queue="{queue}"} < 10',
                    "verify_after": self.plan.verify_after,
                    "cooldown": "5m",
                    "escalate": notify,
                },
                {
                    "name": "restart-redis",
                    "match": {"alertname": "OpsloopSourceDown"},
                    "labels": {"source": "^redis/(?P<redis>[a-z0-9_-]{1,64})$"},
                    "actions": [
                        {
                            "type": "http",
                            "method": "POST",
                            "timeout": "10s",
                            "url": f"http://{LOOPBACK}:{self.hook_port}/hooks/restart/{{redis}}",
                        }
                    ],
                    "stages": ["0s", "20s"],
                    "verify": 'opsloop_source_up{source="{source}"} == 1',
                    "verify_after": "5s",
                    "cooldown": "5m",
                    "escalate": notify,
                },
            ],
            "worker": {"poll_interval": "200ms", "retry_base": "500ms"},
        }

    def _start_receiver(self) -> None:
        if self.plan.broken:
            import redis

            redis.Redis.from_url(self.redis.url).set("broken:emails", "a string, not a list")
        path = self.workdir / "receiver.yml"
        path.write_text(yaml.safe_dump(self.receiver_config(), sort_keys=False))
        self.receiver.spawn(
            [sys.executable, "-m", "opsloop.receiver", "--config", str(path),
             "--web.listen-address", f"{LOOPBACK}:{self.receiver_port}"]
        )  # fmt: skip
        self._stoppers.append(self.receiver.stop)
        self.receiver.wait_ready(lambda: http_ok(f"{self.receiver_url}/-/ready"))

    def _alertmanager_config(self) -> dict[str, Any]:
        return {
            "route": {
                "receiver": "opsloop",
                "group_by": ["..."],  # the receiver decides per alert
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "opsloop",
                    "webhook_configs": [
                        {
                            "url": f"{self.receiver_url}/alerts",
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {"credentials_file": self._secret("am-token", self.webhook_token)}
                            },
                        }
                    ],
                }
            ],
        }

    def start_rq_worker(self) -> None:
        """A real ``rq worker`` on the scenario's queue; stopped with the rest of the stack."""
        self.rq_worker.spawn(
            [str(Path(sys.executable).parent / "rq"), "worker", "--url", self.redis.url, "--name", "demo-reports",
             "--logging_level", "WARNING", RQ_QUEUE]
        )  # fmt: skip
        self._stoppers.append(self.rq_worker.stop)

    # -- queries ---------------------------------------------------------------------------------
    def admin_get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.receiver_url}{path}", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.load(resp)

    def firing_alerts(self) -> list[dict[str, Any]]:
        assert self.prometheus is not None
        with urllib.request.urlopen(f"{self.prometheus.url}/api/v1/alerts", timeout=5) as resp:
            alerts: list[dict[str, Any]] = json.load(resp)["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
