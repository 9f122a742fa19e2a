"""Page latency benchmark: a critical alert's time from webhook to Slack, alone and during a backlog.

One opsloop-receiver (SQLite) posts to two local Slack webhooks: ``team`` gets every warning, ``pages``
every critical alert. The reference run posts one critical alert to an idle receiver; the backlog run
first posts ``--backlog`` warnings in one webhook (which ``team`` drains at Slack's one message a second)
and then the critical alert. Prints both times and their ratio. Bounded: one backlog, one page each,
``--max-seconds`` per wait.

    python benchmarks/page_latency.py [--backlog 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from opsloop.testsupport.services import running_receiver
from opsloop.testsupport.sinks import SlackSink

TOKEN = "benchmark-token"
TEAM, PAGES = "/services/T/B/team", "/services/T/B/pages"


def post(url: str, alerts: list[dict[str, object]], group_key: str = "{}:{}") -> None:
    """One webhook; ``group_key=""`` makes every alert a message of its own (a backlog of messages)."""
    body = {"version": "4", "status": "firing", "receiver": "opsloop", "groupKey": group_key, "alerts": alerts}
    request = urllib.request.Request(
        url + "/alerts", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 200


def alert(name: str, severity: str) -> dict[str, object]:
    return {
        "status": "firing", "labels": {"alertname": "Bench", "name": name, "severity": severity},
        "annotations": {}, "startsAt": "2030-01-01T00:00:00Z", "fingerprint": f"{hash(name) & (2**63 - 1):016x}",
    }  # fmt: skip


def page_seconds(work: Path, backlog: int, max_seconds: float) -> float:
    """Seconds from posting a critical alert until Slack has it, after a backlog of ``backlog`` warnings."""
    with SlackSink() as slack:
        config = {
            "auth": {"bearer_token": TOKEN}, "store": f"sqlite://{work / f'receiver-{backlog}.db'}",
            "notifiers": {"slack": [{"name": "team", "webhook_url": slack.url(TEAM)},
                                    {"name": "pages", "webhook_url": slack.url(PAGES)}]},
            "routes": [{"matchers": ['severity="critical"'], "notify": ["slack/pages"]},
                       {"match": {}, "notify": ["slack/team"]}],
        }  # fmt: skip
        with running_receiver(config, work, "--log.level", "warning") as url:
            if backlog:
                post(url, [alert(f"w{n}", "warning") for n in range(backlog)], group_key="")
                slack.inbox.wait_for(1, max_seconds)  # the backlog is draining
            posted = time.monotonic()
            post(url, [alert("page", "critical")])
            deadline = posted + max_seconds
            while not any(m.path == PAGES for m in slack.messages):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no page within {max_seconds}s")
                time.sleep(0.01)
            return next(m.received_at for m in slack.messages if m.path == PAGES) - posted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp:
        alone = page_seconds(Path(tmp), 0, args.max_seconds)
        during = page_seconds(Path(tmp), args.backlog, args.max_seconds)
    print(f"critical alert, webhook to Slack: alone {alone * 1000:.0f} ms, during a {args.backlog}-message "
          f"backlog on another webhook {during * 1000:.0f} ms, ratio {during / alone:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
