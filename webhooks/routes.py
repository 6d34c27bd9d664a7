"""HTTP routes: each validates, calls one function, and answers."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session

from storage.db import read
from storage.records import EventFilter, event_record_dict, list_events
from storage.states import Rating, TriageStatus
from webhooks.auth import authenticate_api_key
from webhooks.errors import BadRequest
from webhooks.ingest import Ingestor, parse_body
from webhooks.metrics import INGEST_SECONDS
from webhooks.schemas import (
    BatchAccepted,
    EventPage,
    FeedbackAccepted,
    FeedbackBatchIn,
    FeedbackIn,
)

router = APIRouter()


def ingestor_of(request: Request) -> Ingestor:
    """The app's Ingestor (a plain lookup: FastAPI's Depends costs more than the work here)."""
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


def accepted(payload: dict[str, Any]) -> JSONResponse:
    """202 with a body built here: skips re-validating a response we just made."""
    return JSONResponse(payload, status_code=202)


def _json_body(model: type[Any]) -> dict[str, Any]:
    """Document the body in /docs: the routes read it raw, to check its signature first."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    "/v1/feedback",
    status_code=202,
    response_model=FeedbackAccepted,
    openapi_extra=_json_body(FeedbackIn),
)
async def post_feedback(request: Request) -> JSONResponse:
    """Store one feedback event; a repeated id answers `duplicate: true`."""
    ingestor = ingestor_of(request)
    with INGEST_SECONDS.time():
        caller, body = await ingestor.read(request)
        event = parse_body(FeedbackIn, body)
        new_event = event.to_new_event(webhook_id=caller.webhook_id, now=ingestor.clock.now())
        [stored] = await ingestor.store(caller, [new_event])
    return accepted({"id": stored.external_id, "duplicate": stored.duplicate})


@router.post(
    "/v1/feedback/batch",
    status_code=202,
    response_model=BatchAccepted,
    openapi_extra=_json_body(FeedbackBatchIn),
)
async def post_feedback_batch(request: Request) -> JSONResponse:
    """Store up to 1000 events; one invalid event rejects the whole batch."""
    ingestor = ingestor_of(request)
    with INGEST_SECONDS.time():
        caller, body = await ingestor.read(request)
        batch = parse_body(FeedbackBatchIn, body)
        now = ingestor.clock.now()
        # Without an id of its own, the n-th event of a signed batch is keyed on webhook-id:n.
        events = [
            e.to_new_event(
                webhook_id=f"{caller.webhook_id}:{n}" if caller.webhook_id else None, now=now
            )
            for n, e in enumerate(batch.events)
        ]
        stored = await ingestor.store(caller, events)
    duplicates = sum(s.duplicate for s in stored)
    return accepted(
        {
            "accepted": len(stored) - duplicates,
            "duplicates": duplicates,
            "ids": [s.external_id for s in stored],
        }
    )


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor is not one this API returned") from None


def _as_utc(moment: datetime | None) -> datetime | None:
    """A time without an offset in a query string means UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _encode_cursor(last_id: int | None) -> str | None:
    if last_id is None:
        return None
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


@router.get("/v1/feedback", response_model=EventPage)
def get_feedback(
    request: Request,
    rating: Rating | Literal["none"] | None = None,
    category: str | None = None,
    status: TriageStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> EventPage:
    """Read your app's events, newest first, a page at a time."""
    ingestor = ingestor_of(request)
    caller = authenticate_api_key(request.headers, ingestor.credentials)
    filters = EventFilter(
        rating=rating,
        category=category,
        status=status,
        since=_as_utc(since),
        until=_as_utc(until),
        app_id=caller.app_id,
    )
    after_id = _decode_cursor(cursor)

    def page(session: Session) -> tuple[list[dict[str, Any]], int | None]:
        records, last_id = list_events(session, filters, limit=limit, after_id=after_id)
        return [event_record_dict(r) for r in records], last_id

    events, last_id = read(ingestor.sessions, page)
    return EventPage(events=events, next_cursor=_encode_cursor(last_id))


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, response: Response) -> dict[str, str]:
    """Readiness: the database answers."""
    try:
        with ingestor_of(request).sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        response.status_code = 503
        return {"status": "unavailable", "reason": type(exc).__name__}
    return {"status": "ok"}


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
