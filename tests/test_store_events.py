"""Requests written together: each keeps its own answers and its own app's alerts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from storage.db import engine_of, is_postgresql
from storage.events import NewEvent
from storage.models import Alert, App, FeedbackEvent
from storage.states import Rating
from tests.support.databases import RegisteredApp, register_app
from tests.support.signing import utc_now
from webhooks.auth import Caller
from webhooks.ingest import Ingestor


def caller(app: RegisteredApp, channel: str) -> Caller:
    return Caller(app_id=app.app_id, app_name=app.name, channel=channel, webhook_id=None)


def new_event(external_id: str, rating: Rating) -> NewEvent:
    return NewEvent(
        external_id=external_id, prompt="p", response="r", occurred_at=utc_now(), rating=rating
    )


def two_apps(sessions: sessionmaker[Session]) -> tuple[RegisteredApp, RegisteredApp]:
    return (
        register_app(sessions, "first", channel="C0FIRST"),
        register_app(sessions, "second", channel="C0SECOND"),
    )


async def store_three_requests_at_once(
    ingestor: Ingestor, first: RegisteredApp, second: RegisteredApp
) -> list[list[bool]]:
    """Two apps' requests, queued together: whether each event was a duplicate."""
    answers = await asyncio.gather(
        ingestor.store(caller(first, "C0FIRST"), [new_event("a", Rating.DOWN),
                                                  new_event("b", Rating.UP),
                                                  new_event("b", Rating.UP)]),
        ingestor.store(caller(second, "C0SECOND"), [new_event("a", Rating.DOWN)]),
        ingestor.store(caller(first, "C0FIRST"), [new_event("a", Rating.DOWN)]),
    )  # fmt: skip
    return [[stored.duplicate for stored in answer] for answer in answers]


def alerts_by_app(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    """(app, event id, channel) of each alert, in the order they were enqueued."""
    with sessions() as session:
        alerts = session.execute(
            select(App.name, FeedbackEvent.external_id, Alert.channel)
            .join(FeedbackEvent, FeedbackEvent.id == Alert.event_id)
            .join(App, App.id == FeedbackEvent.app_id)
            .order_by(Alert.id)
        ).all()
    return [tuple(alert) for alert in alerts]


# A repeat of an id is a duplicate only for the app that sent it first, after its first copy.
DUPLICATES = [[False, False, True], [False], [True]]
# Each downvote's alert goes to its own app's channel.
ALERTS = [("first", "a", "C0FIRST"), ("second", "a", "C0SECOND")]


async def test_two_apps_requests_written_together_keep_their_answers_and_alerts(
    sessions: sessionmaker[Session],
) -> None:
    """Three requests queued at once share one write (on the writer thread, or SQLite's on the
    loop's own): each keeps its answers and its app's alerts."""
    first, second = two_apps(sessions)
    ingestor = Ingestor(sessions=sessions, max_body_bytes=1 << 20)
    engine = engine_of(sessions)
    inserts: list[str] = []
    commits: list[object] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "INSERT INTO feedback_events" in statement:
            inserts.append(statement)

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "commit", committed)
    try:
        duplicates = await store_three_requests_at_once(ingestor, first, second)
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "commit", committed)

    assert duplicates == DUPLICATES
    assert alerts_by_app(sessions) == ALERTS
    # PostgreSQL: the whole group is one statement in autocommit, one round trip in all, with
    # no COMMIT to wait for; SQLite: one INSERT per app, in one transaction.
    if is_postgresql(engine):
        assert (len(inserts), len(commits)) == (1, 0)
    else:
        assert (len(inserts), len(commits)) == (2, 1)


async def test_on_postgresql_written_from_the_event_loop_too(
    sessions: sessionmaker[Session],
) -> None:
    """The serving app's path (psycopg's async connections) keeps the same answers and alerts."""
    if not is_postgresql(engine_of(sessions)):
        pytest.skip("SQLite's writes are not awaited on the loop")
    first, second = two_apps(sessions)
    ingestor = Ingestor(sessions=sessions, max_body_bytes=1 << 20)
    async with ingestor.serving():
        duplicates = await store_three_requests_at_once(ingestor, first, second)
    assert duplicates == DUPLICATES
    assert alerts_by_app(sessions) == ALERTS
