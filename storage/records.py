"""Events as the read API and the export present them: the event, its triage, its notes.

`RECORD_FIELDS` is the one list of the public record's fields, in order (the CSV's columns).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from storage.events import EVENT_VIEW_FIELDS, EventView, event_columns, event_view
from storage.models import (
    App,
    DownvoteGroup,
    EventCategory,
    FeedbackEvent,
    GroupMember,
    Triage,
    TriageNote,
)
from storage.states import Rating, TriageStatus
from storage.triage import triaged


@dataclass(frozen=True)
class EventFilter:
    """Filters shared by the read API and the export."""

    rating: Rating | str | None = None  # a Rating, "none" for unrated, or None for any
    category: str | None = None
    status: TriageStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    app_id: int | None = None


UNRATED = "none"


@dataclass(frozen=True)
class Note:
    author: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class EventRecord:
    """An event with its triage, as the read API and the export present it."""

    event: EventView
    categories: tuple[str, ...]
    notes: tuple[Note, ...]
    status: TriageStatus
    assignee: str | None
    triaged_at: datetime | None
    triaged_by: str | None
    group_id: int | None = None  # its group of near-duplicate downvotes, and that group's size
    group_size: int | None = None


# The public shape of an event, in this order (the CSV's columns): the contract's fields, where
# it came from, and its triage.
RECORD_FIELDS = (
    "id", "app", "rating", "comment", "prompt", "response", "correction", "model", "feature",
    "latency_ms", "confidence", "user_id", "session_id", "trace_id", "trace_url", "metrics",
    "metadata", "occurred_at", "received_at", "categories", "status", "assignee", "notes",
    "triaged_at", "triaged_by", "group_id", "group_size",
)  # fmt: skip


_TRIAGE_COLUMNS = (Triage.status, Triage.assignee, Triage.triaged_at, Triage.triaged_by)
_GROUP_COLUMNS = (GroupMember.group_id, DownvoteGroup.size.label("group_size"))


def filtered_events(filters: EventFilter) -> Select[Any]:
    """The query behind the read API and the export (order and paging are the caller's)."""
    query = (
        select(*event_columns(), *_TRIAGE_COLUMNS, *_GROUP_COLUMNS)
        .join(App, App.id == FeedbackEvent.app_id)
        .outerjoin(Triage, Triage.event_id == FeedbackEvent.id)
        .outerjoin(GroupMember, GroupMember.event_id == FeedbackEvent.id)
        .outerjoin(DownvoteGroup, DownvoteGroup.id == GroupMember.group_id)
    )
    if filters.app_id is not None:
        query = query.where(FeedbackEvent.app_id == filters.app_id)
    if filters.rating == UNRATED:
        query = query.where(FeedbackEvent.rating.is_(None))
    elif filters.rating is not None:
        query = query.where(FeedbackEvent.rating == filters.rating)
    if filters.category is not None:
        query = query.where(
            select(EventCategory.event_id)
            .where(
                EventCategory.event_id == FeedbackEvent.id,
                EventCategory.category == filters.category,
            )
            .exists()
        )
    if filters.status == TriageStatus.NEW:
        query = query.where(~triaged())
    elif filters.status is not None:
        query = query.where(Triage.status == filters.status)
    if filters.since is not None:
        query = query.where(FeedbackEvent.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(FeedbackEvent.occurred_at < filters.until)
    return query


def _records(session: Session, rows: Sequence[Row[Any]]) -> list[EventRecord]:
    """Attach each event's categories and notes (two queries for the whole page)."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    categories: dict[int, list[str]] = {event_id: [] for event_id in ids}
    for event_id, name in session.execute(
        select(EventCategory.event_id, EventCategory.category)
        .where(EventCategory.event_id.in_(ids))
        .order_by(EventCategory.added_at, EventCategory.category)
    ):
        categories[event_id].append(name)
    notes: dict[int, list[Note]] = {event_id: [] for event_id in ids}
    for note in session.execute(
        select(TriageNote.event_id, TriageNote.author, TriageNote.text, TriageNote.created_at)
        .where(TriageNote.event_id.in_(ids))
        .order_by(TriageNote.id)
    ):
        notes[note.event_id].append(Note(note.author, note.text, note.created_at))
    return [
        EventRecord(
            event=event_view(row._mapping),
            categories=tuple(categories[row.id]),
            notes=tuple(notes[row.id]),
            status=TriageStatus(row.status or TriageStatus.NEW),
            assignee=row.assignee,
            triaged_at=row.triaged_at,
            triaged_by=row.triaged_by,
            group_id=row.group_id,
            group_size=row.group_size,
        )
        for row in rows
    ]


def list_events(
    session: Session, filters: EventFilter, *, limit: int, after_id: int | None
) -> tuple[list[EventRecord], int | None]:
    """One page of events, newest first; returns the cursor for the next page (None at the end)."""
    query = filtered_events(filters).order_by(FeedbackEvent.id.desc()).limit(limit + 1)
    if after_id is not None:
        query = query.where(FeedbackEvent.id < after_id)
    rows = session.execute(query).all()
    page = rows[:limit]
    next_cursor = page[-1].id if len(rows) > limit else None
    return _records(session, page), next_cursor


def iter_events(
    session: Session, filters: EventFilter, *, chunk_size: int = 500
) -> Iterator[EventRecord]:
    """Every matching event oldest first, in chunks, so an export never loads the table at once."""
    last_id = 0
    while True:
        query = (
            filtered_events(filters)
            .where(FeedbackEvent.id > last_id)
            .order_by(FeedbackEvent.id)
            .limit(chunk_size)
        )
        rows = session.execute(query).all()
        if not rows:
            return
        yield from _records(session, rows)
        last_id = rows[-1].id


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def event_record_dict(record: EventRecord) -> dict[str, Any]:
    """The public shape of an event (RECORD_FIELDS), JSON-ready."""
    event = record.event
    values: dict[str, Any] = {
        **{name: getattr(event, name) for name in EVENT_VIEW_FIELDS},
        "id": event.external_id,
        "occurred_at": _iso(event.occurred_at),
        "received_at": _iso(event.received_at),
        "categories": list(record.categories),
        "status": record.status.value,
        "assignee": record.assignee,
        "notes": [
            {"author": n.author, "text": n.text, "created_at": _iso(n.created_at)}
            for n in record.notes
        ],
        "triaged_at": _iso(record.triaged_at),
        "triaged_by": record.triaged_by,
        "group_id": record.group_id,
        "group_size": record.group_size,
    }
    if event.rating is not None:
        values["rating"] = event.rating.value
    return {name: values[name] for name in RECORD_FIELDS}
