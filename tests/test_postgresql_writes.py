"""PostgreSQL ingest writes from the event loop: its connections, their lifetime, a restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from bot.service import build_service
from bot.settings import Settings
from storage.db import engine_of, is_postgresql
from tests.support.databases import RegisteredApp
from tests.support.polling import wait_until

# What pg_stat_activity shows for the ingest connections, as the README tells operators.
INGEST_CONNECTIONS = "downvote-ingest"


@pytest.fixture
def postgresql_service(settings: Settings, sessions: sessionmaker[Session]) -> FastAPI:
    if not is_postgresql(engine_of(sessions)):
        pytest.skip("SQLite's writes do no network I/O: they are not awaited on the loop")
    return build_service(settings, console=lambda _text: None).app


def ingest_connections(sessions: sessionmaker[Session]) -> list[int]:
    """The server process ids of the ingest connections to this test's database."""
    with sessions() as session:
        rows = session.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": INGEST_CONNECTIONS},
        )
        return [row.pid for row in rows]


def post(client: TestClient, app: RegisteredApp, event_id: str) -> int:
    response = client.post(
        "/v1/feedback",
        json={"id": event_id, "prompt": "p", "response": "r", "rating": "down"},
        headers={"authorization": f"Bearer {app.api_key}"},
    )
    return response.status_code


def stored_ids(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(text("SELECT external_id FROM feedback_events ORDER BY external_id"))
        )


@pytest.fixture
def serving(postgresql_service: FastAPI) -> Iterator[TestClient]:
    with TestClient(postgresql_service, raise_server_exceptions=False) as client:
        yield client


def test_the_ingest_connections_live_exactly_as_long_as_the_app(
    postgresql_service: FastAPI, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    """Opened with the app's lifespan, closed with it: a stopped (or reloaded) server leaves
    no connection behind to count against PostgreSQL's max_connections."""
    with TestClient(postgresql_service) as client:
        assert post(client, registered_app, "a") == 202
        assert ingest_connections(sessions)
    wait_until(lambda: not ingest_connections(sessions), "the ingest connections to close")
    assert stored_ids(sessions) == ["a"]


def test_a_database_restart_does_not_fail_the_next_request(
    serving: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    """Every ingest connection dies (as in a restart or a failover): the next request is
    stored on a new connection, not answered 500 from a dead one."""
    assert post(serving, registered_app, "before") == 202
    killed = ingest_connections(sessions)
    with sessions() as session:
        for pid in killed:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    wait_until(
        lambda: not set(killed) & set(ingest_connections(sessions)), "the connections to end"
    )
    assert post(serving, registered_app, "after") == 202
    assert stored_ids(sessions) == ["after", "before"]


def test_an_app_without_a_lifespan_still_stores(
    postgresql_service: FastAPI, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    """A TestClient used without `with` runs no lifespan, so no pool: the writer threads
    store instead."""
    client = TestClient(postgresql_service)
    assert post(client, registered_app, "a") == 202
    assert ingest_connections(sessions) == []
    assert stored_ids(sessions) == ["a"]
