"""Prometheus metrics of the HTTP side."""

from prometheus_client import Counter, Histogram

EVENTS_STORED = Counter(
    "downvote_events_stored_total", "Feedback events stored, by rating", ["rating"]
)
EVENTS_DUPLICATE = Counter(
    "downvote_events_duplicate_total", "Feedback events answered as duplicates"
)
REQUESTS_REJECTED = Counter(
    "downvote_requests_rejected_total", "Feedback requests refused, by HTTP status", ["status"]
)
INGEST_SECONDS = Histogram(
    "downvote_ingest_seconds",
    "Time to authenticate, validate and store a feedback request",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
