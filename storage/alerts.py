"""The alert outbox: claiming due alerts under a lease and recording how delivery went.

pending -> sending (claimed_by, claimed_until) -> posted. A claim whose lease ran out (its worker
died mid-send) is claimed again with `reconcile=True`: the new owner asks Slack whether the post
went through before posting again. Every update after the claim checks the claim is still ours.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from storage import leases
from storage.events import EventView, event_views
from storage.models import Alert, App, FeedbackEvent
from storage.states import AlertStatus


@dataclass(frozen=True)
class ClaimedAlert:
    """An alert this worker now owns until `claimed_until`, with what it needs to post it."""

    id: int
    event: EventView
    channel: str | None
    attempts: int
    slack_channel_id: str | None
    slack_ts: str | None
    replies_posted: int
    reconcile: bool
    created_at: datetime


def claim_due_alerts(
    session: Session, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedAlert]:
    """Take up to `limit` due alerts; replicas never share one (SKIP LOCKED, or SQLite's lock)."""
    claimed = leases.claim_due(
        session, Alert, worker=worker, now=now, lease=lease, limit=limit,
        order_by=(Alert.next_attempt_at, Alert.id),
    )  # fmt: skip
    events = event_views(session, [alert.event_id for alert, _ in claimed])
    return [
        ClaimedAlert(
            id=alert.id,
            event=events[alert.event_id],
            channel=alert.channel,
            attempts=alert.attempts,
            slack_channel_id=alert.slack_channel_id,
            slack_ts=alert.slack_ts,
            replies_posted=alert.replies_posted,
            reconcile=taken_over,
            created_at=alert.created_at,
        )
        for alert, taken_over in claimed
    ]


def _owned(alert_id: int, worker: str) -> ColumnElement[bool]:
    return and_(
        Alert.id == alert_id, Alert.status == AlertStatus.SENDING, Alert.claimed_by == worker
    )


def record_parent_posted(
    session: Session,
    alert_id: int,
    *,
    worker: str,
    channel_id: str,
    ts: str,
    thread_ts: str | None = None,
) -> None:
    """Remember the parent message at once, so a crash mid-thread resumes the replies."""
    session.execute(
        update(Alert)
        .where(_owned(alert_id, worker))
        .values(slack_channel_id=channel_id, slack_ts=ts, slack_thread_ts=thread_ts)
    )


def record_replies_posted(
    session: Session, *, alert_id: int, worker: str, count: int, lease_until: datetime
) -> None:
    """Count the thread replies Slack confirmed, and keep the claim alive for a long thread."""
    session.execute(
        update(Alert)
        .where(_owned(alert_id, worker))
        .values(replies_posted=count, claimed_until=lease_until)
    )


def mark_posted(
    session: Session,
    alert_id: int,
    *,
    worker: str,
    now: datetime,
    channel_id: str | None = None,
    ts: str | None = None,
    thread_ts: str | None = None,
) -> bool:
    """Done; the message's place is recorded here too (one write, when there was no thread).
    False when the alert is no longer this worker's (its event was erased meanwhile)."""
    values: dict[str, object] = {
        "status": AlertStatus.POSTED, "posted_at": now, "claimed_until": None, "last_error": None,
    }  # fmt: skip
    if ts is not None:
        values.update(slack_channel_id=channel_id, slack_ts=ts, slack_thread_ts=thread_ts)
    done = session.execute(update(Alert).where(_owned(alert_id, worker)).values(**values))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def was_erased(session: Session, alert_id: int) -> bool:
    """The alert is gone: its event was erased (forget, purge, retention)."""
    return session.get(Alert, alert_id) is None


def mark_retry(session: Session, alert_id: int, *, worker: str, at: datetime, error: str) -> None:
    session.execute(
        update(Alert)
        .where(_owned(alert_id, worker))
        .values(
            status=AlertStatus.PENDING, next_attempt_at=at, claimed_until=None, last_error=error
        )
    )


def defer(session: Session, alert_id: int, *, worker: str, at: datetime) -> None:
    """Hand an untried claim back for later (its channel is failing), without using an attempt."""
    session.execute(
        update(Alert)
        .where(_owned(alert_id, worker))
        .values(
            status=AlertStatus.PENDING,
            next_attempt_at=at,
            claimed_until=None,
            attempts=Alert.attempts - 1,
        )
    )


def mark_failed(session: Session, alert_id: int, *, worker: str, error: str) -> None:
    session.execute(
        update(Alert)
        .where(_owned(alert_id, worker))
        .values(status=AlertStatus.FAILED, claimed_until=None, last_error=error)
    )


def release_claims(
    session: Session, *, worker: str, now: datetime, in_flight: Collection[int] = ()
) -> int:
    """On shutdown, hand back every claim so another process takes it at once.

    An alert not in flight goes back to pending: what Slack confirmed of it (a thread begun in
    an earlier attempt) is recorded, and the next owner resumes from there. One in flight (being
    posted as we stopped, or failed after Slack may have taken it) keeps its state with its
    lease ended now: the next owner reconciles it against the channel before posting anything.
    """
    ours = and_(Alert.status == AlertStatus.SENDING, Alert.claimed_by == worker)
    touched = Alert.id.in_(list(in_flight))
    untouched = session.execute(
        update(Alert)
        .where(ours, ~touched)
        .values(status=AlertStatus.PENDING, claimed_until=None, next_attempt_at=now)
    )
    ended = session.execute(update(Alert).where(ours, touched).values(claimed_until=now))
    return int(untouched.rowcount) + int(ended.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class FailedAlert:
    id: int
    event_external_id: str
    app_name: str
    channel: str | None
    attempts: int
    last_error: str | None


def failed_alerts(session: Session) -> list[FailedAlert]:
    rows = session.execute(
        select(Alert, FeedbackEvent.external_id, App.name)
        .join(FeedbackEvent, FeedbackEvent.id == Alert.event_id)
        .join(App, App.id == FeedbackEvent.app_id)
        .where(Alert.status == AlertStatus.FAILED)
        .order_by(Alert.id)
    )
    return [
        FailedAlert(
            id=alert.id,
            event_external_id=external_id,
            app_name=app_name,
            channel=alert.channel,
            attempts=alert.attempts,
            last_error=alert.last_error,
        )
        for alert, external_id, app_name in rows
    ]


def retry_failed(session: Session, *, now: datetime, alert_id: int | None = None) -> int:
    """Put failed alerts back in the queue (one, or all), with a fresh attempt budget."""
    query = update(Alert).where(Alert.status == AlertStatus.FAILED)
    if alert_id is not None:
        query = query.where(Alert.id == alert_id)
    result = session.execute(
        query.values(status=AlertStatus.PENDING, attempts=0, next_attempt_at=now, claimed_by=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def count_by_status(session: Session) -> dict[AlertStatus, int]:
    rows = session.execute(select(Alert.status, func.count()).group_by(Alert.status))
    return {AlertStatus(status): count for status, count in rows}
