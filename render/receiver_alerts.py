"""Alerts on the receiver itself: down or absent, refusing webhooks, notifications or plans stuck, paused.

They read the receiver's own metrics under its own selector. Pauses are shared through the store, so
every replica reports the same pause: that alert aggregates the instances away to fire once per scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.render.formats import duration, number
from opsloop.render.promql import label, series, value

if TYPE_CHECKING:
    from opsloop.render.alerts import Alert, Builder
    from opsloop.render.thresholds import Thresholds


def receiver_alerts(b: Builder, t: Thresholds) -> list[Alert]:
    r, sel = t.receiver, t.receiver.selector
    refused = series("opsloop_receiver_webhooks_total", sel, 'outcome!="accepted"')
    trips = series("opsloop_receiver_guard_trips_total", sel)
    pending = {
        kind: series("opsloop_receiver_oldest_pending_seconds", sel, f'kind="{kind}"') for kind in ("delivery", "plan")
    }
    return [
        b.alert(
            "OpsloopReceiverDown",
            f"{series('up', sel)} == 0",
            r.down,
            "Receiver cannot be scraped",
            f"Prometheus cannot scrape the opsloop receiver {label('instance')}: "
            "it may refuse webhooks and deliver nothing.",
        ),
        b.alert(
            "OpsloopReceiverAbsent",
            f"absent({series('up', sel)})",
            r.absent,
            "Receiver target is missing",
            f"Prometheus has no target matching {{{sel}}}: nobody watches whether alerts reach plans and people.",
        ),
        b.alert(
            "OpsloopReceiverWebhooksFailing",
            f"sum by (job, instance, outcome) (increase({refused}[{duration(r.webhooks_failing.window)}]))"
            f" > {number(r.webhooks_failing.threshold)}",
            r.webhooks_failing,
            "Receiver refuses webhooks",
            f"The opsloop receiver {label('instance')} refused {value()} webhooks as {label('outcome')} "
            f"within the last {duration(r.webhooks_failing.window)}: those alerts reach no plan and no person.",
        ),
        b.alert(
            "OpsloopReceiverDeliveryStuck",
            f"{pending['delivery']} > {number(r.delivery_stuck.threshold)}",
            r.delivery_stuck,
            "Notifications are not delivered",
            f"The oldest undelivered notification on {label('instance')} was first attempted "
            f"{value('humanizeDuration')} ago (more than {duration(r.delivery_stuck.threshold)}).",
        ),
        b.alert(
            "OpsloopReceiverPlanBacklog",
            f"{pending['plan']} > {number(r.plan_backlog.threshold)}",
            r.plan_backlog,
            "Recovery plans wait for workers",
            f"The oldest due recovery step on {label('instance')} has waited {value('humanizeDuration')} "
            f"(more than {duration(r.plan_backlog.threshold)}).",
        ),
        b.alert(
            "OpsloopReceiverAutomationPaused",
            f"max by (job, scope) ({series('opsloop_receiver_automation_paused', sel)}) == 1",
            r.automation_paused,
            "Automation is paused",
            f"Automation for {label('scope')} ('*' is every plan) has been paused for more than "
            f"{duration(r.automation_paused.for_)}: its alerts go to people only.",
        ),
        b.alert(
            "OpsloopReceiverGuardTripped",
            f"sum by (job, guard) (increase({trips}[{duration(r.guard_tripped.window)}]))"
            f" > {number(r.guard_tripped.threshold)}",
            r.guard_tripped,
            "Automation guard tripped",
            f"The {label('guard')} guard paused automation within the last {duration(r.guard_tripped.window)} "
            f"(trips: {value()}): look at which plan ran so often, then resume.",
        ),
    ]
