"""The composition root: the one place that wires storage, the receiver and the Slack side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import DownvoteConfig, load_config
from bot.delivery import DeliveryPolicy, DeliveryWorker
from bot.listeners import TriageContext
from bot.pacing import ChannelPacer
from bot.redact import Redactor
from bot.schedule import make_scheduler
from bot.settings import Settings
from bot.slack_app import make_bolt_app, mount_slack_events, socket_mode_handler
from bot.slack_client import make_slack_client
from bot.summaries import SummaryPoster
from storage.db import make_engine, make_sessionmaker
from webhooks.app import create_app

logger = logging.getLogger("downvote")
SHUTDOWN_GRACE_SECONDS = 15.0


@dataclass
class Service:
    """Everything `serve` runs, kept together so tests can reach the parts."""

    app: FastAPI
    sessions: sessionmaker[Session]
    worker: DeliveryWorker
    poster: SummaryPoster
    config: DownvoteConfig


def make_redactor(config: DownvoteConfig) -> Redactor:
    return Redactor(
        enabled=config.redaction.enabled,
        extra_patterns=[(p.name, p.regex) for p in config.redaction.patterns],
    )


def slack_client_for(
    settings: Settings, pacer: ChannelPacer | None = None
) -> AsyncWebClient | None:
    """None in preview mode (no bot token)."""
    if settings.slack_bot_token is None:
        return None
    return make_slack_client(
        settings.slack_bot_token.get_secret_value(), settings.slack_api_url, pacer=pacer
    )


def build_service(
    settings: Settings,
    *,
    engine: Engine | None = None,
    config: DownvoteConfig | None = None,
    policy: DeliveryPolicy | None = None,
    console: Callable[[str], None] = print,
) -> Service:
    """The whole service as one ASGI app, with the delivery worker tied to its lifespan."""
    config = config or load_config(settings.config_path)
    engine = engine or make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    pacer = ChannelPacer()
    worker = DeliveryWorker(
        sessions=sessions,
        client=slack_client_for(settings, pacer),
        pacer=pacer,
        default_channel=settings.slack_channel,
        redactor=make_redactor(config),
        default_categories=config.categories,
        policy=policy
        or DeliveryPolicy(lease=timedelta(seconds=settings.downvote_alert_lease_seconds)),
        console=console,
    )

    poster = make_summary_poster(settings, sessions, config, worker.client, console)
    socket_mode: AsyncSocketModeHandler | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        delivery = asyncio.create_task(worker.run(stop), name="delivery-worker")
        scheduler = make_scheduler(poster, config.schedule, poster.tz)
        scheduler.start()
        catch_up = asyncio.create_task(poster.post_due(), name="summaries-catch-up")
        if socket_mode is not None:
            await socket_mode.connect_async()  # type: ignore[no-untyped-call]
        try:
            yield
        finally:
            if socket_mode is not None:
                await socket_mode.close_async()  # type: ignore[no-untyped-call]
            scheduler.shutdown(wait=False)
            catch_up.cancel()
            stop.set()
            try:
                await asyncio.wait_for(delivery, timeout=SHUTDOWN_GRACE_SECONDS)
            except TimeoutError:
                logger.warning("delivery worker did not stop in time; its claims will expire")
                delivery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivery
            engine.dispose()

    app = create_app(
        sessions,
        max_body_bytes=settings.downvote_max_body_bytes,
        lifespan=lifespan,
        on_downvotes_stored=lambda _count: worker.wake(),
    )
    if worker.client is not None and settings.slack_signing_secret is not None:
        bolt = make_bolt_app(
            worker.client,
            settings.slack_signing_secret.get_secret_value(),
            TriageContext(
                sessions=sessions,
                default_categories=config.categories,
                redactor=worker.redactor,
                timezone=settings.timezone,
            ),
        )
        mount_slack_events(app, bolt)
        if settings.slack_app_token is not None:
            socket_mode = socket_mode_handler(bolt, settings.slack_app_token.get_secret_value())
    return Service(app=app, sessions=sessions, worker=worker, poster=poster, config=config)


def summary_timezone(settings: Settings, config: DownvoteConfig) -> ZoneInfo:
    """downvote.toml's [schedule] timezone, else DOWNVOTE_TIMEZONE."""
    return ZoneInfo(config.schedule.timezone) if config.schedule.timezone else settings.timezone


def make_summary_poster(
    settings: Settings,
    sessions: sessionmaker[Session],
    config: DownvoteConfig,
    client: AsyncWebClient | None,
    console: Callable[[str], None] = print,
) -> SummaryPoster:
    return SummaryPoster(
        sessions=sessions,
        client=client,
        channel=settings.slack_channel,
        config=config,
        tz=summary_timezone(settings, config),
        console=console,
    )
