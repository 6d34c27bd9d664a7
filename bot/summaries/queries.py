"""What the daily summary and the weekly digest show, asked of the database.

SQL aggregates and a few rows come back as plain data; `bot.summaries.render` turns that data
into Slack blocks or console text without touching the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.config import Criterion, DownvoteConfig
from storage.criteria import (
    CategoryWeekOverWeek,
    CriterionResult,
    DownvoteCounts,
    DownvoteRef,
    GroupCounts,
    MedianDuration,
    NameCount,
    categories_compared,
    compute_criterion,
    compute_criterion_series,
    downvote_counts,
    group_counts,
    median_time_to_triage,
    oldest_untriaged,
    representative_downvotes,
    top_categories,
    top_downvoted,
    untriaged_count,
)
from storage.periods import Period, day_containing, week_containing

TOP = 5
EXAMPLE_CATEGORIES = 3
EXAMPLES_PER_CATEGORY = 2


class Verdict(StrEnum):
    MET = "met"
    MISSED = "missed"
    NOT_ENOUGH_DATA = "not enough data"


def verdict_of(criterion: Criterion, result: CriterionResult) -> Verdict:
    passed = criterion.verdict(result.value, result.sample)
    if passed is None:
        return Verdict.NOT_ENOUGH_DATA
    return Verdict.MET if passed else Verdict.MISSED


@dataclass(frozen=True)
class CriterionLine:
    """A criterion over one day, beside the day before."""

    criterion: Criterion
    result: CriterionResult
    previous: CriterionResult

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.criterion, self.result)

    @property
    def change(self) -> float | None:
        """Today's value minus yesterday's, when both days had enough data to count."""
        if Verdict.NOT_ENOUGH_DATA in (self.verdict, verdict_of(self.criterion, self.previous)):
            return None
        assert self.result.value is not None and self.previous.value is not None
        return self.result.value - self.previous.value


@dataclass(frozen=True)
class DailySummary:
    period: Period
    now: datetime
    criteria: list[CriterionLine]
    counts: DownvoteCounts
    groups: GroupCounts
    top_categories: list[NameCount]
    untriaged: int
    oldest_untriaged: list[DownvoteRef]


@dataclass(frozen=True)
class CriterionTrend:
    """A criterion for each day of a week, and over the whole week."""

    criterion: Criterion
    days: list[tuple[date, CriterionResult]]
    week: CriterionResult

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.criterion, self.week)


@dataclass(frozen=True)
class WeeklyDigest:
    period: Period
    now: datetime
    criteria: list[CriterionTrend]
    counts: DownvoteCounts
    groups: GroupCounts
    previous_counts: DownvoteCounts
    categories: list[CategoryWeekOverWeek]
    time_to_triage: MedianDuration
    top_features: list[NameCount]
    top_models: list[NameCount]
    examples: dict[str, list[DownvoteRef]]


def daily_summary(
    session: Session, config: DownvoteConfig, day: date, tz: ZoneInfo, now: datetime
) -> DailySummary:
    """Everything the daily summary of `day` (local to `tz`) shows."""
    period = day_containing(day, tz)
    before = period.previous()
    lines = [
        CriterionLine(
            criterion,
            result=compute_criterion(session, criterion.to_spec(), period.start, period.end),
            previous=compute_criterion(session, criterion.to_spec(), before.start, before.end),
        )
        for criterion in config.criteria
    ]
    return DailySummary(
        period=period,
        now=now,
        criteria=lines,
        counts=downvote_counts(session, period.start, period.end),
        groups=group_counts(session, period.start, period.end, limit=TOP),
        top_categories=top_categories(session, period.start, period.end, limit=TOP),
        untriaged=untriaged_count(session, period.end),
        oldest_untriaged=oldest_untriaged(session, period.end, limit=TOP),
    )


def weekly_digest(
    session: Session, config: DownvoteConfig, day: date, tz: ZoneInfo, now: datetime
) -> WeeklyDigest:
    """Everything the digest of the Monday-to-Sunday week containing `day` shows."""
    period = week_containing(day, tz)
    previous = period.previous()
    trends = []
    for criterion in config.criteria:
        series = compute_criterion_series(session, criterion.to_spec(), period.day_bounds())
        trends.append(
            CriterionTrend(
                criterion, list(zip(period.days, series.periods, strict=True)), series.whole
            )
        )
    categories = categories_compared(session, previous.start, period.start, period.end)
    busiest = [c.name for c in categories if c.count > 0][:EXAMPLE_CATEGORIES]
    return WeeklyDigest(
        period=period,
        now=now,
        criteria=trends,
        counts=downvote_counts(session, period.start, period.end),
        groups=group_counts(session, period.start, period.end, limit=TOP),
        previous_counts=downvote_counts(session, previous.start, previous.end),
        categories=categories,
        time_to_triage=median_time_to_triage(session, period.start, period.end),
        top_features=top_downvoted(session, "feature", period.start, period.end, limit=TOP),
        top_models=top_downvoted(session, "model", period.start, period.end, limit=TOP),
        examples=representative_downvotes(
            session, busiest, period.start, period.end, per=EXAMPLES_PER_CATEGORY
        ),
    )
