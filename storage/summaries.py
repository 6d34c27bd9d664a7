"""Posted summaries: one row per (kind, period, generation) makes each period post once.

APScheduler does not make a job exactly-once across restarts or replicas, so the database does:
the scheduled post is generation 0 and can be claimed by one process only; a claim whose holder
died (its lease ran out) may be taken over; `--force` adds generation n+1, keeping the history.

claimed -> (parent recorded, thread parts counted) -> posted [-> chart pending -> chart done].
Each step Slack confirms is written at once, so a retry resumes after it and posts nothing twice.
The weekly chart is claimed on its own, so a failed upload is retried without the digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from storage.db import insert_if_new
from storage.models import FeedbackEvent, SummaryPost
from storage.states import PeriodKind, PostingStatus


@dataclass(frozen=True)
class Claim:
    """A posting this process now owns, and how far an earlier holder got with it."""

    post_id: int
    generation: int
    took_over: bool  # a previous holder may have posted before dying: check Slack first
    channel_id: str | None = None
    ts: str | None = None
    parts_posted: int = 0


@dataclass(frozen=True)
class Posting:
    """The latest posting of a period."""

    status: PostingStatus
    generation: int
    slack_ts: str | None


@dataclass(frozen=True)
class PendingChart:
    """A posted weekly digest whose chart is still to be shared into its thread."""

    post_id: int
    period_start: date
    channel_id: str
    ts: str


def _row(
    kind: PeriodKind, start: date, generation: int, worker: str, until: datetime, forced: bool
) -> dict[str, object]:
    return {
        "kind": kind, "period_start": start, "generation": generation,
        "status": PostingStatus.CLAIMED,
        "claimed_by": worker, "claimed_until": until, "forced": forced,
    }  # fmt: skip


def _claim_of(
    session: Session, kind: PeriodKind, start: date, generation: int, *, took_over: bool
) -> Claim:
    # Columns, not the entity: what the claim just wrote, never a copy the session held before.
    post = session.execute(
        select(
            SummaryPost.id,
            SummaryPost.slack_channel,
            SummaryPost.slack_ts,
            SummaryPost.parts_posted,
        ).where(
            SummaryPost.kind == kind,
            SummaryPost.period_start == start,
            SummaryPost.generation == generation,
        )
    ).one()
    return Claim(
        post.id, generation, took_over, post.slack_channel, post.slack_ts, post.parts_posted
    )


def claim_period(
    session: Session, kind: PeriodKind, start: date, *, worker: str, now: datetime, lease: timedelta
) -> Claim | None:
    """Claim the scheduled post of a period; None if it is posted or another process holds it."""
    until = now + lease
    if insert_if_new(session, SummaryPost, _row(kind, start, 0, worker, until, forced=False)):
        return _claim_of(session, kind, start, 0, took_over=False)
    taken = session.execute(
        update(SummaryPost)
        .where(
            SummaryPost.kind == kind,
            SummaryPost.period_start == start,
            SummaryPost.generation == 0,
            SummaryPost.status == PostingStatus.CLAIMED,
            SummaryPost.claimed_until <= now,
        )
        .values(claimed_by=worker, claimed_until=until)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None
    return _claim_of(session, kind, start, 0, took_over=True)


def claim_forced(
    session: Session, kind: PeriodKind, start: date, *, worker: str, now: datetime, lease: timedelta
) -> Claim:
    """A new posting of an already posted period (`--force`), kept beside the earlier ones."""
    while True:
        latest = session.scalar(
            select(func.max(SummaryPost.generation)).where(
                SummaryPost.kind == kind, SummaryPost.period_start == start
            )
        )
        generation = 0 if latest is None else latest + 1
        row = _row(kind, start, generation, worker, now + lease, forced=True)
        if insert_if_new(session, SummaryPost, row):
            return _claim_of(session, kind, start, generation, took_over=False)


def _held(post_id: int, worker: str) -> ColumnElement[bool]:
    return and_(SummaryPost.id == post_id, SummaryPost.claimed_by == worker)


def record_parent(session: Session, post_id: int, *, worker: str, channel_id: str, ts: str) -> None:
    """The message is in Slack: a retry continues its thread instead of posting it again."""
    session.execute(
        update(SummaryPost)
        .where(_held(post_id, worker))
        .values(slack_channel=channel_id, slack_ts=ts)
    )


def record_parts(session: Session, post_id: int, *, worker: str, count: int) -> None:
    """How many thread parts Slack has confirmed."""
    session.execute(update(SummaryPost).where(_held(post_id, worker)).values(parts_posted=count))


def mark_posted(
    session: Session, post_id: int, *, worker: str, channel: str | None, ts: str | None,
    now: datetime, chart_pending: bool,
) -> None:  # fmt: skip
    values: dict[str, object] = {
        "status": PostingStatus.POSTED, "slack_channel": channel, "slack_ts": ts,
        "posted_at": now, "chart_pending": chart_pending,
    }  # fmt: skip
    if not chart_pending:  # else the claim is kept: this process shares the chart next
        values["claimed_until"] = None
    session.execute(update(SummaryPost).where(_held(post_id, worker)).values(**values))


def release(session: Session, post_id: int, *, worker: str, now: datetime) -> None:
    """Posting failed: let the next attempt (schedule, start-up or CLI) claim it at once."""
    session.execute(
        update(SummaryPost)
        .where(_held(post_id, worker), SummaryPost.status == PostingStatus.CLAIMED)
        .values(claimed_until=now)
    )


def claim_pending_charts(
    session: Session, *, worker: str, now: datetime, lease: timedelta
) -> list[PendingChart]:
    """Weekly digests posted without their chart, claimed for one more upload each (one
    UPDATE: a chart another process holds, or took a moment ago, is not taken)."""
    free = or_(SummaryPost.claimed_until.is_(None), SummaryPost.claimed_until <= now)
    rows = session.execute(
        update(SummaryPost)
        .where(
            SummaryPost.chart_pending.is_(True),
            SummaryPost.slack_channel.is_not(None),
            SummaryPost.slack_ts.is_not(None),
            free,
        )
        .values(claimed_by=worker, claimed_until=now + lease)
        .returning(
            SummaryPost.id,
            SummaryPost.period_start,
            SummaryPost.slack_channel,
            SummaryPost.slack_ts,
        )
    ).all()
    charts = [
        PendingChart(row.id, row.period_start, row.slack_channel, row.slack_ts) for row in rows
    ]
    return sorted(charts, key=lambda chart: chart.post_id)


def chart_shared(session: Session, post_id: int, *, worker: str) -> None:
    session.execute(
        update(SummaryPost)
        .where(_held(post_id, worker))
        .values(chart_pending=False, claimed_until=None)
    )


def chart_failed(session: Session, post_id: int, *, worker: str, now: datetime) -> None:
    """Leave the chart pending for the next try (the retry job), which may claim it at once."""
    session.execute(update(SummaryPost).where(_held(post_id, worker)).values(claimed_until=now))


def posting_of(session: Session, kind: PeriodKind, start: date) -> Posting | None:
    """The latest posting of a period, if any."""
    row = session.execute(
        select(SummaryPost.status, SummaryPost.generation, SummaryPost.slack_ts)
        .where(SummaryPost.kind == kind, SummaryPost.period_start == start)
        .order_by(SummaryPost.generation.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return Posting(PostingStatus(row.status), row.generation, row.slack_ts)


def has_events_in(session: Session, start: datetime, end: datetime) -> bool:
    """Whether anything happened in [start, end): a period without events gets no summary.

    By when events *occurred*, not when Downvote received them: a team that sends yesterday's
    events this morning still gets yesterday's summary.
    """
    first = session.scalar(
        select(FeedbackEvent.id)
        .where(FeedbackEvent.occurred_at >= start, FeedbackEvent.occurred_at < end)
        .limit(1)
    )
    return first is not None
