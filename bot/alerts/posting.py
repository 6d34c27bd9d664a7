"""Putting one alert in Slack: its message (unless it is there already) and its thread parts.

Every step Slack confirms is recorded at once (the message, then each part), so an alert found
mid-send after a crash is reconciled against the channel, through the message metadata, before
anything is posted again. Every Web API failure becomes a `DeliveryError` whose reason decides
between trying again and giving up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.message import (
    EVENT_TYPE,
    REPLY_EVENT_TYPE,
    AlertMessage,
    reply_blocks,
    reply_metadata,
)
from bot.alerts.spike_message import SPIKE_EVENT_TYPE, SpikeMessage
from bot.slack.channels import Channels, channel_fix, label
from bot.slack.errors import SLACK_CALL_ERRORS, failure_detail, failure_reason, is_permanent
from bot.slack.history import Tagged, find_posted, thread_metadata
from bot.slack.pacing import CURRENT_CHANNEL, ChannelPacer
from storage import alerts as outbox
from storage.alerts import ClaimedAlert
from storage.clock import Clock
from storage.db import transact_in_thread

logger = logging.getLogger("downvote.delivery")
Place = tuple[str, str]  # (channel id, ts) of a message


class DeliveryError(Exception):
    """A failed delivery with the reason that decides retry or give up, and what to do."""

    def __init__(self, reason: str, *, permanent: bool, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.detail = detail or reason


@dataclass
class AlertPoster:
    client: AsyncWebClient
    channels: Channels
    pacer: ChannelPacer
    sessions: sessionmaker[Session]
    clock: Clock
    worker: str  # whose claim the recorded steps are
    lease: timedelta  # renewed as a long thread goes out

    async def post(
        self,
        alert: ClaimedAlert,
        message: AlertMessage,
        configured: str,
        thread: Place | None = None,
    ) -> Place:
        """Post the message (in `thread`, for a group's later member or a spike's new group),
        unless it is there already, then its parts still missing."""
        ts, channel_id, parts_done = alert.slack_ts, alert.slack_channel_id, alert.replies_posted
        if alert.reconcile:
            channel_id, ts, parts_done = await self._reconcile(alert, configured, thread)
        if ts is None or channel_id is None:
            known = channel_id or (thread[0] if thread else None)
            known = known or await self.call(self.channels.known, configured)
            response = await self.post_parent(
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
            await self.call(self.channels.learned, configured, channel_id)
        if parts_done < len(message.replies):  # remember the message: parts resume after it
            await self._db(
                partial(
                    outbox.record_parent_posted, alert_id=alert.id, worker=self.worker,
                    channel_id=channel_id, ts=ts, thread_ts=thread[1] if thread else None,
                )
            )  # fmt: skip
        for number in range(parts_done, len(message.replies)):
            await self.post_message(
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
                    outbox.record_replies_posted, alert_id=alert.id, worker=self.worker,
                    count=number + 1, lease_until=self.clock.now() + self.lease,
                )
            )  # fmt: skip
        return channel_id, ts

    async def _reconcile(
        self, alert: ClaimedAlert, configured: str, thread: Place | None
    ) -> tuple[str, str | None, int]:
        """After a crash: find the alert (by metadata; in `thread` when it goes into one) and
        count its parts already posted."""
        known = alert.slack_channel_id or (thread[0] if thread else None)
        channel_id: str = known or await self.call(self.channels.resolve, configured)
        ts, shown_as, client = alert.slack_ts, label(configured), self.client

        def as_member(read: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
            return self.call(self.channels.as_member, channel_id, read, shown_as=shown_as)

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

    async def post_spike(self, configured: str, message: SpikeMessage) -> Place:
        """A spike's message, at the top of the channel."""
        known = await self.call(self.channels.known, configured)
        response = await self.post_parent(
            configured, channel=known or configured, text=message.text, blocks=message.blocks,
            metadata=message.metadata, unfurl_links=False, unfurl_media=False,
        )  # fmt: skip
        channel_id = str(response["channel"])
        await self.call(self.channels.learned, configured, channel_id)
        return channel_id, str(response["ts"])

    async def find_spike(self, configured: str, spike_id: int, *, since: datetime) -> Place | None:
        """A spike message an earlier claimant may have posted before it stopped."""
        channel_id = await self.call(self.channels.resolve, configured)
        client = self.client
        found: Place | None = await self.call(
            self.channels.as_member,
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

    async def update(self, channel_id: str, ts: str, **content: Any) -> None:
        """chat.update; a failure is logged (the next change updates the message again)."""
        try:
            await self.call(self.client.chat_update, channel=channel_id, ts=ts, **content)
        except DeliveryError as error:
            logger.warning("message %s in %s not updated: %s", ts, channel_id, error.detail)

    async def post_parent(self, configured: str, **kwargs: Any) -> Any:
        """A top-level message; a channel Slack refuses gets what to do about it."""
        try:
            return await self.post_message(configured, **kwargs)
        except DeliveryError as error:
            fix = channel_fix(label(configured), error.reason)
            if fix is None:
                raise
            raise DeliveryError(
                error.reason,
                permanent=error.permanent,
                detail=f"{error.reason} ({label(configured)}): {fix}",
            ) from None

    async def post_message(self, pace_key: str, **kwargs: Any) -> Any:
        """chat.postMessage, paced per channel once Slack has rate-limited it."""
        await self.pacer.wait_turn(pace_key)
        CURRENT_CHANNEL.set(pace_key)
        try:
            return await self.call(self.client.chat_postMessage, **kwargs)
        finally:
            CURRENT_CHANNEL.set(None)
            self.pacer.posted(pace_key)

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One Web API call; slack_sdk's handlers have already retried what they could."""
        try:
            return await method(*args, **kwargs)
        except SLACK_CALL_ERRORS as exc:
            reason = failure_reason(exc)
            raise DeliveryError(
                reason, permanent=is_permanent(reason), detail=failure_detail(exc)
            ) from None

    async def _db(self, work: Callable[[Session], Any]) -> Any:
        return await transact_in_thread(self.sessions, work)
