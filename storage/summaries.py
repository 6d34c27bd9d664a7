"""Posted summaries: one row per (kind, period, generation) makes each period post once.

APScheduler does not make a job exactly-once across restarts or replicas, so the database does:
the scheduled post is generation 0 and can be claimed by one process only; a claim whose holder
died (its lease ran out) may be taken over; `--force` adds generation n+1, keeping the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.db import insert_if_new
from storage.models import FeedbackEvent, SummaryPost
from storage.states import PeriodKind, PostingStatus


@dataclass(frozen=True)
class Claim:
    post_id: int
    generation: int
    took_over: bool  # a previous holder may have posted before dying: check Slack first


@dataclass(frozen=True)
class Posting:
    """The latest posting of a period."""

    status: PostingStatus
    generation: int
    slack_ts: str | None


def _row(
    kind: PeriodKind, start: date, generation: int, worker: str, until: datetime, forced: bool
) -> dict[str, object]:
    return {
        "kind": kind, "period_start": start, "generation": generation,
        "status": PostingStatus.CLAIMED,
        "claimed_by": worker, "claimed_until": until, "forced": forced,
    }  # fmt: skip


def _find(session: Session, kind: PeriodKind, start: date, generation: int) -> SummaryPost | None:
    return session.scalars(
        select(SummaryPost)
        .where(
            SummaryPost.kind == kind,
            SummaryPost.period_start == start,
            SummaryPost.generation == generation,
        )
        .execution_options(populate_existing=True)
    ).first()


def claim_period(
    session: Session, kind: PeriodKind, start: date, *, worker: str, now: datetime, lease: timedelta
) -> Claim | None:
    """Claim the scheduled post of a period; None if it is posted or another process holds it."""
    until = now + lease
    if insert_if_new(session, SummaryPost, _row(kind, start, 0, worker, until, forced=False)):
        post = _find(session, kind, start, 0)
        assert post is not None
        return Claim(post.id, 0, took_over=False)
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
    post = _find(session, kind, start, 0)
    assert post is not None
    return Claim(post.id, 0, took_over=True)


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
            post = _find(session, kind, start, generation)
            assert post is not None
            return Claim(post.id, generation, took_over=False)


def mark_posted(
    session: Session, post_id: int, *, worker: str, channel: str | None, ts: str | None,
    now: datetime,
) -> None:  # fmt: skip
    session.execute(
        update(SummaryPost)
        .where(SummaryPost.id == post_id, SummaryPost.claimed_by == worker)
        .values(
            status=PostingStatus.POSTED,
            slack_channel=channel,
            slack_ts=ts,
            posted_at=now,
            claimed_until=None,
        )
    )


def release(session: Session, post_id: int, *, worker: str, now: datetime) -> None:
    """Posting failed: let the next attempt (schedule, start-up or CLI) claim it at once."""
    session.execute(
        update(SummaryPost)
        .where(
            SummaryPost.id == post_id,
            SummaryPost.claimed_by == worker,
            SummaryPost.status == PostingStatus.CLAIMED,
        )
        .values(claimed_until=now)
    )


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


def has_events_before(session: Session, end: datetime) -> bool:
    """Whether Downvote had received anything by `end`: no summary for before it existed."""
    first = session.scalar(select(FeedbackEvent.id).where(FeedbackEvent.received_at < end).limit(1))
    return first is not None
