"""The slack-bolt app: HTTP at /slack/events (signature and replay window checked by bolt),
or Socket Mode when SLACK_APP_TOKEN is set."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners import TriageContext, register_listeners


def make_bolt_app(client: AsyncWebClient, signing_secret: str, context: TriageContext) -> AsyncApp:
    app = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=False)
    register_listeners(app, context)
    return app


def mount_slack_events(web: FastAPI, bolt: AsyncApp) -> None:
    """POST /slack/events: one line, as bolt's adapter intends."""
    handler = AsyncSlackRequestHandler(bolt)
    router = APIRouter()

    @router.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    web.include_router(router)


def socket_mode_handler(bolt: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """Interactivity over a websocket Slack opens for us: no public URL needed."""
    return AsyncSocketModeHandler(bolt, app_token)
