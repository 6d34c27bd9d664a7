"""Helpers for delivery tests: store downvotes, build a worker aimed at the fake Slack."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.delivery import DeliveryPolicy, DeliveryWorker
from bot.alerts.redaction import Redactor
from bot.slack.client import make_slack_client
from bot.slack.pacing import ChannelPacer
from storage.events import NewEvent, store_events
from storage.models import Alert
from tests.support.databases import RegisteredApp
from tests.support.fake_slack import FakeSlack
from tests.support.signing import utc_now

# Retries are due at once: tests check what is retried, not how long it waits.
FAST_POLICY = DeliveryPolicy(base_delay=0.0, max_delay=0.0, lease=timedelta(seconds=30))
FAST_RETRIES = FixedValueRetryIntervalCalculator(fixed_internal=0.01)


def store_downvotes(
    sessions: sessionmaker[Session],
    app: RegisteredApp,
    events: Sequence[dict[str, Any]],
    *,
    channel: str | None = None,
) -> None:
    """Downvotes as ingestion stores them; `channel` is the app's own, if it has one."""
    with sessions.begin() as session:
        store_events(
            session,
            app_id=app.app_id,
            channel=channel,
            events=[
                NewEvent(occurred_at=utc_now(), rating="down", **{"external_id": f"e{n}", **e})
                for n, e in enumerate(events)
            ],
            now=utc_now(),
        )


def make_worker(
    sessions: sessionmaker[Session],
    slack: FakeSlack | None,
    *,
    channel: str | None = "#alerts",
    policy: DeliveryPolicy = FAST_POLICY,
    name: str = "test-worker",
    console: Any = print,
    pacer: ChannelPacer | None = None,
    token: str | None = None,
    timeout: float = 15,
    **options: Any,
) -> DeliveryWorker:
    """A worker on the fake Slack; `options` go to DeliveryWorker (clock, grouping, spikes)."""
    pacer = pacer or ChannelPacer()
    client = None
    if slack is not None:
        client = make_slack_client(
            token or slack.token, slack.api_url, retry_interval=FAST_RETRIES, pacer=pacer,
            timeout=timeout,
        )  # fmt: skip
    return DeliveryWorker(
        sessions=sessions,
        client=client,
        pacer=pacer,
        default_channel=channel,
        redactor=Redactor(),
        default_categories=["hallucination", "refusal"],
        policy=policy,
        name=name,
        console=console,
        **options,
    )


def alert_statuses(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Alert.status).order_by(Alert.id)))


def all_text(message: dict[str, Any]) -> str:
    """Every string Slack received for a message: text, blocks, metadata."""
    import json

    return json.dumps([message["text"], message["blocks"], message.get("metadata")])


def unescape(text: str) -> str:
    return html.unescape(text)
