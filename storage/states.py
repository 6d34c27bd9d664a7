"""The states rows can be in, spelled once: models, queries, blocks, routes and the CLI use these.

Columns stay plain strings (no schema change); a StrEnum member *is* its string, so it binds and
compares as one, and values read back are turned into members where a view is built.
"""

from __future__ import annotations

from enum import StrEnum


class Rating(StrEnum):
    """What the user said about an answer; an unrated interaction has none."""

    DOWN = "down"
    UP = "up"


class TriageStatus(StrEnum):
    """Where a downvote's triage stands; `new` until someone acts on it."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    NOT_A_MODEL_ISSUE = "not_a_model_issue"


class AlertStatus(StrEnum):
    """pending -> sending (leased) -> posted; failed when Slack refused it for good."""

    PENDING = "pending"
    SENDING = "sending"
    POSTED = "posted"
    FAILED = "failed"


class PeriodKind(StrEnum):
    """A summary's period: a day (daily summary) or a Monday-to-Sunday week (weekly digest)."""

    DAILY = "daily"
    WEEKLY = "weekly"


class PostingStatus(StrEnum):
    """A summary period is claimed by one process, then posted."""

    CLAIMED = "claimed"
    POSTED = "posted"


class DeletionStatus(StrEnum):
    """A Slack message to delete: pending -> sending (leased) -> done, or failed for good."""

    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"


class DeletionReason(StrEnum):
    """Why events were deleted."""

    FORGET = "forget"  # a user's data, on request (CLI or API)
    PURGE = "purge"  # by hand, older than a date
    RETENTION = "retention"  # the daily job, `[retention] days`
