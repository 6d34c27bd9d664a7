"""Tables. Later features add columns here, not new shapes: every table the product needs exists."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from storage.states import AlertStatus, DeletionStatus, PostingStatus, TriageStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for large tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on both databases (SQLite drops the offset; we store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class App(Base):
    """A sending application: its events go to its Slack channel."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    channel: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    credentials: Mapped[list[AppCredential]] = relationship(back_populates="app")


class AppCredential(Base):
    """A webhook signing secret or a hashed API key; rotated ones expire instead of vanishing."""

    __tablename__ = "app_credentials"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # "webhook_secret" | "api_key"
    # Webhook secrets must be kept to compute HMACs; API keys are kept only as a SHA-256 hash.
    secret: Mapped[str | None] = mapped_column(String(200))
    key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    app: Mapped[App] = relationship(back_populates="credentials")


class FeedbackEvent(Base):
    """One piece of feedback exactly as the app sent it (the database keeps the unredacted text)."""

    __tablename__ = "feedback_events"
    __table_args__ = (
        UniqueConstraint("app_id", "external_id", name="uq_feedback_events_app_external_id"),
        Index("ix_feedback_events_occurred_at", "occurred_at"),
        # Criteria and summary counts scan a period's events on occurred_at and read only these
        # columns (and `metrics` for a metric), so they read the index alone: on SQLite, where
        # every index holds the id, and on PostgreSQL for the pages VACUUM has marked visible.
        # The one-column index stays for the rest: PostgreSQL, until VACUUM has run, would
        # rather read the whole table than this wide index and every row it points to.
        Index(
            "ix_feedback_events_occurred_at_covering",
            "occurred_at",
            "app_id",
            "model",
            "feature",
            "rating",
            "latency_ms",
            "confidence",
            postgresql_include=["id"],  # what triage and categories are looked up by
        ),
        Index("ix_feedback_events_app_id_id", "app_id", "id"),
        # Criteria and summaries scan downvotes (or all rated events) of a period.
        Index("ix_feedback_events_rating_occurred_at", "rating", "occurred_at"),
        # Spike control counts an app's recent downvotes.
        Index("ix_feedback_events_app_id_rating_received_at", "app_id", "rating", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    # The idempotency key: the event's `id`, else the `webhook-id`, else one we make.
    external_id: Mapped[str] = mapped_column(String(255))
    rating: Mapped[str | None] = mapped_column(String(4))  # a Rating, or NULL for unrated
    comment: Mapped[str | None] = mapped_column(Text)
    # A string, or a list of {"role", "content"} chat messages, stored as given.
    prompt: Mapped[Any] = mapped_column(JSON)
    response: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(255))
    feature: Mapped[str | None] = mapped_column(String(255))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    user_id: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[str | None] = mapped_column(String(255))
    trace_id: Mapped[str | None] = mapped_column(String(255))
    trace_url: Mapped[str | None] = mapped_column(Text)
    correction: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # "metadata" is reserved on declarative classes; the column keeps the contract's name.
    extra: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    webhook_id: Mapped[str | None] = mapped_column(String(255))

    app: Mapped[App] = relationship()


class Alert(Base):
    """Outbox row: a downvote waiting to be (or already) posted to Slack.

    pending -> sending (lease in claimed_until) -> posted(slack_ts); transient failures go back to
    pending with next_attempt_at; permanent ones or too many attempts end in failed.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_events.id", ondelete="CASCADE"), unique=True
    )
    channel: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default=AlertStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    slack_channel_id: Mapped[str | None] = mapped_column(String(100))
    slack_ts: Mapped[str | None] = mapped_column(String(40))
    # The thread its parts went into when not its own (a group's or a spike's): NULL = its own.
    slack_thread_ts: Mapped[str | None] = mapped_column(String(40))
    # How many thread replies are already posted, so a retry resumes the thread, not restarts it.
    replies_posted: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    event: Mapped[FeedbackEvent] = relationship()


class Category(Base):
    """An edge-case category for downvotes: the defaults plus those added in Slack."""

    __tablename__ = "categories"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Triage(Base):
    """The current triage decision for one event; the audit trail holds how it got there."""

    __tablename__ = "triage"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_events.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(20), default=TriageStatus.NEW)
    assignee: Mapped[str | None] = mapped_column(String(100))
    triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    triaged_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EventCategory(Base):
    """One category on one event: a row per pair, so concurrent picks never overwrite each other."""

    __tablename__ = "event_categories"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_events.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(100), primary_key=True)
    added_by: Mapped[str | None] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TriageNote(Base):
    __tablename__ = "triage_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_events.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TriageAudit(Base):
    """Every triage action with who, when, and the value before and after."""

    __tablename__ = "triage_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_events.id", ondelete="CASCADE"), index=True
    )
    slack_user: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SummaryPost(Base):
    """One posting of a summary period; the unique key makes each period post once.

    `generation` is 0 for the scheduled post; `--force` adds generation n+1, keeping history.
    """

    __tablename__ = "summary_posts"
    __table_args__ = (
        UniqueConstraint("kind", "period_start", "generation", name="uq_summary_posts_period"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(10))  # a PeriodKind
    period_start: Mapped[date] = mapped_column(Date)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(10), default=PostingStatus.CLAIMED)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slack_channel: Mapped[str | None] = mapped_column(String(100))
    slack_ts: Mapped[str | None] = mapped_column(String(40))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    # What follows the message in its thread: overflow parts, then (weekly) the chart. Each is
    # recorded as Slack confirms it, so a retry resumes after the last and never posts again.
    parts_posted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    chart_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())


class CriterionBreach(Base):
    """A criterion whose whole interval missed its target on a day: alerted once that day.

    claimed -> posted, like a summary period; the unique key makes replicas and restarts agree.
    """

    __tablename__ = "criterion_breaches"
    __table_args__ = (
        UniqueConstraint("criterion", "day", name="uq_criterion_breaches_criterion_day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    criterion: Mapped[str] = mapped_column(String(200))  # its name in downvote.toml
    day: Mapped[date] = mapped_column(Date)  # in the summary time zone
    status: Mapped[str] = mapped_column(String(10), default=PostingStatus.CLAIMED)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slack_channel: Mapped[str | None] = mapped_column(String(100))
    slack_ts: Mapped[str | None] = mapped_column(String(40))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SlackChannel(Base):
    """A configured channel (`#name` or an id) and the conversation id Slack knows it by."""

    __tablename__ = "slack_channels"

    configured: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(40))
    resolved_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DownvoteGroup(Base):
    """Near-duplicate downvotes of one app: one alert (its head's), "seen N times".

    open -> resolved (the head's triage); a downvote like a resolved group starts a new group
    that points back at it (`previous_group_id`): the problem is back.
    """

    __tablename__ = "downvote_groups"
    __table_args__ = (Index("ix_downvote_groups_app_id_last_seen_at", "app_id", "last_seen_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    head_event_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_events.id", ondelete="CASCADE"), unique=True
    )
    signature: Mapped[bytes] = mapped_column(LargeBinary)  # the head's MinHash
    size: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    previous_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("downvote_groups.id", ondelete="SET NULL")
    )
    # [[category, similar downvotes], …] from earlier triaged groups, offered with an Apply button
    suggestion: Mapped[Any] = mapped_column(JSON, nullable=True)
    # The head's message, which "seen N times" updates, and the thread members go into: the
    # head's own, or the spike's when the group began during a spike
    slack_channel_id: Mapped[str | None] = mapped_column(String(100))
    slack_ts: Mapped[str | None] = mapped_column(String(40))
    slack_thread_ts: Mapped[str | None] = mapped_column(String(40))
    refresh_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GroupMember(Base):
    """Which group a downvote belongs to (decided once, when its alert is first claimed)."""

    __tablename__ = "group_members"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_events.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("downvote_groups.id", ondelete="CASCADE"), index=True
    )


class GroupBand(Base):
    """One LSH band of a group's signature: groups sharing a band are candidates to compare."""

    __tablename__ = "group_bands"
    __table_args__ = (Index("ix_group_bands_app_id_band", "app_id", "band"),)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("downvote_groups.id", ondelete="CASCADE"), primary_key=True
    )
    band: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))


class Spike(Base):
    """An app's downvotes far above its usual rate: one message collects new groups meanwhile.

    quiet -> spiking (message) -> quiet: `ended_at` is set once the rate stayed below the
    threshold for the quiet period.
    """

    __tablename__ = "spikes"
    __table_args__ = (
        # One open spike per app, however many processes notice it at once.
        Index(
            "uq_spikes_open_app_id", "app_id", unique=True,
            sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL"),
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    below_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    baseline: Mapped[float] = mapped_column(Float)  # the usual downvotes per window
    peak: Mapped[int] = mapped_column(Integer)
    slack_channel_id: Mapped[str | None] = mapped_column(String(100))
    slack_ts: Mapped[str | None] = mapped_column(String(40))
    claimed_by: Mapped[str | None] = mapped_column(String(100))  # who posts its message
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refresh_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SlackDeletion(Base):
    """A Slack message to delete (an erased event's alert, its thread parts and notes).

    pending -> sending (leased) -> done; failed when Slack refuses for good. A durable outbox,
    like alerts: an outage or a restart delays a deletion, never loses it.
    """

    __tablename__ = "slack_deletions"
    __table_args__ = (
        UniqueConstraint("channel_id", "ts", name="uq_slack_deletions_channel_id_ts"),
        Index("ix_slack_deletions_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigId)  # gone by now: names its parts' metadata
    channel_id: Mapped[str] = mapped_column(String(100))
    ts: Mapped[str] = mapped_column(String(40))  # the alert's own message
    thread_ts: Mapped[str] = mapped_column(String(40))  # the thread its parts and notes are in
    status: Mapped[str] = mapped_column(String(10), default=DeletionStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DataDeletion(Base):
    """That a deletion happened: why, who ran it, how much. Never what was deleted."""

    __tablename__ = "data_deletions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(String(20))  # a DeletionReason
    actor: Mapped[str] = mapped_column(String(200))  # "cli:<user>", "api:<app>", "retention"
    app_id: Mapped[int | None] = mapped_column(ForeignKey("apps.id", ondelete="SET NULL"))
    events: Mapped[int] = mapped_column(Integer)
    slack_messages: Mapped[int] = mapped_column(Integer)  # alerts queued for deletion in Slack
    at: Mapped[datetime] = mapped_column(UTCDateTime)
