"""The composition root: the one place that wires storage, the receiver and the Slack side."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings
from storage.db import make_engine, make_sessionmaker
from webhooks.app import create_app

logger = logging.getLogger("downvote")


def build_service(
    settings: Settings, *, engine: Engine | None = None
) -> tuple[FastAPI, sessionmaker[Session]]:
    """The whole service as one ASGI app, with background work tied to its lifespan."""
    engine = engine or make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = create_app(sessions, max_body_bytes=settings.downvote_max_body_bytes, lifespan=lifespan)
    return app, sessions
