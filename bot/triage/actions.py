"""Clicks on an alert's controls: each is written to the database, then acked, then shown.

The write takes milliseconds, and doing it before the ack means no acknowledged click is lost to
a restart; updating the message (a network call) happens after the ack.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from sqlalchemy.orm import Session

from bot.slack.ids import ActionId
from bot.triage.clicks import category_click, intended_status, suggested_categories
from bot.triage.context import UNKNOWN_EVENT, Click, click_of, resolve_action
from bot.triage.refresh import refresh_alert
from bot.triage.views import ADD_NOTE, NEW_CATEGORY, open_modal
from storage import triage
from storage.groups import group_event_ids


async def decide(context: AsyncBoltContext, work: Callable[[Session, Click], Any]) -> None:
    """Record the decision, ack, then show it on the alert (or say the event is unknown)."""
    click = click_of(context)
    try:
        await click.triage.write(lambda session: work(session, click))
    except triage.UnknownEvent:
        await context.ack()
        if context.respond is not None:
            await context.respond(
                text=UNKNOWN_EVENT, response_type="ephemeral", replace_original=False
            )
        return
    await context.ack()
    await refresh_alert(click.triage, context.client, click.event_id)


# A click on a group's alert decides for every downvote in the group (each keeps its own
# triage rows, so exports, the read API and the criteria see each one's decision).


async def pick_categories(
    context: AsyncBoltContext, body: dict[str, Any], action: dict[str, Any]
) -> None:
    """Tag the downvote (its group) with edge-case categories (one or more)."""
    change = category_click(action, body.get("message"))
    await decide(
        context, lambda session, click: _categorise(session, click, change.added, change.removed)
    )


def _categorise(
    session: Session, click: Click, added: Collection[str], removed: Collection[str]
) -> None:
    for event_id in group_event_ids(session, click.event_id):
        triage.change_categories(
            session, event_id, added=added, removed=removed, user=click.user,
            now=click.triage.clock.now(),
        )  # fmt: skip


async def apply_suggestion(context: AsyncBoltContext, action: dict[str, Any]) -> None:
    """Apply the categories a group's alert suggests (only ever on this click)."""
    names = suggested_categories(action)

    def work(session: Session, click: Click) -> None:
        _categorise(session, click, names, ())
        triage.record(
            session, click.event_id, user=click.user, action="suggestion_applied",
            new=", ".join(names), now=click.triage.clock.now(),
        )  # fmt: skip

    await decide(context, work)


async def set_status(context: AsyncBoltContext, action: dict[str, Any]) -> None:
    """Resolved / Not a model issue, or undo either."""
    status = intended_status(action)

    def work(session: Session, click: Click) -> None:
        for event_id in group_event_ids(session, click.event_id):
            triage.set_status(
                session, event_id, status=status, user=click.user, now=click.triage.clock.now()
            )

    await decide(context, work)


async def assign_me(context: AsyncBoltContext) -> None:
    """Take the downvote (its group), or give it back."""

    def work(session: Session, click: Click) -> None:
        now = click.triage.clock.now()
        assignee = triage.toggle_assignee(session, click.event_id, user=click.user, now=now)
        for event_id in group_event_ids(session, click.event_id):
            if event_id != click.event_id:
                triage.set_assignee(session, event_id, assignee=assignee, user=click.user, now=now)

    await decide(context, work)


async def open_new_category(context: AsyncBoltContext, body: dict[str, Any]) -> None:
    """Ask for the new category's name."""
    await open_modal(context, body, NEW_CATEGORY)


async def open_add_note(context: AsyncBoltContext, body: dict[str, Any]) -> None:
    """Ask for the note."""
    await open_modal(context, body, ADD_NOTE)


async def open_trace(context: AsyncBoltContext) -> None:
    """A link button: Slack opens the URL; there is nothing to record."""
    await context.ack()


def register(app: AsyncApp) -> None:
    middleware = [resolve_action]
    app.action(ActionId.CATEGORIES.value, middleware=middleware)(pick_categories)
    app.action(ActionId.RESOLVE.value, middleware=middleware)(set_status)
    app.action(ActionId.NOT_MODEL_ISSUE.value, middleware=middleware)(set_status)
    app.action(ActionId.ASSIGN_ME.value, middleware=middleware)(assign_me)
    app.action(ActionId.NEW_CATEGORY.value, middleware=middleware)(open_new_category)
    app.action(ActionId.ADD_NOTE.value, middleware=middleware)(open_add_note)
    app.action(ActionId.APPLY_CATEGORIES.value, middleware=middleware)(apply_suggestion)
    app.action(ActionId.OPEN_TRACE.value)(open_trace)
