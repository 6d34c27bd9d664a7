"""Show an alert's current triage state on its Slack message."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session

from bot.slack.blocks import Block
from bot.triage.context import TriageContext
from storage import triage
from storage.triage import TriageSnapshot

Current = tuple[TriageSnapshot, tuple[str, list[Block]], tuple[str, str] | None]


async def refresh_alert(context: TriageContext, client: AsyncWebClient, event_id: int) -> None:
    """Update the message in place; re-check once so concurrent clicks converge."""
    async with context.message_lock(event_id):
        shown = None
        for _ in range(3):
            snapshot, (text, blocks), where = await context.read(
                lambda s: _current(context, s, event_id)
            )
            if where is None or snapshot == shown:
                return
            channel_id, ts = where
            await client.chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks)
            shown = snapshot


def _current(context: TriageContext, session: Session, event_id: int) -> Current:
    posted = triage.posted_alert(session, event_id)
    snapshot = triage.snapshot(session, event_id)
    message = context.render(posted, snapshot, context.categories(session))
    where = (posted.channel_id, posted.ts) if posted.channel_id and posted.ts else None
    return snapshot, message, where
