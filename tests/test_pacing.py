"""Pacing: full speed until Slack rate-limits a channel, then one post per interval there."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from bot.slack.pacing import ChannelPacer
from tests.support.alerting import alert_statuses, make_worker, store_downvotes
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp
from tests.support.fake_slack import FakeSlack
from tests.test_delivery import deliver_all


class RecordingClock(FakeClock):
    """A FakeClock that also notes each sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        await super().sleep(seconds)


async def test_pacer_spaces_posts_only_after_a_rate_limit() -> None:
    clock = RecordingClock()
    slept = clock.slept
    pacer = ChannelPacer(interval=1.0, cooldown=60.0, clock=clock)

    async def post(channel: str, takes: float = 0.25) -> None:
        await pacer.wait_turn(channel)
        clock.advance(takes)  # the Web API call
        pacer.posted(channel)

    for _ in range(3):
        await post("#alerts")
    assert slept == []  # never limited: full speed
    pacer.rate_limited("#alerts", retry_after=2)  # slack_sdk then waits and retries the post
    clock.advance(2.5)
    pacer.posted("#alerts")
    for _ in range(3):
        await post("#alerts")
    assert slept == [1.0, 1.0, 1.0]  # an interval after each post went through
    await post("#other")  # other channels are not slowed
    assert slept == [1.0, 1.0, 1.0]
    clock.advance(61)
    await post("#alerts")
    assert slept == [1.0, 1.0, 1.0]  # cool-down over: full speed again


async def test_a_burst_into_a_limited_channel_earns_one_429_not_one_per_message(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """12 alerts into a channel limited to 3 posts/s (bursts of 3): without pacing, every third
    post or so would be refused. One clock for the fake's limiter, the pacer and slack_sdk's
    Retry-After wait, so the result does not depend on how fast this machine is."""
    events = [{"prompt": f"p{n}", "response": "r"} for n in range(12)]
    store_downvotes(sessions, registered_app, events)
    clock = FakeClock()
    with FakeSlack(rate_limit_per_channel_per_sec=3, clock=clock) as slack:
        worker = make_worker(sessions, slack, pacer=ChannelPacer(interval=0.35, clock=clock))
        await deliver_all(worker, sessions)
        limited = [o for o in slack.outcomes if o.status == 429]
    assert alert_statuses(sessions) == ["posted"] * 12
    assert len(limited) == 1


def test_posts_limited_together_get_slots_one_interval_apart() -> None:
    """Posts in flight when Slack said 429 retry one at a time, not all after one Retry-After."""
    clock = FakeClock()
    pacer = ChannelPacer(interval=1.0, clock=clock)
    for _ in range(3):
        pacer.rate_limited("C0ALERTS", retry_after=2)
    assert [pacer.reserve("C0ALERTS") for _ in range(3)] == [2.0, 3.0, 4.0]
    assert pacer.reserve("C0OTHER") == 0.0  # another channel is not held up
