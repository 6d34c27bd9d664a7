"""Posting the daily summary and the weekly digest: claim the period, build, send, record.

Used alike by the scheduler, by `serve` at start-up (a period missed while it was down) and by
`downvote digest`. Query (queries), render (render, chart) and send (here) stay apart.

A posting goes: the message, then the parts that did not fit it (in its thread), each recorded
as Slack confirms it; then the period is marked posted; then, for a week, the chart is shared
into the thread. A failed chart is retried on its own and never makes the digest post again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.config import DownvoteConfig
from bot.slack.channels import Channels, label
from bot.slack.errors import SLACK_CALL_ERRORS, failure_detail
from bot.slack.history import find_posted, thread_metadata
from bot.summaries.queries import daily_summary, weekly_digest
from bot.summaries.render import (
    SlackSummary,
    daily_summary_message,
    daily_summary_text,
    weekly_digest_chart,
    weekly_digest_message,
    weekly_digest_text,
)
from storage import summaries
from storage.clock import SYSTEM_CLOCK, Clock
from storage.db import read_in_thread, transact_in_thread
from storage.periods import Period, day_containing, local_date, week_containing
from storage.states import PeriodKind, PostingStatus

logger = logging.getLogger("downvote.summaries")
SUMMARY_EVENT_TYPE = "downvote_summary"
SUMMARY_PART_EVENT_TYPE = "downvote_summary_part"
CLAIM_LEASE = timedelta(minutes=10)


class Outcome(StrEnum):
    POSTED = "posted"
    PRINTED = "printed"  # preview mode
    ALREADY_POSTED = "already posted"
    IN_PROGRESS = "being posted by another process"
    FAILED = "failed"
    NO_DATA = "skipped: no event occurred in the period"


class NoChannel(Exception):
    """Summaries have nowhere to go: SLACK_CHANNEL is not set."""


@dataclass(frozen=True)
class Rendered:
    slack: SlackSummary
    console: str
    chart: bytes | None


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    period: Period
    ts: str | None = None
    detail: str = ""


def due_period(kind: PeriodKind, now: datetime, config: DownvoteConfig, tz: ZoneInfo) -> Period:
    """The period whose post should have gone out by `now` (the latest scheduled time passed)."""
    today = local_date(now, tz)
    local_now = now.astimezone(tz)
    if kind == PeriodKind.DAILY:
        fired = today if local_now.time() >= config.schedule.daily else today - timedelta(days=1)
        return day_containing(fired - timedelta(days=1), tz)
    weekly = config.schedule.weekly
    back = (today.weekday() - weekly.weekday) % 7
    fired = today - timedelta(days=back)
    if back == 0 and local_now.time() < weekly.at:
        fired -= timedelta(days=7)
    return week_containing(fired - timedelta(days=7), tz)


def render(
    session: Session, kind: PeriodKind, period: Period, config: DownvoteConfig, now: datetime
) -> Rendered:
    """Build the summary of one period: Slack messages, console text, and the weekly chart."""
    if kind == PeriodKind.DAILY:
        summary = daily_summary(session, config, period.first_day, period.tz, now)
        return Rendered(daily_summary_message(summary), daily_summary_text(summary), None)
    digest = weekly_digest(session, config, period.first_day, period.tz, now)
    return Rendered(
        weekly_digest_message(digest), weekly_digest_text(digest), weekly_digest_chart(digest)
    )


def summary_metadata(kind: PeriodKind, period: Period, generation: int) -> dict[str, Any]:
    """Metadata that finds this posting again in the channel's history after a crash."""
    return {
        "event_type": SUMMARY_EVENT_TYPE,
        "event_payload": {
            "kind": kind.value, "period_start": period.first_day.isoformat(),
            "generation": generation,
        },
    }  # fmt: skip


def _part_metadata(metadata: dict[str, Any], part: int) -> dict[str, Any]:
    return {
        "event_type": SUMMARY_PART_EVENT_TYPE,
        "event_payload": {**metadata["event_payload"], "part": part},
    }


@dataclass
class SummaryOutlet:
    """Where, and as whom, summaries and breach alerts are posted (printed in preview mode)."""

    sessions: sessionmaker[Session]
    client: AsyncWebClient | None  # None: preview mode, print instead of post
    channel: str | None
    config: DownvoteConfig
    tz: ZoneInfo
    name: str
    clock: Clock = SYSTEM_CLOCK
    console: Callable[[str], None] = print
    channels: Channels | None = None  # made from `client` when not given

    def __post_init__(self) -> None:
        if self.channels is None and self.client is not None:
            self.channels = Channels(self.client, self.sessions, self.clock)


@dataclass
class SummaryPoster(SummaryOutlet):
    """Posts each due summary once, across replicas and restarts."""

    async def _db(self, work: Callable[[Session], Any]) -> Any:
        return await transact_in_thread(self.sessions, work)

    async def post_due(self) -> list[Result]:
        """Post whatever is due and not yet posted (the scheduled job, the catch-up at start,
        the retry every few minutes), and share any weekly chart still pending."""
        results = [await self.post_kind(kind) for kind in PeriodKind]
        await self.share_pending_charts()
        return results

    async def post_kind(self, kind: PeriodKind) -> Result:
        return await self.post(kind, due_period(kind, self.clock.now(), self.config, self.tz))

    async def post(
        self, kind: PeriodKind, period: Period, *, force: bool = False,
        skip_without_events: bool = True,
    ) -> Result:  # fmt: skip
        """Post one period once (or once more with `force`)."""
        now = self.clock.now()
        if skip_without_events and not await self._db(
            lambda s: summaries.has_events_in(s, period.start, period.end)
        ):
            return Result(Outcome.NO_DATA, period)
        claim_with = summaries.claim_forced if force else summaries.claim_period
        claim: summaries.Claim | None = await self._db(
            lambda s: claim_with(
                s, kind, period.first_day, worker=self.name, now=now, lease=CLAIM_LEASE
            )
        )
        if claim is None:
            existing = await self._db(lambda s: summaries.posting_of(s, kind, period.first_day))
            if existing is not None and existing.status == PostingStatus.POSTED:
                return Result(Outcome.ALREADY_POSTED, period, existing.slack_ts)
            return Result(Outcome.IN_PROGRESS, period)
        try:
            rendered = await read_in_thread(
                self.sessions, lambda s: render(s, kind, period, self.config, now)
            )
            channel, ts = await self._send(kind, period, claim, rendered)
        except (*SLACK_CALL_ERRORS, NoChannel) as exc:
            return await self._failed(kind, period, claim, exc)
        chart_pending = rendered.chart is not None and ts is not None
        await self._db(
            lambda s: summaries.mark_posted(
                s, claim.post_id, worker=self.name, channel=channel, ts=ts, now=self.clock.now(),
                chart_pending=chart_pending,
            )
        )  # fmt: skip
        outcome = Outcome.PRINTED if self.client is None else Outcome.POSTED
        logger.info("%s summary for %s %s", kind, period.first_day, outcome.value)
        if chart_pending and channel and ts and rendered.chart:
            await self._share_chart(claim.post_id, period, channel, ts, rendered.chart)
        return Result(outcome, period, ts)

    async def _failed(
        self, kind: PeriodKind, period: Period, claim: summaries.Claim, exc: Exception
    ) -> Result:
        reason = str(exc) if isinstance(exc, NoChannel) else failure_detail(exc)
        await self._db(
            lambda s: summaries.release(s, claim.post_id, worker=self.name, now=self.clock.now())
        )
        logger.error("%s summary for %s not posted: %s", kind, period.first_day, reason)
        return Result(Outcome.FAILED, period, detail=reason)

    async def _send(
        self, kind: PeriodKind, period: Period, claim: summaries.Claim, rendered: Rendered
    ) -> tuple[str | None, str | None]:
        """Post the message (unless an earlier holder did) and the thread parts still missing."""
        if self.client is None or self.channels is None:
            self.console(f"\n── Downvote {kind} summary (preview mode) ──\n{rendered.console}")
            return None, None
        if not self.channel:
            raise NoChannel("no channel: set SLACK_CHANNEL to post summaries")
        metadata = summary_metadata(kind, period, claim.generation)
        channel_id, ts, done = claim.channel_id, claim.ts, claim.parts_posted
        if claim.took_over:  # the previous holder died or failed: what did it get to Slack?
            channel_id, ts, done = await self._find_earlier(claim, metadata)
        if ts is None or channel_id is None:
            channel_id, ts = await self._post_message(rendered.slack, metadata)
            await self._db(
                lambda s: summaries.record_parent(
                    s, claim.post_id, worker=self.name, channel_id=channel_id, ts=ts
                )
            )
        for number in range(done, len(rendered.slack.parts)):
            await self.client.chat_postMessage(
                channel=channel_id, thread_ts=ts, text=f"{rendered.slack.text} ({number + 2})",
                blocks=rendered.slack.parts[number], metadata=_part_metadata(metadata, number + 1),
                unfurl_links=False,
            )  # fmt: skip
            await self._db(
                partial(
                    summaries.record_parts, post_id=claim.post_id, worker=self.name,
                    count=number + 1,
                )
            )  # fmt: skip
        return channel_id, ts

    async def _post_message(
        self, message: SlackSummary, metadata: dict[str, Any]
    ) -> tuple[str, str]:
        assert self.client is not None and self.channels is not None and self.channel
        known = await self.channels.known(self.channel)
        response = await self.client.chat_postMessage(
            channel=known or self.channel, text=message.text, blocks=message.blocks,
            metadata=metadata, unfurl_links=False,
        )  # fmt: skip
        channel_id, ts = str(response["channel"]), str(response["ts"])
        await self.channels.learned(self.channel, channel_id)
        return channel_id, ts

    async def _find_earlier(
        self, claim: summaries.Claim, metadata: dict[str, Any]
    ) -> tuple[str | None, str | None, int]:
        """The message an earlier holder posted (found by metadata), and its parts so far."""
        assert self.client is not None and self.channels is not None and self.channel
        client, channels, shown_as = self.client, self.channels, label(self.channel)
        channel_id = claim.channel_id or await channels.resolve(self.channel)
        ts = claim.ts
        if ts is None:
            found = await channels.as_member(
                channel_id,
                lambda: find_posted(
                    client, channel_id, since=self.clock.now() - CLAIM_LEASE * 2,
                    matches=lambda kind, payload: (
                        kind == SUMMARY_EVENT_TYPE and payload == metadata["event_payload"]
                    ),
                ),
                shown_as=shown_as,
            )  # fmt: skip
            if found is None:
                return channel_id, None, 0
            channel_id, ts = found
        thread = await channels.as_member(
            channel_id, lambda: thread_metadata(client, channel_id, ts), shown_as=shown_as
        )
        parts = [
            int(message.payload.get("part", 0))
            for message in thread
            if message.kind == SUMMARY_PART_EVENT_TYPE
            and message.payload.get("generation") == claim.generation
        ]
        return channel_id, ts, max([claim.parts_posted, *parts])

    async def share_pending_charts(self) -> None:
        """Share the charts of weekly digests posted without one (the upload failed before)."""
        if self.client is None:
            return
        pending = await self._db(
            lambda s: summaries.claim_pending_charts(
                s, worker=self.name, now=self.clock.now(), lease=CLAIM_LEASE
            )
        )
        for chart in pending:
            period = week_containing(chart.period_start, self.tz)
            png = await read_in_thread(self.sessions, partial(self._chart, period=period))
            await self._share_chart(chart.post_id, period, chart.channel_id, chart.ts, png)

    def _chart(self, session: Session, *, period: Period) -> bytes:
        digest = weekly_digest(session, self.config, period.first_day, period.tz, self.clock.now())
        return weekly_digest_chart(digest)

    async def _share_chart(
        self, post_id: int, period: Period, channel_id: str, ts: str, chart: bytes
    ) -> None:
        """Upload the chart into the digest's thread; joining the channel first if need be."""
        assert self.client is not None and self.channels is not None
        client = self.client
        try:
            await self.channels.as_member(
                channel_id,
                lambda: client.files_upload_v2(
                    channel=channel_id, thread_ts=ts, file=chart,
                    filename=f"downvote-week-{period.first_day.isoformat()}.png",
                    title=f"Criteria, week of {period.first_day:%d %b %Y}",
                ),
                shown_as=label(self.channel or channel_id),
            )  # fmt: skip
        except SLACK_CALL_ERRORS as exc:
            await self._db(
                lambda s: summaries.chart_failed(s, post_id, worker=self.name, now=self.clock.now())
            )
            logger.error(
                "weekly chart for %s not shared (tried again later): %s",
                period.first_day,
                failure_detail(exc),
            )
            return
        await self._db(lambda s: summaries.chart_shared(s, post_id, worker=self.name))
