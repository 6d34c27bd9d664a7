"""Posted summaries: one row per (kind, period, generation) makes each period post once.

APScheduler does not make a job exactly-once across restarts or replicas, so the database does:
the scheduled post is generation 0 and can be claimed by one process only; a claim whose holder
died (its lease ran out) may be taken over; `--force` adds generation n+1, keeping the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import FeedbackEvent, SummaryPost

CLAIMED, POSTED = "claimed", "posted"


@dataclass(frozen=True)
class Claim:
    post_id: int
    generation: int
    took_over: bool  # a previous holder may have posted before dying: check Slack first


def _insert(session: Session, row: dict[str, object]) -> bool:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT that did nothing.
    statement = insert(SummaryPost).values(**row).on_conflict_do_nothing()
    return session.execute(statement.returning(SummaryPost.id)).first() is not None


def _row(
    kind: str, start: date, generation: int, worker: str, until: datetime, forced: bool
) -> dict[str, object]:
    return {
        "kind": kind, "period_start": start, "generation": generation, "status": CLAIMED,
        "claimed_by": worker, "claimed_until": until, "forced": forced,
    }  # fmt: skip


def _find(session: Session, kind: str, start: date, generation: int) -> SummaryPost | None:
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
    session: Session, kind: str, start: date, *, worker: str, now: datetime, lease: timedelta
) -> Claim | None:
    """Claim the scheduled post of a period; None if it is posted or another process holds it."""
    until = now + lease
    if _insert(session, _row(kind, start, 0, worker, until, forced=False)):
        post = _find(session, kind, start, 0)
        assert post is not None
        return Claim(post.id, 0, took_over=False)
    taken = session.execute(
        update(SummaryPost)
        .where(
            SummaryPost.kind == kind,
            SummaryPost.period_start == start,
            SummaryPost.generation == 0,
            SummaryPost.status == CLAIMED,
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
    session: Session, kind: str, start: date, *, worker: str, now: datetime, lease: timedelta
) -> Claim:
    """A new posting of an already posted period (`--force`), kept beside the earlier ones."""
    while True:
        latest = session.scalar(
            select(func.max(SummaryPost.generation)).where(
                SummaryPost.kind == kind, SummaryPost.period_start == start
            )
        )
        generation = 0 if latest is None else latest + 1
        if _insert(session, _row(kind, start, generation, worker, now + lease, forced=True)):
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
            status=POSTED, slack_channel=channel, slack_ts=ts, posted_at=now, claimed_until=None
        )
    )


def release(session: Session, post_id: int, *, worker: str, now: datetime) -> None:
    """Posting failed: let the next attempt (schedule, start-up or CLI) claim it at once."""
    session.execute(
        update(SummaryPost)
        .where(
            SummaryPost.id == post_id,
            SummaryPost.claimed_by == worker,
            SummaryPost.status == CLAIMED,
        )
        .values(claimed_until=now)
    )


def posting_of(session: Session, kind: str, start: date) -> SummaryPost | None:
    """The latest posting of a period, if any."""
    return session.scalars(
        select(SummaryPost)
        .where(SummaryPost.kind == kind, SummaryPost.period_start == start)
        .order_by(SummaryPost.generation.desc())
    ).first()


def has_events_before(session: Session, end: datetime) -> bool:
    """Whether Downvote had received anything by `end`: no summary for before it existed."""
    first = session.scalar(select(FeedbackEvent.id).where(FeedbackEvent.received_at < end).limit(1))
    return first is not None


def postings(session: Session, kind: str | None = None) -> list[SummaryPost]:
    query = select(SummaryPost).order_by(SummaryPost.period_start, SummaryPost.generation)
    if kind is not None:
        query = query.where(SummaryPost.kind == kind)
    return list(session.scalars(query))
