"""The slack-bolt app: HTTP at /slack/events (signature and replay window checked by bolt),
or Socket Mode when SLACK_APP_TOKEN is set. Listeners are registered per kind."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.triage import actions, commands, suggestions, views
from bot.triage.clicks import NotOurs
from bot.triage.context import TriageContext, attach

logger = logging.getLogger("downvote.slack")
EVENTS_PATH = "/slack/events"


def make_bolt_app(client: AsyncWebClient, signing_secret: str, context: TriageContext) -> AsyncApp:
    app = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=False)
    app.use(attach(context))
    actions.register(app)
    views.register(app)
    commands.register(app)
    suggestions.register(app)
    app.error(on_error)
    return app


async def on_error(error: Exception, body: dict[str, Any]) -> None:
    """One place for failures: a user mistake is logged briefly, a bug with its traceback."""
    if isinstance(error, NotOurs):
        logger.warning("ignored a Slack payload: %s", error)
        return
    if isinstance(error, SlackApiError):
        logger.error("Slack refused a call: %s", error.response.get("error"))
        return
    logger.exception("Slack listener failed (payload type %s)", body.get("type"), exc_info=error)


def mount_slack_events(web: FastAPI, bolt: AsyncApp) -> None:
    """POST /slack/events: one line, as bolt's adapter intends."""
    handler = AsyncSlackRequestHandler(bolt)
    router = APIRouter()

    @router.post(EVENTS_PATH, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    web.include_router(router)


def socket_mode_handler(bolt: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """Interactivity over a websocket Slack opens for us: no public URL needed."""
    return AsyncSocketModeHandler(bolt, app_token)
