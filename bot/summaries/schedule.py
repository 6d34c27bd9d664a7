"""APScheduler wiring: the daily summary and the weekly digest, at the times in downvote.toml.

Exactly-once is not APScheduler's job here (its FAQ: a job store must not be shared between
processes): each run only asks SummaryPoster to post what is due, and the database's claim on
the period decides who posts it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Schedule
from bot.summaries.breach import breach_alerter_for
from bot.summaries.poster import SummaryPoster
from storage.states import PeriodKind

DAILY_JOB, WEEKLY_JOB, RETRY_JOB = "daily-summary", "weekly-digest", "summaries-retry"
RETENTION_JOB = "retention"
BREACH_JOB = "criteria-breaches"
BREACH_MINUTE = 5  # hourly, a few minutes past: the breach row keeps replicas from doubling it
RETENTION_AT = (3, 15)  # nightly, in the summary time zone: before the 09:00 summary
# A post that failed (Slack down at 09:00) is tried again this often until it goes out.
RETRY_MINUTES = 10


def summary_triggers(schedule: Schedule, tz: ZoneInfo) -> dict[str, CronTrigger]:
    return {
        DAILY_JOB: CronTrigger(hour=schedule.daily.hour, minute=schedule.daily.minute, timezone=tz),
        WEEKLY_JOB: CronTrigger(
            day_of_week=schedule.weekly.day_name,
            hour=schedule.weekly.at.hour,
            minute=schedule.weekly.at.minute,
            timezone=tz,
        ),
    }


def make_scheduler(
    poster: SummaryPoster,
    schedule: Schedule,
    tz: ZoneInfo,
    retention: Callable[[], Awaitable[object]] | None = None,
) -> AsyncIOScheduler:
    """A scheduler with stable job ids; a late run still runs (the claim keeps it single)."""
    scheduler = AsyncIOScheduler(timezone=tz)
    kinds = {DAILY_JOB: PeriodKind.DAILY, WEEKLY_JOB: PeriodKind.WEEKLY}
    for job_id, trigger in summary_triggers(schedule, tz).items():
        scheduler.add_job(
            poster.post_kind,
            trigger,
            args=[kinds[job_id]],
            id=job_id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
    scheduler.add_job(
        poster.post_due,
        IntervalTrigger(minutes=RETRY_MINUTES, timezone=tz),
        id=RETRY_JOB,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(
        breach_alerter_for(poster).check,
        CronTrigger(minute=BREACH_MINUTE, timezone=tz),
        id=BREACH_JOB,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
    )
    if retention is not None:
        hour, minute = RETENTION_AT
        scheduler.add_job(
            retention,
            CronTrigger(hour=hour, minute=minute, timezone=tz),
            id=RETENTION_JOB,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
    return scheduler
