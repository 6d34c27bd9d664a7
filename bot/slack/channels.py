"""Configured channels (`#name` or an id) as conversation ids, and membership where it is needed.

Only `chat.postMessage`, `chat.postEphemeral` and `chat.update` take a channel name; history,
replies, permalinks and file sharing take a conversation id, and reading history or sharing a
file needs the bot to be a member. So:
- an id is learned from the answer to a post, or looked up with `conversations.list` when one
  is needed before anything was posted, and kept in the database (every process, every restart);
- a public channel is joined (`conversations.join`) the first time a read is refused with
  `not_in_channel`; a private one cannot be joined, and the error says to invite the bot.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.slack.errors import ChannelProblem
from storage import channels as channel_store
from storage.clock import SYSTEM_CLOCK, Clock
from storage.db import read_in_thread, transact_in_thread

logger = logging.getLogger("downvote.slack")
T = TypeVar("T")
LIST_PAGE = 1000  # conversations.list's largest page
MAX_LIST_PAGES = 50
_ID_RE = re.compile(r"[CGD][A-Z0-9]{6,}")


def channel_key(configured: str) -> str:
    """How a configured channel is remembered: an id as it is, a name without `#`, lower case."""
    raw = configured.strip()
    return raw if _ID_RE.fullmatch(raw) else raw.lstrip("#").lower()


def is_channel_id(configured: str) -> bool:
    return bool(_ID_RE.fullmatch(configured.strip()))


def label(configured: str) -> str:
    """The channel as people write it: `#name`, or the id."""
    key = channel_key(configured)
    return key if is_channel_id(key) else f"#{key}"


def channel_fix(shown: str, reason: str) -> str | None:
    """What a person must do when Slack refuses a channel for `reason`, if anything."""
    if reason == "channel_not_found":
        return (
            f"not a channel Downvote can see: if it is private, /invite @Downvote in {shown}; "
            "otherwise check the name"
        )
    if reason == "is_archived":
        return "archived: unarchive it, or choose another channel"
    if reason == "not_in_channel":
        return f"Downvote is not in it: /invite @Downvote in {shown}"
    return None


class Channels:
    """The ids of configured channels, shared by delivery, summaries and `slack check`."""

    def __init__(
        self,
        client: AsyncWebClient,
        sessions: sessionmaker[Session],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.client = client
        self.sessions = sessions
        self.clock = clock
        self._ids: dict[str, str] = {}

    async def known(self, configured: str) -> str | None:
        """The id if it is known already (an id given, or learned before): no API call."""
        key = channel_key(configured)
        if is_channel_id(key):
            return key
        if key not in self._ids:
            found = await read_in_thread(
                self.sessions, lambda s: channel_store.known_channel_id(s, key)
            )
            if found is None:
                return None
            self._ids[key] = found
        return self._ids[key]

    async def learned(self, configured: str, channel_id: str) -> None:
        """Slack answered a post to `configured` from `channel_id`: remember it."""
        key = channel_key(configured)
        if is_channel_id(key) or self._ids.get(key) == channel_id:
            return
        self._ids[key] = channel_id
        now = self.clock.now()
        await transact_in_thread(
            self.sessions, lambda s: channel_store.remember_channel(s, key, channel_id, now)
        )

    async def resolve(self, configured: str) -> str:
        """The id, looked up in Slack when it is not known yet; ChannelProblem if not found."""
        found = await self.known(configured)
        if found is not None:
            return found
        key = channel_key(configured)
        channel_id = await self._look_up(key)
        if channel_id is None:
            # Slack hides a private channel from a bot that is not in it: it cannot be told
            # from a channel that does not exist, so the fix names both.
            reason = "channel_not_found"
            raise ChannelProblem(reason, channel_fix(label(key), reason) or reason)
        await self.learned(key, channel_id)
        return channel_id

    async def _look_up(self, name: str) -> str | None:
        cursor = None
        for _ in range(MAX_LIST_PAGES):
            page = await self.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=LIST_PAGE,
                cursor=cursor,
            )
            channels: list[dict[str, object]] = page.get("channels", [])
            for channel in channels:
                if channel.get("name") == name:
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def as_member(
        self, channel_id: str, call: Callable[[], Awaitable[T]], *, shown_as: str | None = None
    ) -> T:
        """Run a call that needs membership, joining the (public) channel if Slack asks for it."""
        try:
            return await call()
        except SlackApiError as exc:
            if exc.response.get("error") != "not_in_channel":
                raise
        await self.join(channel_id, shown_as=shown_as)
        return await call()

    async def join(self, channel_id: str, *, shown_as: str | None = None) -> None:
        """Join a public channel; a private one needs an invitation from a member."""
        try:
            await self.client.conversations_join(channel=channel_id)
        except SlackApiError as exc:
            if exc.response.get("error") == "method_not_supported_for_channel_type":
                where = shown_as or channel_id
                raise ChannelProblem(
                    "not_in_channel",
                    f"{where} is private and Downvote is not in it: /invite @Downvote in {where}",
                ) from None
            raise
        logger.info("joined %s to read its history", shown_as or channel_id)
