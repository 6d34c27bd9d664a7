"""Triage decisions: categories, status, assignee and notes, each with an audit row.

Query functions take the caller's session and never commit. Categories are one row per
(event, category), and a click applies only what that click changed, so two people tagging the
same downvote at once both keep their tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from storage.db import insert_if_new, is_postgresql
from storage.events import EventView, event_views
from storage.groups import GroupView, group_view
from storage.models import (
    Alert,
    App,
    Category,
    EventCategory,
    FeedbackEvent,
    Triage,
    TriageAudit,
    TriageNote,
)
from storage.states import Rating, TriageStatus

MAX_CATEGORY_LENGTH = 60
# Statuses a click can set; `new` is only ever the starting point.
SETTABLE_STATUSES = frozenset(
    {TriageStatus.ACKNOWLEDGED, TriageStatus.RESOLVED, TriageStatus.NOT_A_MODEL_ISSUE}
)


class UnknownEvent(LookupError):
    """The alert refers to an event this database does not have (deleted, or another install)."""


@dataclass(frozen=True)
class TriageSnapshot:
    """The current decision on one event, as the alert shows it."""

    categories: tuple[str, ...] = ()
    status: TriageStatus = TriageStatus.NEW
    assignee: str | None = None
    last_actor: str | None = None
    last_action_at: datetime | None = None
    notes: int = 0


UNTOUCHED = TriageSnapshot()


def triaged() -> ColumnElement[bool]:
    """Someone looked at the event: a status other than `new`, or at least one category.

    The one definition of "triaged" (and, negated, of "untriaged") for every count and list.
    """
    # correlate_except: the subqueries read their own table even when the outer query joins it.
    return or_(
        exists()
        .where(Triage.event_id == FeedbackEvent.id, Triage.status != TriageStatus.NEW)
        .correlate_except(Triage),
        exists().where(EventCategory.event_id == FeedbackEvent.id).correlate_except(EventCategory),
    )


def _locked_triage(session: Session, event_id: int, now: datetime) -> Triage:
    """The event's triage row, created if missing and locked until the transaction ends."""
    if session.get(FeedbackEvent, event_id) is None:
        raise UnknownEvent(f"event {event_id} is not in this Downvote database")
    insert_if_new(
        session, Triage, {"event_id": event_id, "status": TriageStatus.NEW, "updated_at": now}
    )
    query = select(Triage).where(Triage.event_id == event_id)
    if is_postgresql(session):
        query = query.with_for_update()
    triage = session.scalars(query.execution_options(populate_existing=True)).one()
    return triage


def _audit(
    session: Session,
    event_id: int,
    *,
    user: str,
    action: str,
    old: str | None,
    new: str | None,
    now: datetime,
) -> None:
    session.add(
        TriageAudit(
            event_id=event_id, slack_user=user, action=action, old_value=old, new_value=new, at=now
        )
    )


def record(
    session: Session, event_id: int, *, user: str, action: str, new: str, now: datetime
) -> None:
    """An audit row for a decision made through something else (an applied suggestion)."""
    _audit(session, event_id, user=user, action=action, old=None, new=new, now=now)


def _touch(triage: Triage, user: str, now: datetime) -> None:
    """Any decision means someone looked: `new` becomes `acknowledged`, first time recorded."""
    if triage.status == TriageStatus.NEW:
        triage.status = TriageStatus.ACKNOWLEDGED
    if triage.triaged_at is None:
        triage.triaged_at, triage.triaged_by = now, user
    triage.updated_at = now


def change_categories(
    session: Session,
    event_id: int,
    *,
    added: Iterable[str],
    removed: Iterable[str],
    user: str,
    now: datetime,
) -> None:
    """Apply one click's additions and removals (not its whole selection: see module doc)."""
    triage = _locked_triage(session, event_id, now)
    for name in sorted(set(added)):
        if insert_if_new(
            session,
            EventCategory,
            {"event_id": event_id, "category": name, "added_by": user, "added_at": now},
        ):
            _audit(
                session, event_id, user=user, action="category_added", old=None, new=name, now=now
            )
    for name in sorted(set(removed)):
        result = session.execute(
            delete(EventCategory).where(
                EventCategory.event_id == event_id, EventCategory.category == name
            )
        )
        if result.rowcount:  # type: ignore[attr-defined]
            _audit(
                session, event_id, user=user, action="category_removed", old=name, new=None, now=now
            )
    _touch(triage, user, now)


def set_status(
    session: Session, event_id: int, *, status: TriageStatus, user: str, now: datetime
) -> bool:
    """Set the status the clicker asked for; True if it changed (two identical clicks: one change).

    Buttons say what they will do ("Resolved" / "Reopen"), so a click carries its intent and two
    people pressing the same button at once agree instead of cancelling each other out.
    """
    if status not in SETTABLE_STATUSES:
        raise ValueError(f"cannot set status {status!r} from Slack")
    triage = _locked_triage(session, event_id, now)
    old = triage.status
    _touch(triage, user, now)
    if old == status:
        return False
    triage.status = status
    _audit(session, event_id, user=user, action="status", old=old, new=status, now=now)
    return True


def toggle_assignee(session: Session, event_id: int, *, user: str, now: datetime) -> str | None:
    """Assign to the clicking user; if it is already theirs, unassign."""
    triage = _locked_triage(session, event_id, now)
    assignee = None if triage.assignee == user else user
    _assign(session, triage, assignee, user, now)
    return assignee


def set_assignee(
    session: Session, event_id: int, *, assignee: str | None, user: str, now: datetime
) -> None:
    """Give the downvote to `assignee` (or to nobody): a group's members follow its head."""
    _assign(session, _locked_triage(session, event_id, now), assignee, user, now)


def _assign(
    session: Session, triage: Triage, assignee: str | None, user: str, now: datetime
) -> None:
    old = triage.assignee
    triage.assignee = assignee
    _touch(triage, user, now)
    _audit(session, triage.event_id, user=user, action="assignee", old=old, new=assignee, now=now)


def add_note(session: Session, event_id: int, *, user: str, text: str, now: datetime) -> None:
    triage = _locked_triage(session, event_id, now)
    session.add(TriageNote(event_id=event_id, author=user, text=text, created_at=now))
    _touch(triage, user, now)
    _audit(session, event_id, user=user, action="note", old=None, new=text, now=now)


def add_category(session: Session, name: str, *, user: str, now: datetime) -> str:
    """Make a category available to everyone (idempotent); returns the cleaned name."""
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_CATEGORY_LENGTH:
        raise ValueError(f"a category name is 1 to {MAX_CATEGORY_LENGTH} characters")
    insert_if_new(session, Category, {"name": cleaned, "created_by": user, "created_at": now})
    return cleaned


def categories(session: Session, defaults: Sequence[str]) -> list[str]:
    """The configured categories, then those added from Slack, each once."""
    added = session.scalars(select(Category.name).order_by(Category.created_at, Category.name))
    return list(dict.fromkeys([*defaults, *added]))


def snapshot(session: Session, event_id: int) -> TriageSnapshot:
    triage = session.get(Triage, event_id, populate_existing=True)
    names = session.scalars(
        select(EventCategory.category)
        .where(EventCategory.event_id == event_id)
        .order_by(EventCategory.added_at, EventCategory.category)
    ).all()
    last = session.execute(
        select(TriageAudit.slack_user, TriageAudit.at)
        .where(TriageAudit.event_id == event_id)
        .order_by(TriageAudit.id.desc())
        .limit(1)
    ).first()
    notes = session.scalar(
        select(func.count()).select_from(TriageNote).where(TriageNote.event_id == event_id)
    )
    return TriageSnapshot(
        categories=tuple(names),
        status=TriageStatus(triage.status) if triage else TriageStatus.NEW,
        assignee=triage.assignee if triage else None,
        last_actor=last[0] if last else None,
        last_action_at=last[1] if last else None,
        notes=notes or 0,
    )


@dataclass(frozen=True)
class PostedAlert:
    """Where an event's alert is in Slack."""

    event: EventView
    channel_id: str | None
    ts: str | None
    group: GroupView | None = None  # when the event heads a group


def posted_alert(session: Session, event_id: int) -> PostedAlert:
    event = event_views(session, [event_id]).get(event_id)
    if event is None:
        raise UnknownEvent(f"event {event_id} is not in this Downvote database")
    where = session.execute(
        select(Alert.slack_channel_id, Alert.slack_ts).where(Alert.event_id == event_id)
    ).first()
    channel_id, ts = where if where is not None else (None, None)
    return PostedAlert(event, channel_id, ts, group_view(session, event_id))


@dataclass(frozen=True)
class UntriagedDownvote:
    event_id: int
    external_id: str
    app_name: str
    received_at: datetime
    channel_id: str | None
    ts: str | None


def untriaged_downvotes(session: Session, *, limit: int) -> list[UntriagedDownvote]:
    """The oldest downvotes nobody has looked at yet."""
    rows = session.execute(
        select(FeedbackEvent.id, FeedbackEvent.external_id, App.name, FeedbackEvent.received_at,
               Alert.slack_channel_id, Alert.slack_ts)
        .join(App, App.id == FeedbackEvent.app_id)
        .outerjoin(Alert, Alert.event_id == FeedbackEvent.id)
        .where(FeedbackEvent.rating == Rating.DOWN, ~triaged())
        .order_by(FeedbackEvent.received_at, FeedbackEvent.id)
        .limit(limit)
    )  # fmt: skip
    return [UntriagedDownvote(*row) for row in rows]


def backlog_counts(session: Session, *, since: datetime) -> tuple[int, int]:
    """Downvotes received since `since`, and how many downvotes in all await triage."""
    is_down = FeedbackEvent.rating == Rating.DOWN
    received = session.scalar(
        select(func.count()).where(is_down, FeedbackEvent.received_at >= since)
    )
    waiting = session.scalar(select(func.count()).where(is_down, ~triaged()))
    return received or 0, waiting or 0
