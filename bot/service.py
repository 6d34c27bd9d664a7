"""The composition root: the one place that wires storage, the receiver and the Slack side."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.delivery import DeliveryPolicy, DeliveryWorker
from bot.alerts.message import alert_message
from bot.alerts.redaction import Redactor
from bot.config import DownvoteConfig, load_config
from bot.retention import RetentionJob
from bot.settings import Settings
from bot.slack.blocks import Block
from bot.slack.channels import Channels
from bot.slack.check import check_slack
from bot.slack.client import make_slack_client
from bot.slack.pacing import ChannelPacer
from bot.summaries.poster import SummaryPoster
from bot.summaries.schedule import make_scheduler
from bot.triage.app import make_bolt_app, mount_slack_events, socket_mode_handler
from bot.triage.context import AlertRenderer, TriageContext
from storage.apps import list_apps
from storage.clock import SYSTEM_CLOCK, Clock
from storage.db import make_engine, make_sessionmaker, read_in_thread
from storage.triage import PostedAlert, TriageSnapshot
from webhooks.app import create_app
from webhooks.limits import IngestLimits

logger = logging.getLogger("downvote")
# How long a stopping service lets alerts in hand finish; the rest are handed back (safely).
SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass
class Service:
    """Everything `serve` runs, kept together so tests can reach the parts."""

    app: FastAPI
    sessions: sessionmaker[Session]
    worker: DeliveryWorker
    poster: SummaryPoster
    config: DownvoteConfig


def worker_name() -> str:
    """Who holds a claim in the database: unique per process, readable in `alerts failed`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def make_redactor(config: DownvoteConfig) -> Redactor:
    return Redactor(
        enabled=config.redaction.enabled,
        extra_patterns=[(p.name, p.regex) for p in config.redaction.patterns],
    )


def summary_timezone(settings: Settings, config: DownvoteConfig) -> ZoneInfo:
    """downvote.toml's [schedule] timezone, else DOWNVOTE_TIMEZONE: what "a day" means."""
    return ZoneInfo(config.schedule.timezone) if config.schedule.timezone else settings.timezone


def slack_client_for(
    settings: Settings, pacer: ChannelPacer | None = None
) -> AsyncWebClient | None:
    """None in preview mode (no bot token)."""
    if settings.slack_bot_token is None:
        return None
    return make_slack_client(
        settings.slack_bot_token.get_secret_value(), settings.slack_api_url, pacer=pacer
    )


def configured_channels(settings: Settings, session: Session) -> list[str]:
    """Every channel Downvote posts to: SLACK_CHANNEL and each app's own."""
    own = [app.channel for app in list_apps(session) if app.channel]
    return list(
        dict.fromkeys([*([settings.slack_channel] if settings.slack_channel else []), *own])
    )


async def log_slack_problems(
    client: AsyncWebClient, channels: Channels, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """At start: say what will not work in Slack (and how to fix it), then serve anyway."""
    configured = await read_in_thread(sessions, lambda s: configured_channels(settings, s))
    report = await check_slack(client, channels, configured)
    for problem in report.problems:
        logger.warning("Slack: %s", problem)
    if report.ok:
        logger.info(report.summary())


def alert_renderer(redactor: Redactor) -> AlertRenderer:
    """How triage re-renders an alert: the alert feature's builder, for the triage feature."""

    def render(
        posted: PostedAlert, triage: TriageSnapshot, categories: Sequence[str]
    ) -> tuple[str, list[Block]]:
        message = alert_message(
            posted.event, triage=triage, categories=categories, redactor=redactor,
            group=posted.group,
        )  # fmt: skip
        return message.text, message.blocks

    return render


def make_summary_poster(
    settings: Settings,
    sessions: sessionmaker[Session],
    config: DownvoteConfig,
    client: AsyncWebClient | None,
    console: Callable[[str], None] = print,
    name: str | None = None,
    channels: Channels | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SummaryPoster:
    return SummaryPoster(
        channels=channels,
        clock=clock,
        sessions=sessions,
        client=client,
        channel=settings.slack_channel,
        config=config,
        tz=summary_timezone(settings, config),
        name=name or worker_name(),
        console=console,
    )


def build_service(
    settings: Settings,
    *,
    engine: Engine | None = None,
    config: DownvoteConfig | None = None,
    policy: DeliveryPolicy | None = None,
    console: Callable[[str], None] = print,
    clock: Clock = SYSTEM_CLOCK,
    freeze_heap: bool = False,
) -> Service:
    """The whole service as one ASGI app, with the delivery worker tied to its lifespan."""
    config = config or load_config(settings.config_path)
    engine = engine or make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    name = worker_name()
    pacer = ChannelPacer(clock=clock)
    client = slack_client_for(settings, pacer)
    channels = Channels(client, sessions, clock) if client is not None else None
    worker = DeliveryWorker(
        sessions=sessions,
        client=client,
        channels=channels,
        pacer=pacer,
        default_channel=settings.slack_channel,
        redactor=make_redactor(config),
        default_categories=config.categories,
        name=name,
        policy=policy
        or DeliveryPolicy(lease=timedelta(seconds=settings.downvote_alert_lease_seconds)),
        console=console,
        clock=clock,
        grouping=config.grouping,
        spike_limits=config.spike,
    )
    poster = make_summary_poster(settings, sessions, config, client, console, name, channels, clock)
    bolt = None
    if worker.client is not None and settings.slack_signing_secret is not None:
        triage_context = TriageContext(
            sessions=sessions,
            default_categories=config.categories,
            render=alert_renderer(worker.redactor),
            timezone=poster.tz,
            clock=clock,
        )
        signing_secret = settings.slack_signing_secret.get_secret_value()
        bolt = make_bolt_app(worker.client, signing_secret, triage_context)
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    app = create_app(
        sessions,
        max_body_bytes=settings.downvote_max_body_bytes,
        lifespan=_lifespan(
            worker,
            poster,
            engine,
            bolt,
            app_token,
            freeze_heap=freeze_heap,
            check=(
                partial(log_slack_problems, client, channels, settings, sessions)
                if client is not None and channels is not None
                else None
            ),
        ),
        on_downvotes_stored=lambda _count: worker.wake(),
        clock=clock,
        limits=IngestLimits(
            events_per_minute=config.limits.events_per_minute,
            bodies_in_flight=config.limits.bodies_in_flight,
        ),
    )
    if bolt is not None:
        mount_slack_events(app, bolt)
    return Service(app=app, sessions=sessions, worker=worker, poster=poster, config=config)


def service_from_environment() -> FastAPI:
    """The ASGI app of one `serve --workers N` process (the schema is already migrated)."""
    from bot.cli.common import load_downvote_config, load_settings

    settings = load_settings()
    return build_service(settings, config=load_downvote_config(settings), freeze_heap=True).app


def _lifespan(
    worker: DeliveryWorker,
    poster: SummaryPoster,
    engine: Engine,
    bolt: AsyncApp | None,
    app_token: str | None,
    *,
    freeze_heap: bool,
    check: Callable[[], Coroutine[Any, Any, None]] | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Run the delivery worker, the scheduler (and Socket Mode) for as long as the app serves."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        delivery = asyncio.create_task(worker.run(stop), name="delivery-worker")
        retention = RetentionJob(worker.sessions, poster.config.retention, worker.clock)
        scheduler = make_scheduler(poster, poster.config.schedule, poster.tz, retention.run)
        scheduler.start()
        catch_up = asyncio.create_task(poster.post_due(), name="summaries-catch-up")
        checked = asyncio.create_task(check(), name="slack-check") if check else None
        # Created here, inside the running loop: its aiohttp session needs one.
        socket_mode = socket_mode_handler(bolt, app_token) if bolt and app_token else None
        if socket_mode is not None:
            await socket_mode.connect_async()  # type: ignore[no-untyped-call]
        if freeze_heap:
            freeze_startup_heap()
        try:
            yield
        finally:
            if socket_mode is not None:
                await socket_mode.close_async()  # type: ignore[no-untyped-call]
            scheduler.shutdown(wait=False)
            catch_up.cancel()
            if checked is not None:
                checked.cancel()
            stop.set()
            await _stop_worker(delivery)
            engine.dispose()

    return lifespan


def freeze_startup_heap() -> None:
    """Move everything built at start-up out of the garbage collector's sight.

    The service starts with about 230,000 long-lived objects (modules, SQLAlchemy and pydantic
    machinery). Every full collection walked them all, stalling the event loop 30-200 ms every
    few seconds under load: that was ingest's p99. Frozen, they are never scanned again; cycles
    made while serving are still collected. (The `gc.freeze` documentation suggests the same.)
    """
    gc.collect()
    gc.freeze()


async def _stop_worker(delivery: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(delivery, timeout=SHUTDOWN_GRACE_SECONDS)
    except TimeoutError:
        logger.warning("delivery worker did not stop in time; its claims will expire")
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
