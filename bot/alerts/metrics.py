"""Prometheus metrics of the Slack side."""

from prometheus_client import Counter, Gauge, Histogram

ALERTS_POSTED = Counter("downvote_alerts_posted_total", "Alerts delivered (or printed in preview)")
ALERTS_RETRIED = Counter(
    "downvote_alerts_retried_total", "Alert deliveries that failed and will be retried", ["reason"]
)
ALERTS_FAILED = Counter(
    "downvote_alerts_failed_total",
    "Alerts given up on (permanent error or too many attempts)",
    ["reason"],
)
ALERTS_BY_STATUS = Gauge("downvote_alerts", "Alerts in the outbox by status", ["status"])
ALERT_DELAY_SECONDS = Histogram(
    "downvote_alert_delay_seconds",
    "Time from accepting a downvote to its message being posted",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
