"""opsloop-receiver: Alertmanager webhooks to durable recovery plans and Slack/email notifications.

The HTTP handler only validates and persists; background workers claim the stored work, run recovery
plans once, verify them through Prometheus and deliver notifications with durable retries.
"""
