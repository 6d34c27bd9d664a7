"""Numbers as people read them in a summary: values, targets, changes, dates."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.config import Criterion, PercentileCriterion, ShareCriterion, Target
from bot.summaries.queries import Change, Verdict
from storage.criteria import CriterionResult
from storage.periods import Period

EN_DASH = "\u2013"  # "no value", and between dates


MINUS = "\u2212"
NO_INTERVAL = "(too few values for an interval)"


ICONS = {
    Verdict.MET: "✅",
    Verdict.MISSED: "❌",
    Verdict.UNCERTAIN: "➖",  # neutral: the data can neither confirm nor refute the target
    Verdict.NOT_ENOUGH_DATA: "⚪",
}
_SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


def unit_of(criterion: Criterion) -> str:
    """The unit after a value: " ms" for latencies; "" for shares (shown as %) and numbers."""
    return _unit(criterion)


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


def format_change(criterion: Criterion, change: Change, versus: str = "") -> str:
    """`−10.0 pp (significant)` or `+3 ms vs previous day (within noise)`: which one it is, at a
    glance."""
    difference = change.difference
    sign = "+" if difference >= 0 else MINUS
    if isinstance(criterion, ShareCriterion):
        amount = f"{abs(difference) * 100:.1f} pp"
    else:
        amount = _number(abs(difference), 2) + _unit(criterion)
    word = "significant" if change.significant else "within noise"
    return f"{sign}{amount}{versus} ({word})"


def format_estimate(criterion: Criterion, result: CriterionResult) -> str:
    """`90.2% (86.2–93.1%)` or `412 ms (380–455 ms)`: the value and its 95% interval."""
    assert result.value is not None
    value = format_value(criterion, result.value)
    interval = result.interval
    if interval is None:
        return f"{value} {NO_INTERVAL}"
    if isinstance(criterion, ShareCriterion):
        return f"{value} ({interval.low * 100:.1f}{EN_DASH}{interval.high * 100:.1f}%)"
    decimals = _base_decimals(criterion, interval.low)
    low, high = _number(interval.low, decimals), _number(interval.high, decimals)
    return f"{value} ({low}{EN_DASH}{high}{_unit(criterion)})"


def day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def week_label(period: Period) -> str:
    first, last = period.first_day, period.last_day
    return f"{first:%a} {first.day} {first:%b} {EN_DASH} {last:%a} {last.day} {last:%b %Y}"


def moment_label(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else EN_DASH
