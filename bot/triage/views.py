"""The two modals of an alert: a new category for everyone, and a note in the thread."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from sqlalchemy.orm import Session

from bot.slack.ids import note_metadata
from bot.slack.mrkdwn import escape, mention
from bot.triage.clicks import modal_text
from bot.triage.context import UNKNOWN_EVENT, click_of, resolve_view
from bot.triage.refresh import refresh_alert
from storage import triage

MAX_NOTE_LENGTH = 2900  # one thread reply, once escaped and labelled, stays under 3,000


@dataclass(frozen=True)
class ModalSpec:
    callback_id: str
    title: str
    label: str
    submit: str
    max_length: int
    multiline: bool


NEW_CATEGORY = ModalSpec(
    "triage_new_category_modal", "New category", "Category name", "Add",
    triage.MAX_CATEGORY_LENGTH, multiline=False,
)  # fmt: skip
ADD_NOTE = ModalSpec(
    "triage_add_note_modal", "Add a note", "Note", "Save", MAX_NOTE_LENGTH, multiline=True
)


def text_input_modal(spec: ModalSpec, event_id: int) -> dict[str, Any]:
    """A one-field modal that remembers which downvote it is about."""
    return {
        "type": "modal",
        "callback_id": spec.callback_id,
        "private_metadata": json.dumps({"event_id": event_id}),
        "title": {"type": "plain_text", "text": spec.title},
        "submit": {"type": "plain_text", "text": spec.submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "value",
                "label": {"type": "plain_text", "text": spec.label},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": spec.multiline,
                    "max_length": spec.max_length,
                },
            }
        ],
    }


async def open_modal(context: AsyncBoltContext, body: dict[str, Any], spec: ModalSpec) -> None:
    await context.ack()
    view = text_input_modal(spec, click_of(context).event_id)
    await context.client.views_open(trigger_id=body["trigger_id"], view=view)


async def submit_new_category(context: AsyncBoltContext, view: dict[str, Any]) -> None:
    """Add the category for everyone and tag this downvote with it."""
    click, name = click_of(context), modal_text(view)

    def work(session: Session) -> None:
        now = click.triage.clock.now()
        cleaned = triage.add_category(session, name, user=click.user, now=now)
        triage.change_categories(
            session, click.event_id, added=[cleaned], removed=[], user=click.user, now=now
        )

    try:
        await click.triage.write(work)
    except triage.UnknownEvent:
        await context.ack(response_action="errors", errors={"value": UNKNOWN_EVENT})
        return
    except ValueError as exc:
        await context.ack(response_action="errors", errors={"value": str(exc)})
        return
    await context.ack()
    await refresh_alert(click.triage, context.client, click.event_id)


async def submit_note(context: AsyncBoltContext, view: dict[str, Any]) -> None:
    """Store the note, post it in the alert's thread, and count it on the alert."""
    click, text = click_of(context), modal_text(view)
    if not text.strip():
        await context.ack(response_action="errors", errors={"value": "The note is empty."})
        return

    def work(session: Session) -> triage.PostedAlert:
        now = click.triage.clock.now()
        triage.add_note(session, click.event_id, user=click.user, text=text, now=now)
        return triage.posted_alert(session, click.event_id)

    try:
        posted = await click.triage.write(work)
    except triage.UnknownEvent:
        await context.ack(response_action="errors", errors={"value": UNKNOWN_EVENT})
        return
    await context.ack()
    if posted.channel_id and posted.ts:
        await context.client.chat_postMessage(
            channel=posted.channel_id,
            thread_ts=posted.ts,
            text=f"📝 Note from {mention(click.user)}:\n{escape(text)}",
            metadata=note_metadata(click.event_id),
            unfurl_links=False,
        )
    await refresh_alert(click.triage, context.client, click.event_id)


def register(app: AsyncApp) -> None:
    app.view(NEW_CATEGORY.callback_id, middleware=[resolve_view])(submit_new_category)
    app.view(ADD_NOTE.callback_id, middleware=[resolve_view])(submit_note)
