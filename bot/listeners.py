"""Slack interactivity: triage clicks, modals and the /downvote command.

Each listener writes the decision to the database, then acks, then updates the message: the
write takes milliseconds, and doing it before the ack means no acknowledged click is lost to a
restart. Updating the message (a network call) happens after the ack.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.actions import ActionId
from bot.digest import slack_permalink
from bot.mrkdwn import escape, mention
from bot.redact import Redactor
from bot.rendering import render_alert
from bot.triage_actions import NotOurs, category_change, event_id_of, intended_status
from storage import triage
from storage.db import read, transact

logger = logging.getLogger("downvote.slack")
T = TypeVar("T")

NEW_CATEGORY_VIEW = "triage_new_category_modal"
ADD_NOTE_VIEW = "triage_add_note_modal"
UNKNOWN_EVENT = (
    "Downvote has no record of this alert's event (it may have been deleted, or the alert "
    "comes from another Downvote installation). Nothing was changed."
)
REFRESH_LOCKS = 64
MAX_NOTE_LENGTH = 2900  # one thread reply, once escaped and labelled, stays under 3,000


@dataclass
class TriageContext:
    """What the listeners need: the database, the categories and how to render an alert."""

    sessions: sessionmaker[Session]
    default_categories: Sequence[str]
    redactor: Redactor
    timezone: ZoneInfo
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Updates of one message are serialised; a fixed set of locks, so nothing grows per event.
    _refresh_locks: list[asyncio.Lock] = field(
        default_factory=lambda: [asyncio.Lock() for _ in range(REFRESH_LOCKS)]
    )

    async def db(self, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(transact, self.sessions, work)

    async def read(self, work: Callable[[Session], T]) -> T:
        """Read-only: no SQLite write lock."""
        return await asyncio.to_thread(read, self.sessions, work)

    def categories(self, session: Session) -> list[str]:
        return triage.categories(session, self.default_categories)


async def refresh_alert(context: TriageContext, client: AsyncWebClient, event_id: int) -> None:
    """Show the current triage state on the alert; re-check once so concurrent clicks converge."""
    lock = context._refresh_locks[event_id % REFRESH_LOCKS]
    async with lock:
        shown = None
        for _ in range(3):
            snapshot, message, where = await context.read(lambda s: _current(context, s, event_id))
            if where is None or snapshot == shown:
                return
            channel_id, ts = where
            await client.chat_update(
                channel=channel_id, ts=ts, text=message.text, blocks=message.blocks
            )
            shown = snapshot


def _current(context: TriageContext, session: Session, event_id: int) -> Any:
    posted = triage.posted_alert(session, event_id)
    snapshot = triage.snapshot(session, event_id)
    message = render_alert(
        posted.event,
        posted.app_name,
        snapshot=snapshot,
        categories=context.categories(session),
        redactor=context.redactor,
    )
    where = (posted.channel_id, posted.ts) if posted.channel_id and posted.ts else None
    return snapshot, message, where


async def _refuse(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)


def _user(body: dict[str, Any]) -> str:
    return str(body["user"]["id"])


def register_listeners(app: AsyncApp, context: TriageContext) -> None:
    """Wire every triage control, modal and command to its handler."""

    async def decide(
        ack: AsyncAck,
        respond: AsyncRespond,
        client: AsyncWebClient,
        event_id: int,
        work: Callable[[Session], Any],
    ) -> None:
        try:
            await context.db(work)
        except triage.UnknownEvent:
            await ack()
            await _refuse(respond, UNKNOWN_EVENT)
            return
        await ack()
        await refresh_alert(context, client, event_id)

    @app.action(ActionId.CATEGORIES.value)
    async def pick_categories(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:  # fmt: skip
        """Tag the downvote with edge-case categories (one or more)."""
        event_id = event_id_of(action)
        change = category_change(action, body.get("message"))
        await decide(
            ack, respond, client, event_id,
            lambda s: triage.change_categories(
                s, event_id, added=change.added, removed=change.removed, user=_user(body),
                now=context.clock(),
            ),
        )  # fmt: skip

    @app.action(ActionId.RESOLVE.value)
    @app.action(ActionId.NOT_MODEL_ISSUE.value)
    async def set_status(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:  # fmt: skip
        """Resolved / Not a model issue, or undo either."""
        event_id, status = event_id_of(action), intended_status(action)
        await decide(
            ack, respond, client, event_id,
            lambda s: triage.set_status(
                s, event_id, status=status, user=_user(body), now=context.clock()
            ),
        )  # fmt: skip

    @app.action(ActionId.ASSIGN_ME.value)
    async def assign_me(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:  # fmt: skip
        """Take the downvote (or give it back)."""
        event_id = event_id_of(action)
        await decide(
            ack, respond, client, event_id,
            lambda s: triage.toggle_assignee(s, event_id, user=_user(body), now=context.clock()),
        )  # fmt: skip

    async def open_modal(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient,
        **spec: Any,
    ) -> None:  # fmt: skip
        await ack()
        await client.views_open(
            trigger_id=body["trigger_id"],
            view=text_input_modal(event_id=event_id_of(action), **spec),
        )

    @app.action(ActionId.NEW_CATEGORY.value)
    async def open_new_category(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Ask for the new category's name."""
        await open_modal(
            ack, body, action, client, callback_id=NEW_CATEGORY_VIEW, title="New category",
            label="Category name", submit="Add", max_length=triage.MAX_CATEGORY_LENGTH,
            multiline=False,
        )  # fmt: skip

    @app.action(ActionId.ADD_NOTE.value)
    async def open_add_note(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Ask for the note."""
        await open_modal(
            ack, body, action, client, callback_id=ADD_NOTE_VIEW, title="Add a note",
            label="Note", submit="Save", max_length=MAX_NOTE_LENGTH, multiline=True,
        )  # fmt: skip

    @app.action(ActionId.OPEN_TRACE.value)
    async def open_trace(ack: AsyncAck) -> None:
        """A link button: Slack opens the URL; there is nothing to record."""
        await ack()

    @app.view(NEW_CATEGORY_VIEW)
    async def submit_new_category(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Add the category for everyone and tag this downvote with it."""
        event_id, name = modal_input(view)
        user = _user(body)

        def work(session: Session) -> str:
            cleaned = triage.add_category(session, name, user=user, now=context.clock())
            triage.change_categories(
                session, event_id, added=[cleaned], removed=[], user=user, now=context.clock()
            )
            return cleaned

        try:
            await context.db(work)
        except ValueError as exc:  # UnknownEvent is a LookupError, handled below
            await ack(response_action="errors", errors={"value": str(exc)})
            return
        except triage.UnknownEvent:
            await ack(response_action="errors", errors={"value": UNKNOWN_EVENT})
            return
        await ack()
        await refresh_alert(context, client, event_id)

    @app.view(ADD_NOTE_VIEW)
    async def submit_note(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Store the note, post it in the alert's thread, and count it on the alert."""
        event_id, text = modal_input(view)
        user = _user(body)
        if not text.strip():
            await ack(response_action="errors", errors={"value": "The note is empty."})
            return

        def work(session: Session) -> triage.PostedAlert:
            triage.add_note(session, event_id, user=user, text=text, now=context.clock())
            return triage.posted_alert(session, event_id)

        try:
            posted = await context.db(work)
        except triage.UnknownEvent:
            await ack(response_action="errors", errors={"value": UNKNOWN_EVENT})
            return
        await ack()
        if posted.channel_id and posted.ts:
            await client.chat_postMessage(
                channel=posted.channel_id,
                thread_ts=posted.ts,
                text=f"📝 Note from {mention(user)}:\n{escape(text)}",
                unfurl_links=False,
            )
        await refresh_alert(context, client, event_id)

    @app.command("/downvote")
    async def downvote_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        """`/downvote`: today's count and the backlog; `/downvote untriaged`: the oldest ten."""
        argument = str(command.get("text", "")).strip().lower()
        if argument not in ("", "untriaged"):
            await ack(text="Usage: `/downvote` (counts) or `/downvote untriaged` (oldest ten).")
            return
        await ack(text=await command_reply(context, argument))

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        """One place for failures: a user mistake is logged briefly, a bug with its traceback."""
        if isinstance(error, NotOurs):
            logger.warning("ignored a Slack payload: %s", error)
            return
        if isinstance(error, SlackApiError):
            logger.error("Slack refused a call: %s", error.response.get("error"))
            return
        logger.exception(
            "Slack listener failed (payload type %s)", body.get("type"), exc_info=error
        )


def text_input_modal(
    *, callback_id: str, event_id: int, title: str, label: str, submit: str, max_length: int,
    multiline: bool,
) -> dict[str, Any]:  # fmt: skip
    """A one-field modal that remembers which downvote it is about."""
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps({"event_id": event_id}),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "value",
                "label": {"type": "plain_text", "text": label},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": multiline,
                    "max_length": max_length,
                },
            }
        ],
    }


def modal_input(view: dict[str, Any]) -> tuple[int, str]:
    """The event id and the typed text of a submitted `text_input_modal`."""
    try:
        event_id = int(json.loads(view.get("private_metadata") or "{}")["event_id"])
        value = view["state"]["values"]["value"]["value"]["value"]
    except (KeyError, TypeError, ValueError) as exc:
        raise NotOurs("not a Downvote modal") from exc
    return event_id, str(value or "")


async def command_reply(context: TriageContext, argument: str) -> str:
    now = context.clock()
    local_midnight = now.astimezone(context.timezone).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    if argument == "untriaged":
        rows = await context.read(lambda s: triage.untriaged_downvotes(s, limit=10))
        if not rows:
            return "Nothing waiting: every downvote has been looked at. 🎉"
        lines = [f"*Oldest untriaged downvotes* ({len(rows)} shown):"]
        for row in rows:
            age = now - row.received_at
            label = f"{escape(row.app_name)} · {escape(row.external_id[:60])}"
            link = (
                f"<{slack_permalink(row.channel_id, row.ts)}|{label}>"
                if row.channel_id and row.ts
                else f"{label} (not posted yet)"
            )
            lines.append(f"• {link} — waiting {_age(age.total_seconds())}")
        return "\n".join(lines)
    today, untriaged = await context.read(
        lambda s: triage.downvote_counts(s, since=local_midnight.astimezone(UTC))
    )
    return (
        f"*{today}* downvote{'s' if today != 1 else ''} today · "
        f"*{untriaged}* waiting for triage. `/downvote untriaged` lists the oldest."
    )


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, int(seconds // 60))} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"
