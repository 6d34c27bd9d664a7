"""Placing downvotes in groups, in the database: the candidate lookup, the window, replicas."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.fingerprint import fingerprint, similarity
from storage import groups
from storage.db import is_sqlite
from storage.events import NewEvent, store_events
from storage.models import DownvoteGroup, FeedbackEvent
from tests.support.databases import RegisteredApp
from tests.support.polling import wait_until
from tests.support.signing import utc_now

RULES = groups.Rules(similarity=0.8, window=timedelta(days=7), suggest_similarity=0.5)
PROMPT = "Where is my order #{}? The tracking page has said nothing at all since Monday."


def newcomers(
    sessions: sessionmaker[Session], app: RegisteredApp, prompts: list[str], *, days_ago: int = 0
) -> list[groups.Newcomer]:
    at = utc_now() - timedelta(days=days_ago)
    ids = [f"{days_ago}-{n}" for n in range(len(prompts))]
    with sessions.begin() as session:
        store_events(
            session, app_id=app.app_id, channel=None, now=at,
            events=[NewEvent(external_id=i, rating="down", prompt=p, response="r", occurred_at=at)
                    for i, p in zip(ids, prompts, strict=True)],
        )  # fmt: skip
        by_external = dict(
            session.execute(
                select(FeedbackEvent.external_id, FeedbackEvent.id).where(
                    FeedbackEvent.external_id.in_(ids)
                )
            ).all()
        )
    return [
        groups.Newcomer(by_external[i], app.app_id, at, f.signature, f.bands)
        for i, f in zip(ids, map(fingerprint, prompts), strict=True)
    ]


def place(session: Session, arrivals: list[groups.Newcomer]) -> dict[int, groups.Placement]:
    return groups.place(session, arrivals, rules=RULES, likeness=similarity)


def group_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(DownvoteGroup)) or 0)


def test_alike_downvotes_join_the_first_and_others_start_their_own(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    arrivals = newcomers(
        sessions, registered_app,
        [PROMPT.format(1), PROMPT.format(2), "Translate this contract into plain English."],
    )  # fmt: skip
    with sessions.begin() as session:
        placed = place(session, arrivals)
    first, second, other = (placed[a.event_id] for a in arrivals)
    assert first.is_head and not second.is_head and other.is_head
    assert second.group_id == first.group_id != other.group_id
    with sessions.begin() as session:  # placing again changes nothing
        assert place(session, arrivals) == placed
    assert group_count(sessions) == 2


def test_a_group_quiet_longer_than_the_window_is_not_joined(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    [old] = newcomers(sessions, registered_app, [PROMPT.format(1)], days_ago=8)
    [new] = newcomers(sessions, registered_app, [PROMPT.format(2)])
    with sessions.begin() as session:
        place(session, [old])
    with sessions.begin() as session:
        assert place(session, [new])[new.event_id].is_head  # 8 days > the 7-day window


def test_replicas_placing_alike_downvotes_at_once_make_one_group(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """The first transaction holds its new group uncommitted until the second has either waited
    for it (PostgreSQL: the per-app lock) or placed its own; then both commit."""
    with sessions() as probe:
        if is_sqlite(probe):
            pytest.skip("SQLite has one writer at a time: the second placement waits anyway")
    first, second = newcomers(sessions, registered_app, [PROMPT.format(1), PROMPT.format(2)])
    placed_second = threading.Event()
    second_pid: list[int] = []

    def place_second() -> None:
        with sessions.begin() as session:
            second_pid.append(int(session.scalar(text("SELECT pg_backend_pid()")) or 0))
            place(session, [second])
        placed_second.set()

    def second_is_waiting(session: Session) -> bool:
        state = session.scalar(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": second_pid[0]},
        )
        return state == "Lock"

    with sessions.begin() as session:
        place(session, [first])
        worker = threading.Thread(target=place_second)
        worker.start()
        with sessions() as watcher:
            wait_until(
                lambda: placed_second.is_set() or (second_pid and second_is_waiting(watcher)),
                "the second placement to wait or finish",
            )
    worker.join(timeout=30)
    assert placed_second.is_set()
    assert group_count(sessions) == 1
