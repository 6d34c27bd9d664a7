"""`downvote criteria`: criteria with 95% intervals over any range, broken down, or compared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, cast

import typer

from bot.cli.common import fail, load_downvote_config, load_settings, now, parse_day, transaction

if TYPE_CHECKING:
    from bot.summaries.report import Side
    from storage.criteria import Dimension

DIMENSIONS = ("model", "feature", "app")
DEFAULT_DAYS = 7


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime


def criteria(
    by: Annotated[
        str | None, typer.Option("--by", help="Break down by model, feature or app.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date/time (default: 7 days ago).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this date/time (default: now).")] = None,
    compare: Annotated[
        str | None,
        typer.Option(help="Two sides, e.g. model=A,model=B (model=, feature= or app=)."),
    ] = None,
    before: Annotated[
        str | None, typer.Option(help="Days D1..D2 (both included), compared with --after.")
    ] = None,
    after: Annotated[str | None, typer.Option(help="Days D3..D4, compared with --before.")] = None,
) -> None:
    """Criteria with 95% intervals, breakdowns, and whether differences are significant."""
    from bot.summaries.report import comparison_report, criteria_report

    period = _range(since, until)
    sides = _sides(compare, before, after, period)
    dimension = _dimension(by)
    if by is not None and sides is not None:
        fail("--by lists one range; use it without --compare, --before and --after")
    settings = load_settings()
    config = load_downvote_config(settings)
    with transaction(settings) as session:
        if sides is not None:
            text = comparison_report(session, config, *sides)
        else:
            text = criteria_report(session, config, period.start, period.end, dimension)
    typer.echo(text, nl=False)


def _dimension(by: str | None) -> Dimension | None:
    if by is None:
        return None
    if by not in DIMENSIONS:
        fail(f"--by must be model, feature or app, got {by!r}")
    return cast("Dimension", by)


def _range(since: str | None, until: str | None) -> Range:
    end = parse_day(until, "--until") or now()
    start = parse_day(since, "--since") or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        fail("--since must be before --until")
    return Range(start, end)


def _sides(
    compare: str | None, before: str | None, after: str | None, period: Range
) -> tuple[Side, Side] | None:
    """The two sides asked for, or None for the plain table."""
    from bot.summaries.report import Side

    if compare is not None and (before is not None or after is not None):
        fail("use either --compare or --before/--after, not both")
    if (before is None) != (after is None):
        fail("--before and --after go together")
    if before is not None and after is not None:
        first, second = _days(before, "--before"), _days(after, "--after")
        return (
            Side(f"before ({before})", first.start, first.end),
            Side(f"after ({after})", second.start, second.end),
        )
    if compare is None:
        return None
    parts = compare.split(",")
    if len(parts) != 2:
        fail(f"--compare takes two sides like model=A,model=B, got {compare!r}")
    a, b = (_side(part, period) for part in parts)
    return a, b


def _side(text: str, period: Range) -> Side:
    from bot.summaries.report import Side
    from storage.criteria import Scope

    key, sep, name = text.strip().partition("=")
    if not sep or key not in DIMENSIONS or not name:
        fail(f"--compare sides look like model=NAME, feature=NAME or app=NAME, got {text!r}")
    scope = Scope(cast("Dimension", key), name)
    return Side(f"{key} {name}", period.start, period.end, scope)


def _days(text: str, option: str) -> Range:
    """D1..D2, both days included: [D1 00:00, D2 + 1 day 00:00) in UTC, like --since."""
    first, sep, last = text.partition("..")
    start, end = parse_day(first or None, option), parse_day(last or None, option)
    if not sep or start is None or end is None:
        fail(f"{option} takes a range of days like 2026-11-01..2026-11-07, got {text!r}")
    if start > end:
        fail(f"{option} must start before it ends, got {text!r}")
    return Range(start, end + timedelta(days=1))
