"""HTTP routes: each validates, calls one function, and answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from storage.db import read
from storage.records import EventFilter, event_record_dict, list_events
from storage.states import Rating, TriageStatus
from webhooks.auth import authenticate_api_key
from webhooks.ingest import Ingestor, parse_body
from webhooks.metrics import INGEST_SECONDS
from webhooks.openapi import API_KEY_ONLY, SIGNED_OR_API_KEY, errors, json_body
from webhooks.schemas import (
    JSON_VALUE_SCHEMA,
    BatchAccepted,
    EventPage,
    FeedbackAccepted,
    FeedbackBatchIn,
    FeedbackIn,
    Moment,
)

router = APIRouter()


def ingestor_of(request: Request) -> Ingestor:
    """The app's Ingestor (a plain lookup: FastAPI's Depends costs more than the work here)."""
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


def accepted(payload: dict[str, Any]) -> JSONResponse:
    """202 with a body built here: skips re-validating a response we just made."""
    return JSONResponse(payload, status_code=202)


# What a feedback POST can answer besides 202, in the order the checks run.
INGEST_ERRORS = errors(503, 415, 413, 400, 401, 422, 429)
# The models of the bodies the routes read raw (see webhooks.openapi).
BODY_MODELS: list[type[BaseModel]] = [FeedbackIn, FeedbackBatchIn]
# Schemas the body models refer to by name (recursive ones pydantic cannot name itself).
BODY_SCHEMAS = {"JsonValue": JSON_VALUE_SCHEMA}


@router.post(
    "/v1/feedback",
    status_code=202,
    response_model=FeedbackAccepted,
    responses=INGEST_ERRORS,
    openapi_extra={**json_body(FeedbackIn), "security": SIGNED_OR_API_KEY},
)
async def post_feedback(request: Request) -> JSONResponse:
    """Store one feedback event; a repeated id answers `duplicate: true`."""
    ingestor = ingestor_of(request)
    with INGEST_SECONDS.time(), ingestor.bodies:
        caller, body = await ingestor.read(request)
        event = parse_body(FeedbackIn, body)
        ingestor.charge(caller, 1)
        new_event = event.to_new_event(webhook_id=caller.webhook_id, now=ingestor.clock.now())
        [stored] = await ingestor.store(caller, [new_event])
    return accepted({"id": stored.external_id, "duplicate": stored.duplicate})


@router.post(
    "/v1/feedback/batch",
    status_code=202,
    response_model=BatchAccepted,
    responses=INGEST_ERRORS,
    openapi_extra={**json_body(FeedbackBatchIn), "security": SIGNED_OR_API_KEY},
)
async def post_feedback_batch(request: Request) -> JSONResponse:
    """Store up to 1000 events; one invalid event rejects the whole batch."""
    ingestor = ingestor_of(request)
    with INGEST_SECONDS.time(), ingestor.bodies:
        caller, body = await ingestor.read(request)
        batch = parse_body(FeedbackBatchIn, body)
        ingestor.charge(caller, len(batch.events))
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


def _as_utc(moment: datetime | None) -> datetime | None:
    """A time without an offset in a query string means UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# A cursor is the id the next page starts after: every string of this shape is one (no 400s for
# a cursor "this API did not return"), and an empty one is the first page, as if absent.
CURSOR = r"^[0-9]{0,18}$"


@router.get(
    "/v1/feedback",
    response_model=EventPage,
    responses=errors(401, 422, 503),
    openapi_extra={"security": API_KEY_ONLY},
)
def get_feedback(
    request: Request,
    rating: Rating | Literal["none"] | None = None,
    category: str | None = None,
    status: TriageStatus | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str, Query(pattern=CURSOR, description="`next_cursor` of a page")] = "",
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
    after_id = int(cursor) if cursor else None

    def page(session: Session) -> tuple[list[dict[str, Any]], int | None]:
        records, last_id = list_events(session, filters, limit=limit, after_id=after_id)
        return [event_record_dict(r) for r in records], last_id

    events, last_id = read(ingestor.sessions, page)
    next_cursor = None if last_id is None else str(last_id)
    return EventPage(events=events, next_cursor=next_cursor)


class Health(BaseModel):
    status: Literal["ok"]


class Unready(BaseModel):
    status: Literal["unavailable"]
    reason: str


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Unready, "description": "The database does not answer."}},
)
def readyz(request: Request) -> dict[str, str] | JSONResponse:
    """Readiness: the database answers."""
    try:
        with ingestor_of(request).sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        unready = {"status": "unavailable", "reason": type(exc).__name__}
        return JSONResponse(unready, status_code=503)
    return {"status": "ok"}


class PrometheusText(Response):
    """Prometheus' text exposition format, under the content type prometheus_client names."""

    media_type = CONTENT_TYPE_LATEST


@router.get(
    "/metrics",
    response_class=PrometheusText,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics() -> PrometheusText:
    """Prometheus text format."""
    return PrometheusText(generate_latest())
