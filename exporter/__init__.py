"""opsloop-exporter: queue, DLQ, worker and cache metrics from Redis and business metrics from SQL."""
