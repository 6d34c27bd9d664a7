"""Feedback ingestion through the real app: authentication, validation, idempotency, read-back."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.orm import Session, sessionmaker

from bot.service import build_service
from bot.settings import Settings
from storage.apps import rotate_credentials
from storage.db import engine_of, is_postgresql, is_sqlite, make_engine, make_sessionmaker
from storage.models import Alert, FeedbackEvent
from storage.states import TriageStatus
from storage.triage import change_categories, set_status
from tests.support.cli import run_cli
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp, another_process_writing, register_app
from tests.support.polling import wait_until
from tests.support.processes import downvote_env
from tests.support.server import LiveServer
from tests.support.signing import signed, utc_now
from webhooks.app import create_app
from webhooks.ingest import Ingestor

EMOJI_PROMPT = ("Résumé ✅ 👩🏽‍💻 <!channel> & <@U1> \n" * 3000)[:100_000]
FULL_EVENT: dict[str, Any] = {
    "id": "fb_full_1",
    "rating": "down",
    "comment": "It invented a citation",
    "prompt": EMOJI_PROMPT,
    "response": "See Smith (2015) 📚",
    "model": "gpt-x-2026-01",
    "feature": "summarize",
    "latency_ms": 840,
    "confidence": 0.93,
    "user_id": "u_42",
    "session_id": "s_9",
    "trace_id": "abc",
    "trace_url": "https://traces.example.com/abc",
    "correction": "Vaswani et al. (2017)",
    "metrics": {"tests_passed": True, "label_match": False, "score": 0.5},
    "metadata": {"plan": "pro", "nested": {"a": [1, 2]}},
    "occurred_at": "2026-11-26T10:00:00+00:00",
}
CHAT_EVENT: dict[str, Any] = {
    "id": "fb_chat_1",
    "rating": "up",
    "prompt": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Summarise 🧾 this"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]},
    ],
    "response": "Done.",
}


def count_events(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(FeedbackEvent)) or 0


def post_signed(
    client: TestClient, app: RegisteredApp, payload: Any, **kwargs: Any
) -> httpx.Response:
    body, headers = signed(app.secret, payload, **kwargs)
    return client.post("/v1/feedback", content=body, headers=headers)


def read_back(client: TestClient, app: RegisteredApp, **params: Any) -> list[dict[str, Any]]:
    response = client.get(
        "/v1/feedback", params=params, headers={"authorization": f"Bearer {app.api_key}"}
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def assert_fields_intact(sent: dict[str, Any], stored: dict[str, Any]) -> None:
    for key, value in sent.items():
        if key == "occurred_at":
            assert stored[key].replace("+00:00", "Z") == value.replace("+00:00", "Z")
        else:
            assert stored[key] == value, key


def test_signed_event_is_stored_and_read_back_intact(
    client: TestClient, registered_app: RegisteredApp, database_url: str
) -> None:
    for event in (FULL_EVENT, CHAT_EVENT):
        response = post_signed(client, registered_app, event)
        assert response.status_code == 202, response.text
        assert response.json() == {"id": event["id"], "duplicate": False}
    by_id = {e["id"]: e for e in read_back(client, registered_app)}
    assert_fields_intact(FULL_EVENT, by_id["fb_full_1"])
    assert_fields_intact(CHAT_EVENT, by_id["fb_chat_1"])
    assert by_id["fb_full_1"]["app"] == registered_app.name
    exported = run_cli(downvote_env(database_url), "export")
    by_id = {e["id"]: e for e in map(json.loads, exported.stdout.splitlines())}
    assert_fields_intact(FULL_EVENT, by_id["fb_full_1"])
    assert_fields_intact(CHAT_EVENT, by_id["fb_chat_1"])


def test_api_key_authenticates_and_only_downvotes_get_alerts(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    headers = {"authorization": f"Bearer {registered_app.api_key}"}
    for rating in ("down", "up", None):
        event = {"prompt": "p", "response": "r", "rating": rating}
        assert client.post("/v1/feedback", json=event, headers=headers).status_code == 202
    with sessions() as session:
        alerts = session.scalars(select(Alert)).all()
        assert len(alerts) == 1
        assert alerts[0].event.rating == "down"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda b, h, app: (
                b,
                {
                    **h,
                    "webhook-signature": signed(  # wrong secret
                        "whsec_" + "QUJD" * 8, json.loads(b)
                    )[1]["webhook-signature"],
                },
            ),
            "matches no app",
        ),
        (lambda b, h, app: (b, {"content-type": "application/json"}), "missing credentials"),
        (
            lambda b, h, app: (b, {k: v for k, v in h.items() if k != "webhook-timestamp"}),
            "webhook-timestamp",
        ),
        (lambda b, h, app: (b.replace(b'"r"', b'"R"'), h), "matches no app"),
        (lambda b, h, app: (b, {**h, "webhook-signature": "garbage"}), "malformed"),
        (
            lambda b, h, app: (
                b,
                {"content-type": "application/json", "authorization": "Bearer dv_nope"},
            ),
            "API key",
        ),
    ],
    ids=["wrong-secret", "no-headers", "missing-timestamp", "changed-byte", "bad-sig", "bad-key"],
)
def test_bad_credentials_get_401_and_store_nothing(
    client: TestClient,
    registered_app: RegisteredApp,
    sessions: sessionmaker[Session],
    mutate: Any,
    reason: str,
) -> None:
    body, headers = signed(registered_app.secret, {"prompt": "p", "response": "r"})
    body, headers = mutate(body, headers, registered_app)
    response = client.post("/v1/feedback", content=body, headers=headers)
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert count_events(sessions) == 0


def test_timestamp_six_minutes_old_is_refused(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    response = post_signed(
        client,
        registered_app,
        {"prompt": "p", "response": "r"},
        at=utc_now() - timedelta(minutes=6),
    )
    assert response.status_code == 401
    assert "5 minutes" in response.json()["detail"]
    assert count_events(sessions) == 0


@pytest.mark.parametrize("minutes", [6, 60 * 24])
def test_timestamp_more_than_five_minutes_in_the_future_is_refused(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session],
    minutes: int,
) -> None:  # fmt: skip
    """A replayable signature is one dated ahead as much as one dated back."""
    response = post_signed(
        client, registered_app, {"prompt": "p", "response": "r"},
        at=utc_now() + timedelta(minutes=minutes),
    )  # fmt: skip
    assert response.status_code == 401
    assert "in the future" in response.json()["detail"]
    assert count_events(sessions) == 0


def test_rotated_credentials_stop_working_24_hours_later(
    settings: Settings, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    clock = FakeClock(utc_now())
    with TestClient(build_service(settings, clock=clock).app) as client:
        with sessions.begin() as session:
            issued = rotate_credentials(session, registered_app.name, now=clock.now())
        new_app = RegisteredApp(registered_app.name, issued.webhook_secret, issued.api_key, 0)
        event = {"prompt": "p", "response": "r"}
        clock.advance(24 * 3600 - 1)  # the last second of the grace period
        assert post_signed(client, registered_app, event).status_code == 202
        assert read_page(client, registered_app.api_key).status_code == 200
        clock.advance(2)  # the grace period is over
        assert post_signed(client, registered_app, event).status_code == 401
        assert read_page(client, registered_app.api_key).status_code == 401
        assert post_signed(client, new_app, event).status_code == 202
        assert read_page(client, new_app.api_key).status_code == 200


def read_page(client: TestClient, api_key: str) -> httpx.Response:
    return client.get("/v1/feedback", headers={"Authorization": f"Bearer {api_key}"})


def test_rotated_secret_keeps_working_beside_the_new_one(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        issued = rotate_credentials(session, registered_app.name, now=utc_now())
    old = post_signed(client, registered_app, {"prompt": "p", "response": "old"})
    new_app = RegisteredApp(registered_app.name, issued.webhook_secret, issued.api_key, 0)
    new = post_signed(client, new_app, {"prompt": "p", "response": "new"})
    assert (old.status_code, new.status_code) == (202, 202)


def test_the_app_comes_from_the_credential_not_the_body(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    other = register_app(sessions, "other-app")
    assert (
        post_signed(client, other, {"id": "x1", "prompt": "p", "response": "r"}).status_code == 202
    )
    assert read_back(client, registered_app) == []
    assert [e["app"] for e in read_back(client, other)] == ["other-app"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "detail"),
    [
        (b'{"prompt": "p", "response": ', "application/json", 400, "malformed JSON"),
        (b'{"prompt": "\xff\xfe", "response": "r"}', "application/json", 400, "UTF-8"),
        (b'{"prompt": "p", "response": "r"}', "text/plain", 415, "application/json"),
        (b'{"response": "r"}', "application/json", 422, "prompt"),
        (
            b'{"prompt": "p", "response": "r", "confidence": "high"}',
            "application/json",
            422,
            "confidence",
        ),
        (b'{"prompt": "p", "response": "r", "rating": "meh"}', "application/json", 422, "rating"),
        (b'{"prompt": "p\\u0000", "response": "r"}', "application/json", 422, "prompt"),
    ],
    ids=["malformed", "not-utf8", "content-type", "no-prompt", "confidence-high", "rating", "nul"],
)
def test_bad_input_gets_a_clear_error_and_stores_nothing(
    client: TestClient,
    registered_app: RegisteredApp,
    sessions: sessionmaker[Session],
    body: bytes,
    content_type: str,
    status: int,
    detail: str,
) -> None:
    headers = {"content-type": content_type, "authorization": f"Bearer {registered_app.api_key}"}
    response = client.post("/v1/feedback", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert detail in json.dumps(response.json())
    assert count_events(sessions) == 0


def test_signed_non_utf8_body_gets_400(client: TestClient, registered_app: RegisteredApp) -> None:
    _, headers = signed(registered_app.secret, {"prompt": "p", "response": "r"})
    response = client.post("/v1/feedback", content=b'{"prompt": "\xff"}', headers=headers)
    assert response.status_code == 400


def test_422_names_the_failing_field(client: TestClient, registered_app: RegisteredApp) -> None:
    response = post_signed(
        client, registered_app, {"prompt": "p", "response": "r", "confidence": "high"}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["confidence"]
    assert "number" in error["msg"]


def test_5mb_body_is_refused_with_413_without_being_stored(
    live_server: LiveServer, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    payload = {"prompt": "x" * (5 * 1024 * 1024), "response": "r"}
    body, headers = signed(registered_app.secret, payload)
    declared = httpx.post(f"{live_server.url}/v1/feedback", content=body, headers=headers)
    assert declared.status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit must hold while streaming
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    streamed = httpx.post(f"{live_server.url}/v1/feedback", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert "1048576 bytes" in streamed.json()["detail"]
    assert count_events(sessions) == 0


def test_batch_with_one_bad_event_stores_none(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    events = [{"prompt": f"p{n}", "response": "r", "rating": "down"} for n in range(5)]
    events[3]["confidence"] = 7
    body, headers = signed(registered_app.secret, {"events": events})
    response = client.post("/v1/feedback/batch", content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["events", 3, "confidence"]
    assert count_events(sessions) == 0


def test_batch_stores_all_and_reports_duplicates(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    events = [{"id": f"b{n}", "prompt": "p", "response": "r", "rating": "down"} for n in range(10)]
    body, headers = signed(registered_app.secret, {"events": events})
    first = client.post("/v1/feedback/batch", content=body, headers=headers)
    assert first.json() == {"accepted": 10, "duplicates": 0, "ids": [f"b{n}" for n in range(10)]}
    body, headers = signed(
        registered_app.secret,
        {"events": [*events[5:], {"id": "b10", "prompt": "p", "response": "r"}]},
    )
    second = client.post("/v1/feedback/batch", content=body, headers=headers)
    assert second.json()["accepted"] == 1 and second.json()["duplicates"] == 5
    assert count_events(sessions) == 11
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 10


def test_batch_over_1000_events_is_refused(
    client: TestClient, registered_app: RegisteredApp
) -> None:
    events = [{"prompt": "p", "response": "r"}] * 1001
    body, headers = signed(registered_app.secret, {"events": events})
    response = client.post("/v1/feedback/batch", content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["events"]


def test_webhook_id_is_the_idempotency_key_when_the_event_has_none(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    payload = {"prompt": "p", "response": "r", "rating": "down"}
    first = post_signed(client, registered_app, payload, msg_id="msg_retry_1")
    again = post_signed(client, registered_app, payload, msg_id="msg_retry_1")
    assert first.json() == {"id": "msg_retry_1", "duplicate": False}
    assert again.json() == {"id": "msg_retry_1", "duplicate": True}
    assert count_events(sessions) == 1


def test_the_delivery_worker_is_told_of_each_transaction_s_new_downvotes(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A batch of two new downvotes, a thumbs-up and a repeated downvote wakes delivery once,
    for two; a batch with no new downvote does not wake it."""
    told: list[int] = []
    app = create_app(sessions, max_body_bytes=1 << 20, on_downvotes_stored=told.append)
    bearer = {"authorization": f"Bearer {registered_app.api_key}"}
    down = {"prompt": "p", "response": "r", "rating": "down"}
    events = [{**down, "id": "a"}, {**down, "id": "b"}, {**down, "id": "a"},
              {**down, "id": "c", "rating": "up"}]  # fmt: skip
    with TestClient(app) as client:
        first = client.post("/v1/feedback/batch", json={"events": events}, headers=bearer)
        again = client.post("/v1/feedback/batch", json={"events": events[:3]}, headers=bearer)
    assert [first.status_code, again.status_code] == [202, 202]
    assert told == [2]


def test_ids_made_for_events_without_one_are_distinct_and_sort_in_arrival_order(
    settings: Settings, registered_app: RegisteredApp
) -> None:
    """Like ULIDs: 48 bits of milliseconds, then 80 random bits, so new ids join the index's end."""
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    clock = FakeClock(start)
    bearer = {"authorization": f"Bearer {registered_app.api_key}"}
    ids: list[str] = []
    with TestClient(build_service(settings, clock=clock).app) as client:
        for n in range(6):
            for _same_millisecond in range(3):
                response = client.post(
                    "/v1/feedback", json={"prompt": "p", "response": "r"}, headers=bearer
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
            clock.advance(0.001 if n % 2 else 3600)
    assert len(set(ids)) == 18
    assert all(re.fullmatch(r"dv_[0-9a-f]{32}", made) for made in ids), ids
    first_millisecond = int(start.timestamp() * 1000)
    assert ids[0][3:15] == f"{first_millisecond:012x}"
    groups = [ids[n : n + 3] for n in range(0, 18, 3)]
    assert all(max(a) < min(b) for a, b in itertools.pairwise(groups))


def test_same_event_id_twenty_times_concurrently_is_stored_once(
    live_server: LiveServer, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    payload = {"id": "fb_race", "prompt": "p", "response": "r", "rating": "down"}

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
            requests = []
            for _ in range(20):
                body, headers = signed(registered_app.secret, payload)
                requests.append(http.post("/v1/feedback", content=body, headers=headers))
            return await asyncio.gather(*requests)

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [202] * 20
    assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * 19
    assert count_events(sessions) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1


def test_read_api_filters_and_pages(client: TestClient, registered_app: RegisteredApp) -> None:
    for n in range(7):
        rating = "down" if n % 2 else "up"
        event = {
            "id": f"e{n}",
            "prompt": "p",
            "response": "r",
            "rating": rating,
            "occurred_at": f"2026-11-2{n}T12:00:00Z",
        }
        assert post_signed(client, registered_app, event).status_code == 202
    headers = {"authorization": f"Bearer {registered_app.api_key}"}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/feedback", params=params, headers=headers).json()
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"e{n}" for n in reversed(range(7))]
    downs = read_back(client, registered_app, rating="down", since="2026-11-22T00:00:00Z")
    assert [e["id"] for e in downs] == ["e5", "e3"]
    assert client.get("/v1/feedback", params={"cursor": "%%%"}, headers=headers).status_code == 422
    assert client.get("/v1/feedback").status_code == 401


def test_health_readiness_and_metrics(client: TestClient, registered_app: RegisteredApp) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}
    post_signed(client, registered_app, {"prompt": "p", "response": "r", "rating": "down"})
    metrics = client.get("/metrics").text
    assert 'downvote_events_stored_total{rating="down"}' in metrics


def metric_samples(client: TestClient) -> dict[tuple[str, str], float]:
    """/metrics as {(sample name, rating label or ""): value}."""
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {
        (sample.name, sample.labels.get("rating", "")): sample.value
        for family in families
        for sample in family.samples
    }


def test_metrics_count_every_stored_event_by_rating_and_every_duplicate(
    client: TestClient, registered_app: RegisteredApp
) -> None:
    before = metric_samples(client)
    bearer = {"authorization": f"Bearer {registered_app.api_key}"}
    events = [
        {"id": "m1", "prompt": "p", "response": "r", "rating": "down"},
        {"id": "m2", "prompt": "p", "response": "r", "rating": "up"},
        {"id": "m3", "prompt": "p", "response": "r", "rating": "up"},
        {"id": "m4", "prompt": "p", "response": "r"},
        {"id": "m1", "prompt": "p", "response": "r", "rating": "down"},  # repeats
        {"id": "m3", "prompt": "p", "response": "r", "rating": "up"},
    ]
    batch = client.post("/v1/feedback/batch", json={"events": events}, headers=bearer)
    assert batch.status_code == 202, batch.text
    single = client.post("/v1/feedback", json=events[1], headers=bearer)
    assert single.json() == {"id": "m2", "duplicate": True}
    after = metric_samples(client)

    def grew(name: str, rating: str = "") -> float:
        return after.get((name, rating), 0) - before.get((name, rating), 0)

    stored = "downvote_events_stored_total"
    assert (grew(stored, "down"), grew(stored, "up"), grew(stored, "none")) == (1, 2, 1)
    assert grew("downvote_events_duplicate_total") == 3


text_st = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=300
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prompt=st.one_of(
        text_st,
        st.lists(
            st.fixed_dictionaries(
                {"role": text_st.filter(lambda s: len(s) <= 255), "content": text_st}
            ),
            max_size=4,
        ),
    ),
    response=text_st,
    comment=st.none() | text_st,
)
def test_any_text_round_trips_exactly(
    client: TestClient,
    registered_app: RegisteredApp,
    prompt: Any,
    response: str,
    comment: str | None,
) -> None:
    event = {"prompt": prompt, "response": response, "comment": comment}
    answer = post_signed(client, registered_app, event)
    assert answer.status_code == 202, answer.text
    stored = next(e for e in read_back(client, registered_app, limit=1))
    assert (stored["prompt"], stored["response"], stored["comment"]) == (prompt, response, comment)


def test_openapi_documents_the_event(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/FeedbackIn"}
    properties = schema["components"]["schemas"]["FeedbackIn"]["properties"]
    assert {"prompt", "response", "correction", "confidence"} <= properties.keys()
    assert "anyOf" in properties["prompt"]
    assert client.get("/docs").status_code == 200


def test_a_batch_keeps_every_field_like_a_single_event(
    client: TestClient, registered_app: RegisteredApp
) -> None:
    """Batches take their own path into PostgreSQL (one JSON parameter): same rows must come out."""
    sparse = {"id": "fb_sparse", "prompt": "p", "response": "r", "rating": None}
    body, headers = signed(registered_app.secret, {"events": [FULL_EVENT, CHAT_EVENT, sparse]})
    assert client.post("/v1/feedback/batch", content=body, headers=headers).json()["accepted"] == 3
    by_id = {e["id"]: e for e in read_back(client, registered_app)}
    for event in (FULL_EVENT, CHAT_EVENT, sparse):
        assert_fields_intact(event, by_id[event["id"]])
    assert by_id["fb_sparse"]["metrics"] is None and by_id["fb_sparse"]["metadata"] is None


def test_read_api_filters_by_rating_category_status_and_until(
    client: TestClient, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    days = {"up": "2026-11-20", "none": "2026-11-21", "down": "2026-11-22", "triaged": "2026-11-23"}
    for name, day in days.items():
        rating = {"none": None, "triaged": "down"}.get(name, name)
        event = {"id": name, "prompt": "p", "response": "r", "rating": rating,
                 "occurred_at": f"{day}T12:00:00Z"}  # fmt: skip
        assert post_signed(client, registered_app, event).status_code == 202
    with sessions.begin() as session:
        event_id = session.scalar(
            select(FeedbackEvent.id).where(FeedbackEvent.external_id == "triaged")
        )
        assert event_id is not None
        change_categories(
            session, event_id, added=["refusal"], removed=[], user="U0A", now=utc_now()
        )
        set_status(session, event_id, status=TriageStatus.RESOLVED, user="U0A", now=utc_now())

    def ids(**params: Any) -> list[str]:
        return [e["id"] for e in read_back(client, registered_app, **params)]

    assert ids(rating="none") == ["none"]
    assert ids(rating="down") == ["triaged", "down"]
    assert ids(category="refusal") == ["triaged"]
    assert ids(status="resolved") == ["triaged"]
    assert ids(status="new") == ["down", "none", "up"]
    assert ids(until="2026-11-22T00:00:00Z") == ["none", "up"]  # before, not on
    assert ids(since="2026-11-21T00:00:00", until="2026-11-23") == [
        "down",
        "none",
    ]  # no offset: UTC
    headers = {"authorization": f"Bearer {registered_app.api_key}"}
    bad = client.get("/v1/feedback", params={"status": "done"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "status"


def test_readiness_is_503_while_the_database_is_unreachable(tmp_path: Path) -> None:
    """Liveness stays up (restarting would not help); readiness tells the load balancer."""
    missing = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'downvote.db'}")
    with TestClient(create_app(make_sessionmaker(missing), max_body_bytes=1024)) as client:
        ready = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    missing.dispose()
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "OperationalError"}


def test_the_served_app_hides_its_start_up_heap_from_the_garbage_collector(
    settings: Settings,
) -> None:
    """Full collections walked ~230,000 start-up objects every few seconds: 30-200 ms stalls."""
    gc.unfreeze()
    try:
        with TestClient(build_service(settings, freeze_heap=True).app):
            frozen = gc.get_freeze_count()
            still_scanned = len(gc.get_objects(generation=2))
        assert frozen > 50_000  # everything that was alive once start-up finished
        assert still_scanned < frozen / 10
    finally:
        gc.unfreeze()


def test_on_postgresql_a_stuck_transaction_does_not_hold_up_other_requests(
    live_server: LiveServer, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    """A request whose insert waits on a lock must not make the next request wait behind it."""
    if not is_postgresql(engine_of(sessions)):
        pytest.skip("SQLite writes one transaction at a time by design")
    headers = {"authorization": f"Bearer {registered_app.api_key}"}
    blocker = sessions()
    # An uncommitted row with the same id: the request's insert waits on the unique index.
    blocker.execute(
        insert(FeedbackEvent).values(
            app_id=registered_app.app_id, external_id="held", prompt="p", response="r",
            occurred_at=utc_now(), received_at=utc_now(),
        )
    )  # fmt: skip

    async def scenario() -> tuple[int, int, bool]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
            held = asyncio.create_task(
                http.post("/v1/feedback", json={"id": "held", "prompt": "p", "response": "r"},
                          headers=headers)
            )  # fmt: skip
            await asyncio.to_thread(
                wait_until, lambda: lock_waiters(sessions) == 1, "the request waiting on the lock"
            )
            free = await http.post(
                "/v1/feedback", json={"id": "free", "prompt": "p", "response": "r"},
                headers=headers,
            )  # fmt: skip
            still_held = not held.done()
            blocker.rollback()
            return free.status_code, (await held).status_code, still_held

    try:
        free_status, held_status, still_held = asyncio.run(scenario())
    finally:
        blocker.close()
    assert free_status == 202 and still_held
    assert held_status == 202  # stored once the blocking transaction went away
    assert count_events(sessions) == 2


def lock_waiters(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
            or 0
        )


@contextmanager
def threads_running(engine: Engine, statement_start: str) -> Iterator[list[str]]:
    """The name of the thread that runs each statement beginning with `statement_start`."""
    threads: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().startswith(statement_start):
            threads.append(threading.current_thread().name)

    sqlalchemy_event.listen(engine, "before_cursor_execute", record)
    try:
        yield threads
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", record)


def writer_threads_inside(function: Callable[..., Any]) -> list[str]:
    """The ingest writer threads whose stack is inside `function` at this moment."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    inside: list[str] = []
    for ident, frame in sys._current_frames().items():
        name = names.get(ident, "")
        stack = frame
        while stack is not None and name.startswith("ingest-writer"):
            if stack.f_code is function.__code__:
                inside.append(name)
                break
            stack = stack.f_back
    return inside


def test_on_sqlite_single_events_are_written_by_the_serving_thread_and_big_batches_are_not(
    service: FastAPI, live_server: LiveServer, registered_app: RegisteredApp
) -> None:
    """Small groups skip the hand-off to the writer thread and back (ingest's latency under
    load); a 1,000-event batch is inserted off the event loop, which keeps serving meanwhile.
    (Three single events: one that meets the delivery worker's write goes to the thread.)"""
    engine = service.state.ingestor.engine
    if not is_sqlite(engine):
        pytest.skip("PostgreSQL's writes are awaited on the loop: tests/test_postgresql_writes.py")
    bearer = {"authorization": f"Bearer {registered_app.api_key}"}
    event_in = {"prompt": "p", "response": "r", "rating": "up"}
    with (
        threads_running(engine, "INSERT INTO feedback_events") as threads,
        httpx.Client(base_url=live_server.url, timeout=30) as http,
    ):
        singles = [http.post("/v1/feedback", json=event_in, headers=bearer) for _ in range(3)]
        batch = http.post("/v1/feedback/batch", json={"events": [event_in] * 1000}, headers=bearer)
    assert [r.status_code for r in [*singles, batch]] == [202] * 4
    assert len(threads) == 4
    assert live_server.thread.name in threads[:3]
    assert threads[3] == "ingest-writer_0"


def test_on_sqlite_a_request_waiting_for_another_process_s_write_does_not_stall_the_server(
    service: FastAPI,
    live_server: LiveServer,
    registered_app: RegisteredApp,
    sessions: sessionmaker[Session],
) -> None:
    """While another process (here a connection of the test's) holds SQLite's write lock, the
    request waits on the writer thread, the server answers others, and the event is stored
    once the lock is free."""
    engine = service.state.ingestor.engine
    if not is_sqlite(engine):
        pytest.skip("SQLite's write lock; PostgreSQL's row locks are the test above")
    bearer = {"authorization": f"Bearer {registered_app.api_key}"}
    holder = another_process_writing(engine)

    async def scenario() -> tuple[int, int, bool]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
            held = asyncio.create_task(
                http.post("/v1/feedback", json={"prompt": "p", "response": "r"}, headers=bearer)
            )
            await asyncio.to_thread(
                wait_until,
                lambda: writer_threads_inside(Ingestor._write),
                "the request's transaction to wait for the lock on the writer thread",
            )
            # A server whose event loop waited for the lock (30 s) would not answer in 10.
            health = await http.get("/healthz", timeout=10)
            still_held = not held.done()
            holder.rollback()
            return health.status_code, (await held).status_code, still_held

    try:
        health_status, held_status, still_held = asyncio.run(scenario())
    finally:
        holder.close()
    assert health_status == 200 and still_held
    assert held_status == 202
    assert count_events(sessions) == 1
