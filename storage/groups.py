"""Groups of near-duplicate downvotes: who belongs where, decided once and in one transaction.

A downvote is compared with the groups of its app that share an LSH band with it (one indexed
query); the signatures decide. It joins the most similar open group whose last member is within
the window; like a *resolved* group, it starts a new one that points back at it (the problem is
back); like nothing, it starts a new one, with the categories of similar triaged groups offered.
On PostgreSQL a per-app advisory lock makes replicas place near-identical downvotes one after the
other, so they still make one group; SQLite has one writer at a time anyway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import BigInteger, Table, bindparam, func, insert, null, select, text, update
from sqlalchemy.orm import Session

from storage import leases
from storage.db import POSTGRESQL, SQLITE, backend_of, is_postgresql
from storage.models import (
    Alert,
    App,
    Base,
    DownvoteGroup,
    EventCategory,
    FeedbackEvent,
    GroupBand,
    GroupMember,
    Triage,
    TriageAudit,
    UTCDateTime,
)
from storage.states import AlertStatus, TriageStatus

GROUPING_LOCK = 0x67726F7570  # "group": with the app id, the PostgreSQL advisory lock key
Similarity = Callable[[bytes, bytes], float]


@dataclass(frozen=True)
class Rules:
    similarity: float
    window: timedelta
    suggest_similarity: float


@dataclass(frozen=True)
class Newcomer:
    """A downvote to place: its event, app, time, and prompt fingerprint."""

    event_id: int
    app_id: int
    received_at: datetime
    signature: bytes
    bands: tuple[int, ...]


@dataclass(frozen=True)
class Placement:
    """A downvote's group, and whether it heads it (its alert is the group's message)."""

    event_id: int
    group_id: int
    is_head: bool


@dataclass(frozen=True)
class Candidate:
    id: int
    signature: bytes
    size: int
    last_seen_at: datetime
    head_event_id: int
    resolved: bool
    categories: tuple[str, ...]


def place(
    session: Session, newcomers: Sequence[Newcomer], *, rules: Rules, likeness: Similarity
) -> dict[int, Placement]:
    """Place each downvote (in order) in a group, unless it has one already."""
    placed = _existing(session, [n.event_id for n in newcomers])
    for newcomer in newcomers:
        if newcomer.event_id not in placed:
            if is_postgresql(session):
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:lock, :app)"),
                    {"lock": GROUPING_LOCK & 0x7FFFFFFF, "app": newcomer.app_id},
                )
            placed[newcomer.event_id] = _place_one(session, newcomer, rules, likeness)
    return placed


def _existing(session: Session, event_ids: Sequence[int]) -> dict[int, Placement]:
    rows = session.execute(
        select(GroupMember.event_id, DownvoteGroup.id, DownvoteGroup.head_event_id)
        .join(DownvoteGroup, DownvoteGroup.id == GroupMember.group_id)
        .where(GroupMember.event_id.in_(event_ids))
    )
    return {
        row.event_id: Placement(row.event_id, row.id, row.head_event_id == row.event_id)
        for row in rows
    }


def _place_one(
    session: Session, newcomer: Newcomer, rules: Rules, likeness: Similarity
) -> Placement:
    scored = [
        (likeness(newcomer.signature, candidate.signature), candidate)
        for candidate in candidates(session, newcomer)
    ]
    alike = [(score, c) for score, c in scored if score >= rules.similarity]
    open_groups = [
        (score, c.last_seen_at, c)
        for score, c in alike
        if not c.resolved and c.last_seen_at >= newcomer.received_at - rules.window
    ]
    if open_groups:
        _, _, joined = max(open_groups, key=lambda item: (item[0], item[1]))
        return _join(session, newcomer, joined)
    resolved = [(score, c.last_seen_at, c) for score, c in alike if c.resolved]
    previous = max(resolved, key=lambda item: (item[0], item[1]))[2] if resolved else None
    hints = [c for score, c in scored if score >= rules.suggest_similarity and c.categories]
    return _start(session, newcomer, previous, _suggestion(previous, hints))


# Built once: only the parameters change, so each lookup skips building and compiling SQL.
_SHARING_A_BAND = (
    select(
        DownvoteGroup.id,
        DownvoteGroup.signature,
        DownvoteGroup.size,
        DownvoteGroup.last_seen_at,
        DownvoteGroup.head_event_id,
        Triage.status,
    )
    .outerjoin(Triage, Triage.event_id == DownvoteGroup.head_event_id)
    .where(
        DownvoteGroup.id.in_(
            select(GroupBand.group_id)
            .where(
                GroupBand.app_id == bindparam("app_id"),
                GroupBand.band.in_(bindparam("bands", expanding=True)),
            )
            .distinct()
            .scalar_subquery()
        )
    )
)
_CATEGORIES_OF = (
    select(EventCategory.event_id, EventCategory.category)
    .where(EventCategory.event_id.in_(bindparam("heads", expanding=True)))
    .order_by(EventCategory.added_at, EventCategory.category)
)


def candidates(session: Session, newcomer: Newcomer) -> list[Candidate]:
    """The app's groups sharing a band with the newcomer: one query on the band index."""
    rows = session.execute(
        _SHARING_A_BAND, {"app_id": newcomer.app_id, "bands": list(newcomer.bands)}
    ).all()
    if not rows:
        return []
    categories: dict[int, list[str]] = {row.head_event_id: [] for row in rows}
    for event_id, name in session.execute(_CATEGORIES_OF, {"heads": list(categories)}):
        categories[event_id].append(name)
    return [
        Candidate(
            row.id,
            row.signature,
            row.size,
            row.last_seen_at,
            row.head_event_id,
            row.status == TriageStatus.RESOLVED,
            tuple(categories[row.head_event_id]),
        )
        for row in rows
    ]


def _suggestion(previous: Candidate | None, hints: Sequence[Candidate]) -> list[list[Any]]:
    """Categories to offer, with how many similar downvotes carry each (a resolved look-alike's
    categories first: the same problem, back)."""
    if previous is not None and previous.categories:
        return [[name, previous.size] for name in previous.categories]
    weights: Counter[str] = Counter()
    for candidate in hints:
        for name in candidate.categories:
            weights[name] += candidate.size
    return [[name, count] for name, count in weights.most_common(3)]


def _table(model: type[Base]) -> Table:
    """The Core table: parameters then bind once to the statement, not as ORM bulk rows."""
    return cast(Table, model.__table__)


_ADD_MEMBER = insert(_table(GroupMember)).values(
    event_id=bindparam("member"), group_id=bindparam("group")
)


def _grown(later: Callable[..., Any]) -> Any:
    return (
        update(_table(DownvoteGroup))
        .where(DownvoteGroup.id == bindparam("group"))
        .values(
            size=DownvoteGroup.size + 1,
            last_seen_at=later(DownvoteGroup.last_seen_at, bindparam("seen", type_=UTCDateTime)),
        )
    )


# The later of last_seen_at and the newcomer's time: greatest() on PostgreSQL, max() on SQLite.
_GROW = {POSTGRESQL: _grown(func.greatest), SQLITE: _grown(func.max)}


def _join(session: Session, newcomer: Newcomer, group: Candidate) -> Placement:
    session.execute(_ADD_MEMBER, {"member": newcomer.event_id, "group": group.id})
    session.execute(_GROW[backend_of(session)], {"group": group.id, "seen": newcomer.received_at})
    _inherit_triage(session, group.head_event_id, newcomer.event_id)
    return Placement(newcomer.event_id, group.id, False)


def _start(
    session: Session, newcomer: Newcomer, previous: Candidate | None, suggestion: list[list[Any]]
) -> Placement:
    group_id = session.execute(
        insert(DownvoteGroup)
        .values(
            app_id=newcomer.app_id, head_event_id=newcomer.event_id, signature=newcomer.signature,
            size=1, first_seen_at=newcomer.received_at, last_seen_at=newcomer.received_at,
            previous_group_id=previous.id if previous else None,
            suggestion=suggestion or null(),
        )
        .returning(DownvoteGroup.id)
    ).scalar_one()  # fmt: skip
    session.execute(insert(GroupMember).values(event_id=newcomer.event_id, group_id=group_id))
    session.execute(
        insert(GroupBand),
        [{"group_id": group_id, "band": band, "app_id": newcomer.app_id} for band in
         dict.fromkeys(newcomer.bands)],
    )  # fmt: skip
    return Placement(newcomer.event_id, group_id, True)


_TRIAGE_COPIED = ("status", "assignee", "triaged_at", "triaged_by", "updated_at")
_INHERIT = [
    insert(_table(Triage)).from_select(
        ["event_id", *_TRIAGE_COPIED],
        select(
            bindparam("member", type_=BigInteger), *(getattr(Triage, c) for c in _TRIAGE_COPIED)
        ).where(Triage.event_id == bindparam("head")),
    ),
    insert(_table(EventCategory)).from_select(
        ["event_id", "category", "added_by", "added_at"],
        select(
            bindparam("member", type_=BigInteger),
            EventCategory.category,
            EventCategory.added_by,
            EventCategory.added_at,
        ).where(EventCategory.event_id == bindparam("head")),
    ),
]


def _inherit_triage(session: Session, head_event_id: int, event_id: int) -> None:
    """A newcomer to a group carries the group's triage: its categories, status and assignee
    (copied in the database: nothing to copy is the usual case, and costs two statements)."""
    for statement in _INHERIT:
        session.execute(statement, {"member": event_id, "head": head_event_id})


def record_group_message(
    session: Session, group_id: int, *, channel_id: str, ts: str, thread_ts: str
) -> None:
    """The head's alert is in Slack: members go into `thread_ts` from now on (its own thread,
    or the spike's it was posted in: Slack threads do not nest)."""
    session.execute(
        update(DownvoteGroup)
        .where(DownvoteGroup.id == group_id)
        .values(slack_channel_id=channel_id, slack_ts=ts, slack_thread_ts=thread_ts)
    )


def mark_for_refresh(session: Session, group_id: int, *, now: datetime, every: timedelta) -> None:
    """Ask for the group's message to show its new size, at most once every `every`."""
    group = session.get(DownvoteGroup, group_id)
    if group is not None:
        leases.schedule_refresh(group, now=now, every=every)


def claim_refreshes(session: Session, *, now: datetime) -> list[int]:
    """Group messages due for an update (the head's event ids); each claimed by one process."""
    claimed = leases.claim_due_refreshes(session, DownvoteGroup, now=now)
    heads = select(DownvoteGroup.head_event_id).where(DownvoteGroup.id.in_(claimed))
    return list(session.scalars(heads.order_by(DownvoteGroup.id)))


def group_event_ids(session: Session, event_id: int) -> list[int]:
    """Every event in the same group as `event_id` (just itself when it has no group)."""
    group_id = session.scalar(select(GroupMember.group_id).where(GroupMember.event_id == event_id))
    if group_id is None:
        return [event_id]
    return list(
        session.scalars(
            select(GroupMember.event_id)
            .where(GroupMember.group_id == group_id)
            .order_by(GroupMember.event_id)
        )
    )


@dataclass(frozen=True)
class EarlierGroup:
    """A resolved group this one is like: when and by whom it was resolved, and its alert."""

    resolved_at: datetime | None
    resolved_by: str | None
    channel_id: str | None
    ts: str | None


@dataclass(frozen=True)
class GroupView:
    """What a group's alert shows about the group."""

    id: int
    size: int
    last_seen_at: datetime
    previous: EarlierGroup | None
    suggestion: tuple[tuple[str, int], ...]


def group_view(session: Session, event_id: int) -> GroupView | None:
    group = session.scalar(select(DownvoteGroup).where(DownvoteGroup.head_event_id == event_id))
    if group is None:
        return None
    previous = None
    if group.previous_group_id is not None:
        earlier = session.get(DownvoteGroup, group.previous_group_id)
        if earlier is not None:
            resolved = session.execute(
                select(TriageAudit.at, TriageAudit.slack_user)
                .where(
                    TriageAudit.event_id == earlier.head_event_id,
                    TriageAudit.action == "status",
                    TriageAudit.new_value == TriageStatus.RESOLVED,
                )
                .order_by(TriageAudit.id.desc())
                .limit(1)
            ).first()
            previous = EarlierGroup(
                resolved.at if resolved else None, resolved.slack_user if resolved else None,
                earlier.slack_channel_id, earlier.slack_ts,
            )  # fmt: skip
    suggestion = tuple((str(name), int(count)) for name, count in group.suggestion or [])
    return GroupView(group.id, group.size, group.last_seen_at, previous, suggestion)


def group_sizes(session: Session, event_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(group id, group size) of each event that has a group."""
    rows = session.execute(
        select(GroupMember.event_id, DownvoteGroup.id, DownvoteGroup.size)
        .join(DownvoteGroup, DownvoteGroup.id == GroupMember.group_id)
        .where(GroupMember.event_id.in_(event_ids))
    )
    return {event_id: (group_id, size) for event_id, group_id, size in rows}


@dataclass(frozen=True)
class GroupMessage:
    """Where a group's members go (the channel and thread), and whether its head's alert was
    given up on (then members are posted as alerts of their own)."""

    channel_id: str | None
    thread_ts: str | None
    head_failed: bool


def group_message(session: Session, group_id: int) -> GroupMessage:
    row = session.execute(
        select(DownvoteGroup.slack_channel_id, DownvoteGroup.slack_thread_ts, Alert.status)
        .outerjoin(Alert, Alert.event_id == DownvoteGroup.head_event_id)
        .where(DownvoteGroup.id == group_id)
    ).one()
    return GroupMessage(row.slack_channel_id, row.slack_thread_ts, row.status == AlertStatus.FAILED)


@dataclass(frozen=True)
class GroupListing:
    """One group as `downvote groups` lists it (its triage is its head's)."""

    id: int
    app: str
    size: int
    first_seen_at: datetime
    last_seen_at: datetime
    status: TriageStatus
    categories: tuple[str, ...]
    prompt: Any


def list_groups(
    session: Session, *, app_id: int | None = None, since: datetime | None = None
) -> list[GroupListing]:
    """Groups seen since `since` (last member), largest first."""
    query = (
        select(DownvoteGroup, App.name, Triage.status, FeedbackEvent.prompt)
        .join(App, App.id == DownvoteGroup.app_id)
        .join(FeedbackEvent, FeedbackEvent.id == DownvoteGroup.head_event_id)
        .outerjoin(Triage, Triage.event_id == DownvoteGroup.head_event_id)
        .order_by(DownvoteGroup.size.desc(), DownvoteGroup.last_seen_at.desc())
    )
    if app_id is not None:
        query = query.where(DownvoteGroup.app_id == app_id)
    if since is not None:
        query = query.where(DownvoteGroup.last_seen_at >= since)
    rows = session.execute(query).all()
    heads = [row.DownvoteGroup.head_event_id for row in rows]
    categories: dict[int, list[str]] = {head: [] for head in heads}
    for event_id, name in session.execute(
        select(EventCategory.event_id, EventCategory.category)
        .where(EventCategory.event_id.in_(heads))
        .order_by(EventCategory.added_at, EventCategory.category)
    ):
        categories[event_id].append(name)
    return [
        GroupListing(
            row.DownvoteGroup.id,
            row.name,
            row.DownvoteGroup.size,
            row.DownvoteGroup.first_seen_at,
            row.DownvoteGroup.last_seen_at,
            TriageStatus(row.status or TriageStatus.NEW),
            tuple(categories[row.DownvoteGroup.head_event_id]),
            row.prompt,
        )
        for row in rows
    ]
