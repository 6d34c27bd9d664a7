"""While the database does not answer, requests get 503 with Retry-After (worth repeating),
not a bug's 500; the log says what the database said, never a request's text."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from storage.db import engine_of, is_sqlite, make_engine, make_sessionmaker
from tests.support.databases import PG_URL, RegisteredApp, register_app
from webhooks.app import create_app

EVENT = {"prompt": "p", "response": "r", "rating": "down"}


def unreachable_engine(database_url: str, tmp_path: Path) -> Engine:
    """The backend under test, at an address where no database answers."""
    if is_sqlite(database_url):
        return make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'downvote.db'}")
    return make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")  # nothing listens


def assert_try_later(response_status: int, headers: dict[str, str], detail: str) -> None:
    assert response_status == 503
    assert int(headers["retry-after"]) >= 1
    assert "database is unavailable" in detail


def test_every_route_answers_503_while_the_database_is_unreachable(
    database_url: str, tmp_path: Path
) -> None:
    engine = unreachable_engine(database_url, tmp_path)
    bearer = {"authorization": "Bearer dv_whatever"}
    try:
        with TestClient(create_app(make_sessionmaker(engine), max_body_bytes=4096)) as client:
            answers = [
                client.post("/v1/feedback", json=EVENT, headers=bearer),
                client.post("/v1/feedback/batch", json={"events": [EVENT]}, headers=bearer),
                client.get("/v1/feedback", headers=bearer),
                client.delete("/v1/users/u1", headers=bearer),
            ]
    finally:
        engine.dispose()
    for answer in answers:
        assert_try_later(answer.status_code, dict(answer.headers), answer.json()["detail"])


def test_a_failed_store_logs_the_database_s_words_not_the_event(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """SQLAlchemy's error carries the statement's parameters (prompts, responses); the log
    line must not."""
    if not is_sqlite(engine_of(sessions)):
        pytest.skip("the table is moved away on SQLite; PostgreSQL's outage is the test below")
    sender = register_app(sessions)
    caplog.set_level(logging.WARNING, logger="downvote.http")
    secret = {**EVENT, "prompt": "my card number is 4111 1111 1111 1111"}
    with TestClient(create_app(sessions, max_body_bytes=4096)) as client:
        assert client.get("/v1/feedback", headers=_bearer(sender)).status_code == 200
        with sessions.begin() as session:  # the credentials are cached now
            session.execute(text("ALTER TABLE feedback_events RENAME TO elsewhere"))
        refused = client.post("/v1/feedback", json=secret, headers=_bearer(sender))
    assert_try_later(refused.status_code, dict(refused.headers), refused.json()["detail"])
    [line] = [m for m in caplog.messages if "database unavailable" in m]
    assert "no such table: feedback_events" in line
    assert "4111" not in "\n".join(caplog.messages)


def test_on_postgresql_an_outage_gets_503_and_the_retry_is_stored_once(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """The database stops taking connections and drops the ingest ones (a restart, a
    failover): the write waits for a connection, gives up with 503, and the event sent
    again once the database is back is stored, once."""
    engine = engine_of(sessions)
    if is_sqlite(engine):
        pytest.skip("PostgreSQL's connections; SQLite's missing file is the test above")
    database = engine.url.database
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")

    def allow_connections(allowed: bool) -> None:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allowed}'))

    event = {**EVENT, "id": "during-the-outage"}
    service = create_app(sessions, max_body_bytes=4096)
    try:
        with TestClient(service) as client:
            assert client.get("/v1/feedback", headers=_bearer(registered_app)).status_code == 200
            allow_connections(False)
            with admin.connect() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND application_name = 'downvote-ingest'"
                    ),
                    {"db": database},
                )
            refused = client.post("/v1/feedback", json=event, headers=_bearer(registered_app))
            allow_connections(True)
            retried = client.post("/v1/feedback", json=event, headers=_bearer(registered_app))
    finally:
        allow_connections(True)
        admin.dispose()
    assert_try_later(refused.status_code, dict(refused.headers), refused.json()["detail"])
    assert retried.status_code == 202 and retried.json()["duplicate"] is False
    with sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM feedback_events")) == 1


def _bearer(app: RegisteredApp) -> dict[str, str]:
    return {"authorization": f"Bearer {app.api_key}"}
