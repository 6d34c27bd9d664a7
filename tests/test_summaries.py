"""Summaries posted to the fake Slack: once per period, caught up after downtime, forced again."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from bot.config import DownvoteConfig
from bot.service import build_service
from bot.settings import Settings
from bot.slack.client import make_slack_client
from bot.summaries.poster import Outcome, SummaryPoster, due_period, summary_metadata
from bot.summaries.schedule import DAILY_JOB, WEEKLY_JOB, summary_triggers
from storage.models import FeedbackEvent
from storage.periods import period_of
from storage.states import PeriodKind, PostingStatus
from storage.summaries import (
    Claim,
    Posting,
    claim_forced,
    claim_pending_charts,
    claim_period,
    mark_posted,
    posting_of,
    record_parent,
    record_parts,
    release,
)
from tests.support.alerting import FAST_RETRIES
from tests.support.cli import run_cli
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp, summary_postings
from tests.support.fake_slack import FakeSlack
from tests.support.processes import downvote_env

BERLIN = ZoneInfo("Europe/Berlin")
CONFIG = DownvoteConfig.model_validate(
    {
        "criteria": [
            {"name": "Satisfaction", "kind": "share", "condition": "rating = up",
             "target": ">= 0.92", "filter": {"rated_only": True}, "min_sample": 10},
            {"name": "Response time", "kind": "percentile", "field": "latency_ms",
             "percentile": 95, "target": "<= 500", "min_sample": 10},
        ],
    }
)  # fmt: skip
# Tuesday 24 November 2026: the daily summary of Monday the 23rd is due from 09:00 Berlin time.
TUESDAY_11 = datetime(2026, 11, 24, 11, 0, tzinfo=BERLIN)
MONDAY = date(2026, 11, 23)


def add_day_of_events(
    sessions: sessionmaker[Session], app: RegisteredApp, day: date,
    received_at: datetime | None = None, tz: ZoneInfo = BERLIN, **fields: Any,
) -> None:  # fmt: skip
    """20 rated answers on `day`: 18 up (90.00%), latencies 100..2000 ms (p95 = 1900 ms).

    Received as they happen, unless `received_at` says they were sent later.
    """
    start = datetime(day.year, day.month, day.day, 10, tzinfo=tz).astimezone(UTC)
    rows = [
        {
            "app_id": app.app_id, "external_id": f"{day}-{n}", "prompt": "p", "response": "r",
            "rating": "up" if n < 18 else "down", "latency_ms": 100.0 * (n + 1),
            "occurred_at": start + timedelta(minutes=n),
            "received_at": received_at or start + timedelta(minutes=n), **fields,
        }
        for n in range(20)
    ]  # fmt: skip
    with sessions.begin() as session:
        session.execute(insert(FeedbackEvent), rows)


def poster(
    sessions: sessionmaker[Session], slack: FakeSlack | None, now: datetime, **kw: Any
) -> SummaryPoster:
    defaults: dict[str, Any] = {"name": "test-poster", "config": CONFIG, "channel": "#quality"}
    return SummaryPoster(
        sessions=sessions,
        client=(
            make_slack_client(slack.token, slack.api_url, retry_interval=FAST_RETRIES)
            if slack
            else None
        ),
        tz=BERLIN,
        **{**defaults, "clock": FakeClock(now), **kw},
    )


def summary_messages(slack: FakeSlack, kind: PeriodKind | None = None) -> list[dict[str, Any]]:
    return [
        m for m in slack.messages()
        if (m.get("metadata") or {}).get("event_type") == "downvote_summary"
        and kind in (None, m["metadata"]["event_payload"]["kind"])
    ]  # fmt: skip


def test_due_period_follows_the_schedule_in_local_time() -> None:
    assert due_period(PeriodKind.DAILY, TUESDAY_11, CONFIG, BERLIN).first_day == MONDAY
    before_nine = TUESDAY_11.replace(hour=8, minute=59)
    assert due_period(PeriodKind.DAILY, before_nine, CONFIG, BERLIN).first_day == date(2026, 11, 22)
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)
    assert due_period(PeriodKind.WEEKLY, monday_9, CONFIG, BERLIN).first_day == MONDAY
    assert due_period(
        PeriodKind.WEEKLY, monday_9 - timedelta(minutes=1), CONFIG, BERLIN
    ).first_day == date(2026, 11, 16)


def test_cron_triggers_fire_at_local_nine_across_the_clock_change() -> None:
    triggers = summary_triggers(CONFIG.schedule, BERLIN)
    # Berlin leaves summer time on Sunday 25 October 2026.
    saturday = datetime(2026, 10, 24, 8, 0, tzinfo=BERLIN)
    first = triggers[DAILY_JOB].get_next_fire_time(None, saturday)
    second = triggers[DAILY_JOB].get_next_fire_time(first, first + timedelta(seconds=1))
    assert (first.hour, second.hour) == (9, 9)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=25)
    weekly = triggers[WEEKLY_JOB].get_next_fire_time(None, saturday)
    assert (weekly.weekday(), weekly.hour, weekly.minute) == (0, 9, 0)


async def test_daily_summary_posts_known_values_once(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    add_day_of_events(sessions, registered_app, MONDAY)
    with FakeSlack() as slack:
        replicas = [poster(sessions, slack, TUESDAY_11, name=f"replica-{n}") for n in range(3)]
        outcomes = await asyncio.gather(*(p.post_kind(PeriodKind.DAILY) for p in replicas))
        again = await replicas[0].post_kind(PeriodKind.DAILY)
        [message] = summary_messages(slack)
    assert sorted(o.outcome for o in outcomes).count(Outcome.POSTED) == 1
    assert again.outcome is Outcome.ALREADY_POSTED
    shown = json.dumps(message["blocks"], ensure_ascii=False)
    # 18 of 20 is 69.9–97.2% (Wilson): too few answers to say it misses >= 92%.
    assert "90.0% (69.9–97.2%)" in shown and "➖" in shown and "❌" not in shown
    assert "1,900 ms" in shown or "1900 ms" in shown
    with sessions() as session:
        [row] = summary_postings(session, "daily")
    assert (row.status, row.slack_ts, row.period_start) == ("posted", message["ts"], MONDAY)


async def test_force_posts_again_and_keeps_history(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    add_day_of_events(sessions, registered_app, MONDAY)
    with FakeSlack() as slack:
        daily = poster(sessions, slack, TUESDAY_11)
        period = period_of(PeriodKind.DAILY, MONDAY, BERLIN)
        assert (await daily.post(PeriodKind.DAILY, period)).outcome is Outcome.POSTED
        assert (await daily.post(PeriodKind.DAILY, period, force=True)).outcome is Outcome.POSTED
        messages = summary_messages(slack)
        assert not slack.is_member("#quality")  # nothing to look for: it never joined to read
    assert [m["metadata"]["event_payload"]["generation"] for m in messages] == [0, 1]
    with sessions() as session:
        postings = summary_postings(session, "daily")
    assert [(p.generation, p.forced, p.status) for p in postings] == [
        (0, False, "posted"),
        (1, True, "posted"),
    ]


async def test_a_period_missed_while_down_is_posted_on_start(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Down at 09:00, started at 11:00: the catch-up posts Monday's summary (and nothing older)."""
    add_day_of_events(sessions, registered_app, MONDAY)
    with FakeSlack() as slack:
        results = await poster(sessions, slack, TUESDAY_11).post_due()
        [message] = summary_messages(slack)
    by_kind = {r.period.kind: r.outcome for r in results}
    assert by_kind[PeriodKind.DAILY] is Outcome.POSTED
    assert by_kind[PeriodKind.WEEKLY] is Outcome.NO_DATA  # no events by then
    assert message["metadata"]["event_payload"]["period_start"] == MONDAY.isoformat()


async def test_weekly_digest_uploads_its_chart_as_png(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    for offset in range(7):
        add_day_of_events(sessions, registered_app, MONDAY + timedelta(days=offset))
    monday_after = datetime(2026, 11, 30, 9, 5, tzinfo=BERLIN)
    with FakeSlack() as slack:
        result = await poster(sessions, slack, monday_after).post_kind(PeriodKind.WEEKLY)
        [digest] = summary_messages(slack)
        [chart] = slack.files
    assert result.outcome is Outcome.POSTED
    assert chart["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    assert chart["thread_ts"] == digest["ts"]
    assert chart["name"] == "downvote-week-2026-11-23.png"


async def test_slack_failure_releases_the_period_for_the_next_try(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    add_day_of_events(sessions, registered_app, MONDAY)
    with FakeSlack(channels=["#general"]) as slack:  # #quality does not exist yet
        daily = poster(sessions, slack, TUESDAY_11)
        failed = await daily.post_kind(PeriodKind.DAILY)
        assert (failed.outcome, failed.detail) == (Outcome.FAILED, "channel_not_found")
        slack.add_channel("#quality")
        assert (await daily.post_kind(PeriodKind.DAILY)).outcome is Outcome.POSTED


async def test_preview_mode_prints_the_summary(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    add_day_of_events(sessions, registered_app, MONDAY)
    printed: list[str] = []
    result = await poster(sessions, None, TUESDAY_11, console=printed.append).post_kind(
        PeriodKind.DAILY
    )
    assert result.outcome is Outcome.PRINTED
    assert "Satisfaction" in printed[0] and "90.0%" in printed[0]


@pytest.mark.parametrize("kind", ["daily", "weekly"])
def test_digest_cli_dry_run_prints_without_slack(
    database_url: str, sessions: sessionmaker[Session], registered_app: RegisteredApp, kind: str
) -> None:
    add_day_of_events(sessions, registered_app, MONDAY)
    env = downvote_env(database_url, DOWNVOTE_TIMEZONE="Europe/Berlin")
    result = run_cli(env, "digest", kind, "--date", MONDAY.isoformat(), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Satisfaction" in result.stdout
    assert "90.0% (69.9–97.2%) · n = 20" in result.stdout  # 18 of 20, with its interval
    with sessions() as session:
        assert summary_postings(session) == []  # a dry run claims nothing


def test_service_start_posts_the_summary_missed_while_it_was_down(
    settings: Settings, sessions: sessionmaker[Session], registered_app: RegisteredApp,
    awkward_moment: tuple[FakeClock, str],
) -> None:  # fmt: skip
    """Events on the day that is due, no summary posted: starting the service posts it."""
    clock, zone = awkward_moment
    due = due_period(PeriodKind.DAILY, clock.now(), CONFIG, ZoneInfo(zone)).first_day
    add_day_of_events(sessions, registered_app, due, tz=ZoneInfo(zone))
    with FakeSlack(clock=clock) as slack:
        connected = settings.model_copy(
            update={
                "slack_bot_token": SecretStr(slack.token),
                "slack_signing_secret": SecretStr("secret"),
                "slack_api_url": slack.api_url,
                "slack_channel": "#quality",
                "downvote_timezone": zone,
            }
        )
        with TestClient(build_service(connected, config=CONFIG, clock=clock).app):
            [daily] = slack.wait_for(
                lambda: summary_messages(slack, PeriodKind.DAILY),
                description="the catch-up daily summary",
            )
    assert daily["metadata"]["event_payload"]["period_start"] == due.isoformat()


async def test_events_sent_this_morning_for_yesterday_get_yesterday_s_summary(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Downvote is only told at 08:30 on Tuesday what happened on Monday: Monday still counts."""
    tuesday_morning = datetime(2026, 11, 24, 8, 30, tzinfo=BERLIN)
    add_day_of_events(sessions, registered_app, MONDAY, received_at=tuesday_morning)
    with FakeSlack() as slack:
        results = await poster(sessions, slack, TUESDAY_11).post_due()
        [message] = summary_messages(slack)
    assert {r.period.kind: r.outcome for r in results}[PeriodKind.DAILY] is Outcome.POSTED
    assert message["metadata"]["event_payload"]["period_start"] == MONDAY.isoformat()


async def test_a_failed_chart_upload_is_retried_alone(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    for offset in range(7):
        add_day_of_events(sessions, registered_app, MONDAY + timedelta(days=offset))
    monday_after = datetime(2026, 11, 30, 9, 5, tzinfo=BERLIN)
    with FakeSlack() as slack:
        slack.fail_with_status(500, methods=["files.completeUploadExternal"])
        weekly = poster(sessions, slack, monday_after)
        assert (await weekly.post_kind(PeriodKind.WEEKLY)).outcome is Outcome.POSTED
        assert slack.files == []  # the digest is posted and recorded; the chart is not
        slack.heal()
        replica = poster(sessions, slack, monday_after, name="another-replica")
        retried = await replica.post_due()  # the retry job, on any replica: the chart alone
        [digest] = summary_messages(slack, PeriodKind.WEEKLY)
        [chart] = slack.files
        await weekly.post_due()
        await replica.post_due()
        assert len(slack.files) == 1 and len(summary_messages(slack, PeriodKind.WEEKLY)) == 1
    assert {r.period.kind: r.outcome for r in retried}[PeriodKind.WEEKLY] is Outcome.ALREADY_POSTED
    assert (chart["channel"], chart["thread_ts"]) == (digest["channel"], digest["ts"])
    with sessions() as session:
        [row] = summary_postings(session, "weekly")
    assert (row.status, row.chart_pending) == ("posted", False)


async def test_a_digest_too_big_for_one_message_continues_in_its_thread(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """100 criteria, 255-character feature and model names: Slack takes every part."""
    long_feature, long_model = "f" * 254 + "F", "m" * 254 + "M"
    for offset in range(7):
        add_day_of_events(
            sessions, registered_app, MONDAY + timedelta(days=offset),
            feature=long_feature, model=long_model,
        )  # fmt: skip
    criteria = [
        {"name": f"Criterion {n:03d} " + "x" * 86, "kind": "share", "condition": "rating = up",
         "target": ">= 0.92", "min_sample": 1,
         "filter": {"feature": long_feature, "model": long_model}}
        for n in range(100)
    ]  # fmt: skip
    config = DownvoteConfig.model_validate({"criteria": criteria})
    with FakeSlack() as slack:
        daily = poster(sessions, slack, TUESDAY_11, config=config)
        weekly = poster(sessions, slack, datetime(2026, 11, 30, 9, 5, tzinfo=BERLIN), config=config)
        assert (await daily.post_kind(PeriodKind.DAILY)).outcome is Outcome.POSTED
        assert (await weekly.post_kind(PeriodKind.WEEKLY)).outcome is Outcome.POSTED
        refused = [o for o in slack.outcomes if o.method == "chat.postMessage" and o.error]
        for parent in summary_messages(slack):
            thread = slack.messages(parent["channel"], thread_ts=parent["ts"])
            parts = [m for m in thread if m["metadata"]["event_type"] == "downvote_summary_part"]
            assert parts, "the overflow is in the thread"
            shown = json.dumps([parent["blocks"], *(m["blocks"] for m in parts)])
            assert all(f"Criterion {n:03d}" in shown for n in range(100))
    assert refused == []


def test_a_summary_slack_refused_is_posted_once_by_the_next_digest_command(
    settings: Settings, database_url: str, sessions: sessionmaker[Session],
    registered_app: RegisteredApp,
) -> None:  # fmt: skip
    """Slack answers 500 at 09:00; `downvote digest daily` posts it; a restart does not repost."""
    clock = FakeClock(TUESDAY_11)
    due = due_period(PeriodKind.DAILY, clock.now(), CONFIG, BERLIN).first_day
    add_day_of_events(sessions, registered_app, due)
    with FakeSlack() as slack:
        slack.fail_with_status(500, methods=["chat.postMessage"])
        failed = asyncio.run(poster(sessions, slack, clock.now()).post_kind(PeriodKind.DAILY))
        assert failed.outcome is Outcome.FAILED
        slack.heal()
        env = downvote_env(
            database_url, DOWNVOTE_TIMEZONE="Europe/Berlin", SLACK_BOT_TOKEN=slack.token,
            SLACK_SIGNING_SECRET="secret", SLACK_API_URL=slack.api_url, SLACK_CHANNEL="#quality",
        )  # fmt: skip
        posted = run_cli(env, "digest", "daily", "--date", due.isoformat())
        assert posted.returncode == 0, posted.stderr
        assert f"daily summary for {due.isoformat()}: posted" in posted.stdout
        assert len(summary_messages(slack, PeriodKind.DAILY)) == 1

        restarted = settings.model_copy(
            update={
                "slack_bot_token": SecretStr(slack.token),
                "slack_signing_secret": SecretStr("secret"),
                "slack_api_url": slack.api_url,
                "slack_channel": "#quality",
                "downvote_timezone": "Europe/Berlin",
            }
        )
        service = build_service(restarted, config=CONFIG, clock=clock)
        with TestClient(service.app):
            again = asyncio.run(service.poster.post_due())
        assert {r.period.kind: r.outcome for r in again}[PeriodKind.DAILY] is (
            Outcome.ALREADY_POSTED
        )
        assert len(summary_messages(slack, PeriodKind.DAILY)) == 1


async def test_a_takeover_finds_the_post_a_dead_holder_made_and_does_not_repost(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    add_day_of_events(sessions, registered_app, MONDAY)
    clock = FakeClock(TUESDAY_11)
    with FakeSlack(clock=clock) as slack:
        with sessions.begin() as session:  # it claimed Monday...
            claim = claim_period(
                session, PeriodKind.DAILY, MONDAY, worker="dead", now=clock.now(),
                lease=timedelta(minutes=10),
            )  # fmt: skip
        assert claim is not None
        period = period_of(PeriodKind.DAILY, MONDAY, BERLIN)
        earlier = slack.add_message(  # ...posted it, and died before recording that
            "#quality", "Daily summary", user="U0FAKEBOT",
            metadata=summary_metadata(PeriodKind.DAILY, period, claim.generation),
        )  # fmt: skip
        clock.advance(11 * 60)  # its lease runs out
        result = await poster(sessions, slack, clock.now(), name="next", clock=clock).post_kind(
            PeriodKind.DAILY
        )
        assert result.outcome is Outcome.POSTED and result.ts == earlier["ts"]
        assert len(summary_messages(slack, PeriodKind.DAILY)) == 1
    with sessions() as session:
        [row] = summary_postings(session, "daily")
    assert (row.status, row.slack_ts) == ("posted", earlier["ts"])


async def test_a_summary_slack_refused_midway_is_finished_in_its_thread_an_hour_later(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Slack took the message and its first part, then failed: the next try, an hour later
    (the message is long out of the history a takeover searches) and after SLACK_CHANNEL moved,
    posts only the parts still missing, in the first message's thread."""
    add_day_of_events(sessions, registered_app, MONDAY)
    criteria = [
        {"name": f"Criterion {n:03d} " + "x" * 86, "kind": "share", "condition": "rating = up",
         "target": ">= 0.92", "min_sample": 1}
        for n in range(200)
    ]  # fmt: skip
    config = DownvoteConfig.model_validate({"criteria": criteria})
    clock = FakeClock(TUESDAY_11)
    with FakeSlack(clock=clock) as slack:
        slack.add_channel("#moved")
        slack.fail_with_error("internal_error", count=1, after=2, methods=["chat.postMessage"])
        first = await poster(sessions, slack, clock.now(), config=config, clock=clock).post_kind(
            PeriodKind.DAILY
        )
        assert first.outcome is Outcome.FAILED
        clock.advance(60 * 60)
        retry = poster(sessions, slack, clock.now(), config=config, clock=clock, channel="#moved")
        again = await retry.post_kind(PeriodKind.DAILY)
        [message] = summary_messages(slack)
        thread = slack.messages(message["channel"], thread_ts=message["ts"])
    parts = [m["metadata"]["event_payload"]["part"] for m in thread]
    assert (again.outcome, again.ts) == (Outcome.POSTED, message["ts"])
    assert len(parts) >= 2 and parts == list(range(1, len(parts) + 1))
    assert slack.messages("#moved") == []


async def test_a_period_forced_before_its_time_is_not_posted_again_by_the_schedule(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """`digest daily --force` on a day never posted posts it once; the 09:00 job then finds it
    posted (and so does a second look)."""
    add_day_of_events(sessions, registered_app, MONDAY)
    printed: list[str] = []
    daily = poster(sessions, None, TUESDAY_11, console=printed.append)
    period = period_of(PeriodKind.DAILY, MONDAY, BERLIN)
    assert (await daily.post(PeriodKind.DAILY, period, force=True)).outcome is Outcome.PRINTED
    assert (await daily.post_kind(PeriodKind.DAILY)).outcome is Outcome.ALREADY_POSTED
    assert len(printed) == 1
    with sessions() as session:
        postings = summary_postings(session, "daily")
    assert [(p.generation, p.forced, p.status) for p in postings] == [(0, True, "posted")]


async def test_a_day_s_summary_counts_the_events_from_its_midnight_to_the_next(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A day with no events of its own gets no summary, whatever happened the day before or at
    the next midnight; an event at 00:00 belongs to the day it starts."""
    saturday_noon = datetime(2026, 11, 21, 12, tzinfo=BERLIN)
    monday_midnight = datetime(2026, 11, 23, 0, tzinfo=BERLIN)
    rows = [
        {"app_id": registered_app.app_id, "external_id": f"e{n}", "prompt": "p",
         "response": "r", "rating": "down", "occurred_at": at, "received_at": at}
        for n, at in enumerate([saturday_noon, monday_midnight])
    ]  # fmt: skip
    with sessions.begin() as session:
        session.execute(insert(FeedbackEvent), rows)
    daily = poster(sessions, None, TUESDAY_11, console=lambda _text: None)
    outcomes = [
        (await daily.post(PeriodKind.DAILY, period_of(PeriodKind.DAILY, day, BERLIN))).outcome
        for day in (date(2026, 11, 22), MONDAY)
    ]
    assert outcomes == [Outcome.NO_DATA, Outcome.PRINTED]


def test_a_period_has_one_holder_at_a_time_and_a_takeover_gets_a_full_lease(
    sessions: sessionmaker[Session],
) -> None:
    """Replicas claiming Monday's daily: the first holds it for its lease (10 minutes here);
    then one other takes it over, with how far the first got in Slack, for a lease of its own,
    and the first can no longer write it."""
    lease, start = timedelta(minutes=10), TUESDAY_11.astimezone(UTC)

    def claim(worker: str, minutes: int) -> Claim | None:
        at = start + timedelta(minutes=minutes)
        return claim_period(session, PeriodKind.DAILY, MONDAY, worker=worker, now=at, lease=lease)

    with sessions.begin() as session:
        first = claim("a", 0)
        assert first is not None and (first.generation, first.took_over) == (0, False)
        assert claim("b", 9) is None
        record_parent(session, first.post_id, worker="a", channel_id="C1", ts="1795000000.000100")
        record_parts(session, first.post_id, worker="a", count=2)
        taken = claim("b", 10)
        assert taken == Claim(first.post_id, 0, True, "C1", "1795000000.000100", 2)
        # a was only slow: what it records now is ignored, the period is b's to finish
        record_parent(session, first.post_id, worker="a", channel_id="C9", ts="1795000000.000900")
        mark_posted(
            session, first.post_id, worker="a", channel="C9", ts="1795000000.000900",
            now=start + timedelta(minutes=11), chart_pending=False,
        )  # fmt: skip
        assert posting_of(session, PeriodKind.DAILY, MONDAY) == Posting(
            PostingStatus.CLAIMED, 0, "1795000000.000100"
        )
        assert claim("c", 19) is None  # b's lease runs from its takeover
        assert claim("c", 20) is not None


def test_a_posted_period_is_not_claimed_again_while_others_wait_for_a_retry(
    sessions: sessionmaker[Session],
) -> None:
    """Monday's weekly digest is posted (its chart still to share); its own forced repost, the
    daily of the same Monday and the previous week's digest are all left by a process that
    died. The scheduled post of Monday's week is not claimed again: only those are."""
    lease, start = timedelta(minutes=10), TUESDAY_11.astimezone(UTC)
    later, week_before = start + timedelta(hours=1), MONDAY - timedelta(days=7)
    with sessions.begin() as session:
        for kind, day in [(PeriodKind.WEEKLY, MONDAY), (PeriodKind.DAILY, MONDAY),
                          (PeriodKind.WEEKLY, week_before)]:  # fmt: skip
            assert claim_period(session, kind, day, worker="dead", now=start, lease=lease)
        [posted] = summary_postings(session, "weekly")[1:]
        mark_posted(
            session, posted.id, worker="dead", channel="C1", ts="1795000000.000100", now=start,
            chart_pending=True,
        )  # fmt: skip
        claim_forced(session, PeriodKind.WEEKLY, MONDAY, worker="dead", now=start, lease=lease)

        def claim(kind: PeriodKind, day: date) -> Claim | None:
            return claim_period(session, kind, day, worker="next", now=later, lease=lease)

        assert claim(PeriodKind.WEEKLY, MONDAY) is None
        assert posting_of(session, PeriodKind.WEEKLY, MONDAY) == Posting(
            PostingStatus.CLAIMED, 1, None
        )  # the forced repost, still in progress
        assert claim(PeriodKind.DAILY, MONDAY) is not None
        assert claim(PeriodKind.WEEKLY, week_before) is not None


def test_a_forced_repost_numbers_its_period_s_postings_alone(
    sessions: sessionmaker[Session],
) -> None:
    """`--force` on Monday's daily makes its generation 1, whatever other periods have: the
    weekly digest of the same Monday posted three times, Sunday's daily three times too. Its
    latest posting is that one."""
    lease, now = timedelta(minutes=10), TUESDAY_11.astimezone(UTC)
    sunday = MONDAY - timedelta(days=1)
    with sessions.begin() as session:
        for kind, day, times in [(PeriodKind.WEEKLY, MONDAY, 3), (PeriodKind.DAILY, sunday, 3),
                                 (PeriodKind.DAILY, MONDAY, 1)]:  # fmt: skip
            for _ in range(times):
                claim_forced(session, kind, day, worker="a", now=now, lease=lease)
        claim = claim_forced(session, PeriodKind.DAILY, MONDAY, worker="b", now=now, lease=lease)
        mine = [
            (p.period_start, p.generation, p.claimed_by)
            for p in summary_postings(session, "daily")
            if p.id == claim.post_id
        ]
        latest = posting_of(session, PeriodKind.DAILY, MONDAY)
    assert mine == [(MONDAY, 1, "b")]
    assert latest == Posting(PostingStatus.CLAIMED, 1, None)
    assert claim == Claim(claim.post_id, 1, False)  # nothing posted yet: nothing to check first


def test_a_forced_digest_s_chart_is_shared_by_its_poster_alone(
    sessions: sessionmaker[Session],
) -> None:
    """Two forced weekly digests are posted and their posters go on to share the charts: the
    chart retry job of another process leaves them alone until the posters' lease runs out."""
    lease, now = timedelta(minutes=10), TUESDAY_11.astimezone(UTC)
    with sessions.begin() as session:
        claims = [
            claim_forced(session, PeriodKind.WEEKLY, MONDAY, worker="a", now=now, lease=lease)
            for _ in range(2)
        ]
        for claim in claims:
            mark_posted(
                session, claim.post_id, worker="a", channel="C1", ts="1795000000.000100",
                now=now, chart_pending=True,
            )  # fmt: skip

        def retry(minutes: int) -> list[int]:
            at = now + timedelta(minutes=minutes)
            charts = claim_pending_charts(session, worker="retry", now=at, lease=lease)
            return [chart.post_id for chart in charts]

        assert retry(9) == []
        assert retry(10) == [claim.post_id for claim in claims]
        assert retry(10) == []  # taken a moment ago: held for this retry's lease, not twice


def test_a_failed_posting_releases_its_own_claim_only(sessions: sessionmaker[Session]) -> None:
    """Monday's daily failed in a's hands and is released: the next try takes it at once.
    Monday's weekly digest, held by b, stays b's until its lease runs out."""
    lease, now = timedelta(minutes=10), TUESDAY_11.astimezone(UTC)
    with sessions.begin() as session:
        daily = claim_period(session, PeriodKind.DAILY, MONDAY, worker="a", now=now, lease=lease)
        weekly = claim_period(session, PeriodKind.WEEKLY, MONDAY, worker="b", now=now, lease=lease)
        assert daily is not None and weekly is not None
        release(session, daily.post_id, worker="a", now=now)
        release(session, weekly.post_id, worker="a", now=now)  # not a's: nothing happens

        def claim(kind: PeriodKind) -> Claim | None:
            return claim_period(session, kind, MONDAY, worker="c", now=now, lease=lease)

        assert claim(PeriodKind.WEEKLY) is None
        assert claim(PeriodKind.DAILY) is not None
