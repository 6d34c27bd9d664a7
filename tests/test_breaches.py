"""Breach alerts: a criterion missed today is posted once, across replicas and restarts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from bot.config import DownvoteConfig
from bot.slack.client import make_slack_client
from bot.summaries.breach import BreachAlerter
from bot.summaries.schedule import BREACH_JOB, make_scheduler
from storage.breaches import breaches_on
from storage.models import Alert, FeedbackEvent
from tests.support.alerting import FAST_RETRIES
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp
from tests.support.fake_slack import FakeSlack
from tests.test_summaries import poster

TZ = ZoneInfo("UTC")
DAY = date(2026, 11, 18)
NOON = datetime(2026, 11, 18, 12, tzinfo=UTC)
CONFIG = DownvoteConfig.model_validate(
    {
        "criteria": [
            {"name": "Satisfaction <b>", "kind": "share", "condition": "rating = up",
             "target": ">= 0.92", "filter": {"rated_only": True}, "min_sample": 100},
        ],
    }
)  # fmt: skip


def add_morning(
    sessions: sessionmaker[Session], app: RegisteredApp, *, up: int, down: int, model: str
) -> None:
    start = datetime(2026, 11, 18, 8, tzinfo=UTC)
    rows = [
        {
            "app_id": app.app_id, "external_id": f"{model}-{i}", "prompt": "p",
            "response": "<!channel> answer", "rating": "up" if i < up else "down",
            "model": model, "occurred_at": start + timedelta(seconds=i),
            "received_at": start + timedelta(seconds=i),
        }
        for i in range(up + down)
    ]  # fmt: skip
    with sessions.begin() as session:
        session.execute(insert(FeedbackEvent), rows)
        last = session.query(FeedbackEvent).order_by(FeedbackEvent.occurred_at.desc()).first()
        assert last is not None
        session.add(
            Alert(event_id=last.id, status="posted", attempts=1, replies_posted=0,
                  next_attempt_at=start, created_at=start, slack_channel_id="C1",
                  slack_ts="1700000000.000100")
        )  # fmt: skip


def alerter(
    sessions: sessionmaker[Session], slack: FakeSlack, name: str, **kw: Any
) -> BreachAlerter:
    client = make_slack_client(slack.token, slack.api_url, retry_interval=FAST_RETRIES)
    return BreachAlerter(
        sessions=sessions, client=client, channel="#quality", config=CONFIG, tz=TZ, name=name,
        clock=FakeClock(kw.pop("now", NOON)), **kw,
    )  # fmt: skip


def breach_posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return [
        m for m in slack.calls_to("chat.postMessage")
        if "downvote_breach" in json.dumps(m.get("metadata") or {})
    ]  # fmt: skip


async def test_a_breach_is_posted_once_across_replicas_and_restarts(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    # 850 of 1,000 up: 82.7–87.1% (Wilson), wholly below 92%.
    add_morning(sessions, registered_app, up=475, down=25, model="A")
    add_morning(sessions, registered_app, up=375, down=125, model="B")
    with FakeSlack() as slack:
        replicas = [alerter(sessions, slack, f"replica-{n}") for n in range(3)]
        results = await asyncio.gather(*(r.check() for r in replicas))
        restarted = alerter(sessions, slack, "after-restart", now=NOON + timedelta(hours=5))
        again = await restarted.check()
        posts = breach_posts(slack)
        messages = slack.messages()
    assert sorted(len(r) for r in results) == [0, 0, 1]
    assert again == []
    assert len(posts) == 1
    with sessions() as session:
        assert breaches_on(session, DAY) == ["Satisfaction <b>"]
    shown = json.dumps(messages[-1]["blocks"], ensure_ascii=False)
    assert "85.0% (82.7–87.1%) · n = 1,000 · target ≥ 92%" in shown
    assert "Worst model: B 75.0%" in shown and "significantly worse than the rest" in shown
    assert "https://slack.com/archives/C1/p1700000000000100" in shown  # the latest downvote
    assert "Satisfaction &lt;b&gt;" in shown and "<!channel>" not in shown  # escaped


async def test_no_breach_while_the_interval_reaches_the_target(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    add_morning(sessions, registered_app, up=180, down=20, model="A")  # 90% of 200: 85.1–93.5%
    with FakeSlack() as slack:
        assert await alerter(sessions, slack, "only").check() == []
        assert breach_posts(slack) == []


async def test_a_refused_breach_is_tried_again_at_the_next_check(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    add_morning(sessions, registered_app, up=375, down=125, model="B")
    with FakeSlack() as slack:
        slack.fail_with_error("is_archived", count=1, methods=["chat.postMessage"])
        assert await alerter(sessions, slack, "first").check() == []
        assert await alerter(sessions, slack, "next hour").check() == ["Satisfaction <b>"]
        assert len(breach_posts(slack)) == 2  # the refused call, then the one posted
        assert len(slack.messages()) == 1


def test_the_breach_check_runs_hourly(sessions: sessionmaker[Session]) -> None:
    summaries = poster(sessions, None, NOON, config=CONFIG)
    scheduler = make_scheduler(summaries, CONFIG.schedule, TZ)
    trigger = scheduler.get_job(BREACH_JOB).trigger
    first = trigger.get_next_fire_time(None, NOON)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert second - first == timedelta(hours=1)
