"""The daily summary and the weekly digest: query, then render for Slack or the console.

`daily_summary` / `weekly_digest` ask the database (SQL aggregates, a few rows back) and return
plain data; `*_blocks` and `*_text` render that data without touching the database, so the same
numbers reach Slack, `--dry-run` and the tests. Posting (and posting once) is the caller's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.charts import trend_chart_png
from bot.config import DownvoteConfig, PercentileCriterion, ShareCriterion, Target
from bot.mrkdwn import escape
from storage.criteria import (
    CategoryChange,
    CriterionResult,
    DownvoteCounts,
    DownvoteRef,
    MedianDuration,
    NameCount,
    categories_compared,
    compute_criterion,
    compute_criterion_series,
    downvote_counts,
    median_time_to_triage,
    oldest_untriaged,
    representative_downvotes,
    top_categories,
    top_downvoted,
    untriaged_count,
)
from storage.periods import Period, day_containing, week_containing

Criterion = ShareCriterion | PercentileCriterion
Permalink = Callable[[str, str], str | None]
Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_FALLBACK_CHARS = 3000
EXCERPT_CHARS = 140
TOP = 5
EXAMPLE_CATEGORIES = 3
EXAMPLES_PER_CATEGORY = 2
NO_CRITERIA = "No criteria configured: see downvote.example.toml."
EN_DASH = "\u2013"  # "no value", and between dates


def slack_permalink(channel_id: str, ts: str) -> str:
    """The archive link Slack redirects to the message, without an API call."""
    return f"https://slack.com/archives/{channel_id}/p{ts.replace('.', '')}"


# ---------------------------------------------------------------------------------------------
# Data


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
    previous_counts: DownvoteCounts
    categories: list[CategoryChange]
    time_to_triage: MedianDuration
    top_features: list[NameCount]
    top_models: list[NameCount]
    examples: dict[str, list[DownvoteRef]]


# ---------------------------------------------------------------------------------------------
# Query


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
        previous_counts=downvote_counts(session, previous.start, previous.end),
        categories=categories,
        time_to_triage=median_time_to_triage(session, period.start, period.end),
        top_features=top_downvoted(session, "feature", period.start, period.end, limit=TOP),
        top_models=top_downvoted(session, "model", period.start, period.end, limit=TOP),
        examples=representative_downvotes(
            session, busiest, period.start, period.end, per=EXAMPLES_PER_CATEGORY
        ),
    )


# ---------------------------------------------------------------------------------------------
# Formatting numbers


ICONS = {Verdict.MET: "✅", Verdict.MISSED: "❌", Verdict.NOT_ENOUGH_DATA: "⚪"}
_SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


def _unit(criterion: Criterion) -> str:
    return (
        " ms"
        if isinstance(criterion, PercentileCriterion) and criterion.field == "latency_ms"
        else ""
    )


def _number(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(criterion: Criterion, value: float) -> str:
    """The value as people read it, precise enough never to contradict its own ✅ or ❌.

    90.0% against ≥ 92% is plainly a fail, but 91.99% must not show as "92.0%" beside a ❌.
    """
    decimals = _decimals_agreeing(criterion, value, _base_decimals(criterion, value))
    if isinstance(criterion, ShareCriterion):
        return f"{value * 100:.{decimals}f}%"
    return _number(value, decimals) + _unit(criterion)


def _base_decimals(criterion: Criterion, value: float) -> int:
    if isinstance(criterion, ShareCriterion):
        return 1
    if criterion.field == "latency_ms":
        return 0 if abs(value) >= 10 else 1
    return 2


def _decimals_agreeing(criterion: Criterion, value: float, start: int) -> int:
    target = criterion.target
    decimals = start
    while decimals < start + 6 and target.is_met_by(
        _shown(criterion, value, decimals)
    ) != target.is_met_by(value):
        decimals += 1
    return decimals


def _shown(criterion: Criterion, value: float, decimals: int) -> float:
    """What `value` reads as with that many decimals (of a percentage, for shares)."""
    if isinstance(criterion, ShareCriterion):
        return round(value * 100, decimals) / 100
    return round(value, decimals)


def format_target(criterion: Criterion) -> str:
    target: Target = criterion.target
    if isinstance(criterion, ShareCriterion):
        return f"{_SYMBOLS[target.op]} {_number(target.threshold * 100, 2)}%"
    return f"{_SYMBOLS[target.op]} {_number(target.threshold, 4)}{_unit(criterion)}"


def format_change(criterion: Criterion, change: float) -> str:
    if isinstance(criterion, ShareCriterion):
        return f"{change * 100:+.1f} pp"
    return f"{'+' if change >= 0 else '-'}{_number(abs(change), 2)}{_unit(criterion)}"


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds < 60:
        return f"{round(seconds)} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _week_label(period: Period) -> str:
    first, last = period.first_day, period.last_day
    return f"{first:%a} {first.day} {first:%b} {EN_DASH} {last:%a} {last.day} {last:%b %Y}"


def _moment(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else EN_DASH


# ---------------------------------------------------------------------------------------------
# Group: the same lines for Slack (mrkdwn, escaped, links) and the console (plain).


@dataclass(frozen=True)
class _Markup:
    slack: bool
    permalink: Permalink

    def text(self, text: str) -> str:
        """User text: escaped for mrkdwn so it can never ping or forge a link."""
        return escape(text) if self.slack else text

    def bold(self, text: str) -> str:
        return f"*{text}*" if self.slack else text

    def link(self, label: str, ref: DownvoteRef) -> str:
        url = (
            self.permalink(ref.slack_channel_id, ref.slack_ts)
            if ref.slack_channel_id and ref.slack_ts
            else None
        )
        if url is None:
            return label
        return f"<{url}|{label}>" if self.slack else f"{label} ({url})"


@dataclass(frozen=True)
class _Section:
    title: str
    lines: list[str]


def _excerpt(ref: DownvoteRef) -> str:
    text = " ".join((ref.comment or ref.response).split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _downvote_line(
    ref: DownvoteRef, markup: _Markup, tz: ZoneInfo, *, now: datetime | None = None
) -> str:
    where = " / ".join(markup.text(part) for part in (ref.app, ref.feature) if part)
    parts = [markup.link(_moment(ref.occurred_at, tz), ref), where]
    if ref.model:
        parts.append(markup.text(ref.model))
    parts.append(f"“{markup.text(_excerpt(ref))}”")
    if now is not None:
        parts.append(f"waiting {format_duration((now - ref.occurred_at).total_seconds())}")
    return "• " + " · ".join(parts)


def _criterion_head(criterion: Criterion, result: CriterionResult, markup: _Markup) -> str:
    name = markup.bold(markup.text(criterion.name))
    verdict = verdict_of(criterion, result)
    if verdict is Verdict.NOT_ENOUGH_DATA:
        return (
            f"{ICONS[verdict]} {name}: not enough data "
            f"(n = {result.sample:,}, needs {criterion.min_sample:,}) · "
            f"target {format_target(criterion)}"
        )
    assert result.value is not None
    return (
        f"{ICONS[verdict]} {name}: {format_value(criterion, result.value)} "
        f"(target {format_target(criterion)}) · n = {result.sample:,}"
    )


def _daily_criterion(line: CriterionLine, markup: _Markup) -> str:
    head = _criterion_head(line.criterion, line.result, markup)
    if line.change is None:
        return head
    return f"{head} · {format_change(line.criterion, line.change)} vs previous day"


def _daily_sections(summary: DailySummary, markup: _Markup) -> list[_Section]:
    tz = summary.period.tz
    counts = summary.counts
    downvotes = [
        f"{counts.downvotes:,} downvotes of {counts.events:,} events · "
        f"{_percent(counts.triaged, counts.downvotes)} triaged "
        f"({counts.triaged:,} of {counts.downvotes:,})"
    ]
    if summary.top_categories:
        downvotes.append("Top categories: " + _name_counts(summary.top_categories, markup))
    sections = [
        _Section(
            "Success criteria",
            [_daily_criterion(c, markup) for c in summary.criteria] or [NO_CRITERIA],
        ),
        _Section("Downvotes", downvotes),
    ]
    if summary.oldest_untriaged:
        sections.append(
            _Section(
                f"Oldest untriaged ({summary.untriaged:,} waiting)",
                [
                    _downvote_line(ref, markup, tz, now=summary.now)
                    for ref in summary.oldest_untriaged
                ],
            )
        )
    return sections


def _name_counts(items: Sequence[NameCount], markup: _Markup, empty: str = "(none)") -> str:
    return ", ".join(f"{markup.text(item.name or empty)} ({item.count:,})" for item in items)


def _weekly_criterion(trend: CriterionTrend, markup: _Markup) -> str:
    head = _criterion_head(trend.criterion, trend.week, markup)
    days = " · ".join(
        f"{day:%a} "
        + (
            format_value(trend.criterion, result.value)
            if verdict_of(trend.criterion, result) is not Verdict.NOT_ENOUGH_DATA
            and result.value is not None
            else EN_DASH
        )
        for day, result in trend.days
    )
    return f"{head}\n      {days}"


def _weekly_sections(digest: WeeklyDigest, markup: _Markup) -> list[_Section]:
    counts, before = digest.counts, digest.previous_counts
    triage = digest.time_to_triage
    downvotes = [
        f"{counts.downvotes:,} downvotes of {counts.events:,} events "
        f"(last week {before.downvotes:,} of {before.events:,}) · "
        f"{_percent(counts.triaged, counts.downvotes)} triaged",
        "Median time to triage: "
        + (
            f"{format_duration(triage.seconds)} (n = {triage.sample:,})"
            if triage.seconds is not None
            else EN_DASH
        ),
    ]
    if digest.top_features:
        downvotes.append("Features: " + _name_counts(digest.top_features, markup, "(no feature)"))
    if digest.top_models:
        downvotes.append("Models: " + _name_counts(digest.top_models, markup, "(no model)"))
    sections = [
        _Section(
            "Success criteria",
            [_weekly_criterion(t, markup) for t in digest.criteria] or [NO_CRITERIA],
        ),
        _Section("Downvotes", downvotes),
    ]
    if digest.categories:
        sections.append(
            _Section(
                "Categories, this week vs last",
                [
                    f"• {markup.text(c.name)}: {c.count:,} (last week {c.previous:,}, "
                    f"{c.count - c.previous:+,})"
                    for c in digest.categories[:10]
                ],
            )
        )
    for category, refs in digest.examples.items():
        if refs:
            sections.append(
                _Section(
                    f"Examples: {markup.text(category)}",
                    [_downvote_line(ref, markup, digest.period.tz) for ref in refs],
                )
            )
    return sections


# ---------------------------------------------------------------------------------------------
# Render


def _daily_title(summary: DailySummary) -> str:
    suffix = "" if summary.period.is_complete(summary.now) else " (so far)"
    return f"Daily summary · {_day_label(summary.period.first_day)}{suffix}"


def _weekly_title(digest: WeeklyDigest) -> str:
    suffix = "" if digest.period.is_complete(digest.now) else " (so far)"
    return f"Weekly digest · {_week_label(digest.period)}{suffix}"


def _fallback(title: str, criteria: Sequence[Verdict], downvotes: int) -> str:
    judged = [v for v in criteria if v is not Verdict.NOT_ENOUGH_DATA]
    met = sum(v is Verdict.MET for v in judged)
    return f"{title}: {met} of {len(judged)} criteria met, {downvotes:,} downvotes"


def daily_summary_blocks(
    summary: DailySummary, *, permalink: Permalink = slack_permalink
) -> tuple[str, list[Block]]:
    """(notification text, blocks) for chat.postMessage."""
    title = _daily_title(summary)
    sections = _daily_sections(summary, _Markup(slack=True, permalink=permalink))
    footer = f"Days run midnight to midnight, {summary.period.tz.key}."
    fallback = _fallback(title, [c.verdict for c in summary.criteria], summary.counts.downvotes)
    return fallback[:MAX_FALLBACK_CHARS], _blocks(title, sections, footer)


def daily_summary_text(summary: DailySummary, *, permalink: Permalink = slack_permalink) -> str:
    """The summary for the console (preview mode, --dry-run)."""
    sections = _daily_sections(summary, _Markup(slack=False, permalink=permalink))
    return _plain(_daily_title(summary), sections)


def weekly_digest_blocks(
    digest: WeeklyDigest,
    *,
    permalink: Permalink = slack_permalink,
    chart_file_id: str | None = None,
) -> tuple[str, list[Block]]:
    """(notification text, blocks); with the id of the uploaded chart, an image block shows it."""
    title = _weekly_title(digest)
    sections = _weekly_sections(digest, _Markup(slack=True, permalink=permalink))
    footer = f"Weeks run Monday to Sunday, {digest.period.tz.key}."
    image = None
    if chart_file_id is not None:
        image = {
            "type": "image",
            "slack_file": {"id": chart_file_id},
            "alt_text": "Each criterion, day by day, against its target",
        }
    fallback = _fallback(title, [t.verdict for t in digest.criteria], digest.counts.downvotes)
    return fallback[:MAX_FALLBACK_CHARS], _blocks(title, sections, footer, image=image)


def weekly_digest_text(digest: WeeklyDigest, *, permalink: Permalink = slack_permalink) -> str:
    sections = _weekly_sections(digest, _Markup(slack=False, permalink=permalink))
    return _plain(_weekly_title(digest), sections)


def weekly_digest_chart(digest: WeeklyDigest) -> bytes:
    """PNG of each criterion's 7 days against its target; days without enough data are gaps."""
    series = {
        trend.criterion.name: [
            (
                day,
                result.value
                if verdict_of(trend.criterion, result) is not Verdict.NOT_ENOUGH_DATA
                else None,
            )
            for day, result in trend.days
        ]
        for trend in digest.criteria
    }
    targets = {t.criterion.name: t.criterion.target.threshold for t in digest.criteria}
    percent = {t.criterion.name for t in digest.criteria if isinstance(t.criterion, ShareCriterion)}
    return trend_chart_png(series, targets, percent=percent)


def _plain(title: str, sections: Sequence[_Section]) -> str:
    parts = [title, "=" * len(title)]
    for section in sections:
        parts.append("")
        parts.append(section.title)
        parts.extend(section.lines)
    return "\n".join(parts) + "\n"


def _blocks(
    title: str, sections: Sequence[_Section], footer: str, *, image: Block | None = None
) -> list[Block]:
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, MAX_HEADER_CHARS)}}
    ]
    for index, section in enumerate(sections):
        if index:
            blocks.append({"type": "divider"})
        for chunk in _pack(f"*{section.title}*", section.lines):
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
        if index == 0 and image is not None:
            blocks.append(image)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return _at_most(blocks, MAX_BLOCKS)


def _pack(title: str, lines: Sequence[str], limit: int = MAX_SECTION_CHARS) -> list[str]:
    """Lines into as few section texts as fit Slack's limit; a line is never split."""
    chunks: list[str] = []
    current = title
    for line in lines:
        line = _cut(line, limit)
        if len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}"
    chunks.append(current)
    return chunks


def _at_most(blocks: list[Block], limit: int) -> list[Block]:
    if len(blocks) <= limit:
        return blocks
    kept = blocks[: limit - 1]
    note = f"…{len(blocks) - len(kept)} more blocks not shown (see `downvote digest --dry-run`)."
    return [*kept, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
