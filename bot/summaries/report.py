"""`downvote criteria` on the console: criteria over any range, broken down, or two sides compared.

The numbers come from the same storage functions as the summaries (counts from SQL, intervals
from storage.stats), so the console and Slack never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.config import Criterion, DownvoteConfig
from bot.summaries.formatting import format_change, format_estimate
from bot.summaries.queries import Breakdown, change_between, higher_is_better, verdict_of
from bot.summaries.render import criterion_console_lines
from storage.breakdowns import breakdown
from storage.criteria import CriterionResult, Dimension, Scope, compute_criterion

CONSOLE_GROUPS = 20


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a range of time, optionally one model (feature, app)."""

    label: str
    start: datetime
    end: datetime
    scope: Scope | None = None


def criteria_report(
    session: Session,
    config: DownvoteConfig,
    start: datetime,
    end: datetime,
    by: Dimension | None = None,
) -> str:
    """Each criterion over [start, end) with its interval, and per group when `by` is given."""
    lines = [f"Criteria, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} (UTC, end excluded)"]
    for criterion in config.criteria:
        spec = criterion.to_spec()
        result = compute_criterion(session, spec, start, end)
        breakdowns = []
        if by is not None:
            groups = breakdown(
                session, spec, by, start, end,
                limit=CONSOLE_GROUPS, higher_is_better=higher_is_better(criterion),
            )  # fmt: skip
            breakdowns.append(Breakdown(by, groups))
        lines.extend(criterion_console_lines(criterion, result, breakdowns))
    return "\n".join(lines) + "\n"


def comparison_report(session: Session, config: DownvoteConfig, a: Side, b: Side) -> str:
    """Each criterion on both sides, and whether the second differs from the first beyond noise."""
    lines = [f"Comparing {a.label} with {b.label}"]
    for criterion in config.criteria:
        spec = criterion.to_spec()
        first, second = (
            compute_criterion(session, spec, side.start, side.end, side.scope) for side in (a, b)
        )
        lines.append(criterion.name)
        for side, result in ((a, first), (b, second)):
            lines.append(f"  {side.label}: {_shown(criterion, result)}")
        change = change_between(criterion, second, first)
        lines.append(
            f"  difference: {format_change(criterion, change)}"
            if change is not None
            else f"  difference: not enough data (needs n ≥ {criterion.min_sample:,} on both sides)"
        )
    return "\n".join(lines) + "\n"


def _shown(criterion: Criterion, result: CriterionResult) -> str:
    if result.value is None:
        return "no data · n = 0"
    return (
        f"{format_estimate(criterion, result)} · n = {result.sample:,} · "
        f"{verdict_of(criterion, result).value}"
    )
