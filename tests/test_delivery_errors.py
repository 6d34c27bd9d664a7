"""What delivery does with each way Slack can fail: give up at once, or try again later.

The fake answers as Slack does; slack_sdk's own handlers retry 5xx and dropped connections twice
within a call, and the outbox then decides: a permanent error waits for a person in
`downvote alerts failed`, a transient one is tried again, up to the attempt limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.delivery import DeliveryPolicy
from storage.models import Alert
from tests.support.alerting import alert_statuses, make_worker, store_downvotes
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp
from tests.support.fake_slack import FakeSlack
from tests.support.signing import utc_now

POLICY = DeliveryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
PERMANENT = ["is_archived", "not_in_channel", "account_inactive", "msg_blocks_too_long",
             "invalid_blocks", "token_revoked", "restricted_action"]  # fmt: skip


def alert_row(sessions: sessionmaker[Session]) -> Alert:
    with sessions() as session:
        return session.scalars(select(Alert)).one()


def posts(slack: FakeSlack) -> int:
    return len(slack.calls_to("chat.postMessage"))


@pytest.mark.parametrize("error", PERMANENT)
async def test_a_permanent_error_is_tried_once(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, error: str
) -> None:
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    with FakeSlack() as slack:
        slack.fail_with_error(error, methods=["chat.postMessage"])
        worker = make_worker(sessions, slack, policy=POLICY)
        for _ in range(3):
            await worker.deliver_due()
        assert posts(slack) == 1
    row = alert_row(sessions)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error is not None and row.last_error.startswith(error)


async def test_a_revoked_token_and_a_private_channel_fail_at_once(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    store_downvotes(
        sessions, registered_app, [{"external_id": "x", "prompt": "p", "response": "r"}],
        channel="#secret",
    )  # fmt: skip
    with FakeSlack() as slack:
        slack.add_channel("#secret", private=True)
        await make_worker(sessions, slack, policy=POLICY).deliver_due()
        assert alert_statuses(sessions) == ["posted", "failed"]
        store_downvotes(
            sessions, registered_app, [{"external_id": "y", "prompt": "p", "response": "r"}]
        )
        await make_worker(sessions, slack, policy=POLICY, token="xoxb-revoked").deliver_due()
    with sessions() as session:
        errors = list(session.scalars(select(Alert.last_error).order_by(Alert.id)))
    assert alert_statuses(sessions) == ["posted", "failed", "failed"]
    assert errors[1].startswith("channel_not_found (#secret): ")
    assert errors[2] == "invalid_auth"


# How to make Slack fail, and how many calls one attempt makes: slack_sdk retries a 5xx and a
# dropped connection twice within the call; a timeout it leaves to us.
TRANSIENT: dict[str, tuple[Callable[[FakeSlack], None], int]] = {
    "5xx": (lambda slack: slack.fail_with_status(503, methods=["chat.postMessage"]), 3),
    "connection reset": (lambda slack: slack.drop_connections(methods=["chat.postMessage"]), 3),
    "timeout": (lambda slack: slack.hang(5, methods=["chat.postMessage"]), 1),
}


# What a pending alert's last_error says after each kind of failure.
LAST_ERROR = {"5xx": "fatal_error", "connection reset": "connection: ", "timeout": "connection: "}


@pytest.mark.parametrize("failure", TRANSIENT)
async def test_a_transient_failure_is_retried_up_to_the_limit_then_dead_lettered(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, failure: str
) -> None:
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    fail, calls_per_attempt = TRANSIENT[failure]
    with FakeSlack() as slack:
        fail(slack)
        worker = make_worker(sessions, slack, policy=POLICY, timeout=0.3)
        for attempt in (1, 2):
            await worker.deliver_due()
            row = alert_row(sessions)
            # kept for another try, saying why (as `downvote alerts failed` would, once failed)
            assert (row.status, row.attempts) == ("pending", attempt)
            assert row.last_error is not None and row.last_error.startswith(LAST_ERROR[failure])
        await worker.deliver_due()
        await worker.deliver_due()  # nothing left to try
        tries = posts(slack)
    row = alert_row(sessions)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error is not None and row.last_error.startswith("gave up after 3 attempts: ")
    assert tries == 3 * calls_per_attempt


async def test_a_transient_failure_then_success_posts_once(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    with FakeSlack() as slack:
        slack.drop_connections(count=3, methods=["chat.postMessage"])  # one attempt's worth
        worker = make_worker(sessions, slack, policy=POLICY)
        await worker.deliver_due()
        assert alert_row(sessions).status == "pending"
        await worker.deliver_due()
        assert len(slack.messages()) == 1
    row = alert_row(sessions)
    assert (row.status, row.attempts, row.last_error) == ("posted", 2, None)


async def test_a_thread_cut_short_by_slack_resumes_after_its_last_confirmed_reply(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Slack took the message and two replies, then failed one: the next attempt posts only the
    replies still missing, in order, and each alert keeps the place of its own message (where
    triage and erasure find it)."""
    store_downvotes(
        sessions, registered_app, [{"external_id": "short", "prompt": "p", "response": "r"}]
    )
    with FakeSlack() as slack:
        worker = make_worker(sessions, slack, policy=POLICY)
        await worker.deliver_due()
        store_downvotes(sessions, registered_app, [{"prompt": "p " * 20_000, "response": "r"}])
        slack.fail_with_error("internal_error", count=1, after=3, methods=["chat.postMessage"])
        await worker.deliver_due()
        assert alert_statuses(sessions) == ["posted", "pending"]
        await worker.deliver_due()
        parents = [m for m in slack.messages() if m["thread_ts"] is None]
        replies = slack.messages(parents[1]["channel"], thread_ts=parents[1]["ts"])
    assert len(parents) == 2
    parts = [m["metadata"]["event_payload"]["part"] for m in replies]
    assert len(parts) >= 4 and parts == list(range(1, len(parts) + 1))
    with sessions() as session:
        rows = list(session.scalars(select(Alert).order_by(Alert.id)))
    assert [(r.status, r.attempts) for r in rows] == [("posted", 1), ("posted", 2)]
    posted = {m["ts"]: m["metadata"]["event_payload"]["event_id"] for m in parents}
    assert [posted[r.slack_ts] for r in rows] == [r.event_id for r in rows]


async def test_a_failing_channel_s_waiting_alerts_keep_their_attempts_and_their_turn(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """While Slack fails a channel, its first alert uses its attempts (2 here) and waits its
    backoff between them; the alerts behind it wait too, without using any, then get their own."""
    store_downvotes(
        sessions, registered_app, [{"prompt": f"p{n}", "response": "r"} for n in range(3)]
    )
    clock = FakeClock(utc_now())
    policy = DeliveryPolicy(max_attempts=2, base_delay=1.0, max_delay=1.0, in_flight_per_channel=1)
    with FakeSlack() as slack:
        slack.fail_with_error("internal_error", methods=["chat.postMessage"])
        worker = make_worker(sessions, slack, policy=policy, clock=clock)
        await worker.deliver_due()
        assert await worker.deliver_due() == 0  # within the backoff: nothing is tried
        assert posts(slack) == 1
        clock.advance(1)  # the backoff is at most 1 s
        await worker.deliver_due()  # the first gives up; the next is tried, the third waits
        assert posts(slack) == 3
    with sessions() as session:
        rows = session.execute(select(Alert.status, Alert.attempts).order_by(Alert.id)).all()
    assert [tuple(row) for row in rows] == [("failed", 2), ("pending", 1), ("pending", 0)]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_each_cause_of_giving_up_is_logged_once_and_the_outbox_is_counted(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Three alerts for a missing channel and one for a private one: two error lines, one per
    cause, each naming its first alert, its event and what to do; /metrics shows the outbox."""
    caplog.set_level(logging.DEBUG, logger="downvote.delivery")
    gone = [{"external_id": f"gone{n}", "prompt": "p", "response": "r"} for n in range(3)]
    store_downvotes(sessions, registered_app, gone, channel="#gone")
    secret = [{"external_id": "secret", "prompt": "p", "response": "r"}]
    store_downvotes(sessions, registered_app, secret, channel="#secret")
    with FakeSlack() as slack:
        slack.add_channel("#secret", private=True)
        await make_worker(sessions, slack, policy=POLICY).deliver_due()
    with sessions() as session:
        reasons = list(session.scalars(select(Alert.last_error).order_by(Alert.id)))
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.name == "downvote.delivery" and r.levelno == logging.ERROR
    ]

    def line(n: int, event: str) -> str:
        fix = "see `downvote alerts failed`"
        return f"alert {n} (event {event}) failed for good: {reasons[n - 1]}; {fix}"

    # The three #gone alerts are posted side by side: whichever fails first is the one named.
    assert len(errors) == 2
    assert sum(errors.count(line(n, f"gone{n - 1}")) for n in (1, 2, 3)) == 1
    assert errors.count(line(4, "secret")) == 1
    outbox = {s: sample("downvote_alerts", status=s) for s in ("pending", "sending", "posted")}
    assert outbox == {"pending": 0, "sending": 0, "posted": 0}
    assert sample("downvote_alerts", status="failed") == 4


async def test_a_retry_is_logged_with_its_attempt_and_next_time_and_counted(
    sessions: sessionmaker[Session], registered_app: RegisteredApp, caplog: pytest.LogCaptureFixture
) -> None:
    store_downvotes(sessions, registered_app, [{"prompt": "p", "response": "r"}])
    clock = FakeClock(utc_now())
    before = sample("downvote_alerts_retried_total", reason="internal_error")
    with FakeSlack() as slack:
        slack.fail_with_error("internal_error", methods=["chat.postMessage"])
        await make_worker(sessions, slack, policy=POLICY, clock=clock).deliver_due()
    assert (
        f"alert 1 not delivered (internal_error); attempt 1 of 3, next at {clock.now().isoformat()}"
        in caplog.messages
    )
    assert sample("downvote_alerts_retried_total", reason="internal_error") == before + 1
    assert sample("downvote_alerts", status="pending") == 1
