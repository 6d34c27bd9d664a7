"""The delivery worker: posts each downvote from the outbox to Slack, exactly once.

Claims are made in the database, so any number of `downvote serve` processes can share one
PostgreSQL. Each step that Slack confirms (the parent message, each thread reply) is recorded
at once; an alert found mid-send after a crash is reconciled against the channel's history,
through the message metadata, before anything is posted again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    EVENT_TYPE,
    REPLY_EVENT_TYPE,
    AlertMessage,
    alert_message,
    member_message,
    reply_blocks,
    reply_metadata,
)
from bot.alerts.metrics import (
    ALERT_DELAY_SECONDS,
    ALERTS_BY_STATUS,
    ALERTS_FAILED,
    ALERTS_POSTED,
    ALERTS_RETRIED,
)
from bot.alerts.preview import block_kit_builder_url, message_as_text
from bot.alerts.redaction import Redactor
from bot.alerts.spike_message import SPIKE_EVENT_TYPE, SpikeMessage
from bot.alerts.spikes import SpikeControl
from bot.config import Grouping, SpikeLimits
from bot.slack.channels import Channels, channel_fix, label
from bot.slack.errors import SLACK_CALL_ERRORS, failure_detail, failure_reason, is_permanent
from bot.slack.history import Tagged, find_posted, thread_metadata
from bot.slack.pacing import CURRENT_CHANNEL, ChannelPacer
from storage import alerts as outbox
from storage import erasure, groups, triage
from storage.alerts import ClaimedAlert
from storage.clock import SYSTEM_CLOCK, Clock
from storage.db import read_in_thread, transact_in_thread
from storage.groups import Placement
from storage.states import AlertStatus
from storage.triage import PostedAlert

logger = logging.getLogger("downvote.delivery")
Placements = Mapping[int, Placement]  # by event id
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


class DeliveryError(Exception):
    """A failed delivery with the reason that decides retry or give up, and what to do."""

    def __init__(self, reason: str, *, permanent: bool, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.detail = detail or reason


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
        self._eraser = (
            SlackEraser(
                self.sessions, self.client, self.channels, self.clock, self.name, self.policy.lease
            )
            if self.client is not None and self.channels is not None
            else None
        )

    @property
    def _channels(self) -> Channels:
        if self.channels is None:
            raise RuntimeError("no Slack client: preview mode posts nothing")
        return self.channels

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
        """Wait for a wake-up (a downvote stored here), a stop, or the next poll."""
        assert self._wake is not None
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(
            waiters, timeout=self.policy.idle_poll_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in waiters:
            waiter.cancel()

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
        try:
            retry_at = await self._deliver(alert, placement)
        except Exception:
            self._in_flight.discard(alert.id)
            raise
        # Cancelled mid-post (stopping), it stays in flight: it may be in Slack already.
        self._in_flight.discard(alert.id)
        return retry_at

    async def _deliver(self, alert: ClaimedAlert, placement: Placement | None) -> datetime | None:
        try:
            route = await self._route(alert, placement)
            if route is None:  # its group's or spike's message is not in Slack yet
                await self._wait_for_parent(alert)
                return None
            message = await self._message(alert, member=route.member)
            if self.client is None:
                self._preview(message)
                where: tuple[str | None, str | None] = (None, None)
            else:
                where = await self._post(alert, message, self.client, route.thread)
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
        if self.client is None:  # preview mode: each alert is printed, nothing is threaded
            return CHANNEL
        if placement is not None and not placement.is_head:
            parent = await self._read(lambda s: groups.group_message(s, placement.group_id))
            if parent.channel_id and parent.thread_ts:
                return Route((parent.channel_id, parent.thread_ts), member=True)
            return None if not parent.head_failed else CHANNEL  # alone if the head failed
        spike = await self._spikes.spike_of(alert.event.app_id)
        if spike is None:
            return CHANNEL
        client, configured = self.client, self._configured(alert)
        thread = await self._spikes.thread(
            spike,
            post=partial(self._post_spike, client, configured),
            find=partial(self._find_spike, client, configured, since=spike.started_at),
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

    async def _post_spike(
        self, client: AsyncWebClient, configured: str, message: SpikeMessage
    ) -> tuple[str, str]:
        known = await self._call(self._channels.known, configured)
        response = await self._post_parent(
            client, configured, channel=known or configured, text=message.text,
            blocks=message.blocks, metadata=message.metadata, unfurl_links=False,
            unfurl_media=False,
        )  # fmt: skip
        channel_id = str(response["channel"])
        await self._call(self._channels.learned, configured, channel_id)
        return channel_id, str(response["ts"])

    async def _find_spike(
        self, client: AsyncWebClient, configured: str, spike_id: int, *, since: datetime
    ) -> tuple[str, str] | None:
        """A spike message an earlier claimant may have posted before it stopped."""
        channel_id = await self._call(self._channels.resolve, configured)
        found: tuple[str, str] | None = await self._call(
            self._channels.as_member,
            channel_id,
            lambda: find_posted(
                client, channel_id, since=since,
                matches=lambda kind, payload: (
                    kind == SPIKE_EVENT_TYPE and payload.get("spike_id") == spike_id
                ),
            ),
            shown_as=label(configured),
        )  # fmt: skip
        return found

    async def _refresh(self) -> None:
        """Show each grown group's size, and each spike's state, on its message (each at most
        every 10 s)."""
        if self.client is None:
            return
        heads = await self._db(lambda s: groups.claim_refreshes(s, now=self.clock.now()))
        for head in heads:
            posted, text, blocks = await self._read(partial(self._current, head=head))
            if posted.channel_id and posted.ts:
                await self._update(posted.channel_id, posted.ts, text=text, blocks=blocks)
        for update in await self._spikes.updates():
            message = update.message
            await self._update(
                update.channel_id, update.ts, text=message.text, blocks=message.blocks
            )

    async def _update(self, channel_id: str, ts: str, **content: Any) -> None:
        assert self.client is not None
        try:
            await self._call(self.client.chat_update, channel=channel_id, ts=ts, **content)
        except DeliveryError as error:
            logger.warning("message %s in %s not updated: %s", ts, channel_id, error.detail)

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

    async def _post(
        self,
        alert: ClaimedAlert,
        message: AlertMessage,
        client: AsyncWebClient,
        thread: tuple[str, str] | None = None,
    ) -> tuple[str, str]:
        """Post the message (in `thread`, for a group's later member), unless it is there
        already, and its replies still missing."""
        configured = self._configured(alert)
        ts, channel_id, replies_done = alert.slack_ts, alert.slack_channel_id, alert.replies_posted
        if alert.reconcile:
            channel_id, ts, replies_done = await self._reconcile(alert, configured, client, thread)
        if ts is None or channel_id is None:
            known = channel_id or (thread[0] if thread else None)
            known = known or await self._call(self._channels.known, configured)
            response = await self._post_parent(
                client,
                configured,
                channel=known or configured,  # a name works here, and the answer gives the id
                thread_ts=thread[1] if thread else None,
                text=message.text,
                blocks=message.blocks,
                metadata=message.metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
            channel_id, ts = str(response["channel"]), str(response["ts"])
            await self._call(self._channels.learned, configured, channel_id)
        if replies_done < len(message.replies):  # remember the parent: replies resume after it
            await self._db(
                lambda s: outbox.record_parent_posted(
                    s,
                    alert.id,
                    worker=self.name,
                    channel_id=channel_id,
                    ts=ts,
                    thread_ts=thread[1] if thread else None,
                )
            )
        for number in range(replies_done, len(message.replies)):
            await self._post_message(
                client,
                configured,
                channel=channel_id,
                thread_ts=thread[1] if thread else ts,
                text=message.replies[number],
                blocks=reply_blocks(message.replies[number]),
                metadata=reply_metadata(alert.event.id, number + 1),
                unfurl_links=False,
                unfurl_media=False,
            )
            await self._db(
                partial(
                    outbox.record_replies_posted,
                    alert_id=alert.id,
                    worker=self.name,
                    count=number + 1,
                    lease_until=self.clock.now() + self.policy.lease,
                )
            )
        return channel_id, ts

    def _configured(self, alert: ClaimedAlert) -> str:
        configured = alert.channel or self.default_channel
        if not configured:
            raise DeliveryError("no_channel", permanent=True)
        return configured

    async def _reconcile(
        self,
        alert: ClaimedAlert,
        configured: str,
        client: AsyncWebClient,
        thread: tuple[str, str] | None,
    ) -> tuple[str, str | None, int]:
        """After a crash: find the alert (by metadata; in `thread` when it goes into one) and
        count its replies already posted."""
        known = alert.slack_channel_id or (thread[0] if thread else None)
        channel_id: str = known or await self._call(self._channels.resolve, configured)
        ts, shown_as = alert.slack_ts, label(configured)

        def as_member(read: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
            return self._call(self._channels.as_member, channel_id, read, shown_as=shown_as)

        def is_this(kind: str, payload: Mapping[str, Any]) -> bool:
            return kind == EVENT_TYPE and payload.get("event_id") == alert.event.id

        if ts is None and thread is None:
            found = await as_member(
                lambda: find_posted(client, channel_id, since=alert.created_at, matches=is_this)
            )
            if found is None:
                return channel_id, None, 0
            channel_id, ts = found
        root = thread[1] if thread else ts
        assert root is not None
        messages: list[Tagged] = await as_member(lambda: thread_metadata(client, channel_id, root))
        ts = ts or next((m.ts for m in messages if is_this(m.kind, m.payload)), None)
        if ts is None:
            return channel_id, None, 0
        if alert.slack_ts is None:
            logger.info("alert %d was posted before a restart; not posting it again", alert.id)
        parts = [
            int(m.payload.get("part", 0))
            for m in messages
            if m.kind == REPLY_EVENT_TYPE and m.payload.get("event_id") == alert.event.id
        ]
        return channel_id, ts, max([alert.replies_posted, *parts])

    async def _post_parent(self, client: AsyncWebClient, configured: str, **kwargs: Any) -> Any:
        """The alert's message; a channel Slack refuses gets what to do about it."""
        try:
            return await self._post_message(client, configured, **kwargs)
        except DeliveryError as error:
            fix = channel_fix(label(configured), error.reason)
            if fix is None:
                raise
            raise DeliveryError(
                error.reason,
                permanent=error.permanent,
                detail=f"{error.reason} ({label(configured)}): {fix}",
            ) from None

    async def _post_message(self, client: AsyncWebClient, pace_key: str, **kwargs: Any) -> Any:
        """chat.postMessage, paced per channel once Slack has rate-limited it."""
        await self.pacer.wait_turn(pace_key)
        CURRENT_CHANNEL.set(pace_key)
        try:
            return await self._call(client.chat_postMessage, **kwargs)
        finally:
            CURRENT_CHANNEL.set(None)
            self.pacer.posted(pace_key)

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One Web API call; slack_sdk's handlers have already retried what they could."""
        try:
            return await method(*args, **kwargs)
        except SLACK_CALL_ERRORS as exc:
            reason = failure_reason(exc)
            raise DeliveryError(
                reason, permanent=is_permanent(reason), detail=failure_detail(exc)
            ) from None

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
