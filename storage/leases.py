"""Work claimed under a lease: the alerts to post and the Slack messages to delete.

pending -> sending (claimed_by, claimed_until) -> done or failed. A pending row is due at its
`next_attempt_at`; a sending row whose lease ran out (its worker died) is due again, and is
claimed by one worker only (SKIP LOCKED on PostgreSQL, the single writer on SQLite).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from storage.db import is_postgresql
from storage.models import Alert, DownvoteGroup, SlackDeletion, Spike

Leased = TypeVar("Leased", Alert, SlackDeletion)
PENDING, SENDING = "pending", "sending"  # AlertStatus and DeletionStatus spell them alike


def claim_due(
    session: Session,
    model: type[Leased],
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    order_by: tuple[InstrumentedAttribute[object], ...],
) -> list[tuple[Leased, bool]]:
    """Take up to `limit` due rows, each with whether it was taken over from a lapsed lease
    (its work may have been done already: the new owner checks before doing it again)."""
    due = or_(
        and_(model.status == PENDING, model.next_attempt_at <= now),
        and_(model.status == SENDING, model.claimed_until < now),
    )
    query = select(model).where(due).order_by(*order_by).limit(limit)
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    claimed: list[tuple[Leased, bool]] = []
    for row in session.scalars(query):
        taken_over = row.status == SENDING
        row.status, row.claimed_by, row.claimed_until = SENDING, worker, now + lease
        row.attempts += 1
        claimed.append((row, taken_over))
    session.flush()
    return claimed


def next_due_at(session: Session) -> datetime | None:
    """When the next leased work falls due, of the alerts and the Slack deletions not
    claimable yet: a retry or a deferral waiting for its time, or a claim whose lease runs out.
    None: nothing is waiting."""
    times = []
    for model in (Alert, SlackDeletion):
        pending = select(func.min(model.next_attempt_at)).where(model.status == PENDING)
        leased = select(func.min(model.claimed_until)).where(model.status == SENDING)
        times += [session.scalar(pending), session.scalar(leased)]
    return min((at for at in times if at is not None), default=None)


# ---------------------------------------------------------------------------------------------
# A Slack message showing a growing count (a group's "seen N times", a spike's total) is updated
# at most once every so often, and each update is claimed by one process.

Counted = TypeVar("Counted", DownvoteGroup, Spike)


def schedule_refresh(row: DownvoteGroup | Spike, *, now: datetime, every: timedelta) -> None:
    """Ask for the row's message to be updated, at most once every `every`."""
    if row.refresh_due_at is None:
        row.refresh_due_at = max(now, row.refreshed_at + every) if row.refreshed_at else now


def claim_due_refreshes(session: Session, model: type[Counted], *, now: datetime) -> list[int]:
    """The ids of the rows whose message is due for an update and is in Slack, each claimed
    by one process (one UPDATE clears `refresh_due_at`: a second process finds it clear)."""
    claimed = session.execute(
        update(model)
        .where(model.refresh_due_at <= now, model.slack_ts.is_not(None))
        .values(refresh_due_at=None, refreshed_at=now)
        .returning(model.id)
    )
    return sorted(claimed.scalars())
