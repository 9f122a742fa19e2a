"""Render Prometheus rules and Grafana dashboards from one thresholds file, so they cannot drift."""
