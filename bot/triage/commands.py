"""`/downvote`: today's count and the backlog; `/downvote untriaged`: the oldest ten."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.slack.mrkdwn import duration, escape, message_link
from bot.triage.context import TriageContext, triage_of
from storage import triage
from storage.periods import local_date, local_midnight

USAGE = "Usage: `/downvote` (counts) or `/downvote untriaged` (oldest ten)."
UNTRIAGED_SHOWN = 10


async def downvote_command(context: AsyncBoltContext, command: dict[str, Any]) -> None:
    argument = str(command.get("text", "")).strip().lower()
    if argument not in ("", "untriaged"):
        await context.ack(text=USAGE)
        return
    triage_context = triage_of(context)
    if argument == "untriaged":
        reply = await untriaged_reply(triage_context)
    else:
        reply = await counts_reply(triage_context)
    await context.ack(text=reply)


async def counts_reply(context: TriageContext) -> str:
    """Downvotes received since local midnight (the summaries' zone), and the backlog."""
    now = context.clock.now()
    midnight = local_midnight(local_date(now, context.timezone), context.timezone)
    today, waiting = await context.read(lambda s: triage.backlog_counts(s, since=midnight))
    return (
        f"*{today}* downvote{'s' if today != 1 else ''} today · "
        f"*{waiting}* waiting for triage. `/downvote untriaged` lists the oldest."
    )


async def untriaged_reply(context: TriageContext) -> str:
    now = context.clock.now()
    rows = await context.read(lambda s: triage.untriaged_downvotes(s, limit=UNTRIAGED_SHOWN))
    if not rows:
        return "Nothing waiting: every downvote has been looked at. 🎉"
    lines = [f"*Oldest untriaged downvotes* ({len(rows)} shown):"]
    for row in rows:
        label = f"{escape(row.app_name)} · {escape(row.external_id[:60])}"
        link = (
            f"<{message_link(row.channel_id, row.ts)}|{label}>"
            if row.channel_id and row.ts
            else f"{label} (not posted yet)"
        )
        waited = duration((now - row.received_at).total_seconds())
        lines.append(f"• {link} — waiting {waited}")
    return "\n".join(lines)


def register(app: AsyncApp) -> None:
    app.command("/downvote")(downvote_command)
