"""Turning an HTTP request into stored events: the work behind the feedback routes."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from storage.apps import active_credentials
from storage.async_db import AsyncPool, async_pool, on_a_live_connection
from storage.clock import SYSTEM_CLOCK, Clock
from storage.db import (
    WriterBusy,
    engine_of,
    in_autocommit,
    is_postgresql,
    is_sqlite,
    read,
    transact_now,
    transact_on_connection,
)
from storage.events import (
    AppEvents,
    NewEvent,
    StoredEvent,
    store_event_groups,
    store_event_groups_on_the_loop,
)
from storage.states import Rating
from webhooks.auth import Caller, CredentialCache, authenticate, has_credentials
from webhooks.errors import BadRequest, UnsupportedMediaType
from webhooks.group_commit import GroupCommitter, on_writer_threads
from webhooks.limits import BodiesInFlight, EventRate, IngestLimits, read_limited_body
from webhooks.metrics import EVENTS_DUPLICATE, EVENTS_STORED

Model = TypeVar("Model", bound=BaseModel)
Requests = Sequence[tuple[Caller, list[NewEvent]]]
# Two groups in flight on PostgreSQL: one commits while the next is written. (On writer
# threads, more only contended with the event loop for the GIL: single events, 2-core machine,
# PostgreSQL beside it, 2 writers 1,430-1,703 req/s in five runs, 4 writers 1,290-1,472 in four.)
POSTGRESQL_GROUPS_IN_FLIGHT = 2
# Requests in one group written from the event loop (PostgreSQL, while the app serves): small
# enough that the loop reads the next group's requests while this one's statement runs, rather
# than all of them landing in one group and the loop then idling on it. Paired with the bare
# endpoint (wrk -c16, medians of two rounds): 8 per group 0.62-0.66x of its rate, 4 0.60x,
# 16 0.56x; 3 or 4 groups in flight instead of 2 gained nothing (0.63x, 0.59x with 4 per group).
POSTGRESQL_REQUESTS_PER_GROUP = 8
# The most events a group may hold to be written on the event loop's thread (SQLite): about
# 4 ms of inserting at most, so a 1,000-event batch never holds up the requests behind it.
EVENTS_WRITTEN_ON_THE_LOOP = 64


@dataclass
class Ingestor:
    """Everything a feedback request needs, built once by the app factory."""

    sessions: sessionmaker[Session]
    max_body_bytes: int
    clock: Clock = SYSTEM_CLOCK
    limits: IngestLimits = field(default_factory=IngestLimits)
    on_stored: Callable[[int], None] = lambda _downvotes: None
    credentials: CredentialCache = field(init=False)
    bodies: BodiesInFlight = field(init=False)
    rate: EventRate | None = field(init=False)
    _transaction: Callable[[Engine, Callable[[Connection], Any]], Any] = field(init=False)
    _committer: GroupCommitter[tuple[Caller, list[NewEvent]], list[StoredEvent]] = field(init=False)

    def __post_init__(self) -> None:
        self.credentials = CredentialCache(self._load_credentials, self.clock)
        # SQLite has one writer, and a small group is written at once on the event loop when
        # it is free; PostgreSQL overlaps one group's statement with the next, each statement
        # in autocommit (committed when it returns).
        if is_sqlite(self.engine):
            self._transaction = transact_on_connection
            write = on_writer_threads(self._write, threads=1, write_now=self._write_now)
            self._committer = GroupCommitter(write)
        else:
            self._transaction = in_autocommit
            write = on_writer_threads(self._write, threads=POSTGRESQL_GROUPS_IN_FLIGHT)
            self._committer = GroupCommitter(write, concurrency=POSTGRESQL_GROUPS_IN_FLIGHT)
        self.bodies = BodiesInFlight(self.limits.bodies_in_flight)
        per_minute = self.limits.events_per_minute
        self.rate = EventRate(per_minute, self.clock) if per_minute else None

    @property
    def engine(self) -> Engine:
        return engine_of(self.sessions)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """For the app's lifespan: on PostgreSQL, groups are written from the event loop on a
        pool of its own (see storage.async_db). Without a lifespan (a TestClient used without
        `with`, whose every request runs on a new loop) they are written on threads."""
        if not is_postgresql(self.engine):
            yield
            return
        async with async_pool(self.engine, size=POSTGRESQL_GROUPS_IN_FLIGHT) as pool:
            on_threads = self._committer

            async def write(requests: Requests) -> list[list[StoredEvent]]:
                return await self._write_on_the_loop(pool, requests)

            self._committer = GroupCommitter(
                write,
                max_items=POSTGRESQL_REQUESTS_PER_GROUP,
                concurrency=POSTGRESQL_GROUPS_IN_FLIGHT,
            )
            try:
                yield
            finally:
                self._committer = on_threads

    def _load_credentials(self, now: datetime) -> list[Any]:
        """A read that takes no write lock: it runs on the event loop's thread, which must not
        wait behind a writer (on SQLite a plain session would BEGIN IMMEDIATE and queue)."""
        return read(self.sessions, lambda session: list(active_credentials(session, now=now)))

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

    def charge(self, caller: Caller, events: int) -> None:
        """Count valid events against the app's rate limit (raises OverRateLimit)."""
        if self.rate is not None:
            self.rate.take(caller.app_id, caller.app_name, events)

    async def store(self, caller: Caller, events: list[NewEvent]) -> list[StoredEvent]:
        """Store events (and their alerts) durably; concurrent requests share a transaction."""
        return await self._committer.submit((caller, events))

    def _write(self, requests: Requests) -> list[list[StoredEvent]]:
        """One transaction for every queued request (on the writer thread, waiting its turn)."""
        results: list[list[StoredEvent]] = self._transaction(
            self.engine, lambda connection: self._store(connection, requests)
        )
        self._count(requests, results)
        return results

    async def _write_on_the_loop(
        self, pool: AsyncPool, requests: Requests
    ) -> list[list[StoredEvent]]:
        """The same statement as `_write` on PostgreSQL, awaited on the event loop."""
        groups, now = self._groups(requests), self.clock.now()
        results = await on_a_live_connection(
            pool, lambda connection: store_event_groups_on_the_loop(connection, groups, now=now)
        )
        self._count(requests, results)
        return results

    def _write_now(self, requests: Requests) -> list[list[StoredEvent]] | None:
        """The same transaction on the event loop's thread if SQLite is free this instant and
        the group is small; None (the writer thread's turn) if the loop would have to wait."""
        if sum(len(events) for _, events in requests) > EVENTS_WRITTEN_ON_THE_LOOP:
            return None
        try:
            results = transact_now(
                self.engine, lambda connection: self._store(connection, requests)
            )
        except WriterBusy:
            return None
        self._count(requests, results)
        return results

    def _store(self, connection: Connection, requests: Requests) -> list[list[StoredEvent]]:
        """Each request's events stored; results come back in request order."""
        return store_event_groups(connection, self._groups(requests), now=self.clock.now())

    @staticmethod
    def _groups(requests: Requests) -> list[AppEvents]:
        return [AppEvents(caller.app_id, caller.channel, events) for caller, events in requests]

    def _count(self, requests: Requests, results: list[list[StoredEvent]]) -> None:
        """Metrics and the delivery worker's wake-up, once per transaction rather than per event."""
        stored: Counter[str] = Counter()
        duplicates = 0
        for (_, events), outcomes in zip(requests, results, strict=True):
            for event, outcome in zip(events, outcomes, strict=True):
                if outcome.duplicate:
                    duplicates += 1
                else:
                    stored[event.rating or "none"] += 1
        if duplicates:
            EVENTS_DUPLICATE.inc(duplicates)
        for rating, count in stored.items():
            EVENTS_STORED.labels(rating=rating).inc(count)
        if stored[Rating.DOWN]:
            self.on_stored(stored[Rating.DOWN])


def parse_body(model: type[Model], text: str) -> Model:
    """400 for JSON that does not parse, 422 (naming the fields) for JSON that does not fit."""
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        syntax = [e for e in exc.errors() if e["type"] == "json_invalid"]
        if syntax:
            raise BadRequest(f"malformed JSON: {syntax[0]['msg']}") from None
        raise
