"""Spike control: a burst of new problems gathers in one message's thread, nothing is dropped,
and the channel gets no more than Slack's one message a second."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.delivery import DeliveryWorker
from bot.alerts.spike_message import spike_metadata
from bot.alerts.spikes import rules_of
from bot.config import Grouping, SpikeLimits
from bot.slack.pacing import ChannelPacer
from storage import spikes
from storage.events import NewEvent, store_events
from storage.models import Alert, Spike
from storage.states import AlertStatus
from tests.support.alerting import make_worker
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp
from tests.support.fake_slack import FakeSlack
from tests.support.prompts import distinct_prompt

# Slack: "chat.postMessage has special rate limiting conditions ... it will generally allow an
# app to post 1 message per second to a specific channel, with short bursts of more allowed."
SLACK_MESSAGES_PER_SECOND = 1
SPIKE = "downvote_spike"


def kind(message: dict[str, Any]) -> str:
    return str((message.get("metadata") or {}).get("event_type", ""))


def store(sessions: sessionmaker[Session], app: RegisteredApp, clock: FakeClock, n: int) -> None:
    """One downvote of a new problem, received now."""
    with sessions.begin() as session:
        store_events(
            session, app_id=app.app_id, channel=None, now=clock.now(),
            events=[NewEvent(external_id=f"burst-{n}", rating="down", prompt=distinct_prompt(n),
                             response="Sorry, something went wrong.", occurred_at=clock.now(),
                             feature="checkout" if n % 3 else "search", model="model-a")],
        )  # fmt: skip


def pending(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count()).where(Alert.status != AlertStatus.POSTED).select_from(Alert)
            )
            or 0
        )


async def drain(worker: DeliveryWorker, sessions: sessionmaker[Session]) -> None:
    for _ in range(200):
        if not pending(sessions):
            return
        await worker.deliver_due()
    raise AssertionError("alerts still pending after 200 passes")


def spike_worker(
    sessions: sessionmaker[Session], slack: FakeSlack, clock: FakeClock
) -> DeliveryWorker:
    """The README's defaults: grouping on, spike control at 20 in 10 min and 5x the usual."""
    return make_worker(
        sessions, slack, pacer=ChannelPacer(clock=clock), clock=clock, grouping=Grouping(),
        spike_limits=SpikeLimits(),
    )  # fmt: skip


async def test_fifty_new_problems_in_five_seconds_make_one_spike_message(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    clock = FakeClock()
    with FakeSlack(clock=clock, rate_limit_per_channel_per_sec=SLACK_MESSAGES_PER_SECOND) as slack:
        worker = spike_worker(sessions, slack, clock)
        started = clock.now()
        # Ten a second for five seconds; between them the worker makes a pass, posting at
        # Slack's pace (which takes longer than the arrivals: fewer would be posted in truth).
        for second in range(5):
            for n in range(10):
                store(sessions, registered_app, clock, second * 10 + n)
                clock.advance(0.1)
            await worker.deliver_due()
        await drain(worker, sessions)
        finished = clock.now()

        top_level = [m for m in slack.messages() if m["thread_ts"] is None]
        assert len(top_level) <= 12
        [spike] = [m for m in top_level if kind(m) == SPIKE]
        assert "spike" in spike["text"].lower()
        in_thread = slack.messages(spike["channel"], thread_ts=spike["ts"])
        alerts = [m for m in slack.messages() if kind(m) == "downvote_alert"]
        assert len({m["metadata"]["event_payload"]["event_id"] for m in alerts}) == 50
        assert len(alerts) == 50
        assert sum(kind(m) == "downvote_alert" for m in in_thread) == 50 - (len(top_level) - 1)
        for message in in_thread[1:]:  # each new problem keeps its triage controls
            assert "triage_categories" in json.dumps(message["blocks"])
        assert finished - started <= timedelta(minutes=4)
        with sessions() as session:  # by name: a successor then looks in Slack before posting
            assert session.scalar(select(Spike.claimed_by)) == worker.name
        # Only the opening burst meets a 429; from then on the channel is paced.
        limited = [i for i, o in enumerate(slack.outcomes) if o.status == 429]
        assert max(limited, default=0) < 10 and len(slack.outcomes) > 50

        # Updated in place while it lasts: the count, the rate, top features, models, groups.
        clock.advance(10)
        await worker.deliver_due()
        shown = json.dumps(slack.message(spike["channel"], spike["ts"])["blocks"])
        assert "50 downvotes in the last 10 min" in shown
        assert "checkout (33)" in shown and "search (17)" in shown and "model-a (50)" in shown


async def test_a_spike_ends_after_ten_quiet_minutes_with_its_total(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    clock = FakeClock()
    with FakeSlack(clock=clock) as slack:
        worker = spike_worker(sessions, slack, clock)
        for n in range(25):
            store(sessions, registered_app, clock, n)
        await drain(worker, sessions)
        [spike] = [m for m in slack.messages() if kind(m) == SPIKE]
        clock.advance(11 * 60)  # the burst left the 10-minute window: calming down
        await worker.deliver_due()
        assert "over" not in slack.message(spike["channel"], spike["ts"])["text"]
        clock.advance(9 * 60)
        await worker.deliver_due()
        assert "over" not in slack.message(spike["channel"], spike["ts"])["text"]
        clock.advance(60)  # ten minutes below the threshold
        await worker.deliver_due()
        ended = slack.message(spike["channel"], spike["ts"])
        assert "is over" in ended["text"]
        assert "25 downvotes* in total" in json.dumps(ended["blocks"])
        # The next burst is a new spike, with a message of its own.
        for n in range(100, 125):
            store(sessions, registered_app, clock, n)
        await drain(worker, sessions)
        assert [kind(m) for m in slack.messages() if m["thread_ts"] is None].count(SPIKE) == 2
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(Spike)) == 2


async def test_a_steady_busy_app_is_no_spike(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """30 downvotes in ten minutes, when the week before had about 6 every ten minutes (5x is
    31): no spike, each its own alert."""
    clock = FakeClock()
    with FakeSlack(clock=clock) as slack:
        worker = spike_worker(sessions, slack, clock)
        for day in range(7):  # 900 a day: 6.25 per ten minutes, already delivered
            with sessions.begin() as session:
                store_events(
                    session, app_id=registered_app.app_id, channel=None, now=clock.now(),
                    events=[NewEvent(external_id=f"old-{day}-{k}", rating="down", prompt="p",
                                     response="r", occurred_at=clock.now()) for k in range(900)],
                )  # fmt: skip
                session.execute(update(Alert).values(status=AlertStatus.POSTED))
            clock.advance(24 * 3600)
        for k in range(30):
            store(sessions, registered_app, clock, k)
        await drain(worker, sessions)
        assert not [m for m in slack.messages() if kind(m) == SPIKE]
        assert len([m for m in slack.messages() if m["thread_ts"] is None]) == 30


async def test_a_spike_message_a_dead_process_posted_is_found_not_posted_again(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """A process opened the spike and posted its message, then died before recording it; once
    its claim runs out the next process finds that message and threads the burst under it."""
    clock = FakeClock()
    with FakeSlack(clock=clock) as slack:
        for n in range(25):
            store(sessions, registered_app, clock, n)
        with sessions.begin() as session:
            spike = spikes.current(
                session, registered_app.app_id, now=clock.now(), rules=rules_of(SpikeLimits())
            )
            assert spike is not None
            spikes.claim_message(
                session, spike.id, worker="dead", now=clock.now(), lease=timedelta(seconds=30)
            )
        posted = slack.add_message(
            "#alerts", "A spike", user="U0FAKEBOT", metadata=spike_metadata(spike.id)
        )
        clock.advance(31)
        await drain(spike_worker(sessions, slack, clock), sessions)
        spike_messages = [m for m in slack.messages() if kind(m) == SPIKE]
        in_thread = slack.messages(posted["channel"], thread_ts=posted["ts"])
    assert [m["ts"] for m in spike_messages] == [posted["ts"]]
    assert len(in_thread) >= 20


async def test_a_new_problem_joining_a_calming_spike_shows_on_its_message(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """The burst has left the window (the spike is calming, its peak behind it) when one more
    new problem comes: it goes into the spike's thread, and the message counts it."""
    clock = FakeClock()
    with FakeSlack(clock=clock) as slack:
        worker = spike_worker(sessions, slack, clock)
        for n in range(25):
            store(sessions, registered_app, clock, n)
        await drain(worker, sessions)
        [spike] = [m for m in slack.messages() if kind(m) == SPIKE]
        clock.advance(11 * 60)
        await worker.deliver_due()
        before = json.dumps(slack.message(spike["channel"], spike["ts"])["blocks"])
        store(sessions, registered_app, clock, 100)
        await drain(worker, sessions)
        clock.advance(10)
        await worker.deliver_due()
        after = json.dumps(slack.message(spike["channel"], spike["ts"])["blocks"])
        last = slack.messages(spike["channel"], thread_ts=spike["ts"])[-1]
    assert "(25 since it began)" in before
    assert "*1 downvotes in the last 10 min* (26 since it began)" in after
    assert last["metadata"]["event_payload"]["external_id"] == "burst-100"
