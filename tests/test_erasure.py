"""Forgetting a user and keeping data only as long as wanted: the database and Slack both."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.delivery import DeliveryPolicy, DeliveryWorker
from bot.config import Grouping, Retention
from bot.retention import RetentionJob
from bot.settings import Settings
from bot.summaries.schedule import RETENTION_JOB, make_scheduler
from storage.alerts import claim_due_alerts, mark_retry, record_parent_posted
from storage.erasure import erase, erase_in_batches, of_user
from storage.events import NewEvent, store_events
from storage.models import DataDeletion, FeedbackEvent, SlackDeletion
from storage.states import DeletionReason, DeletionStatus
from tests.support.alerting import alert_statuses, make_worker
from tests.support.cli import run_cli
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp, register_app
from tests.support.fake_slack import FakeSlack
from tests.support.processes import downvote_env
from tests.support.prompts import distinct_prompt
from tests.support.signing import utc_now
from tests.test_delivery import deliver_all, poll
from tests.test_summaries import poster

LONG = "The whole contract, pasted by the user. " * 1500  # needs thread parts
ALERT, PART, NOTE = "downvote_alert", "downvote_alert_part", "downvote_alert_note"


def send(
    sessions: sessionmaker[Session], app: RegisteredApp, clock: FakeClock, *events: dict[str, Any]
) -> None:
    with sessions.begin() as session:
        store_events(
            session, app_id=app.app_id, channel=None, now=clock.now(),
            events=[NewEvent(**{"occurred_at": clock.now(), "rating": "down", "response": "r",
                                **event}) for event in events],
        )  # fmt: skip


def event_of(message: dict[str, Any]) -> int | None:
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    return payload.get("event_id")


def user_ids(sessions: sessionmaker[Session]) -> list[str | None]:
    with sessions() as session:
        return sorted(session.scalars(select(FeedbackEvent.user_id)), key=str)


async def drain(worker: DeliveryWorker, sessions: sessionmaker[Session]) -> None:
    """Deliver, then delete, until nothing is left to do."""
    await deliver_all(worker, sessions)
    for _ in range(50):
        if not await worker._pass():
            return
    raise AssertionError("the worker still had work after 50 passes")


def events_in_slack(slack: FakeSlack) -> set[int]:
    return {e for m in slack.messages() if (e := event_of(m)) is not None}


async def test_forget_deletes_a_users_events_and_every_slack_message_of_their_downvotes(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, database_url: str
) -> None:
    clock = FakeClock(utc_now())  # the CLI runs on the real clock
    order = "Where is my order #{}? The tracking page has said nothing since Monday at all."
    send(
        sessions, registered_app, clock,
        {"external_id": "u9-long", "user_id": "u_9", "prompt": LONG},
        {"external_id": "u9-head", "user_id": "u_9", "prompt": order.format(1)},
        {"external_id": "u9-up", "user_id": "u_9", "prompt": "p", "rating": "up"},
        {"external_id": "u7-member", "user_id": "u_7", "prompt": order.format(2)},
        {"external_id": "u7-own", "user_id": "u_7", "prompt": distinct_prompt(1)},
    )  # fmt: skip
    with FakeSlack(clock=clock) as slack:
        worker = make_worker(sessions, slack, clock=clock, grouping=Grouping())
        await drain(worker, sessions)
        with sessions() as session:
            ids = dict(session.execute(select(FeedbackEvent.external_id, FeedbackEvent.id)).all())
        long_alert = next(m for m in slack.messages() if event_of(m) == ids["u9-long"])
        slack.add_message(  # a teammate's note, posted in the alert's thread as the bot does
            long_alert["channel"], "📝 Note: the user pasted a contract", user="U0FAKEBOT",
            thread_ts=long_alert["ts"],
            metadata={"event_type": NOTE, "event_payload": {"event_id": ids["u9-long"]}},
        )  # fmt: skip
        u9 = {ids["u9-long"], ids["u9-head"]}
        assert u9 <= events_in_slack(slack)
        before = {m["ts"] for m in slack.messages()}

        ran = run_cli(downvote_env(database_url), "forget", "--user-id", "u_9", "--yes")
        assert ran.returncode == 0, ran.stderr
        assert "deleted 3 events (2 with an alert in Slack) of user 'u_9'" in ran.stdout
        assert user_ids(sessions) == ["u_7", "u_7"]
        exported = run_cli(downvote_env(database_url), "export", "--rating", "any")
        assert [json.loads(line)["user_id"] for line in exported.stdout.splitlines()] == ["u_7"] * 2

        clock.set(utc_now())  # to when the CLI queued the deletions
        await drain(worker, sessions)
        assert not u9 & events_in_slack(slack)  # alerts, parts and the note
        gone = {d["ts"] for d in slack.deleted}
        assert gone == before - {m["ts"] for m in slack.messages()}
        assert len([m for m in slack.messages() if event_of(m) == ids["u7-member"]]) == 1
        assert any(event_of(m) == ids["u7-own"] for m in slack.messages())
        deleted_calls = slack.calls_to("chat.delete")
        assert all(c["channel"].startswith("C") for c in deleted_calls)  # ids, as Slack wants
    with sessions() as session:
        [record] = session.scalars(select(DataDeletion)).all()
        assert (record.reason, record.events, record.slack_messages) == ("forget", 3, 2)
        assert "u_9" not in json.dumps([record.actor, record.reason])  # that, not what
        assert {d.status for d in session.scalars(select(SlackDeletion))} == {"done"}


async def test_deletions_survive_a_slack_outage_and_a_crash(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, database_url: str
) -> None:
    clock = FakeClock(utc_now())  # the CLI runs on the real clock
    send(sessions, registered_app, clock,
         *({"external_id": f"e{n}", "user_id": "u_9", "prompt": distinct_prompt(n)}
           for n in range(3)))  # fmt: skip
    with FakeSlack(clock=clock) as slack:
        await drain(make_worker(sessions, slack, clock=clock), sessions)
        assert (
            run_cli(downvote_env(database_url), "forget", "--user-id", "u_9", "--yes").returncode
            == 0
        )
        slack.fail_with_status(503, methods=["chat.delete"])
        crashed = make_worker(sessions, slack, clock=clock, name="crashed")
        await crashed._pass()  # Slack is down: every deletion waits for a later try
        assert len(slack.messages()) == 3
        slack.heal()
        with sessions.begin() as session:  # one is claimed by a process that then died
            session.execute(
                update(SlackDeletion)
                .where(SlackDeletion.id == 1)
                .values(status=DeletionStatus.SENDING, claimed_by="crashed",
                        claimed_until=clock.now() + timedelta(minutes=2))
            )  # fmt: skip
        clock.advance(15 * 60)  # past every retry and the dead process's lease
        await drain(make_worker(sessions, slack, clock=clock, name="successor"), sessions)
        assert slack.messages() == []


async def test_a_dead_processs_deletion_is_taken_over_when_its_lease_ends_not_at_the_next_poll(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A deletion claimed by a process that died is taken over as soon as its lease (here a
    second) runs out, not at the next idle poll (here ten minutes, so only the lease can wake)."""
    send(
        sessions,
        registered_app,
        FakeClock(utc_now()),
        {"external_id": "e", "user_id": "u_9", "prompt": "p"},
    )
    with FakeSlack() as slack:
        await drain(make_worker(sessions, slack), sessions)
        with sessions.begin() as session:
            erase(session, of_user("u_9"), now=utc_now(), reason=DeletionReason.FORGET, actor="t")
            session.execute(
                update(SlackDeletion)
                .values(status=DeletionStatus.SENDING, claimed_by="crashed", attempts=1,
                        claimed_until=utc_now() + timedelta(seconds=1))
            )  # fmt: skip
        policy = DeliveryPolicy(idle_poll_seconds=600)
        stop = asyncio.Event()
        running = asyncio.create_task(make_worker(sessions, slack, policy=policy).run(stop))
        await poll(lambda: slack.messages() == [], "the message deleted by the successor")
        stop.set()
        await running


async def test_an_event_erased_while_its_alert_is_posted_is_taken_back(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """The worker had claimed the alert and Slack took the post as the user was forgotten: the
    message it just posted is deleted too."""
    clock = FakeClock(utc_now())  # the CLI runs on the real clock
    send(sessions, registered_app, clock, {"external_id": "e", "user_id": "u_9", "prompt": "p"})
    with FakeSlack(clock=clock) as slack:
        worker = make_worker(sessions, slack, clock=clock)
        [claimed] = await worker._db(
            lambda s: claim_due_alerts(
                s, worker=worker.name, now=clock.now(), lease=timedelta(minutes=2), limit=1
            )
        )
        erased = erase_in_batches(
            sessions, of_user("u_9"), now=clock.now(), reason=DeletionReason.FORGET, actor="t"
        )
        assert erased.events == 1
        assert await worker.deliver(claimed) is None  # posted: Slack had it in hand
        assert len(slack.messages()) == 1
        await drain(worker, sessions)
        assert slack.messages() == []
    assert alert_statuses(sessions) == []


def test_delete_user_api_removes_only_that_apps_events(
    settings: Settings, sessions: sessionmaker[Session], registered_app: RegisteredApp,
    client: TestClient,
) -> None:  # fmt: skip
    other = register_app(sessions, "other-app")
    clock = FakeClock(utc_now())  # the CLI runs on the real clock
    send(sessions, registered_app, clock,
         {"external_id": "a1", "user_id": "u_9", "prompt": "p"},
         {"external_id": "a2", "user_id": "u_8", "prompt": "p"})  # fmt: skip
    send(sessions, other, clock, {"external_id": "b1", "user_id": "u_9", "prompt": "p"})
    headers = {"authorization": f"Bearer {registered_app.api_key}"}
    answer = client.delete("/v1/users/u_9", headers=headers)
    assert answer.status_code == 202
    assert answer.json() == {"events": 1, "slack_messages": 0}
    with sessions() as session:
        left = session.execute(select(FeedbackEvent.external_id).order_by(FeedbackEvent.id))
        assert list(left.scalars()) == ["a2", "b1"]
    assert client.delete("/v1/users/u_9").status_code == 401
    assert client.delete("/v1/users/u_9", headers=headers).json()["events"] == 0


def test_purge_deletes_what_occurred_before_the_cutoff_and_keeps_the_rest(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, database_url: str
) -> None:
    clock = FakeClock(utc_now())  # the CLI runs on the real clock
    old, today = clock.now() - timedelta(days=100), clock.now()
    send(sessions, registered_app, clock,
         *({"external_id": f"old{n}", "prompt": "p", "occurred_at": old} for n in range(3)),
         {"external_id": "new", "prompt": "p", "occurred_at": today})  # fmt: skip
    env = downvote_env(database_url)
    dry = run_cli(env, "purge", "--older-than", "90d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 3 events")
    assert len(user_ids(sessions)) == 4
    done = run_cli(env, "purge", "--older-than", "90d")
    assert done.returncode == 0 and done.stdout.startswith("deleted 3 events"), done.stderr
    with sessions() as session:
        assert list(session.scalars(select(FeedbackEvent.external_id))) == ["new"]
        assert session.scalar(select(DataDeletion.reason)) == "purge"
    for bad in ("90 days", "-5d", "0d", "ninety"):
        refused = run_cli(env, "purge", "--older-than", bad)
        assert refused.returncode == 1
        assert refused.stderr.strip().startswith("downvote: --older-than must be a number of days")


async def test_the_retention_job_deletes_what_is_past_retention(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    clock = FakeClock(utc_now())  # the CLI runs on the real clock
    day = timedelta(days=1)
    send(sessions, registered_app, clock,
         {"external_id": "old", "prompt": "p", "occurred_at": clock.now() - 91 * day},
         {"external_id": "kept", "prompt": "p", "occurred_at": clock.now() - 89 * day})  # fmt: skip
    send(sessions, registered_app, clock,
         *({"external_id": f"old-{n}", "prompt": "p", "occurred_at": clock.now() - 100 * day}
           for n in range(1200)))  # fmt: skip
    assert (await RetentionJob(sessions, Retention(), clock).run()).events == 0  # default: keep
    erased = await RetentionJob(sessions, Retention(days=90), clock).run()
    assert erased.events == 1201
    with sessions() as session:
        assert list(session.scalars(select(FeedbackEvent.external_id))) == ["kept"]
        # In several short transactions, each recorded: no write lock held for the whole purge.
        batches = session.execute(select(DataDeletion.actor, DataDeletion.events)).all()
        assert len(batches) > 1 and {actor for actor, _ in batches} == {"retention"}
        assert sum(events for _, events in batches) == 1201
        assert session.scalar(select(func.count()).select_from(SlackDeletion)) == 0  # opt-in


def test_the_retention_job_runs_nightly_before_the_morning_summary(
    sessions: sessionmaker[Session],
) -> None:
    """At 03:15 in the summaries' time zone, as the README says, whatever the clocks do."""
    summaries = poster(sessions, None, utc_now())
    tz = summaries.tz
    assert tz == ZoneInfo("Europe/Berlin")
    job = RetentionJob(sessions, Retention(days=90), FakeClock(utc_now()))
    scheduler = make_scheduler(summaries, summaries.config.schedule, tz, retention=job.run)
    trigger = scheduler.get_job(RETENTION_JOB).trigger
    night = datetime(2026, 10, 23, 12, tzinfo=tz)  # the clocks go back in the second night
    fires = [trigger.get_next_fire_time(None, night)]
    fires.append(trigger.get_next_fire_time(fires[0], fires[0] + timedelta(seconds=1)))
    assert [(f.hour, f.minute, f.tzinfo) for f in fires] == [(3, 15, tz)] * 2
    assert fires[0].astimezone(UTC) == datetime(2026, 10, 24, 1, 15, tzinfo=UTC)  # CEST
    assert fires[1].astimezone(UTC) == datetime(2026, 10, 25, 2, 15, tzinfo=UTC)  # CET


def test_forget_asks_first_and_explains_mistakes(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, database_url: str
) -> None:
    clock = FakeClock(utc_now())  # the CLI runs on the real clock
    send(sessions, registered_app, clock, {"external_id": "e", "user_id": "u_9", "prompt": "p"})
    env = downvote_env(database_url)
    unknown = run_cli(env, "forget", "--user-id", "u_9", "--app", "nope", "--yes")
    assert unknown.returncode == 1 and "no app named 'nope'" in unknown.stderr
    nobody = run_cli(env, "forget", "--user-id", "u_1", "--yes")
    assert nobody.returncode == 0 and "no events of user 'u_1'" in nobody.stdout
    asked = run_cli(env, "forget", "--user-id", "u_9", input="n\n")
    assert asked.returncode == 1 and "1 event (0 with an alert in Slack)" in asked.stdout
    assert user_ids(sessions) == ["u_9"]
    confirmed = run_cli(env, "forget", "--user-id", "u_9", input="y\n")
    assert confirmed.returncode == 0 and user_ids(sessions) == []


def test_an_alert_cut_short_in_its_group_s_thread_is_deleted_from_that_thread(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A group's later downvote went into the group's thread, then Slack failed before all its
    parts were posted; the user is forgotten while it waits for its retry. Its deletion looks
    for its parts in the group's thread, where they are, not in one of its own."""
    clock = FakeClock(utc_now())
    send(sessions, registered_app, clock, {"external_id": "e", "user_id": "u_9", "prompt": LONG})
    group_thread, own = "1795000000.000100", "1795000000.000200"
    with sessions.begin() as session:
        [held] = claim_due_alerts(
            session, worker="w", now=clock.now(), lease=timedelta(minutes=2), limit=1
        )
        record_parent_posted(
            session, held.id, worker="w", channel_id="C1", ts=own, thread_ts=group_thread
        )
        mark_retry(session, held.id, worker="w", at=clock.now(), error="internal_error")
        erase(session, of_user("u_9"), now=clock.now(), reason=DeletionReason.FORGET, actor="t")
        deletions = session.execute(select(SlackDeletion.ts, SlackDeletion.thread_ts)).all()
    assert [tuple(d) for d in deletions] == [(own, group_thread)]


async def test_a_deletion_being_sent_is_held_in_its_workers_name(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """While Slack holds the chat.delete, the deletion is claimed by this worker by name, so a
    worker whose lease ran out cannot later write over a successor's claim (as for alerts)."""
    event = {"external_id": "e", "user_id": "u_9", "prompt": "p"}
    send(sessions, registered_app, FakeClock(utc_now()), event)
    with FakeSlack() as slack:
        await drain(make_worker(sessions, slack), sessions)
        with sessions.begin() as session:
            erase(session, of_user("u_9"), now=utc_now(), reason=DeletionReason.FORGET, actor="t")
        slack.hang(2, count=1, methods=["chat.delete"])
        worker = make_worker(sessions, slack, name="worker-7")
        erasing = asyncio.create_task(worker._pass())

        def claim() -> tuple[str, str | None]:
            with sessions() as session:
                row = session.execute(select(SlackDeletion.status, SlackDeletion.claimed_by)).one()
            return row.status, row.claimed_by

        await poll(lambda: claim()[0] == DeletionStatus.SENDING, "the deletion to be claimed")
        assert claim() == (DeletionStatus.SENDING, "worker-7")
        await erasing
        assert slack.messages() == []
