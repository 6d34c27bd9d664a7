"""Abuse limits: an app over its events per minute gets 429 + Retry-After and slows no other
app; past the bound on bodies in flight, requests get 503 + Retry-After before being read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp, register_app
from tests.support.signing import signed, utc_now
from webhooks.app import create_app
from webhooks.ingest import Ingestor
from webhooks.limits import IngestLimits

EVENT = {"prompt": "p", "response": "r"}


def bearer(app: RegisteredApp) -> dict[str, str]:
    return {"authorization": f"Bearer {app.api_key}", "content-type": "application/json"}


def test_an_app_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed(
    sessions: sessionmaker[Session],
) -> None:
    noisy, quiet = register_app(sessions, "noisy"), register_app(sessions, "quiet")
    clock = FakeClock(utc_now())
    app = create_app(
        sessions, max_body_bytes=1 << 20, clock=clock, limits=IngestLimits(events_per_minute=3)
    )
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/v1/feedback", json=EVENT, headers=bearer(noisy)).status_code == 202
        refused = client.post("/v1/feedback", json=EVENT, headers=bearer(noisy))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "20"  # one event comes back every 20 s
        assert "3 events per minute" in refused.json()["detail"]
        # Another app, signed or with its key, and reads of the limited app: all still answered.
        body, headers = signed(quiet.secret, EVENT)
        assert client.post("/v1/feedback", content=body, headers=headers).status_code == 202
        batch = {"events": [EVENT, EVENT]}  # its own 3 a minute: 1 + 2
        assert (
            client.post("/v1/feedback/batch", json=batch, headers=bearer(quiet)).status_code == 202
        )
        assert client.get("/v1/feedback", headers=bearer(noisy)).status_code == 200
        clock.advance(20)
        assert client.post("/v1/feedback", json=EVENT, headers=bearer(noisy)).status_code == 202
        assert client.post("/v1/feedback", json=EVENT, headers=bearer(noisy)).status_code == 429


def test_a_batch_counts_its_events_not_one_request(sessions: sessionmaker[Session]) -> None:
    sender = register_app(sessions)
    clock = FakeClock(utc_now())
    app = create_app(
        sessions, max_body_bytes=1 << 20, clock=clock, limits=IngestLimits(events_per_minute=10)
    )
    with TestClient(app) as client:
        seven = {"events": [EVENT] * 7}
        assert (
            client.post("/v1/feedback/batch", json=seven, headers=bearer(sender)).status_code == 202
        )
        refused = client.post("/v1/feedback/batch", json=seven, headers=bearer(sender))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "24"  # 4 more events at one per 6 s
        # A batch larger than a whole minute's worth passes from a full bucket (and waits for it).
        clock.advance(60)
        twelve = {"events": [EVENT] * 12}
        assert (
            client.post("/v1/feedback/batch", json=twelve, headers=bearer(sender)).status_code
            == 202
        )
        assert client.post("/v1/feedback", json=EVENT, headers=bearer(sender)).status_code == 429


def test_an_invalid_request_spends_nothing(sessions: sessionmaker[Session]) -> None:
    sender = register_app(sessions)
    app = create_app(
        sessions, max_body_bytes=1 << 20, clock=FakeClock(utc_now()),
        limits=IngestLimits(events_per_minute=1),
    )  # fmt: skip
    with TestClient(app) as client:
        for _ in range(3):
            bad = client.post("/v1/feedback", json={"prompt": "p"}, headers=bearer(sender))
            assert bad.status_code == 422
        assert client.post("/v1/feedback", json=EVENT, headers=bearer(sender)).status_code == 202


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_past_the_bound_on_bodies_in_flight_requests_get_503_before_being_read(
    sessions: sessionmaker[Session],
) -> None:
    sender = register_app(sessions)
    app = create_app(sessions, max_body_bytes=1 << 20, limits=IngestLimits(bodies_in_flight=1))
    ingestor: Ingestor = app.state.ingestor
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"prompt": "p", '
        await release.wait()
        yield b'"response": "r"}'

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://downvote") as client:
        held: asyncio.Task[Any] = asyncio.create_task(
            client.post("/v1/feedback", content=slow_body(), headers=bearer(sender))
        )
        await wait_for(lambda: ingestor.bodies.count == 1, "the first body to be in flight")
        refused = await client.post("/v1/feedback", json=EVENT, headers=bearer(sender))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "in flight" in refused.json()["detail"]
        batch = await client.post(
            "/v1/feedback/batch", json={"events": [EVENT]}, headers=bearer(sender)
        )
        assert batch.status_code == 503
        release.set()
        assert (await held).status_code == 202
        assert ingestor.bodies.count == 0
        assert (
            await client.post("/v1/feedback", json=EVENT, headers=bearer(sender))
        ).status_code == 202


@pytest.mark.parametrize("status", [401, 413, 415, 422])
async def test_a_refused_request_frees_its_place(
    sessions: sessionmaker[Session], status: int
) -> None:
    sender = register_app(sessions)
    app = create_app(sessions, max_body_bytes=64, limits=IngestLimits(bodies_in_flight=1))
    requests = {
        401: {"json": EVENT, "headers": {"content-type": "application/json"}},
        413: {"json": {**EVENT, "comment": "x" * 100}, "headers": bearer(sender)},
        415: {"content": b"p", "headers": {"authorization": f"Bearer {sender.api_key}"}},
        422: {"json": {"prompt": "p"}, "headers": bearer(sender)},
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://downvote") as client:
        for _ in range(2):
            response = await client.post("/v1/feedback", **requests[status])
            assert response.status_code == status
        assert app.state.ingestor.bodies.count == 0
