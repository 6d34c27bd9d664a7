"""Find what we may already have posted, by message metadata: how a crash avoids a double post."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from slack_sdk.web.async_client import AsyncWebClient

MAX_PAGES = 20  # of 200 messages: far more than a channel gets while a lease runs out
Matches = Callable[[str, Mapping[str, Any]], bool]


class Tagged(NamedTuple):
    """A message as its metadata names it."""

    kind: str  # the metadata's event_type ("" without metadata)
    payload: Mapping[str, Any]
    ts: str


def _metadata(message: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    metadata = message.get("metadata") or {}
    return str(metadata.get("event_type", "")), metadata.get("event_payload") or {}


async def find_posted(
    client: AsyncWebClient, channel: str, *, since: datetime, matches: Matches
) -> tuple[str, str] | None:
    """(channel id, ts) of the first message since `since` whose (event_type, payload) match."""
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = await client.conversations_history(
            channel=channel,
            oldest=f"{since.timestamp() - 60:.6f}",
            include_all_metadata=True,
            limit=200,
            cursor=cursor,
        )
        messages: list[dict[str, Any]] = response.get("messages", [])
        for message in messages:
            if matches(*_metadata(message)):
                return str(response.get("channel") or channel), str(message["ts"])
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None
    return None


async def thread_metadata(client: AsyncWebClient, channel_id: str, ts: str) -> list[Tagged]:
    """Every message in the thread under `ts`, parent included, by its metadata."""
    found: list[Tagged] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        response = await client.conversations_replies(
            channel=channel_id, ts=ts, include_all_metadata=True, limit=200, cursor=cursor
        )
        messages: list[dict[str, Any]] = response.get("messages", [])
        found.extend(Tagged(*_metadata(message), str(message["ts"])) for message in messages)
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return found
