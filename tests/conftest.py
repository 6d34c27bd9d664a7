"""Shared fixtures: a fresh database per test on each backend, the real app, signed requests."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.service import build_service
from bot.settings import Settings
from storage.db import make_engine, make_sessionmaker
from storage.migrate import upgrade
from storage.models import Base
from tests.support.clock import FakeClock
from tests.support.databases import DATABASES, PG_URL, RegisteredApp, register_app
from tests.support.server import LiveServer

PG_ADMIN_URL = PG_URL
BACKENDS = DATABASES


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test run, migrated once."""
    name = f"downvote_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on each backend under test."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_database")
        _truncate_all(url)
        return url
    if request.param != "sqlite":
        raise ValueError(f"unknown backend {request.param!r} in DOWNVOTE_TEST_BACKENDS")
    path = tmp_path / "downvote.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings as a user would give them, with nothing leaking in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "DOWNVOTE_")) and not name.startswith("DOWNVOTE_TEST"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return Settings(database_url=database_url)


@pytest.fixture
def registered_app(sessions: sessionmaker[Session]) -> RegisteredApp:
    return register_app(sessions)


@pytest.fixture
def service(settings: Settings) -> FastAPI:
    return build_service(settings, console=lambda _text: None).app


@pytest.fixture
def client(service: FastAPI) -> Iterator[TestClient]:
    with TestClient(service) as test_client:
        yield test_client


@pytest.fixture
def live_server(service: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(service) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, on each backend: what `downvote db upgrade` first sees."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"downvote_empty_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# Moments when "today" and "the day that is due" are easy to get wrong: a second before midnight
# UTC, the summary time (09:00) in the configured zone, and the night the clocks go back there.
AWKWARD_MOMENTS = {
    "23:59:59-UTC": (datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC), "UTC"),
    "09:00-Berlin": (datetime(2026, 11, 24, 8, 0, tzinfo=UTC), "Europe/Berlin"),
    "DST-Berlin": (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "Europe/Berlin"),  # 02:30 CET
}


@pytest.fixture(params=list(AWKWARD_MOMENTS))
def awkward_moment(request: pytest.FixtureRequest) -> tuple[FakeClock, str]:
    """A clock stopped at an awkward moment, and the zone DOWNVOTE_TIMEZONE names for it."""
    at, zone = AWKWARD_MOMENTS[request.param]
    return FakeClock(at), zone
