"""Triage decisions: categories, status, assignee and notes, each with an audit row.

Query functions take the caller's session and never commit. Categories are one row per
(event, category), and a click applies only what that click changed, so two people tagging the
same downvote at once both keep their tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import (
    Alert,
    App,
    Base,
    Category,
    EventCategory,
    FeedbackEvent,
    Triage,
    TriageAudit,
    TriageNote,
)

NEW, ACKNOWLEDGED, RESOLVED, NOT_A_MODEL_ISSUE = (
    "new", "acknowledged", "resolved", "not_a_model_issue",
)  # fmt: skip
STATUSES = (NEW, ACKNOWLEDGED, RESOLVED, NOT_A_MODEL_ISSUE)
MAX_CATEGORY_LENGTH = 60


class UnknownEvent(LookupError):
    """The alert refers to an event this database does not have (deleted, or another install)."""


@dataclass(frozen=True)
class TriageSnapshot:
    """The current decision on one event, as the alert shows it."""

    categories: tuple[str, ...]
    status: str
    assignee: str | None
    last_actor: str | None
    last_action_at: datetime | None
    notes: int


def _upsert(session: Session, table: type[Base], row: dict[str, object]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on either database; True when the row is new."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT that did nothing.
    statement = insert(table).values(**row).on_conflict_do_nothing()
    key = inspect(table).primary_key[0]
    return session.execute(statement.returning(key)).first() is not None


def _locked_triage(session: Session, event_id: int, now: datetime) -> Triage:
    """The event's triage row, created if missing and locked until the transaction ends."""
    if session.get(FeedbackEvent, event_id) is None:
        raise UnknownEvent(f"event {event_id} is not in this Downvote database")
    _upsert(session, Triage, {"event_id": event_id, "status": NEW, "updated_at": now})
    query = select(Triage).where(Triage.event_id == event_id)
    if session.get_bind().dialect.name == "postgresql":
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


def _touch(triage: Triage, user: str, now: datetime) -> None:
    """Any decision means someone looked: `new` becomes `acknowledged`, first time recorded."""
    if triage.status == NEW:
        triage.status = ACKNOWLEDGED
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
        if _upsert(
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


def set_status(session: Session, event_id: int, *, status: str, user: str, now: datetime) -> bool:
    """Set the status the clicker asked for; True if it changed (two identical clicks: one change).

    Buttons say what they will do ("Resolved" / "Reopen"), so a click carries its intent and two
    people pressing the same button at once agree instead of cancelling each other out.
    """
    if status not in (ACKNOWLEDGED, RESOLVED, NOT_A_MODEL_ISSUE):
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
    old = triage.assignee
    triage.assignee = None if old == user else user
    _touch(triage, user, now)
    _audit(session, event_id, user=user, action="assignee", old=old, new=triage.assignee, now=now)
    return triage.assignee


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
    _upsert(session, Category, {"name": cleaned, "created_by": user, "created_at": now})
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
        status=triage.status if triage else NEW,
        assignee=triage.assignee if triage else None,
        last_actor=last[0] if last else None,
        last_action_at=last[1] if last else None,
        notes=notes or 0,
    )


def audit_trail(session: Session, event_id: int) -> list[TriageAudit]:
    return list(
        session.scalars(
            select(TriageAudit).where(TriageAudit.event_id == event_id).order_by(TriageAudit.id)
        )
    )


@dataclass(frozen=True)
class PostedAlert:
    """Where an event's alert is in Slack."""

    event: FeedbackEvent
    app_name: str
    channel_id: str | None
    ts: str | None


def posted_alert(session: Session, event_id: int) -> PostedAlert:
    row = session.execute(
        select(FeedbackEvent, App.name, Alert.slack_channel_id, Alert.slack_ts)
        .join(App, App.id == FeedbackEvent.app_id)
        .outerjoin(Alert, Alert.event_id == FeedbackEvent.id)
        .where(FeedbackEvent.id == event_id)
    ).first()
    if row is None:
        raise UnknownEvent(f"event {event_id} is not in this Downvote database")
    event, app_name, channel_id, ts = row
    return PostedAlert(event=event, app_name=app_name, channel_id=channel_id, ts=ts)


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
        .outerjoin(Triage, Triage.event_id == FeedbackEvent.id)
        .outerjoin(Alert, Alert.event_id == FeedbackEvent.id)
        .where(FeedbackEvent.rating == "down")
        .where((Triage.status.is_(None)) | (Triage.status == NEW))
        .order_by(FeedbackEvent.received_at, FeedbackEvent.id)
        .limit(limit)
    )  # fmt: skip
    return [UntriagedDownvote(*row) for row in rows]


def downvote_counts(session: Session, *, since: datetime) -> tuple[int, int]:
    """Downvotes received since `since`, and how many downvotes in all await triage."""
    today = session.scalar(
        select(func.count())
        .select_from(FeedbackEvent)
        .where(FeedbackEvent.rating == "down", FeedbackEvent.received_at >= since)
    )
    untriaged = session.scalar(
        select(func.count())
        .select_from(FeedbackEvent)
        .outerjoin(Triage, Triage.event_id == FeedbackEvent.id)
        .where(FeedbackEvent.rating == "down")
        .where((Triage.status.is_(None)) | (Triage.status == NEW))
    )
    return today or 0, untriaged or 0
