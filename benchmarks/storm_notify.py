"""Storm benchmark: time from webhook to Slack for a 500-alert group, and for a critical alert during a
2,000-delivery backlog on the same Slack webhook.

One opsloop-receiver (SQLite, default settings: ``group_window`` 5s) posts to a local Slack webhook
stand-in that enforces one message a second. Three runs, each on a fresh receiver:

- reference: one critical alert (it does not wait for its group) to an idle receiver, webhook to Slack;
- group: ``--group`` alerts of one Alertmanager group in one webhook; time until the first message and
  until every alert has been in a message, the number of messages, and each alert counted once;
- page: ``--backlog`` alerts each its own message (no ``groupKey``: a real backlog of deliveries) on the
  same webhook, then one critical alert; time until it is in Slack (it takes the next send slot).

Prints every time and its ratio to the reference. Bounded: one webhook per run, ``--max-seconds`` per wait.

    python benchmarks/storm_notify.py [--group 500] [--backlog 2000]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from opsloop.testsupport.services import running_receiver
from opsloop.testsupport.sinks import SlackMessage, SlackSink
from page_latency import TOKEN, alert, post


def told(messages: list[SlackMessage]) -> Counter[str]:
    """How often each group alert (label ``name=gN``) appears in the messages' blocks."""
    found: Counter[str] = Counter()
    for message in messages:
        found.update(re.findall(r"\bg\d+\b", json.dumps(message.payload["blocks"])))
    return found


def wait(check: Callable[[], bool], deadline: float, what: str) -> float:
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within the time allowed")
        time.sleep(0.005)
    return time.monotonic()


def run(
    work: Path, name: str, max_seconds: float, scenario: Callable[[str, SlackSink, float], dict[str, float]]
) -> dict[str, float]:
    """Start a fresh receiver with one Slack webhook and run ``scenario(url, slack, deadline)``."""
    with SlackSink() as slack:
        directory = work / name
        directory.mkdir()
        config = {
            "auth": {"bearer_token": TOKEN}, "store": f"sqlite://{directory / 'receiver.db'}",
            "notifiers": {"slack": [{"name": "team", "webhook_url": slack.url()}]},
            "routes": [{"match": {}, "notify": ["slack/team"]}],
        }  # fmt: skip
        with running_receiver(config, directory, "--log.level", "warning") as url:
            return scenario(url, slack, time.monotonic() + max_seconds)


def reference(url: str, slack: SlackSink, deadline: float) -> dict[str, float]:
    posted = time.monotonic()
    post(url, [alert("page", "critical")])
    return {"alone": wait(lambda: bool(slack.messages), deadline, "message") - posted}


def group(size: int) -> Callable[[str, SlackSink, float], dict[str, float]]:
    def scenario(url: str, slack: SlackSink, deadline: float) -> dict[str, float]:
        posted = time.monotonic()
        post(url, [alert(f"g{n}", "warning") for n in range(size)])
        first = wait(lambda: bool(slack.messages), deadline, "first message") - posted
        done = wait(lambda: len(told(slack.messages)) == size, deadline, "message with every alert") - posted
        counted = told(slack.messages)
        assert set(counted.values()) == {1}, "an alert was told twice"
        return {"first": first, "all": done, "messages": len(slack.messages)}

    return scenario


def page(backlog: int) -> Callable[[str, SlackSink, float], dict[str, float]]:
    def scenario(url: str, slack: SlackSink, deadline: float) -> dict[str, float]:
        post(url, [alert(f"w{n}", "warning") for n in range(backlog)], group_key="")
        wait(lambda: len(slack.messages) >= 2, deadline, "backlog draining")
        posted = time.monotonic()
        post(url, [alert("page", "critical")])
        arrived = wait(lambda: any("CRITICAL" in json.dumps(m.payload) for m in slack.messages), deadline, "page")
        return {"page": arrived - posted, "before_it": sum("CRITICAL" not in json.dumps(m.payload)
                                                          for m in slack.messages)}  # fmt: skip

    return scenario


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", type=int, default=500)
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp:
        work = Path(tmp)
        alone = run(work, "reference", args.max_seconds, reference)["alone"]
        grouped = run(work, "group", args.max_seconds, group(args.group))
        paged = run(work, "page", args.max_seconds, page(args.backlog))
    print(f"reference: a critical alert to an idle receiver, webhook to Slack {alone * 1000:.0f} ms")
    print(
        f"{args.group}-alert group: first message after {grouped['first']:.2f} s, every alert after "
        f"{grouped['all']:.2f} s in {grouped['messages']:.0f} messages, group_window (5 s) included; "
        f"minus the window, {(grouped['all'] - 5) / alone:.0f} x the idle page; one message per alert "
        f"at Slack's 1/s would take {args.group - 1} s"
    )
    print(f"critical alert during a {args.backlog}-delivery backlog on the same webhook: in Slack after "
          f"{paged['page'] * 1000:.0f} ms, {paged['before_it']:.0f} backlog messages sent before it "
          f"(ratio to the idle receiver: {paged['page'] / alone:.0f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
