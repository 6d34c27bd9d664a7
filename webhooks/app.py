"""The FastAPI application factory for the feedback receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from storage.clock import SYSTEM_CLOCK, Clock
from webhooks.errors import install_error_handlers
from webhooks.ingest import Ingestor
from webhooks.limits import IngestLimits
from webhooks.openapi import install as install_openapi
from webhooks.routes import BODY_MODELS, BODY_SCHEMAS, router
from webhooks.users import users_router

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    sessions: sessionmaker[Session],
    *,
    max_body_bytes: int,
    lifespan: Lifespan | None = None,
    on_downvotes_stored: Callable[[int], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    limits: IngestLimits | None = None,
) -> FastAPI:
    """Build the receiver; the caller owns the database and anything that runs beside it."""
    ingestor = Ingestor(
        sessions=sessions,
        max_body_bytes=max_body_bytes,
        clock=clock,
        limits=limits or IngestLimits(),
    )
    if on_downvotes_stored is not None:
        ingestor.on_stored = on_downvotes_stored

    @asynccontextmanager
    async def serving(app: FastAPI) -> AsyncIterator[None]:
        """The ingestor's writers first and last: whatever the caller runs may store events."""
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(ingestor.serving())
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            yield

    app = FastAPI(
        title="Downvote",
        summary="Every thumbs-down on an LLM answer, in Slack, triaged.",
        version="1.0",
        lifespan=serving,
        # FastAPI's OpenTelemetry hooks checked the global providers on every request (4% of
        # ingest's time); Downvote exports Prometheus metrics instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.ingestor = ingestor
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(users_router)
    install_openapi(app, BODY_MODELS, BODY_SCHEMAS)
    return app
