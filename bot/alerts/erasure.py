"""Deleting an erased event's messages from Slack: its alert, the alert's parts and its notes.

Drains the `slack_deletions` outbox. The alert's parts and notes are found in its thread by
their metadata (the event id), so other people's messages in a shared thread (a group's, a
spike's) stay. A message already gone counts as deleted; Slack refusing for good (the channel
is gone, the message is not the bot's) leaves the row failed with the reason; anything else is
tried again later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.message import EVENT_TYPE, REPLY_EVENT_TYPE
from bot.slack.channels import Channels
from bot.slack.errors import SLACK_CALL_ERRORS, failure_reason, is_permanent
from bot.slack.history import thread_metadata
from bot.slack.ids import NOTE_EVENT_TYPE
from storage import erasure
from storage.clock import Clock
from storage.db import transact_in_thread
from storage.erasure import ClaimedDeletion

logger = logging.getLogger("downvote.erasure")
OURS = frozenset({EVENT_TYPE, REPLY_EVENT_TYPE, NOTE_EVENT_TYPE})
GONE = "message_not_found"  # chat.delete: "No message exists with the requested timestamp."
BATCH = 20
MAX_ATTEMPTS = 12


@dataclass
class SlackEraser:
    sessions: sessionmaker[Session]
    client: AsyncWebClient
    channels: Channels
    clock: Clock
    name: str
    lease: timedelta  # as an alert's: a crashed process's deletions are taken over after it

    async def erase_due(self) -> int:
        """Delete what is due; how many deletions were handled."""
        claimed: list[ClaimedDeletion] = await transact_in_thread(
            self.sessions,
            partial(
                erasure.claim_due_deletions, worker=self.name, now=self.clock.now(),
                lease=self.lease, limit=BATCH,
            ),
        )  # fmt: skip
        for deletion in claimed:
            await self._erase(deletion)
        return len(claimed)

    async def _erase(self, deletion: ClaimedDeletion) -> None:
        try:
            for ts in await self._messages_of(deletion):
                await self._delete(deletion.channel_id, ts)
        except SLACK_CALL_ERRORS as exc:
            await self._failed(deletion, failure_reason(exc))
            return
        await transact_in_thread(
            self.sessions, partial(erasure.mark_deleted, deletion_id=deletion.id, worker=self.name)
        )

    async def _messages_of(self, deletion: ClaimedDeletion) -> list[str]:
        """The alert's parts and notes in its thread, then the alert itself (last: a parent
        deleted first would hide its thread from conversations.replies)."""
        try:
            thread = await self.channels.as_member(
                deletion.channel_id,
                lambda: thread_metadata(self.client, deletion.channel_id, deletion.thread_ts),
            )
        except SlackApiError as exc:
            if exc.response.get("error") != "thread_not_found":
                raise
            thread = []  # the thread's parent is gone: nothing left to find in it
        parts = [
            message.ts
            for message in thread
            if message.kind in OURS
            and message.payload.get("event_id") == deletion.event_id
            and message.ts != deletion.ts
        ]
        return [*parts, deletion.ts]

    async def _delete(self, channel_id: str, ts: str) -> None:
        try:
            await self.client.chat_delete(channel=channel_id, ts=ts)
        except SlackApiError as exc:
            if exc.response.get("error") != GONE:  # already deleted (by us, or by hand)
                raise

    async def _failed(self, deletion: ClaimedDeletion, reason: str) -> None:
        if deletion.attempts >= MAX_ATTEMPTS:
            reason = f"gave up after {deletion.attempts} attempts: {reason}"
        if is_permanent(reason) or reason.startswith(("cant_delete_message", "gave up")):
            await transact_in_thread(
                self.sessions,
                partial(erasure.mark_failed, deletion_id=deletion.id, worker=self.name,
                        error=reason),
            )  # fmt: skip
            logger.error("Slack message %s in %s not deleted: %s", deletion.ts,
                         deletion.channel_id, reason)  # fmt: skip
            return
        at = self.clock.now() + timedelta(seconds=min(900, 2 ** min(deletion.attempts, 10)))
        await transact_in_thread(
            self.sessions,
            partial(erasure.mark_retry, deletion_id=deletion.id, worker=self.name, at=at,
                    error=reason),
        )  # fmt: skip
        logger.warning("Slack message %s not deleted yet (%s); next try at %s", deletion.ts,
                       reason, at.isoformat())  # fmt: skip
