"""What the daily summary and the weekly digest show, asked of the database.

SQL aggregates and a few rows come back as plain data; `bot.summaries.render` turns that data
into Slack blocks or console text without touching the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.config import Criterion, DownvoteConfig
from storage.breakdowns import GroupResult, breakdowns
from storage.criteria import (
    EMPTY,
    CategoryWeekOverWeek,
    CriterionCounts,
    CriterionResult,
    Dimension,
    DownvoteCounts,
    DownvoteRef,
    GroupCounts,
    MedianDuration,
    NameCount,
    categories_compared,
    compute_criterion,
    compute_criterion_series,
    count_criteria,
    downvote_counts,
    group_counts,
    latest_downvotes,
    median_time_to_triage,
    oldest_untriaged,
    representative_downvotes,
    significantly_different,
    top_categories,
    top_downvoted,
    untriaged_count,
)
from storage.periods import Period, day_containing, week_containing
from storage.stats import judge

TOP = 5
LATEST_DOWNVOTES = 3
EXAMPLE_CATEGORIES = 3
EXAMPLES_PER_CATEGORY = 2


BY: tuple[Dimension, ...] = ("model", "feature")


class Verdict(StrEnum):
    MET = "met"
    MISSED = "missed"
    UNCERTAIN = "uncertain"  # the target lies inside the interval
    NOT_ENOUGH_DATA = "not enough data"


def verdict_of(criterion: Criterion, result: CriterionResult) -> Verdict:
    """Met or missed only when the whole 95% interval says so: a small sample never alarms.

    A percentile with too few values for an interval (p95 below 59) is uncertain.
    """
    if criterion.verdict(result.value, result.sample) is None:
        return Verdict.NOT_ENOUGH_DATA
    if result.interval is None:
        return Verdict.UNCERTAIN
    target = criterion.target
    return Verdict(judge(result.interval, target.threshold, target.op))


def higher_is_better(criterion: Criterion) -> bool:
    return criterion.target.op in (">=", ">")


def criterion_breakdowns(
    session: Session,
    criterion: Criterion,
    start: datetime,
    end: datetime,
    *,
    limit: int = TOP,
    overall: CriterionResult | None = None,
    counts: CriterionCounts | None = None,
) -> list[Breakdown]:
    """The criterion per model and per feature over [start, end) (`overall`: its known value;
    `counts`: its known counts per model and feature)."""
    found = breakdowns(
        session, criterion.to_spec(), BY, start, end, limit=limit,
        higher_is_better=higher_is_better(criterion), overall=overall, counts=counts,
    )  # fmt: skip
    return [Breakdown(by, found[by]) for by in BY]


@dataclass(frozen=True)
class Breakdown:
    """A criterion's busiest groups along one dimension."""

    by: Dimension
    groups: list[GroupResult]


@dataclass(frozen=True)
class Change:
    """This period's value minus the previous one, and whether that is beyond noise."""

    difference: float
    significant: bool


def change_between(
    criterion: Criterion, result: CriterionResult, previous: CriterionResult
) -> Change | None:
    """None unless both periods had enough data to count."""
    if Verdict.NOT_ENOUGH_DATA in (verdict_of(criterion, result), verdict_of(criterion, previous)):
        return None
    assert result.value is not None and previous.value is not None
    return Change(result.value - previous.value, significantly_different(result, previous))


@dataclass(frozen=True)
class CriterionLine:
    """A criterion over one day, beside the day before."""

    criterion: Criterion
    result: CriterionResult
    previous: CriterionResult
    breakdowns: list[Breakdown] = field(default_factory=list)  # only when it missed

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.criterion, self.result)

    @property
    def change(self) -> Change | None:
        """Today against yesterday, when both days had enough data to count."""
        return change_between(self.criterion, self.result, self.previous)


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
    previous: CriterionResult = EMPTY  # the week before
    breakdowns: list[Breakdown] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.criterion, self.week)

    @property
    def change(self) -> Change | None:
        return change_between(self.criterion, self.week, self.previous)


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
    lines = []
    for criterion in config.criteria:
        line = CriterionLine(
            criterion,
            result=compute_criterion(session, criterion.to_spec(), period.start, period.end),
            previous=compute_criterion(session, criterion.to_spec(), before.start, before.end),
        )
        if line.verdict is Verdict.MISSED:
            breakdowns = criterion_breakdowns(
                session, criterion, period.start, period.end, overall=line.result
            )
            line = replace(line, breakdowns=breakdowns)
        lines.append(line)
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
    specs = [criterion.to_spec() for criterion in config.criteria]
    # Every criterion counted in one pass over the week, per day, model and feature: one GROUP
    # BY for all of them (percentiles then read their values at ranks). The week before needs
    # no groups, so no sort to share: a statement per criterion, each with its own filter.
    bounds = period.day_bounds()
    trends = []
    for criterion, spec, counts in zip(
        config.criteria, specs, count_criteria(session, specs, bounds, BY), strict=True
    ):
        series = compute_criterion_series(session, spec, bounds, counts=counts)
        last = compute_criterion(session, spec, previous.start, previous.end)
        parts = criterion_breakdowns(
            session, criterion, period.start, period.end, overall=series.whole, counts=counts
        )
        days = list(zip(period.days, series.periods, strict=True))
        trends.append(CriterionTrend(criterion, days, series.whole, last, parts))
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


@dataclass(frozen=True)
class Breach:
    """A criterion whose whole interval misses its target today so far, and where to look."""

    criterion: Criterion
    period: Period
    now: datetime
    result: CriterionResult
    worst: list[tuple[Dimension, GroupResult]]  # the worst model, the worst feature
    latest: list[DownvoteRef]


def breach_of(
    session: Session, criterion: Criterion, day: date, tz: ZoneInfo, now: datetime
) -> Breach | None:
    """The breach of `criterion` on `day` up to `now`, or None when it is not (yet) missed."""
    period = day_containing(day, tz)
    end = min(now, period.end)
    if end <= period.start:
        return None
    spec = criterion.to_spec()
    result = compute_criterion(session, spec, period.start, end)
    if verdict_of(criterion, result) is not Verdict.MISSED:
        return None
    worst = []
    for part in criterion_breakdowns(session, criterion, period.start, end, overall=result):
        group = _worst(part.groups, higher_is_better(criterion))
        if group is not None:
            worst.append((part.by, group))
    latest = latest_downvotes(session, spec.filter, period.start, end, limit=LATEST_DOWNVOTES)
    return Breach(criterion, period, now, result, worst, latest)


def _worst(groups: list[GroupResult], higher_is_better: bool) -> GroupResult | None:
    """A group marked significantly worse first; among equals, the lowest (highest) value."""
    known = [g for g in groups if g.result.value is not None]
    if not known:
        return None
    sign = 1 if higher_is_better else -1
    return min(known, key=lambda g: (not g.worse, sign * (g.result.value or 0.0)))
