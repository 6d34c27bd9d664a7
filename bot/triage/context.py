"""What every triage listener needs, resolved once per request by bolt middleware.

`TriageContext` (the database, the categories, how to render an alert, the clock and the zone)
is attached to every request's bolt context; a listener middleware then reads which Downvote
event a click or a modal is about, so listeners start from `click_of(context)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.response import BoltResponse
from sqlalchemy.orm import Session, sessionmaker

from bot.slack.blocks import Block
from bot.triage.clicks import NotOurs, event_id_of, modal_event_id
from storage import triage
from storage.clock import SYSTEM_CLOCK, Clock
from storage.db import read_in_thread, transact_in_thread
from storage.triage import PostedAlert, TriageSnapshot

logger = logging.getLogger("downvote.slack")
T = TypeVar("T")
REFRESH_LOCKS = 64
Next = Callable[[], Awaitable[None]]
# How an alert looks for a triage state: (fallback text, blocks). The shell wires the alert
# feature's builder in here, so triage needs nothing from it but this function.
AlertRenderer = Callable[[PostedAlert, TriageSnapshot, Sequence[str]], tuple[str, list[Block]]]

UNKNOWN_EVENT = (
    "Downvote has no record of this alert's event (it may have been deleted, or the alert "
    "comes from another Downvote installation). Nothing was changed."
)

_TRIAGE = "downvote_triage"
_CLICK = "downvote_click"


@dataclass
class TriageContext:
    sessions: sessionmaker[Session]
    default_categories: Sequence[str]
    render: AlertRenderer
    timezone: ZoneInfo  # the summaries' zone: "today" in /downvote means the same day
    clock: Clock = SYSTEM_CLOCK
    # Updates of one message are serialised; a fixed set of locks, so nothing grows per event.
    _locks: list[asyncio.Lock] = field(
        default_factory=lambda: [asyncio.Lock() for _ in range(REFRESH_LOCKS)]
    )

    async def write(self, work: Callable[[Session], T]) -> T:
        return await transact_in_thread(self.sessions, work)

    async def read(self, work: Callable[[Session], T]) -> T:
        return await read_in_thread(self.sessions, work)

    def categories(self, session: Session) -> list[str]:
        return triage.categories(session, self.default_categories)

    def message_lock(self, event_id: int) -> asyncio.Lock:
        return self._locks[event_id % REFRESH_LOCKS]


@dataclass(frozen=True)
class Click:
    """A triage request resolved: which event, who, and the context to act in."""

    triage: TriageContext
    event_id: int
    user: str


def attach(triage_context: TriageContext) -> Callable[..., Awaitable[None]]:
    """Global middleware: every listener finds the TriageContext in its bolt context."""

    async def attach_triage(context: AsyncBoltContext, next: Next) -> None:
        context[_TRIAGE] = triage_context
        await next()

    return attach_triage


def triage_of(context: AsyncBoltContext) -> TriageContext:
    found: TriageContext = context[_TRIAGE]
    return found


def click_of(context: AsyncBoltContext) -> Click:
    found: Click = context[_CLICK]
    return found


async def _resolve(context: AsyncBoltContext, body: dict[str, Any], event_id: int) -> None:
    context[_CLICK] = Click(triage_of(context), event_id, str(body["user"]["id"]))


async def resolve_action(
    context: AsyncBoltContext, body: dict[str, Any], next: Next
) -> BoltResponse | None:
    """Listener middleware for clicks: the event comes from the control that was clicked."""
    try:
        await _resolve(context, body, event_id_of(body["actions"][0]))
    except NotOurs as exc:
        return _ignore(exc)
    await next()
    return None


async def resolve_view(
    context: AsyncBoltContext, body: dict[str, Any], next: Next
) -> BoltResponse | None:
    """Listener middleware for modal submissions: the event is in the modal's metadata."""
    try:
        await _resolve(context, body, modal_event_id(body["view"]))
    except NotOurs as exc:
        return _ignore(exc)
    await next()
    return None


def _ignore(reason: NotOurs) -> BoltResponse:
    """Acknowledge a payload from something that is not one of our alerts, and drop it."""
    logger.warning("ignored a Slack payload: %s", reason)
    return BoltResponse(status=200, body="")
