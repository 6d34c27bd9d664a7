"""The daily summary and the weekly digest rendered for Slack (escaped mrkdwn, links, within
Slack's limits) and for the console (plain text), from the same lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import Criterion, ShareCriterion
from bot.slack.blocks import Block, context, divider, header, section
from bot.slack.limits import SECTION_TEXT, slack_len, spill, truncate
from bot.slack.mrkdwn import duration, escape, message_link, one_line
from bot.summaries.formatting import (
    EN_DASH,
    ICONS,
    day_label,
    format_change,
    format_estimate,
    format_target,
    format_value,
    moment_label,
    percent,
    unit_of,
    week_label,
)
from bot.summaries.queries import (
    Breach,
    Breakdown,
    Change,
    CriterionLine,
    CriterionTrend,
    DailySummary,
    Verdict,
    WeeklyDigest,
    verdict_of,
)
from storage.criteria import CriterionResult, DownvoteRef, GroupCounts, NameCount

Permalink = Callable[[str, str], str | None]

MAX_FALLBACK_CHARS = 3000
EXCERPT_CHARS = 140
CHART_PANELS = 12
NO_CRITERIA = "No criteria configured: see downvote.example.toml."


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
    return truncate(one_line(ref.comment or ref.response), EXCERPT_CHARS)


def _downvote_line(
    ref: DownvoteRef,
    markup: _Markup,
    tz: ZoneInfo,
    *,
    now: datetime | None = None,
    lead: str | None = None,
) -> str:
    where = " / ".join(markup.text(part) for part in (ref.app, ref.feature) if part)
    parts = [markup.link(moment_label(ref.occurred_at, tz), ref), where]
    if lead:
        parts.insert(0, lead)
    if ref.model:
        parts.append(markup.text(ref.model))
    parts.append(f"“{markup.text(_excerpt(ref))}”")
    if now is not None:
        parts.append(f"waiting {duration((now - ref.occurred_at).total_seconds())}")
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
    uncertain = " · uncertain" if verdict is Verdict.UNCERTAIN else ""
    return (
        f"{ICONS[verdict]} {name}: {format_estimate(criterion, result)} · "
        f"n = {result.sample:,} · target {format_target(criterion)}{uncertain}"
    )


def _with_change(head: str, criterion: Criterion, change: Change | None, period: str) -> str:
    if change is None:
        return head
    return f"{head} · {format_change(criterion, change, f' vs previous {period}')}"


def breakdown_lines(
    criterion: Criterion, breakdowns: Sequence[Breakdown], markup: _Markup
) -> list[str]:
    """One indented line per group: `model B: 85.0% (81.6–87.9%) · n = 500 · significantly
    worse`."""
    lines = []
    for part in breakdowns:
        for group in part.groups:
            name = markup.text(group.name) if group.name else f"(no {part.by})"
            worse = " · significantly worse" if group.worse else ""
            lines.append(
                f"      {part.by} {name}: {format_estimate(criterion, group.result)} · "
                f"n = {group.result.sample:,}{worse}"
            )
    return lines


def criterion_console_lines(
    criterion: Criterion, result: CriterionResult, breakdowns: Sequence[Breakdown] = ()
) -> list[str]:
    """A criterion and its breakdowns as plain text (`downvote criteria`)."""
    markup = _Markup(slack=False, permalink=message_link)
    return [
        _criterion_head(criterion, result, markup),
        *breakdown_lines(criterion, breakdowns, markup),
    ]


def _daily_criterion(line: CriterionLine, markup: _Markup) -> str:
    head = _criterion_head(line.criterion, line.result, markup)
    head = _with_change(head, line.criterion, line.change, "day")
    return "\n".join([head, *breakdown_lines(line.criterion, line.breakdowns, markup)])


def _daily_sections(summary: DailySummary, markup: _Markup) -> list[_Section]:
    tz = summary.period.tz
    counts = summary.counts
    downvotes = [
        f"{counts.downvotes:,} downvotes in {_groups(summary.groups)} ({counts.events:,} "
        f"events) · {percent(counts.triaged, counts.downvotes)} triaged "
        f"({counts.triaged:,} of {counts.downvotes:,})"
    ]
    if summary.top_categories:
        downvotes.append("Top categories: " + _charted_day(summary.top_categories, markup))
    downvotes.extend(_top_groups(summary.groups, markup, tz))
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


def _groups(counts: GroupCounts) -> str:
    return f"{counts.groups:,} group{'s' if counts.groups != 1 else ''}"


def _top_groups(counts: GroupCounts, markup: _Markup, tz: ZoneInfo) -> list[str]:
    """The biggest groups: how many downvotes each, and a link to its alert."""
    if not counts.top:
        return []
    return ["Top groups:"] + [
        _downvote_line(head, markup, tz, lead=f"{size:,} downvotes") for size, head in counts.top
    ]


def _charted_day(items: Sequence[NameCount], markup: _Markup, empty: str = "(none)") -> str:
    return ", ".join(f"{markup.text(item.name or empty)} ({item.count:,})" for item in items)


def _day_estimate(criterion: Criterion, result: CriterionResult) -> str:
    """A day in the trend: its interval when there is one (a day's p95 often has too few)."""
    assert result.value is not None
    if result.interval is None:
        return format_value(criterion, result.value)
    return format_estimate(criterion, result)


def _weekly_criterion(trend: CriterionTrend, markup: _Markup) -> str:
    head = _criterion_head(trend.criterion, trend.week, markup)
    head = _with_change(head, trend.criterion, trend.change, "week")
    days = " · ".join(
        f"{day:%a} "
        + (
            _day_estimate(trend.criterion, result)
            if verdict_of(trend.criterion, result) is not Verdict.NOT_ENOUGH_DATA
            and result.value is not None
            else EN_DASH
        )
        for day, result in trend.days
    )
    return "\n".join(
        [head, f"      {days}", *breakdown_lines(trend.criterion, trend.breakdowns, markup)]
    )


def _weekly_sections(digest: WeeklyDigest, markup: _Markup) -> list[_Section]:
    counts, before = digest.counts, digest.previous_counts
    triage = digest.time_to_triage
    downvotes = [
        f"{counts.downvotes:,} downvotes in {_groups(digest.groups)} ({counts.events:,} "
        f"events; last week {before.downvotes:,} of {before.events:,}) · "
        f"{percent(counts.triaged, counts.downvotes)} triaged",
        "Median time to triage: "
        + (
            f"{duration(triage.seconds)} (n = {triage.sample:,})"
            if triage.seconds is not None
            else EN_DASH
        ),
    ]
    if digest.top_features:
        downvotes.append("Features: " + _charted_day(digest.top_features, markup, "(no feature)"))
    if digest.top_models:
        downvotes.append("Models: " + _charted_day(digest.top_models, markup, "(no model)"))
    downvotes.extend(_top_groups(digest.groups, markup, digest.period.tz))
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


def _daily_title(summary: DailySummary) -> str:
    suffix = "" if summary.period.is_complete(summary.now) else " (so far)"
    return f"Daily summary · {day_label(summary.period.first_day)}{suffix}"


def _weekly_title(digest: WeeklyDigest) -> str:
    suffix = "" if digest.period.is_complete(digest.now) else " (so far)"
    return f"Weekly digest · {week_label(digest.period)}{suffix}"


def _fallback(title: str, criteria: Sequence[Verdict], downvotes: int) -> str:
    judged = [v for v in criteria if v is not Verdict.NOT_ENOUGH_DATA]
    met = sum(v is Verdict.MET for v in judged)
    uncertain = sum(v is Verdict.UNCERTAIN for v in judged)
    unsure = f" ({uncertain} uncertain)" if uncertain else ""
    return f"{title}: {met} of {len(judged)} criteria met{unsure}, {downvotes:,} downvotes"


@dataclass(frozen=True)
class SlackSummary:
    """A summary as Slack messages: the message itself, then what did not fit, in its thread."""

    text: str
    blocks: list[Block]
    parts: list[list[Block]]


def _slack_summary(text: str, blocks: list[Block]) -> SlackSummary:
    """Whatever does not fit one message (50 blocks, the total text budget) follows in the
    thread, in order: nothing is cut."""
    first, *rest = spill(blocks)
    if rest:
        plural = "s" if len(rest) > 1 else ""
        note = f"_Continued in the thread ({len(rest)} more part{plural})._"
        first = [*first, context([note], verbatim=False)]
    return SlackSummary(text, first, rest)


def daily_summary_message(
    summary: DailySummary, *, permalink: Permalink = message_link
) -> SlackSummary:
    """The daily summary for chat.postMessage (and its thread, if it is long)."""
    title = _daily_title(summary)
    sections = _daily_sections(summary, _Markup(slack=True, permalink=permalink))
    footer = f"Days run midnight to midnight, {summary.period.tz.key}."
    fallback = _fallback(title, [c.verdict for c in summary.criteria], summary.counts.downvotes)
    return _slack_summary(fallback[:MAX_FALLBACK_CHARS], _blocks(title, sections, footer))


def daily_summary_text(summary: DailySummary, *, permalink: Permalink = message_link) -> str:
    """The summary for the console (preview mode, --dry-run)."""
    sections = _daily_sections(summary, _Markup(slack=False, permalink=permalink))
    return _console_text(_daily_title(summary), sections)


def weekly_digest_message(
    digest: WeeklyDigest, *, permalink: Permalink = message_link
) -> SlackSummary:
    """The weekly digest for chat.postMessage; its overflow and the chart follow in the thread."""
    title = _weekly_title(digest)
    sections = _weekly_sections(digest, _Markup(slack=True, permalink=permalink))
    footer = f"Weeks run Monday to Sunday, {digest.period.tz.key}."
    fallback = _fallback(title, [t.verdict for t in digest.criteria], digest.counts.downvotes)
    return _slack_summary(fallback[:MAX_FALLBACK_CHARS], _blocks(title, sections, footer))


def weekly_digest_text(digest: WeeklyDigest, *, permalink: Permalink = message_link) -> str:
    sections = _weekly_sections(digest, _Markup(slack=False, permalink=permalink))
    return _console_text(_weekly_title(digest), sections)


def weekly_digest_chart(digest: WeeklyDigest) -> bytes:
    """PNG of each criterion's 7 days against its target; days without enough data are gaps.

    The first CHART_PANELS criteria only: a taller image is unreadable in Slack (the digest's
    text still shows every criterion's days).
    """
    charted = digest.criteria[:CHART_PANELS]
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
        for trend in charted
    }
    targets = {t.criterion.name: t.criterion.target.threshold for t in charted}
    percent = {t.criterion.name for t in charted if isinstance(t.criterion, ShareCriterion)}
    bands = {
        trend.criterion.name: [
            (r.interval.low, r.interval.high)
            if r.interval is not None and charted_day(trend.criterion, r)
            else None
            for _, r in trend.days
        ]
        for trend in charted
    }
    units = {t.criterion.name: unit_of(t.criterion).strip() for t in charted}
    # Imported here: matplotlib is a third of the service's start-up, for a weekly picture.
    from bot.summaries.chart import trend_chart_png

    return trend_chart_png(series, targets, percent=percent, bands=bands, units=units)


def charted_day(criterion: Criterion, result: CriterionResult) -> bool:
    """Enough data to chart (the same rule as the text's "not enough data")."""
    return verdict_of(criterion, result) is not Verdict.NOT_ENOUGH_DATA


def breach_message(
    breach: Breach, *, permalink: Permalink = message_link
) -> tuple[str, list[Block]]:
    """The breach alert: value, interval and target, the worst model and feature, and links to
    the latest downvotes (fallback text, blocks)."""
    markup = _Markup(slack=True, permalink=permalink)
    criterion, tz = breach.criterion, breach.period.tz
    title = f"Criterion missed today: {criterion.name}"
    lines = [
        f"{ICONS[Verdict.MISSED]} {markup.bold(markup.text(criterion.name))}: "
        f"{format_estimate(criterion, breach.result)} · n = {breach.result.sample:,} · "
        f"target {format_target(criterion)} · {day_label(breach.period.first_day)} so far, "
        f"until {moment_label(breach.now, tz)}"
    ]
    for by, group in breach.worst:
        name = markup.text(group.name) if group.name else f"(no {by})"
        worse = " · significantly worse than the rest" if group.worse else ""
        lines.append(
            f"Worst {by}: {name} {format_estimate(criterion, group.result)} · "
            f"n = {group.result.sample:,}{worse}"
        )
    if breach.latest:
        lines.append("Latest downvotes:")
        lines.extend(_downvote_line(ref, markup, tz) for ref in breach.latest)
    blocks: list[Block] = [header(title)]  # plain text: nothing in it is read as markup
    blocks.extend(section(text, verbatim=False) for text in _section_texts(lines[0], lines[1:]))
    fallback = (
        f"Criterion missed today: {escape(criterion.name)}: "
        f"{format_estimate(criterion, breach.result)}, target {format_target(criterion)}"
    )
    return fallback[:MAX_FALLBACK_CHARS], blocks


def _console_text(title: str, sections: Sequence[_Section]) -> str:
    parts = [title, "=" * len(title)]
    for part in sections:
        parts.append("")
        parts.append(part.title)
        parts.extend(part.lines)
    return "\n".join(parts) + "\n"


def _blocks(title: str, sections: Sequence[_Section], footer: str) -> list[Block]:
    blocks: list[Block] = [header(title)]
    for index, part in enumerate(sections):
        if index:
            blocks.append(divider())
        for text in _section_texts(f"*{part.title}*", part.lines):
            blocks.append(section(text, verbatim=False))
    blocks.append(context([footer], verbatim=False))
    return blocks


def _section_texts(title: str, lines: Sequence[str], limit: int = SECTION_TEXT) -> list[str]:
    """Lines into as few section texts as fit Slack's limit; a line is never split."""
    texts: list[str] = []
    current = title
    for line in lines:
        line = truncate(line, limit)
        if slack_len(current) + 1 + slack_len(line) > limit:
            texts.append(current)
            current = line
        else:
            current = f"{current}\n{line}"
    texts.append(current)
    return texts
