"""Turning an HTTP request into stored events: the work behind the feedback routes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from storage.apps import active_credentials
from storage.events import NewEvent, StoredEvent, store_events
from webhooks.auth import Caller, CredentialCache, authenticate, has_credentials
from webhooks.errors import BadRequest, UnsupportedMediaType
from webhooks.limits import read_limited_body
from webhooks.metrics import EVENTS_DUPLICATE, EVENTS_STORED

Model = TypeVar("Model", bound=BaseModel)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Ingestor:
    """Everything a feedback request needs, built once by the app factory."""

    sessions: sessionmaker[Session]
    max_body_bytes: int
    clock: Callable[[], datetime] = utc_now
    on_stored: Callable[[int], None] = lambda _downvotes: None
    credentials: CredentialCache = field(init=False)

    def __post_init__(self) -> None:
        self.credentials = CredentialCache(self._load_credentials)

    def _load_credentials(self, now: datetime) -> list[Any]:
        with self.sessions() as session:
            return list(active_credentials(session, now=now))

    async def read(self, request: Request) -> tuple[Caller, str]:
        """Check size, type and credentials, in that order, before anything is parsed."""
        content_type = request.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise UnsupportedMediaType(
                f"expected Content-Type: application/json, got {content_type or 'none'!r}"
            )
        body = await read_limited_body(request, self.max_body_bytes)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A signature covers text, so it cannot be checked here; still, no credentials = 401.
            if not has_credentials(request.headers):
                authenticate(request.headers, "", self.credentials)
            raise BadRequest(f"request body is not valid UTF-8 (byte {exc.start})") from None
        return authenticate(request.headers, text, self.credentials), text

    def store(self, caller: Caller, events: list[NewEvent]) -> list[StoredEvent]:
        """Store events and their alerts in one transaction."""
        with self.sessions.begin() as session:
            stored = store_events(
                session,
                app_id=caller.app_id,
                channel=caller.channel,
                events=events,
                now=self.clock(),
            )
        new = [e for e, s in zip(events, stored, strict=True) if not s.duplicate]
        for event in new:
            EVENTS_STORED.labels(rating=event.rating or "none").inc()
        EVENTS_DUPLICATE.inc(len(events) - len(new))
        downvotes = sum(1 for e in new if e.rating == "down")
        if downvotes:
            self.on_stored(downvotes)
        return stored


def parse_body(model: type[Model], text: str) -> Model:
    """400 for JSON that does not parse, 422 (naming the fields) for JSON that does not fit."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return model.model_validate(data)
