"""The delivery worker: posts each downvote from the outbox to Slack, exactly once.

Claims are made in the database, so any number of `downvote serve` processes can share one
PostgreSQL. Each claimed downvote is placed in its group, routed (the channel, its group's
thread, or a spike's), posted by `bot.alerts.posting` (which records each step Slack confirms),
and recorded; a failure is retried with backoff or given up on. Between passes the worker
updates grown groups' and spikes' messages and deletes erased events' messages.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts import grouping
from bot.alerts.erasure import SlackEraser
from bot.alerts.grouping import REFRESH_EVERY
from bot.alerts.message import (
    AlertMessage,
    alert_message,
    member_message,
)
from bot.alerts.metrics import (
    ALERT_DELAY_SECONDS,
    ALERTS_BY_STATUS,
    ALERTS_FAILED,
    ALERTS_POSTED,
    ALERTS_RETRIED,
)
from bot.alerts.posting import AlertPoster, DeliveryError
from bot.alerts.preview import block_kit_builder_url, message_as_text
from bot.alerts.redaction import Redactor
from bot.alerts.spikes import SpikeControl
from bot.config import Grouping, SpikeLimits
from bot.slack.channels import Channels
from bot.slack.pacing import ChannelPacer
from storage import alerts as outbox
from storage import erasure, groups, leases, triage
from storage.alerts import ClaimedAlert
from storage.clock import SYSTEM_CLOCK, Clock
from storage.db import read_in_thread, transact_in_thread
from storage.groups import Placement
from storage.states import AlertStatus
from storage.triage import PostedAlert

logger = logging.getLogger("downvote.delivery")
Placements = Mapping[int, Placement]  # by event id
MIN_IDLE_SECONDS = 0.05  # the shortest idle wait, even when something is due already
PARENT_WAIT = timedelta(seconds=2)  # an alert waits this long for its group's or spike's message


@dataclass(frozen=True)
class Route:
    """Where an alert goes: a thread (channel id, ts), or the channel; `member` when it is a
    group's later downvote (no controls), `spike` when a spike's thread holds it."""

    thread: tuple[str, str] | None
    member: bool = False
    spike: int | None = None


CHANNEL = Route(None)


def _is_member(placement: Placement | None) -> bool:
    return placement is not None and not placement.is_head


def _chunk(alerts: list[ClaimedAlert], placements: Placements) -> list[ClaimedAlert]:
    """The alerts to post at once: up to a group's later downvote that follows another alert
    (its parent may be that one, so it goes after it)."""
    members = [_is_member(placements.get(alert.event.id)) for alert in alerts]
    for index in range(1, len(alerts)):
        if members[index] and not all(members[:index]):
            return alerts[:index]
    return alerts


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: exponential backoff with full jitter, then give up."""

    max_attempts: int = 12
    base_delay: float = 2.0
    max_delay: float = 900.0
    lease: timedelta = timedelta(minutes=2)
    batch_size: int = 20
    idle_poll_seconds: float = 5.0
    # Posts in flight at once to one channel while Slack keeps up (one at a time once it
    # rate-limits the channel): a slow Web API then still keeps up with a busy app.
    in_flight_per_channel: int = 4

    def backoff(self, attempts: int, rng: Callable[[], float] = random.random) -> timedelta:
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1))
        return timedelta(seconds=rng() * ceiling)


@dataclass
class DeliveryWorker:
    sessions: sessionmaker[Session]
    client: AsyncWebClient | None  # None: preview mode, print instead of post
    default_channel: str | None
    redactor: Redactor
    default_categories: Sequence[str]
    name: str
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    clock: Clock = SYSTEM_CLOCK
    console: Callable[[str], None] = print
    pacer: ChannelPacer = field(default_factory=ChannelPacer)
    channels: Channels | None = None  # made from `client` when not given
    grouping: Grouping = field(default_factory=lambda: Grouping(enabled=False))
    spike_limits: SpikeLimits = field(default_factory=lambda: SpikeLimits(enabled=False))
    _wake: asyncio.Event | None = field(default=None, init=False)
    _reported: set[str] = field(default_factory=set, init=False)
    _in_flight: set[int] = field(default_factory=set, init=False)  # alerts being posted now
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.channels is None and self.client is not None:
            self.channels = Channels(self.client, self.sessions, self.clock)
        self._spikes = SpikeControl(
            self.sessions, self.spike_limits, self.clock, self.name, self.policy.lease
        )
        self._poster = (
            AlertPoster(
                self.client,
                self.channels,
                self.pacer,
                self.sessions,
                self.clock,
                self.name,
                self.policy.lease,
            )
            if self.client is not None and self.channels is not None
            else None
        )
        self._eraser = (
            SlackEraser(
                self.sessions, self.client, self.channels, self.clock, self.name, self.policy.lease
            )
            if self.client is not None and self.channels is not None
            else None
        )

    async def _db(self, work: Callable[[Session], Any]) -> Any:
        return await transact_in_thread(self.sessions, work)

    async def _read(self, work: Callable[[Session], Any]) -> Any:
        return await read_in_thread(self.sessions, work)

    def wake(self) -> None:
        """Called (from any thread) when downvotes were stored, so they go out at once."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the alerts in hand and hand back the rest."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            while not stop.is_set():
                # Cleared before the pass, not after: a downvote stored during the pass must
                # start another pass at once, not wait for the next poll.
                self._wake.clear()
                if not await self._pass():
                    await self._idle(stop)
        finally:  # stopped, or cancelled mid-post when the grace period ran out
            await self._hand_back()

    async def _pass(self) -> int:
        try:
            delivered = await self.deliver_due()
            return delivered + (await self._eraser.erase_due() if self._eraser else 0)
        except Exception:  # a database hiccup must not kill the worker
            logger.exception("delivery pass failed; retrying shortly")
            return 0

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a wake-up (a downvote stored here), a stop, the next alert falling due (a
        retry, or one waiting for its thread's parent), or the next poll, whichever is first."""
        assert self._wake is not None
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(
            waiters, timeout=await self._until_due(), return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in waiters:
            waiter.cancel()

    async def _until_due(self) -> float:
        """Seconds to sleep: until the next alert falls due, at most one poll, and never so
        little that a row another replica holds locked makes this loop spin."""
        poll = self.policy.idle_poll_seconds
        try:
            due: datetime | None = await self._read(leases.next_due_at)
        except Exception:  # the next pass reports a database that is down
            return poll
        if due is None:
            return poll
        return min(poll, max(MIN_IDLE_SECONDS, (due - self.clock.now()).total_seconds()))

    async def _hand_back(self) -> None:
        """Give every claim back now rather than when its lease runs out: another process
        takes an untouched alert at once, and one that was being posted after checking Slack."""
        in_flight = frozenset(self._in_flight)
        released = await self._db(
            lambda s: outbox.release_claims(
                s, worker=self.name, now=self.clock.now(), in_flight=in_flight
            )
        )
        if released:
            logger.info("handed back %d claimed alerts on shutdown", released)

    async def deliver_due(self) -> int:
        """Claim what is due and deliver it: channels in parallel, each channel in order."""
        claimed: list[ClaimedAlert] = await self._db(
            lambda s: outbox.claim_due_alerts(
                s,
                worker=self.name,
                now=self.clock.now(),
                lease=self.policy.lease,
                limit=self.policy.batch_size,
            )
        )
        if not claimed:
            await self._refresh()
            return 0
        placements = await grouping.place(self.sessions, self.grouping, claimed)
        by_channel: dict[str | None, list[ClaimedAlert]] = defaultdict(list)
        for alert in claimed:
            by_channel[alert.channel or self.default_channel].append(alert)
        await asyncio.gather(
            *(self._deliver_channel(c, a, placements) for c, a in by_channel.items())
        )
        await self._refresh()
        await self._refresh_gauges()
        return len(claimed)

    async def _deliver_channel(
        self, channel: str | None, alerts: list[ClaimedAlert], placements: Placements
    ) -> None:
        """In claim order, a few at a time (one once Slack rate-limits the channel); stop at the
        first transient failure, since the channel's other alerts would only fail too."""
        index = 0
        while index < len(alerts):
            paced = channel is None or self.pacer.is_paced(channel)
            width = 1 if paced else self.policy.in_flight_per_channel
            chunk = _chunk(alerts[index : index + width], placements)
            index += len(chunk)
            sent = await asyncio.gather(
                *(self.deliver(a, placements.get(a.event.id)) for a in chunk)
            )
            retry_ats = [at for at in sent if at]
            if retry_ats:
                for later in alerts[index:]:
                    await self._db(
                        partial(
                            outbox.defer, alert_id=later.id, worker=self.name, at=max(retry_ats)
                        )
                    )
                return

    async def deliver(
        self, alert: ClaimedAlert, placement: Placement | None = None
    ) -> datetime | None:
        """Post one alert, recording each step Slack confirms; if it failed, say when to retry."""
        self._in_flight.add(alert.id)
        retry_at = await self._deliver(alert, placement)
        # Cancelled mid-post (stopping), or failed after Slack may have taken the post (the
        # database write recording it), it stays in flight: on stopping, its next owner then
        # looks for it in Slack before posting, instead of posting it a second time.
        self._in_flight.discard(alert.id)
        return retry_at

    async def _deliver(self, alert: ClaimedAlert, placement: Placement | None) -> datetime | None:
        try:
            route = await self._route(alert, placement)
            if route is None:  # its group's or spike's message is not in Slack yet
                await self._wait_for_parent(alert)
                return None
            message = await self._message(alert, member=route.member)
            if self._poster is None:
                self._preview(message)
                where: tuple[str | None, str | None] = (None, None)
            else:
                configured = self._configured(alert)
                where = await self._poster.post(alert, message, configured, route.thread)
        except DeliveryError as error:
            return await self._record_failure(alert, error)
        await self._db(lambda s: self._posted(s, alert, placement, route, where))
        if route.spike is not None:
            await self._spikes.joined(route.spike)
        ALERTS_POSTED.inc()
        ALERT_DELAY_SECONDS.observe((self.clock.now() - alert.created_at).total_seconds())
        return None

    async def _route(self, alert: ClaimedAlert, placement: Placement | None) -> Route | None:
        """Where the alert goes: its group's thread (a later member), the thread of its app's
        spike (a new problem during a spike), or the channel. None: wait for that parent."""
        if self._poster is None:  # preview mode: each alert is printed, nothing is threaded
            return CHANNEL
        if placement is not None and not placement.is_head:
            parent = await self._read(lambda s: groups.group_message(s, placement.group_id))
            if parent.channel_id and parent.thread_ts:
                return Route((parent.channel_id, parent.thread_ts), member=True)
            return None if not parent.head_failed else CHANNEL  # alone if the head failed
        spike = await self._spikes.spike_of(alert.event.app_id)
        if spike is None:
            return CHANNEL
        poster, configured = self._poster, self._configured(alert)
        thread = await self._spikes.thread(
            spike,
            post=partial(poster.post_spike, configured),
            find=partial(poster.find_spike, configured, since=spike.started_at),
        )
        return Route(thread, member=False, spike=spike.id) if thread else None

    async def _message(self, alert: ClaimedAlert, *, member: bool) -> AlertMessage:
        """A group's first downvote gets the alert with the controls; a later one goes into
        its thread, whole, without them."""
        if member:
            return member_message(alert.event, redactor=self.redactor)
        categories, group = await self._read(
            lambda s: (
                triage.categories(s, self.default_categories),
                groups.group_view(s, alert.event.id),
            )
        )
        return alert_message(
            alert.event, categories=categories, redactor=self.redactor, group=group
        )

    async def _wait_for_parent(self, alert: ClaimedAlert) -> None:
        """Come back shortly (no attempt used): the parent is being posted."""
        at = self.clock.now() + PARENT_WAIT
        await self._db(partial(outbox.defer, alert_id=alert.id, worker=self.name, at=at))

    def _posted(
        self,
        session: Session,
        alert: ClaimedAlert,
        placement: Placement | None,
        route: Route,
        where: tuple[str | None, str | None],
    ) -> None:
        """Record the post; a group's first one becomes its message, a later one updates it."""
        now = self.clock.now()
        channel_id, ts = where
        thread_ts = route.thread[1] if route.thread else None
        recorded = outbox.mark_posted(
            session, alert.id, worker=self.name, now=now, channel_id=channel_id, ts=ts,
            thread_ts=thread_ts,
        )  # fmt: skip
        if channel_id is None or ts is None:
            return
        if not recorded and outbox.was_erased(session, alert.id):
            # The event was erased while Slack had the post in hand: take the message back.
            erasure.queue_slack_deletion(
                session, event_id=alert.event.id, channel_id=channel_id, ts=ts,
                thread_ts=thread_ts or ts, now=now,
            )  # fmt: skip
            return
        if placement is None:
            return
        if placement.is_head:
            groups.record_group_message(
                session, placement.group_id, channel_id=channel_id, ts=ts,
                thread_ts=thread_ts or ts,
            )  # fmt: skip
        else:
            groups.mark_for_refresh(session, placement.group_id, now=now, every=REFRESH_EVERY)

    async def _refresh(self) -> None:
        """Show each grown group's size, and each spike's state, on its message (each at most
        every 10 s)."""
        if self._poster is None:
            return
        heads = await self._db(lambda s: groups.claim_refreshes(s, now=self.clock.now()))
        for head in heads:
            posted, text, blocks = await self._read(partial(self._current, head=head))
            if posted.channel_id and posted.ts:
                await self._poster.update(posted.channel_id, posted.ts, text=text, blocks=blocks)
        for update in await self._spikes.updates():
            message = update.message
            await self._poster.update(
                update.channel_id, update.ts, text=message.text, blocks=message.blocks
            )

    def _current(self, session: Session, *, head: int) -> tuple[PostedAlert, str, list[Any]]:
        posted = triage.posted_alert(session, head)
        message = alert_message(
            posted.event, triage=triage.snapshot(session, head), redactor=self.redactor,
            categories=triage.categories(session, self.default_categories), group=posted.group,
        )  # fmt: skip
        return posted, message.text, message.blocks

    def _preview(self, message: AlertMessage) -> None:
        self.console(f"\n── Downvote alert (preview mode) ──\n{message_as_text(message)}\n")
        logger.info("see it as Slack would: %s", block_kit_builder_url(message))

    def _configured(self, alert: ClaimedAlert) -> str:
        configured = alert.channel or self.default_channel
        if not configured:
            raise DeliveryError("no_channel", permanent=True)
        return configured

    async def _record_failure(self, alert: ClaimedAlert, error: DeliveryError) -> datetime | None:
        """Give up (permanent error, or out of attempts) or schedule the next attempt."""
        if error.permanent or alert.attempts >= self.policy.max_attempts:
            reason = (
                error.detail
                if error.permanent
                else f"gave up after {alert.attempts} attempts: {error.detail}"
            )
            await self._db(
                lambda s: outbox.mark_failed(s, alert.id, worker=self.name, error=reason)
            )
            ALERTS_FAILED.labels(reason=error.reason).inc()
            # One line per cause, not per alert: a missing invitation fails every alert of it.
            log = logger.error if reason not in self._reported else logger.debug
            self._reported.add(reason)
            log(
                "alert %d (event %s) failed for good: %s; see `downvote alerts failed`",
                alert.id,
                alert.event.external_id,
                reason,
            )
            return None
        at = self.clock.now() + self.policy.backoff(alert.attempts)
        await self._db(
            lambda s: outbox.mark_retry(s, alert.id, worker=self.name, at=at, error=error.reason)
        )
        ALERTS_RETRIED.labels(reason=error.reason).inc()
        logger.warning(
            "alert %d not delivered (%s); attempt %d of %d, next at %s",
            alert.id,
            error.reason,
            alert.attempts,
            self.policy.max_attempts,
            at.isoformat(),
        )
        return at

    async def _refresh_gauges(self) -> None:
        counts: dict[AlertStatus, int] = await self._read(outbox.count_by_status)
        for status in AlertStatus:
            ALERTS_BY_STATUS.labels(status=status.value).set(counts.get(status, 0))
