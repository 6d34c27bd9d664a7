"""Posting the daily summary and the weekly digest: claim the period, build, send, record.

Used alike by the scheduler, by `serve` at start-up (a period missed while it was down) and by
`downvote digest`. Query (queries), render (render, chart) and send (here) stay apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.config import DownvoteConfig
from bot.slack.blocks import Block
from bot.slack.errors import SLACK_CALL_ERRORS, failure_reason
from bot.slack.history import find_posted
from bot.summaries.queries import daily_summary, weekly_digest
from bot.summaries.render import (
    daily_summary_blocks,
    daily_summary_text,
    weekly_digest_blocks,
    weekly_digest_chart,
    weekly_digest_text,
)
from storage import summaries
from storage.db import read_in_thread, transact_in_thread
from storage.periods import Period, day_containing, local_date, week_containing
from storage.states import PeriodKind, PostingStatus

logger = logging.getLogger("downvote.summaries")
SUMMARY_EVENT_TYPE = "downvote_summary"
CLAIM_LEASE = timedelta(minutes=10)


class Outcome(StrEnum):
    POSTED = "posted"
    PRINTED = "printed"  # preview mode
    ALREADY_POSTED = "already posted"
    IN_PROGRESS = "being posted by another process"
    FAILED = "failed"
    NO_DATA = "skipped: Downvote had received no events by the end of the period"


class NoChannel(Exception):
    """Summaries have nowhere to go: SLACK_CHANNEL is not set."""


@dataclass(frozen=True)
class Rendered:
    text: str
    blocks: list[Block]
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
    """Build the summary of one period: Slack blocks, console text, and the weekly chart."""
    if kind == PeriodKind.DAILY:
        summary = daily_summary(session, config, period.first_day, period.tz, now)
        text, blocks = daily_summary_blocks(summary)
        return Rendered(text, blocks, daily_summary_text(summary), None)
    digest = weekly_digest(session, config, period.first_day, period.tz, now)
    text, blocks = weekly_digest_blocks(digest)
    return Rendered(text, blocks, weekly_digest_text(digest), weekly_digest_chart(digest))


def summary_metadata(kind: PeriodKind, period: Period, generation: int) -> dict[str, Any]:
    """Metadata that finds this posting again in the channel's history after a crash."""
    return {
        "event_type": SUMMARY_EVENT_TYPE,
        "event_payload": {
            "kind": kind.value, "period_start": period.first_day.isoformat(),
            "generation": generation,
        },
    }  # fmt: skip


@dataclass
class SummaryPoster:
    sessions: sessionmaker[Session]
    client: AsyncWebClient | None  # None: preview mode, print instead of post
    channel: str | None
    config: DownvoteConfig
    tz: ZoneInfo
    name: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    console: Callable[[str], None] = print

    async def _db(self, work: Callable[[Session], Any]) -> Any:
        return await transact_in_thread(self.sessions, work)

    async def post_due(self) -> list[Result]:
        """Post whatever is due and not yet posted: the scheduled job, and the catch-up at start."""
        return [await self.post_kind(kind) for kind in PeriodKind]

    async def post_kind(self, kind: PeriodKind) -> Result:
        return await self.post(kind, due_period(kind, self.clock(), self.config, self.tz))

    async def post(
        self, kind: PeriodKind, period: Period, *, force: bool = False,
        skip_before_data: bool = True,
    ) -> Result:  # fmt: skip
        """Post one period once (or once more with `force`)."""
        now = self.clock()
        if skip_before_data and not await self._db(
            lambda s: summaries.has_events_before(s, period.end)
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
            channel, ts, outcome = await self._send(kind, period, claim, rendered)
        except (*SLACK_CALL_ERRORS, NoChannel) as exc:
            reason = str(exc) if isinstance(exc, NoChannel) else failure_reason(exc)
            await self._db(
                lambda s: summaries.release(s, claim.post_id, worker=self.name, now=self.clock())
            )
            logger.error("%s summary for %s not posted: %s", kind, period.first_day, reason)
            return Result(Outcome.FAILED, period, detail=reason)
        await self._db(
            lambda s: summaries.mark_posted(
                s, claim.post_id, worker=self.name, channel=channel, ts=ts, now=self.clock()
            )
        )
        logger.info("%s summary for %s %s", kind, period.first_day, outcome.value)
        return Result(outcome, period, ts)

    async def _send(
        self, kind: PeriodKind, period: Period, claim: summaries.Claim, rendered: Rendered
    ) -> tuple[str | None, str | None, Outcome]:
        if self.client is None:
            self.console(f"\n── Downvote {kind} summary (preview mode) ──\n{rendered.console}")
            return None, None, Outcome.PRINTED
        if not self.channel:
            raise NoChannel("no channel: set SLACK_CHANNEL to post summaries")
        metadata = summary_metadata(kind, period, claim.generation)
        found = None
        if claim.took_over:  # the previous holder died: did its post go through?
            found = await find_posted(
                self.client, self.channel, since=self.clock() - CLAIM_LEASE * 2,
                matches=lambda event_type, payload: (
                    event_type == SUMMARY_EVENT_TYPE and payload == metadata["event_payload"]
                ),
            )  # fmt: skip
        if found is not None:
            return found[0], found[1], Outcome.POSTED
        response = await self.client.chat_postMessage(
            channel=self.channel, text=rendered.text, blocks=rendered.blocks,
            metadata=metadata, unfurl_links=False,
        )  # fmt: skip
        channel_id, ts = str(response["channel"]), str(response["ts"])
        if rendered.chart is not None:
            await self.client.files_upload_v2(
                channel=channel_id,
                thread_ts=ts,
                file=rendered.chart,
                filename=f"downvote-week-{period.first_day.isoformat()}.png",
                title=f"Criteria, week of {period.first_day:%d %b %Y}",
            )
        return channel_id, ts, Outcome.POSTED
