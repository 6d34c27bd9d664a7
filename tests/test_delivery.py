"""Delivery to a real HTTP fake of Slack through the real slack_sdk client."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.delivery import DeliveryPolicy
from bot.alerts.message import EVENT_TYPE, REPLY_EVENT_TYPE, alert_message
from bot.alerts.redaction import Redactor
from bot.slack.history import thread_metadata
from bot.slack.pacing import ChannelPacer
from storage.alerts import (
    claim_due_alerts,
    count_by_status,
    mark_failed,
    mark_posted,
    mark_retry,
    record_parent_posted,
    record_replies_posted,
    release_claims,
    was_erased,
)
from storage.db import is_postgresql, make_engine, make_sessionmaker
from storage.events import NewEvent, store_events
from storage.leases import claim_due_refreshes, next_due_at
from storage.models import Alert, DownvoteGroup, SlackDeletion
from storage.records import EventFilter, event_record_dict, iter_events
from tests.support.alerting import alert_statuses, make_worker, store_downvotes
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp, register_app
from tests.support.fake_slack import FakeSlack
from tests.support.signing import utc_now

CODE = "def f(x):\n    return x < 3 && y > 2  # <!channel> <@U123> <https://evil|click> 🎉\n"


async def deliver_all(worker: Any, sessions: sessionmaker[Session], timeout: float = 30) -> None:
    """Run delivery passes until nothing is pending or sending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while any(s in ("pending", "sending") for s in alert_statuses(sessions)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"alerts still undelivered: {alert_statuses(sessions)}")
        if not await worker.deliver_due():
            await asyncio.sleep(0.02)  # backoff pending: poll again shortly


def thread_of(slack: FakeSlack, parent: dict[str, Any]) -> list[dict[str, Any]]:
    return slack.messages(parent["channel"], thread_ts=parent["ts"])


def visible_text(message: dict[str, Any]) -> str:
    texts = [message["text"]]
    for block in message["blocks"] or []:
        text = block.get("text")
        if isinstance(text, dict):
            texts.append(text["text"])
    return "\n".join(texts)


async def test_long_hostile_prompt_arrives_whole_and_escaped(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    prompt = (CODE * 800)[:60_000]
    response = "Sure! " + CODE * 40
    store_downvotes(sessions, registered_app, [{"prompt": prompt, "response": response}])
    with FakeSlack() as slack:
        await deliver_all(make_worker(sessions, slack), sessions)
        [parent] = [m for m in slack.messages() if m["thread_ts"] is None]
        replies = thread_of(slack, parent)
    assert len(replies) >= 10
    assert [o.error for o in slack.outcomes if o.error] == []
    everything = "".join(visible_text(m) for m in [parent, *replies])
    for forbidden in ("<!channel>", "<@U123>", "<https://evil"):
        assert forbidden not in everything
    # Reassemble: each part's fenced code, in order, holds the whole text.
    fenced = re.findall(r"```\n?(.*?)```", everything, flags=re.S)
    import html

    joined = html.unescape("".join(fenced)).replace("\u200b", "")
    assert prompt.replace("\u200b", "") in joined
    assert response in joined
    assert parent["metadata"]["event_type"] == EVENT_TYPE
    assert alert_statuses(sessions) == ["posted"]


async def test_outage_then_rate_limit_delivers_each_alert_once(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    events = [{"prompt": f"p{n}", "response": "r"} for n in range(5)]
    store_downvotes(sessions, registered_app, events)
    clock = FakeClock()  # the fake's outage lasts 30 s of this clock: nobody waits for it
    with FakeSlack(clock=clock) as slack:
        slack.fail_with_status(500, for_seconds=30)
        worker = make_worker(sessions, slack, pacer=ChannelPacer(clock=clock))  # Retry-After on it
        for _ in range(3):
            await worker.deliver_due()
        assert set(alert_statuses(sessions)) == {"pending"}  # Slack is down: kept, not lost
        clock.advance(30)
        slack.rate_limit(retry_after=2, count=2)
        await deliver_all(worker, sessions)
        parents = [m for m in slack.messages() if m["thread_ts"] is None]
    assert len(parents) == 5
    assert len({m["metadata"]["event_payload"]["event_id"] for m in parents}) == 5
    assert {500, 429, 200} <= {o.status for o in slack.outcomes}


async def test_channel_not_found_fails_once_and_is_visible(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    from prometheus_client import REGISTRY

    def failed_count() -> float:
        return (
            REGISTRY.get_sample_value(
                "downvote_alerts_failed_total", {"reason": "channel_not_found"}
            )
            or 0.0
        )

    before = failed_count()
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    with FakeSlack() as slack:  # no #gone in this workspace
        worker = make_worker(sessions, slack, channel="#gone")
        await deliver_all(worker, sessions)
        await worker.deliver_due()
        posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1  # no retry for a permanent error
    assert alert_statuses(sessions) == ["failed"]
    assert failed_count() == before + 1


async def test_too_many_attempts_dead_letters(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    with FakeSlack() as slack:
        slack.fail_with_status(503)
        policy = DeliveryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
        await deliver_all(make_worker(sessions, slack, policy=policy), sessions)
    assert alert_statuses(sessions) == ["failed"]


async def test_secrets_and_contacts_never_reach_slack(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    secret_text = (
        "Mail jane.doe@example.com or call +1 415 555 0100; "
        "key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"
    )
    store_downvotes(
        sessions,
        registered_app,
        [{"prompt": secret_text, "response": secret_text, "comment": secret_text}],
    )
    with FakeSlack() as slack:
        await deliver_all(make_worker(sessions, slack), sessions)
        sent = str(slack.calls)
    for leaked in ("jane.doe@example.com", "555 0100", "sk-proj-abcdefghij"):
        assert leaked not in sent
    assert "redacted" in sent
    with sessions() as session:  # the database, and so the export, keep the original
        [record] = [event_record_dict(r) for r in iter_events(session, EventFilter())]
    assert record["prompt"] == record["response"] == record["comment"] == secret_text


async def test_reconciles_a_post_made_before_a_crash(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """An alert left 'sending' whose message did reach Slack is completed, not posted twice."""
    store_downvotes(sessions, registered_app, [{"prompt": "p" * 9000, "response": "r"}])
    with FakeSlack() as slack:
        first = make_worker(sessions, slack, name="crashed")
        [claimed] = await first._db(  # the crashed worker had claimed it...
            lambda s: claim_due_alerts(
                s, worker="crashed", now=utc_now(), lease=timedelta(seconds=30), limit=1
            )
        )
        message = alert_message(claimed.event, categories=[], redactor=Redactor())
        slack.add_message(
            "#alerts",
            message.text,
            user="U0FAKEBOT",
            blocks=message.blocks,
            metadata=message.metadata,
        )  # ...and posted it
        with sessions.begin() as session:  # ...then died: its lease runs out
            session.execute(update(Alert).values(claimed_until=utc_now() - timedelta(seconds=1)))
        await deliver_all(make_worker(sessions, slack, name="successor"), sessions)
        parents = [m for m in slack.messages() if m["thread_ts"] is None]
        assert len(parents) == 1
        assert len(thread_of(slack, parents[0])) == len(message.replies)
    assert alert_statuses(sessions) == ["posted"]


async def test_preview_mode_prints_instead_of_posting(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Printed, with a log line linking to Slack's Block Kit Builder showing the alert's blocks."""
    caplog.set_level(logging.INFO, logger="downvote.delivery")
    printed: list[str] = []
    store_downvotes(sessions, registered_app, [{"prompt": "What is 2+2?", "response": "5"}])
    worker = make_worker(sessions, None, channel=None, console=printed.append)
    await deliver_all(worker, sessions)
    assert len(printed) == 1
    assert "What is 2+2?" in printed[0] and "preview" in printed[0]
    assert alert_statuses(sessions) == ["posted"]
    [line] = [m for m in caplog.messages if "block-kit-builder" in m]
    label, url = line.split(": ", 1)
    assert label == "see it as Slack would"
    assert url.startswith("https://app.slack.com/block-kit-builder/#")
    shown = json.loads(unquote(url.split("#", 1)[1]))["blocks"]
    assert "What is 2+2?" in json.dumps(shown)


@pytest.mark.parametrize("workers", [2])
async def test_parallel_workers_never_post_an_alert_twice(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, workers: int
) -> None:
    store_downvotes(
        sessions, registered_app, [{"prompt": f"p{n}", "response": "r"} for n in range(40)]
    )
    with FakeSlack() as slack:
        slack.latency(5)
        pool = [make_worker(sessions, slack, name=f"w{n}") for n in range(workers)]
        await asyncio.gather(*(deliver_all(w, sessions) for w in pool))
        parents = [m for m in slack.messages() if m["thread_ts"] is None]
    ids = [m["metadata"]["event_payload"]["event_id"] for m in parents]
    assert len(ids) == 40 and len(set(ids)) == 40


async def test_a_long_thread_is_read_page_by_page() -> None:
    """Slack pages conversations.replies: a crash recovery that read one page would repost."""
    with FakeSlack(member_of=["#alerts"]) as slack:
        parent = slack.add_message("#alerts", "parent", user="U0FAKEBOT")
        for part in range(1, 451):
            slack.add_message(
                "#alerts", f"part {part}", user="U0FAKEBOT", thread_ts=parent["ts"],
                metadata={"event_type": REPLY_EVENT_TYPE, "event_payload": {"part": part}},
            )  # fmt: skip
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        thread = await thread_metadata(client, parent["channel"], parent["ts"])
        pages = slack.calls_to("conversations.replies")
    assert [m.payload["part"] for m in thread if m.kind == REPLY_EVENT_TYPE] == list(range(1, 451))
    assert len(pages) == 3  # 200 a page


async def test_after_slack_channel_changes_a_crashed_alert_is_looked_for_in_the_new_one(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Recovery looks in the channel now configured, not in one an earlier alert went to."""
    store_downvotes(sessions, registered_app, [{"prompt": "first", "response": "r"}])
    with FakeSlack() as slack:
        await deliver_all(make_worker(sessions, slack, channel="#alerts"), sessions)
        store_downvotes(
            sessions, registered_app, [{"external_id": "second", "prompt": "p", "response": "r"}]
        )
        [claimed] = await make_worker(sessions, slack, channel="#quality")._db(
            lambda s: claim_due_alerts(
                s, worker="crashed", now=utc_now(), lease=timedelta(seconds=30), limit=1
            )
        )
        message = alert_message(claimed.event, categories=[], redactor=Redactor())
        slack.add_message(  # the crashed worker had posted it to the new SLACK_CHANNEL
            "#quality", message.text, user="U0FAKEBOT", blocks=message.blocks,
            metadata=message.metadata,
        )  # fmt: skip
        with sessions.begin() as session:
            session.execute(update(Alert).values(claimed_until=utc_now() - timedelta(seconds=1)))
        await deliver_all(make_worker(sessions, slack, channel="#quality", name="next"), sessions)
        assert len(slack.messages("#quality")) == 1 and len(slack.messages("#alerts")) == 1
    assert alert_statuses(sessions) == ["posted", "posted"]


async def test_crash_recovery_reads_history_past_its_first_page(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """The lost post is older than the channel's latest 200 messages: it is still found."""
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    with FakeSlack(member_of=["#alerts"]) as slack:
        [claimed] = await make_worker(sessions, slack)._db(
            lambda s: claim_due_alerts(
                s, worker="crashed", now=utc_now(), lease=timedelta(seconds=30), limit=1
            )
        )
        message = alert_message(claimed.event, categories=[], redactor=Redactor())
        slack.add_message(
            "#alerts", message.text, user="U0FAKEBOT", blocks=message.blocks,
            metadata=message.metadata,
        )  # fmt: skip
        for n in range(250):  # a busy channel since
            slack.add_message("#alerts", f"chatter {n}")
        with sessions.begin() as session:
            session.execute(update(Alert).values(claimed_until=utc_now() - timedelta(seconds=1)))
        await deliver_all(make_worker(sessions, slack, name="successor"), sessions)
        pages = slack.calls_to("conversations.history")
        bot_posts = [m for m in slack.messages("#alerts") if m["user"] == "U0FAKEBOT"]
    assert len(bot_posts) == 1 and len(pages) == 2
    assert alert_statuses(sessions) == ["posted"]


async def test_a_live_lease_keeps_a_second_worker_off_the_alert(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Deterministic, not a race: while the first worker's lease runs, the second claims nothing."""
    store_downvotes(
        sessions, registered_app, [{"prompt": f"p{n}", "response": "r"} for n in range(3)]
    )
    with FakeSlack() as slack:
        with sessions.begin() as session:
            held = claim_due_alerts(
                session, worker="first", now=utc_now(), lease=timedelta(seconds=30), limit=10
            )
        assert len(held) == 3
        second = make_worker(sessions, slack, name="second")
        assert await second.deliver_due() == 0
        assert slack.calls_to("chat.postMessage") == []
        with sessions.begin() as session:  # the lease runs out: now the second may take over
            session.execute(update(Alert).values(claimed_until=utc_now() - timedelta(seconds=1)))
        assert await second.deliver_due() == 3


def test_each_reply_slack_confirms_keeps_a_long_thread_s_claim_alive(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A 30 s lease, and a thread whose last confirmed reply came at 20 s: at 40 s the claim
    is still the first worker's (its lease renewed to 50 s), so no one else starts the thread."""
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    lease, start = timedelta(seconds=30), utc_now()
    with sessions.begin() as session:
        [held] = claim_due_alerts(session, worker="first", now=start, lease=lease, limit=1)
        record_parent_posted(session, held.id, worker="first", channel_id="C1", ts="1.1")
        record_replies_posted(
            session, alert_id=held.id, worker="first", count=3,
            lease_until=start + timedelta(seconds=20) + lease,
        )  # fmt: skip

        def claimed_by_second(seconds: int) -> list[int]:
            at = start + timedelta(seconds=seconds)
            return [a.id for a in claim_due_alerts(session, worker="second", now=at, lease=lease,
                                                   limit=1)]  # fmt: skip

        assert claimed_by_second(40) == []
        assert claimed_by_second(51) == [held.id]


async def test_while_slack_keeps_up_a_channel_s_alerts_go_out_four_at_a_time(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A slow Web API (here one that does not answer): four posts to the channel are in
    flight at once, not one after another."""
    store_downvotes(
        sessions, registered_app, [{"prompt": f"p{n}", "response": "r"} for n in range(6)]
    )
    policy = DeliveryPolicy(in_flight_per_channel=4)
    with FakeSlack() as slack:
        slack.hang(600, methods=["chat.postMessage"])
        delivering = asyncio.create_task(make_worker(sessions, slack, policy=policy).deliver_due())
        await slack.async_wait_for(
            lambda: len(slack.calls_to("chat.postMessage")) >= 4, description="four posts"
        )
        in_flight = len(slack.calls_to("chat.postMessage"))
        delivering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await delivering
    assert in_flight == 4


def test_stopping_leaves_an_alert_another_worker_took_over_in_its_hands(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """a's post of the alert hung past its lease and b took it over; a stops with it still in
    flight: b keeps the alert and its lease."""
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    lease, start = timedelta(seconds=30), utc_now()
    with sessions.begin() as session:
        [held] = claim_due_alerts(session, worker="a", now=start, lease=lease, limit=1)
        claim_due_alerts(session, worker="b", now=start + lease * 2, lease=lease, limit=1)
        before = session.execute(select(Alert.claimed_by, Alert.claimed_until)).one()
        released = release_claims(
            session, worker="a", now=start + lease * 2, in_flight=frozenset({held.id})
        )
        after = session.execute(select(Alert.claimed_by, Alert.claimed_until)).one()
    assert released == 0
    assert tuple(after) == tuple(before)
    assert after.claimed_by == "b"


def test_alerts_are_counted_by_status(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """What `downvote alerts` and the alerts-by-status gauge show."""
    store_downvotes(
        sessions, registered_app, [{"prompt": f"p{n}", "response": "r"} for n in range(4)]
    )
    now = utc_now()
    with sessions.begin() as session:
        first, second, _ = claim_due_alerts(
            session, worker="w", now=now, lease=timedelta(seconds=30), limit=3
        )
        mark_posted(session, first.id, worker="w", now=now)
        mark_failed(session, second.id, worker="w", error="is_archived")
        counts = count_by_status(session)
    assert counts == {"posted": 1, "failed": 1, "sending": 1, "pending": 1}


def test_each_message_due_for_an_update_is_claimed_once(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Two groups' messages are due for an update: one process claims both, the next none. A
    third group's is due only in a second, a fourth's is not in Slack yet: neither is claimed."""
    store_downvotes(
        sessions, registered_app, [{"prompt": f"p{n}", "response": "r"} for n in range(4)]
    )
    now = utc_now()
    due = [now, now, now + timedelta(seconds=1), now]
    with sessions.begin() as session:
        groups = [
            DownvoteGroup(
                app_id=registered_app.app_id, head_event_id=n + 1, signature=b"-",
                first_seen_at=now, last_seen_at=now, slack_channel_id="C1",
                slack_ts=None if n == 3 else f"1795000000.00000{n}", refresh_due_at=due[n],
            )
            for n in range(4)
        ]  # fmt: skip
        session.add_all(groups)
        session.flush()
        ids = [group.id for group in groups]
        first = claim_due_refreshes(session, DownvoteGroup, now=now)
        second = claim_due_refreshes(session, DownvoteGroup, now=now)
    assert (first, second) == (ids[:2], [])


async def test_stopping_hands_back_every_claim_at_once_not_when_its_lease_runs_out(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopped while Slack holds its first post, a worker gives back all three claims (and says
    so): the two it had not started are pending again, the one in flight keeps its state with
    its lease ended, and a second worker delivers all three, once each, with 10 minutes of lease
    left."""
    caplog.set_level(logging.INFO, logger="downvote.delivery")
    store_downvotes(
        sessions, registered_app, [{"prompt": f"p{n}", "response": "r"} for n in range(3)]
    )
    policy = DeliveryPolicy(
        base_delay=0.0, max_delay=0.0, lease=timedelta(minutes=10), in_flight_per_channel=1
    )
    with FakeSlack() as slack:
        slack.hang(600, methods=["chat.postMessage"])  # Slack never answers the first post
        stop = asyncio.Event()
        running = asyncio.create_task(make_worker(sessions, slack, policy=policy).run(stop))
        await slack.async_wait_for(
            lambda: slack.calls_to("chat.postMessage"), description="the first post attempt"
        )
        stop.set()
        running.cancel()  # as serve does once the grace for alerts in hand is over
        with pytest.raises(asyncio.CancelledError):
            await running
        with sessions() as session:
            claims = session.execute(
                select(Alert.status, Alert.claimed_until).order_by(Alert.id)
            ).all()
        assert [status for status, _ in claims] == ["sending", "pending", "pending"]
        assert claims[0].claimed_until is not None and claims[0].claimed_until <= utc_now()
        assert [until for _, until in claims[1:]] == [None, None]
        assert "handed back 3 claimed alerts on shutdown" in caplog.messages
        slack.heal()
        await deliver_all(make_worker(sessions, slack, name="second", policy=policy), sessions)
        parents = [m for m in slack.messages("#alerts") if m["thread_ts"] is None]
    assert alert_statuses(sessions) == ["posted"] * 3
    events = [m["metadata"]["event_payload"]["event_id"] for m in parents]
    assert len(events) == len(set(events)) == 3


def refuse_marking_posted(sessions: sessionmaker[Session]) -> Callable[[], None]:
    """Make the database refuse to record an alert as posted, as a full disk would; the
    function returned lifts the fault."""
    with sessions.begin() as session:
        if is_postgresql(session):
            session.execute(text(
                "CREATE FUNCTION refuse_posted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'disk full'; END $$"
            ))  # fmt: skip
            session.execute(text(
                "CREATE TRIGGER refuse_posted BEFORE UPDATE ON alerts FOR EACH ROW "
                "WHEN (NEW.status = 'posted') EXECUTE FUNCTION refuse_posted()"
            ))  # fmt: skip
        else:
            session.execute(text(
                "CREATE TRIGGER refuse_posted BEFORE UPDATE ON alerts "
                "WHEN NEW.status = 'posted' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            ))  # fmt: skip

    def lift() -> None:
        with sessions.begin() as session:
            session.execute(text("DROP TRIGGER refuse_posted" + (
                " ON alerts" if is_postgresql(session) else ""
            )))  # fmt: skip
            if is_postgresql(session):
                session.execute(text("DROP FUNCTION refuse_posted"))

    return lift


async def test_a_post_slack_took_but_the_database_did_not_record_is_not_posted_again(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Slack accepts the alert, then the write recording it fails and the worker stops: the
    next worker finds the message in the channel and records it, rather than posting twice."""
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    with FakeSlack() as slack:
        first = make_worker(sessions, slack, name="first")
        lift = refuse_marking_posted(sessions)
        with pytest.raises(Exception, match="disk full"):
            await first.deliver_due()
        assert len(slack.messages("#alerts")) == 1
        lift()
        stop = asyncio.Event()
        stop.set()
        await first.run(stop)  # stopping at once: only the hand-back runs
        await deliver_all(make_worker(sessions, slack, name="second"), sessions)
        posted = slack.messages("#alerts")
    assert len(posted) == 1
    assert alert_statuses(sessions) == ["posted"]


async def test_stopping_leaves_other_workers_claims_and_given_up_alerts_alone(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A worker that stops hands back only its own claims: an alert it gave up on stays failed
    (for `downvote alerts failed`), and another replica's claims, one with its thread begun,
    keep their owner and their lease."""

    def claims() -> list[tuple[Any, ...]]:
        with sessions() as session:
            query = select(Alert.status, Alert.claimed_by, Alert.claimed_until).order_by(Alert.id)
            return [tuple(row) for row in session.execute(query)]

    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}], channel="#gone")
    with FakeSlack() as slack:
        stopping = make_worker(sessions, slack, name="stopping")
        await stopping.deliver_due()
        others = [{"external_id": f"other{n}", "prompt": "p", "response": "r"} for n in range(2)]
        store_downvotes(sessions, registered_app, others)
        with sessions.begin() as session:
            held = claim_due_alerts(
                session, worker="other", now=utc_now(), lease=timedelta(seconds=30), limit=10
            )
            record_parent_posted(
                session, held[1].id, worker="other", channel_id="C1", ts="1700000000.000100"
            )
        before = claims()
        stop = asyncio.Event()
        stop.set()
        await stopping.run(stop)
    assert [(status, by) for status, by, _ in before] == [
        ("failed", "stopping"), ("sending", "other"), ("sending", "other"),
    ]  # fmt: skip
    assert claims() == before


async def test_a_pass_takes_one_batch_what_has_waited_longest_first(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Replicas share the outbox a batch at a time (two here); the alert due for a minute (a
    retry) goes before the two new ones, of which the older goes next."""
    events = [{"prompt": f"p{n}", "response": "r"} for n in range(3)]
    store_downvotes(sessions, registered_app, events)
    with sessions.begin() as session:
        session.execute(
            update(Alert)
            .where(Alert.id == 3)
            .values(next_attempt_at=utc_now() - timedelta(minutes=1))
        )
    policy = DeliveryPolicy(base_delay=0.0, max_delay=0.0, batch_size=2)
    with FakeSlack() as slack:
        assert await make_worker(sessions, slack, policy=policy).deliver_due() == 2
    assert alert_statuses(sessions) == ["posted", "pending", "posted"]


def test_a_worker_whose_lease_ran_out_can_no_longer_write_the_alert(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Worker a was only slow: once b has taken the alert over, what a records is ignored."""
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    lease, start = timedelta(seconds=30), utc_now()
    with sessions.begin() as session:
        [held] = claim_due_alerts(session, worker="a", now=start, lease=lease, limit=1)
        [taken] = claim_due_alerts(session, worker="b", now=start + lease * 2, lease=lease, limit=1)
        assert (taken.id, taken.reconcile) == (held.id, True)
        late = start + lease * 2
        record_parent_posted(session, held.id, worker="a", channel_id="C9", ts="1795000000.000900")
        assert not mark_posted(session, held.id, worker="a", now=late, channel_id="C9", ts="1.2")
        # refused because b holds it, not because its event was erased: a's post is not deleted
        assert not was_erased(session, held.id)
        mark_retry(session, held.id, worker="a", at=late, error="internal_error")
        mark_failed(session, held.id, worker="a", error="is_archived")
        row = session.get(Alert, held.id)
        assert row is not None
        session.refresh(row)
        assert (row.status, row.claimed_by, row.slack_ts, row.last_error) == (
            "sending",
            "b",
            None,
            None,
        )
        assert mark_posted(session, held.id, worker="b", now=late, channel_id="C1", ts="1.1")


async def test_on_postgresql_a_claim_in_progress_is_skipped_not_waited_for(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, database_url: str
) -> None:
    """A replica claiming while another's claim transaction is still open skips those rows."""
    if not is_postgresql(database_url):
        pytest.skip("SQLite has one writer at a time: a second claim waits, it cannot overlap")
    store_downvotes(
        sessions, registered_app, [{"prompt": f"p{n}", "response": "r"} for n in range(4)]
    )
    with sessions.begin() as first:
        held = claim_due_alerts(
            first, worker="first", now=utc_now(), lease=timedelta(seconds=30), limit=2
        )
        with sessions.begin() as second:  # while the first transaction is still open
            second.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would be a failure
            taken = claim_due_alerts(
                second, worker="second", now=utc_now(), lease=timedelta(seconds=30), limit=10
            )
    assert len(held) == 2 and len(taken) == 2
    assert {a.id for a in held}.isdisjoint({a.id for a in taken})


async def test_the_worker_outlives_a_database_it_cannot_reach(
    tmp_path: Path, sqlite_template: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that is away (restarting, a full disk) is logged and retried, not fatal."""
    path = tmp_path / "not-yet" / "downvote.db"
    engine = make_engine(f"sqlite:///{path}")
    sessions = make_sessionmaker(engine)
    policy = DeliveryPolicy(base_delay=0.0, max_delay=0.0, idle_poll_seconds=0.5)
    with FakeSlack() as slack:
        worker = make_worker(sessions, slack, policy=policy)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await poll(lambda: "delivery pass failed" in caplog.text, "the failure logged")
        await poll(lambda: awaiting(running, "_idle"), "a pause before the next try")
        path.parent.mkdir()
        shutil.copy(sqlite_template, path)  # the database is back
        store_downvotes(sessions, register_app(sessions), [{"prompt": "p", "response": "r"}])
        await slack.async_wait_for(slack.messages, description="the alert, once it could")
        stop.set()
        await running
    engine.dispose()
    assert alert_statuses(sessions) == ["posted"] and not running.cancelled()


async def test_a_retry_goes_out_when_it_falls_due_not_at_the_next_poll(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """After a failed attempt the worker sleeps until the retry is due (here under a second),
    not a whole idle poll (here ten minutes, so only the due time can wake it)."""
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    policy = DeliveryPolicy(base_delay=0.5, max_delay=0.5, idle_poll_seconds=600)
    with FakeSlack() as slack:
        slack.drop_connections(count=3, methods=["chat.postMessage"])  # one attempt's worth
        stop = asyncio.Event()
        running = asyncio.create_task(make_worker(sessions, slack, policy=policy).run(stop))
        await poll(lambda: alert_statuses(sessions) == ["posted"], "the retry, posted")
        stop.set()
        await running
        assert len(slack.messages("#alerts")) == 1
    with sessions() as session:
        assert session.scalar(select(Alert.attempts)) == 2


async def test_a_backlog_goes_out_batch_after_batch_without_waiting_for_the_next_poll(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Three batches' worth of downvotes (one a batch here) and a poll every minute: all three
    are posted at once, one pass after another."""
    events = [{"prompt": f"p{n}", "response": "r"} for n in range(3)]
    store_downvotes(sessions, registered_app, events)
    policy = DeliveryPolicy(base_delay=0.0, max_delay=0.0, batch_size=1, idle_poll_seconds=60)
    with FakeSlack() as slack:
        stop = asyncio.Event()
        running = asyncio.create_task(make_worker(sessions, slack, policy=policy).run(stop))
        await poll(lambda: alert_statuses(sessions) == ["posted"] * 3, "all three posted", 10)
        stop.set()
        await running


def awaiting(task: asyncio.Task[Any], name: str) -> bool:
    """Whether `task` is suspended inside the coroutine function called `name` (or its copy
    under `make mutate`, which renames it `xǁClassǁname__mutmut_orig`)."""
    coroutine: Any = task.get_coro()
    while coroutine is not None:
        code_name = getattr(getattr(coroutine, "cr_code", None), "co_name", "")
        if code_name.rsplit("ǁ", 1)[-1].split("__mutmut")[0] == name:
            return True
        coroutine = getattr(coroutine, "cr_await", None)
    return False


async def test_a_downvote_stored_wakes_an_idle_worker_from_another_thread(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Ingest stores in a thread of its own, then wakes the worker: with a ten-minute poll, the
    downvote is posted at once, not at the next poll."""
    policy = DeliveryPolicy(idle_poll_seconds=600)
    with FakeSlack() as slack:
        worker = make_worker(sessions, slack, policy=policy)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await poll(lambda: awaiting(running, "_idle"), "the worker, idle")
        store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
        await asyncio.to_thread(worker.wake)
        await poll(lambda: alert_statuses(sessions) == ["posted"], "the downvote, posted")
        stop.set()
        await running
        assert len(slack.messages("#alerts")) == 1


async def test_in_preview_mode_the_worker_prints_then_idles_without_errors(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Without Slack there is nothing to erase in it: a pass prints the alert, then the worker
    waits for the next one, with no pass failing on the way."""
    printed: list[str] = []
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    worker = make_worker(
        sessions, None, channel=None, console=printed.append,
        policy=DeliveryPolicy(idle_poll_seconds=600),
    )  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await poll(lambda: printed, "the alert, printed")
    await poll(lambda: awaiting(running, "_idle"), "the worker, idle")
    stop.set()
    await running
    assert len(printed) == 1
    assert "delivery pass failed" not in caplog.text


def test_with_nothing_waiting_nothing_falls_due(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """An empty outbox has no next due time (the worker then sleeps a whole poll)."""
    with sessions() as session:
        assert next_due_at(session) is None
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    with sessions() as session:
        due = next_due_at(session)
    assert due is not None and due <= utc_now()


async def poll(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """`wait_until` for async tests: give the loop a turn between checks."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_crash_mid_thread_resumes_after_the_last_reply_slack_has(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Slack had the parent and two replies, the database none of it: only the rest follow."""
    store_downvotes(sessions, registered_app, [{"prompt": "p " * 20_000, "response": "r"}])
    with FakeSlack() as slack:
        first = make_worker(sessions, slack, name="crashed")
        [claimed] = await first._db(
            lambda s: claim_due_alerts(
                s, worker="crashed", now=utc_now(), lease=timedelta(seconds=30), limit=1
            )
        )
        message = alert_message(claimed.event, categories=[], redactor=Redactor())
        assert len(message.replies) >= 4
        parent = slack.add_message(
            "#alerts", message.text, user="U0FAKEBOT", blocks=message.blocks,
            metadata=message.metadata,
        )  # fmt: skip
        for part in (1, 2):
            slack.add_message(
                "#alerts", message.replies[part - 1], user="U0FAKEBOT", thread_ts=parent["ts"],
                metadata={"event_type": REPLY_EVENT_TYPE,
                          "event_payload": {"event_id": claimed.event.id, "part": part}},
            )  # fmt: skip
        # Another alert's replies in the same thread (a group's) do not count for this one.
        slack.add_message(
            "#alerts", "someone else's part 3", user="U0FAKEBOT", thread_ts=parent["ts"],
            metadata={"event_type": REPLY_EVENT_TYPE,
                      "event_payload": {"event_id": claimed.event.id + 1000, "part": 3}},
        )  # fmt: skip
        with sessions.begin() as session:
            session.execute(update(Alert).values(claimed_until=utc_now() - timedelta(seconds=1)))
        await deliver_all(make_worker(sessions, slack, name="successor"), sessions)
        thread = await thread_metadata(
            AsyncWebClient(token=slack.token, base_url=slack.api_url), parent["channel"],
            parent["ts"],
        )  # fmt: skip
    mine = claimed.event.id
    ours = [m.payload["part"] for m in thread
            if m.kind == REPLY_EVENT_TYPE and m.payload["event_id"] == mine]  # fmt: skip
    assert ours == list(range(1, len(message.replies) + 1))
    assert len(slack.calls_to("chat.postMessage")) == len(message.replies) - 2
    assert alert_statuses(sessions) == ["posted"]


async def test_a_thread_begun_earlier_is_handed_back_pending_and_resumed_from_its_record(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A worker stops holding an alert whose thread an earlier attempt began (the parent and
    two replies recorded) but which it is not posting: it is pending at once, and the next
    worker posts only the missing replies, with no need to search the channel first."""
    store_downvotes(sessions, registered_app, [{"prompt": "p " * 20_000, "response": "r"}])
    with FakeSlack() as slack:
        stopping = make_worker(sessions, slack, name="stopping")
        [claimed] = await stopping._db(
            lambda s: claim_due_alerts(
                s, worker="stopping", now=utc_now(), lease=timedelta(minutes=10), limit=1
            )
        )
        message = alert_message(claimed.event, categories=[], redactor=Redactor())
        parent = slack.add_message(
            "#alerts", message.text, user="U0FAKEBOT", blocks=message.blocks,
            metadata=message.metadata,
        )  # fmt: skip
        for part in (1, 2):
            slack.add_message(
                "#alerts", message.replies[part - 1], user="U0FAKEBOT", thread_ts=parent["ts"],
                metadata={"event_type": REPLY_EVENT_TYPE,
                          "event_payload": {"event_id": claimed.event.id, "part": part}},
            )  # fmt: skip
        with sessions.begin() as session:
            record_parent_posted(
                session, claimed.id, worker="stopping", channel_id=parent["channel"],
                ts=parent["ts"],
            )  # fmt: skip
            record_replies_posted(
                session, alert_id=claimed.id, worker="stopping", count=2,
                lease_until=utc_now() + timedelta(minutes=10),
            )  # fmt: skip
        stop = asyncio.Event()
        stop.set()
        await stopping.run(stop)
        assert alert_statuses(sessions) == ["pending"]
        await deliver_all(make_worker(sessions, slack, name="next"), sessions)
        searched = [c for c in slack.calls if c.method.startswith("conversations.")]
        posted = slack.calls_to("chat.postMessage")
        thread = slack.messages(parent["channel"], thread_ts=parent["ts"])
    assert len(posted) == len(message.replies) - 2
    assert len(thread) == len(message.replies)  # the replies, each once
    assert searched == []
    assert alert_statuses(sessions) == ["posted"]


async def test_an_alert_with_no_channel_anywhere_waits_for_a_person(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Neither the app nor SLACK_CHANNEL names a channel: nothing to retry until one is set."""
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    with FakeSlack() as slack:
        await deliver_all(make_worker(sessions, slack, channel=None), sessions)
        assert slack.calls_to("chat.postMessage") == []
    with sessions() as session:
        [alert] = session.query(Alert).all()
        assert (alert.status, alert.last_error, alert.attempts) == ("failed", "no_channel", 1)


async def test_alerts_and_their_replies_never_unfurl_links(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A prompt full of URLs must not fill the channel with link previews."""
    urls = " ".join(f"https://example.com/page/{n}" for n in range(2000))
    store_downvotes(sessions, registered_app, [{"prompt": urls, "response": "see https://x.io"}])
    with FakeSlack() as slack:
        await deliver_all(make_worker(sessions, slack), sessions)
        sent = slack.calls_to("chat.postMessage")
    assert len(sent) > 1  # the parent and its replies
    assert all(p.get("unfurl_links") is False and p.get("unfurl_media") is False for p in sent)


def test_backoff_doubles_from_the_base_up_to_the_cap_with_full_jitter() -> None:
    policy = DeliveryPolicy(base_delay=2.0, max_delay=900.0)
    highest = [policy.backoff(n, rng=lambda: 1.0).total_seconds() for n in range(1, 12)]
    assert highest == [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert policy.backoff(5, rng=lambda: 0.25).total_seconds() == 8  # a quarter of 32 s
    assert policy.backoff(5, rng=lambda: 0.0).total_seconds() == 0
    assert policy.backoff(0, rng=lambda: 1.0).total_seconds() == 2  # never below the base


async def test_a_group_member_posted_before_a_crash_is_found_in_its_thread(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A later downvote goes into its group's thread: after a crash, that is where it is looked
    for (channel history does not list thread replies), so it is not posted twice."""
    from bot.alerts import grouping
    from bot.alerts.message import member_message
    from bot.config import Grouping

    prompt = "Where is my order #{}? The tracking page has said nothing since Monday."
    store_downvotes(sessions, registered_app, [{"prompt": prompt.format(1), "response": "r"}])
    with FakeSlack() as slack:
        await deliver_all(make_worker(sessions, slack, grouping=Grouping()), sessions)
        [parent] = slack.messages()
        with sessions.begin() as session:
            store_events(
                session, app_id=registered_app.app_id, channel=None, now=utc_now(),
                events=[NewEvent(external_id="later", rating="down", prompt=prompt.format(2),
                                 response="r", occurred_at=utc_now())],
            )  # fmt: skip
        crashed = make_worker(sessions, slack, name="crashed", grouping=Grouping())
        [claimed] = await crashed._db(
            lambda s: claim_due_alerts(
                s, worker="crashed", now=utc_now(), lease=timedelta(seconds=30), limit=1
            )
        )
        [placed] = (await grouping.place(sessions, Grouping(), [claimed])).values()
        assert not placed.is_head
        member = member_message(claimed.event, redactor=Redactor())
        slack.add_message(
            "#alerts", member.text, user="U0FAKEBOT", blocks=member.blocks,
            metadata=member.metadata, thread_ts=parent["ts"],
        )  # fmt: skip
        with sessions.begin() as session:
            session.execute(update(Alert).values(claimed_until=utc_now() - timedelta(seconds=1)))
        before = len(slack.calls_to("chat.postMessage"))
        await deliver_all(make_worker(sessions, slack, name="successor", grouping=Grouping()),
                          sessions)  # fmt: skip
        assert len(slack.calls_to("chat.postMessage")) == before
        assert len(thread_of(slack, parent)) == 1
    assert alert_statuses(sessions) == ["posted", "posted"]


ORDER = "Where is my order #{}? The tracking page has said nothing since Monday."


async def test_a_group_s_later_downvote_waits_for_the_first_s_message_without_using_an_attempt(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """The group's first downvote is being posted by another replica: the later one waits
    (2 s, no attempt used) and then goes into the first one's thread."""
    from bot.alerts import grouping
    from bot.config import Grouping

    store_downvotes(sessions, registered_app, [{"prompt": ORDER.format(1), "response": "r"}])
    with sessions.begin() as session:
        head = claim_due_alerts(
            session, worker="other", now=utc_now(), lease=timedelta(seconds=30), limit=1
        )
    await grouping.place(sessions, Grouping(), head)
    later = [{"external_id": "later", "prompt": ORDER.format(2), "response": "r"}]
    store_downvotes(sessions, registered_app, later)
    clock = FakeClock(utc_now())
    with FakeSlack() as slack:
        worker = make_worker(sessions, slack, clock=clock, grouping=Grouping())
        assert await worker.deliver_due() == 1
        assert slack.calls_to("chat.postMessage") == []
        with sessions() as session:
            waiting = session.get(Alert, 2)
            assert waiting is not None and (waiting.status, waiting.attempts) == ("pending", 0)
        clock.advance(1)
        assert await worker.deliver_due() == 0  # still waiting
        with sessions.begin() as session:  # the other replica died; its lease runs out
            session.execute(update(Alert).where(Alert.id == 1).values(claimed_until=utc_now()))
        clock.advance(30)
        await worker.deliver_due()
        [parent] = [m for m in slack.messages() if m["thread_ts"] is None]
        [member] = thread_of(slack, parent)
    assert member["metadata"]["event_payload"]["event_id"] == 2
    assert "Another downvote like this one" in member["text"] + json.dumps(member["blocks"])
    assert "actions" not in {block["type"] for block in member["blocks"]}  # no controls
    with sessions() as session:
        rows = session.execute(select(Alert.status, Alert.attempts).order_by(Alert.id)).all()
    assert [tuple(row) for row in rows] == [("posted", 2), ("posted", 1)]


async def test_a_group_s_downvotes_stored_together_go_out_in_one_pass_first_one_first(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """No waiting when the first downvote of a group is in the same batch: it is posted, then
    the later ones go into its thread, in the same pass."""
    from bot.config import Grouping

    events = [{"prompt": ORDER.format(n), "response": "r"} for n in range(3)]
    store_downvotes(sessions, registered_app, events)
    with FakeSlack() as slack:
        await make_worker(
            sessions, slack, clock=FakeClock(utc_now()), grouping=Grouping()
        ).deliver_due()
        [parent] = [m for m in slack.messages() if m["thread_ts"] is None]
        members = thread_of(slack, parent)
    assert parent["metadata"]["event_payload"]["event_id"] == 1
    assert sorted(m["metadata"]["event_payload"]["event_id"] for m in members) == [2, 3]
    assert alert_statuses(sessions) == ["posted"] * 3


async def test_each_alert_records_where_and_when_it_was_posted(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """The group's first downvote in the channel, the later one in its thread: each alert keeps
    its message, the thread it went into (what erasure later deletes its notes from) and when."""
    from bot.config import Grouping

    events = [{"prompt": ORDER.format(n), "response": "r"} for n in range(2)]
    store_downvotes(sessions, registered_app, events)
    clock = FakeClock(utc_now())
    with FakeSlack() as slack:
        worker = make_worker(sessions, slack, clock=clock, grouping=Grouping())
        await deliver_all(worker, sessions)
        [parent] = [m for m in slack.messages() if m["thread_ts"] is None]
        [member] = thread_of(slack, parent)
    with sessions() as session:
        query = select(Alert.slack_channel_id, Alert.slack_ts, Alert.slack_thread_ts,
                       Alert.posted_at).order_by(Alert.id)  # fmt: skip
        recorded = [tuple(row) for row in session.execute(query)]
    assert recorded == [
        (parent["channel"], parent["ts"], None, clock.now()),
        (member["channel"], member["ts"], parent["ts"], clock.now()),
    ]


async def test_a_post_made_after_another_worker_took_the_alert_over_is_not_deleted(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Worker a was slow: b took the alert over, then a's post went through. a cannot record it
    (b will find it in the channel), and must not take it back as if the event were erased."""
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    lease, start = timedelta(seconds=30), utc_now()
    with FakeSlack() as slack:
        a = make_worker(sessions, slack, name="a")
        with sessions.begin() as session:
            [held] = claim_due_alerts(session, worker="a", now=start, lease=lease, limit=1)
            claim_due_alerts(session, worker="b", now=start + lease * 2, lease=lease, limit=1)
        assert await a.deliver(held) is None
        assert len(slack.messages("#alerts")) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(SlackDeletion)) == 0


async def test_a_group_whose_first_downvote_failed_for_good_posts_the_later_ones_alone(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """The first one's channel is gone: a later downvote of the group does not wait for a
    thread that will never be, it is an alert of its own, with the controls."""
    from bot.config import Grouping

    first = [{"prompt": ORDER.format(1), "response": "r"}]
    store_downvotes(sessions, registered_app, first, channel="#gone")
    with FakeSlack() as slack:
        worker = make_worker(sessions, slack, grouping=Grouping())
        await worker.deliver_due()
        later = [{"external_id": "later", "prompt": ORDER.format(2), "response": "r"}]
        store_downvotes(sessions, registered_app, later)
        await worker.deliver_due()
        [alone] = slack.messages("#alerts")
    assert alert_statuses(sessions) == ["failed", "posted"]
    assert alone["thread_ts"] is None and alone["metadata"]["event_payload"]["event_id"] == 2
    assert "actions" in {block["type"] for block in alone["blocks"]}
