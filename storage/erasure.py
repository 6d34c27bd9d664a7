"""Erasing events: one user's on request (GDPR art. 17, CCPA), or every one older than a date.

An event goes with everything that quotes it: triage, notes, categories, the audit trail, group
membership and its alert (the foreign keys cascade). Its Slack messages cannot be deleted inside
a transaction, so they are queued in `slack_deletions` (a durable outbox the worker drains with
`chat.delete`) in the same transaction that deletes the event. A `data_deletions` row records
that a deletion happened (why, who, how many), never what was deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage import leases
from storage.db import insert_ignoring_conflicts, is_postgresql
from storage.models import Alert, DataDeletion, FeedbackEvent, SlackDeletion
from storage.states import DeletionReason, DeletionStatus

BATCH = 500  # events per transaction: a purge never holds the write lock for long


@dataclass(frozen=True)
class Erased:
    """How many events went, and how many of their alerts are queued for deletion in Slack."""

    events: int
    slack_messages: int

    def __add__(self, other: Erased) -> Erased:
        return Erased(self.events + other.events, self.slack_messages + other.slack_messages)


NOTHING = Erased(0, 0)


def of_user(user_id: str, app_id: int | None = None) -> list[ColumnElement[bool]]:
    """The events a user sent (through one app, or any)."""
    where = [FeedbackEvent.user_id == user_id]
    if app_id is not None:
        where.append(FeedbackEvent.app_id == app_id)
    return where


def older_than(moment: datetime) -> list[ColumnElement[bool]]:
    """Events that occurred before `moment`."""
    return [FeedbackEvent.occurred_at < moment]


def _in_slack() -> ColumnElement[bool]:
    return Alert.slack_ts.is_not(None)


def count(session: Session, where: Sequence[ColumnElement[bool]]) -> Erased:
    """What `erase` would remove, without removing it (for --dry-run and the confirmation)."""
    events, in_slack = session.execute(
        select(func.count(FeedbackEvent.id), func.count(Alert.id).filter(_in_slack()))
        .outerjoin(Alert, Alert.event_id == FeedbackEvent.id)
        .where(*where)
    ).one()
    return Erased(int(events), int(in_slack))


def erase(
    session: Session,
    where: Sequence[ColumnElement[bool]],
    *,
    now: datetime,
    reason: DeletionReason,
    actor: str,
    app_id: int | None = None,
    slack: bool = True,
    limit: int | None = None,
) -> Erased:
    """Delete the matching events (up to `limit`), queue their Slack messages for deletion
    (unless `slack` is False), and record the deletion. Nothing matched: nothing recorded."""
    ids_query = select(FeedbackEvent.id).where(*where).order_by(FeedbackEvent.id)
    if limit is not None:
        ids_query = ids_query.limit(limit)
    if is_postgresql(session):
        ids_query = ids_query.with_for_update()
    ids = list(session.scalars(ids_query))
    if not ids:
        return NOTHING
    queued = _queue_slack_messages(session, ids, now=now) if slack else 0
    session.execute(delete(FeedbackEvent).where(FeedbackEvent.id.in_(ids)))
    erased = Erased(len(ids), queued)
    session.add(
        DataDeletion(
            reason=reason, actor=actor, app_id=app_id, events=erased.events,
            slack_messages=erased.slack_messages, at=now,
        )
    )  # fmt: skip
    return erased


def _queue_slack_messages(session: Session, event_ids: Sequence[int], *, now: datetime) -> int:
    rows = session.execute(
        select(Alert.event_id, Alert.slack_channel_id, Alert.slack_ts, Alert.slack_thread_ts).where(
            Alert.event_id.in_(event_ids), _in_slack(), Alert.slack_channel_id.is_not(None)
        )
    ).all()
    for row in rows:
        queue_slack_deletion(
            session, event_id=row.event_id, channel_id=row.slack_channel_id, ts=row.slack_ts,
            thread_ts=row.slack_thread_ts or row.slack_ts, now=now,
        )  # fmt: skip
    return len(rows)


def queue_slack_deletion(
    session: Session, *, event_id: int, channel_id: str, ts: str, thread_ts: str, now: datetime
) -> None:
    """Delete this alert's message, and its parts and notes in `thread_ts`, from Slack."""
    session.execute(
        insert_ignoring_conflicts(session, SlackDeletion).values(
            event_id=event_id, channel_id=channel_id, ts=ts, thread_ts=thread_ts,
            status=DeletionStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now,
        )
    )  # fmt: skip


@dataclass(frozen=True)
class ClaimedDeletion:
    id: int
    event_id: int
    channel_id: str
    ts: str
    thread_ts: str
    attempts: int


def claim_due_deletions(
    session: Session, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedDeletion]:
    """Take up to `limit` due deletions; replicas never share one (as with alerts)."""
    claimed = leases.claim_due(
        session, SlackDeletion, worker=worker, now=now, lease=lease, limit=limit,
        order_by=(SlackDeletion.id,),
    )  # fmt: skip
    return [
        ClaimedDeletion(row.id, row.event_id, row.channel_id, row.ts, row.thread_ts, row.attempts)
        for row, _ in claimed
    ]


def _owned(deletion_id: int, worker: str) -> ColumnElement[bool]:
    return and_(
        SlackDeletion.id == deletion_id,
        SlackDeletion.status == DeletionStatus.SENDING,
        SlackDeletion.claimed_by == worker,
    )


def mark_deleted(session: Session, deletion_id: int, *, worker: str) -> None:
    session.execute(
        update(SlackDeletion)
        .where(_owned(deletion_id, worker))
        .values(status=DeletionStatus.DONE, claimed_until=None, last_error=None)
    )


def mark_retry(
    session: Session, deletion_id: int, *, worker: str, at: datetime, error: str
) -> None:
    session.execute(
        update(SlackDeletion)
        .where(_owned(deletion_id, worker))
        .values(
            status=DeletionStatus.PENDING, next_attempt_at=at, claimed_until=None,
            last_error=error,
        )
    )  # fmt: skip


def mark_failed(session: Session, deletion_id: int, *, worker: str, error: str) -> None:
    session.execute(
        update(SlackDeletion)
        .where(_owned(deletion_id, worker))
        .values(status=DeletionStatus.FAILED, claimed_until=None, last_error=error)
    )


def pending_count(session: Session) -> int:
    """Slack deletions not done yet (pending or in progress)."""
    return int(
        session.scalar(
            select(func.count()).where(
                SlackDeletion.status.in_([DeletionStatus.PENDING, DeletionStatus.SENDING])
            )
        )
        or 0
    )


def erase_in_batches(
    sessions: sessionmaker[Session],
    where: Sequence[ColumnElement[bool]],
    *,
    now: datetime,
    reason: DeletionReason,
    actor: str,
    app_id: int | None = None,
    slack: bool = True,
) -> Erased:
    """`erase` everything matching, BATCH events per transaction, so no write lock is held for
    long; each batch is recorded as its own deletion."""
    total = NOTHING
    while True:
        with sessions.begin() as session:
            erased = erase(
                session, where, now=now, reason=reason, actor=actor, app_id=app_id,
                slack=slack, limit=BATCH,
            )  # fmt: skip
        total += erased
        if erased.events < BATCH:
            return total
