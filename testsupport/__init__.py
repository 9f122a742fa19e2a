"""Real-server launchers and local stand-ins (Redis, PostgreSQL, Prometheus, Alertmanager, SMTP, Slack).

Shared by the tests, the demo and the benchmarks; the exporter and the receiver never import it.
"""
