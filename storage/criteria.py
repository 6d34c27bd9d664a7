"""Success criteria and summary numbers, computed in the database.

Everything here aggregates in SQL and returns a handful of rows, whatever the number of events.
Percentiles are nearest-rank (the value at rank ceil(p/100 * n) in ascending order), computed with
ROW_NUMBER() and integer arithmetic so SQLite and PostgreSQL give the same answer to the bit.
Periods are half-open [start, end) on `occurred_at`. Functions take a session and never commit.
Each result carries its 95% interval (storage.stats): a share's from its two counts, a
percentile's from the values at two more ranks, read in the same statement as the value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    exists,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from storage.db import POSTGRESQL, backend_of
from storage.models import (
    Alert,
    App,
    DownvoteGroup,
    EventCategory,
    FeedbackEvent,
    GroupMember,
    Triage,
)
from storage.states import Rating, TriageStatus
from storage.stats import (
    Interval,
    percentile_rank_interval,
    significantly_different_percentiles,
    two_proportion_test,
    wilson_interval,
)
from storage.triage import triaged

EXCERPT_CHARS = 300
METRIC_PREFIX = "metrics."

# ---------------------------------------------------------------------------------------------
# What a criterion asks: plain data, so storage needs nothing from bot/config.


@dataclass(frozen=True)
class CriterionFilter:
    """Which events a criterion looks at; every set field must match."""

    app: str | None = None
    feature: str | None = None
    model: str | None = None
    confidence_above: float | None = None
    rated_only: bool = False


@dataclass(frozen=True)
class RatedUp:
    """The user gave a thumbs-up."""


@dataclass(frozen=True)
class NotDownvoted:
    """Up or unrated: silence counts as agreement."""


@dataclass(frozen=True)
class NotDownvotedAsModelIssue:
    """Not downvoted, or downvoted but triaged as *Not a model issue*."""


@dataclass(frozen=True)
class MetricIs:
    """`metrics.<name>` is the boolean `value`; events that don't report it are not counted."""

    name: str
    value: bool


Condition = RatedUp | NotDownvoted | NotDownvotedAsModelIssue | MetricIs


@dataclass(frozen=True)
class ShareSpec:
    condition: Condition
    filter: CriterionFilter = CriterionFilter()


@dataclass(frozen=True)
class PercentileSpec:
    """pN of `field`: "latency_ms", "confidence" or "metrics.<name>" (numbers only)."""

    field: str
    percentile: float
    filter: CriterionFilter = CriterionFilter()


CriterionSpec = ShareSpec | PercentileSpec


Dimension = Literal["model", "feature", "app"]
ScopeKey = Dimension


@dataclass(frozen=True)
class Scope:
    """Only the events of one model (feature, app).

    Events without a model (feature) form the group named "".
    """

    by: Dimension
    name: str

    @property
    def key(self) -> ScopeKey:
        return self.by


def group_key(by: Dimension) -> ColumnElement[str]:
    """What events are grouped by: NULL folded into "" so a group can be named in a bind."""
    if by == "app":
        return select(App.name).where(App.id == FeedbackEvent.app_id).scalar_subquery()
    column = FeedbackEvent.model if by == "model" else FeedbackEvent.feature
    return func.coalesce(column, "")


def _scope_clauses(scope: ScopeKey | None) -> list[ColumnElement[bool]]:
    return [] if scope is None else [group_key(scope) == bindparam("group")]


@dataclass(frozen=True)
class CriterionResult:
    """The value (None when no event qualifies) and how many events it was computed over."""

    value: float | None
    sample: int
    # Left out of ==, so a result reads as its value and sample size in tests and comparisons.
    interval: Interval | None = field(default=None, compare=False)  # 95%
    met: int | None = field(default=None, compare=False)  # shares: events meeting the condition


EMPTY = CriterionResult(value=None, sample=0)


@dataclass(frozen=True)
class CriterionSeries:
    """One result per consecutive period, and one for their union."""

    periods: list[CriterionResult]
    whole: CriterionResult


@dataclass(frozen=True)
class CriterionCounts:
    """A criterion's counts over consecutive periods: (counted, met) for each period, and
    (group keys, counted, met) for each combination of group keys over all the periods.
    `met` is 0 for a percentile, whose values are read at ranks afterwards."""

    periods: list[tuple[int, int]]
    groups: list[tuple[tuple[str, ...], int, int]]


# ---------------------------------------------------------------------------------------------
# SQL building blocks


def _metric_number(name: str, dialect: str) -> ColumnElement[Any]:
    """A metric as a float, NULL unless the event sent a JSON number (never a cast error)."""
    if dialect == POSTGRESQL:
        element = FeedbackEvent.metrics[name]
        return case(
            (func.json_typeof(element) == "number", element.as_float()),
        )
    path = _sqlite_json_path(name)
    return case(
        (
            func.json_type(FeedbackEvent.metrics, path).in_(["integer", "real"]),
            func.json_extract(FeedbackEvent.metrics, path),
        ),
        else_=None,
    ).cast(Float)


def _metric_is(name: str, value: bool, dialect: str) -> tuple[ColumnElement[bool], ...]:
    """(reported as a boolean, equals `value`) for `metrics.<name>`."""
    if dialect == POSTGRESQL:
        element = FeedbackEvent.metrics[name]
        return (
            func.json_typeof(element) == "boolean",
            element.as_string() == ("true" if value else "false"),
        )
    json_type = func.json_type(FeedbackEvent.metrics, _sqlite_json_path(name))
    return (json_type.in_(["true", "false"]), json_type == ("true" if value else "false"))


def _sqlite_json_path(name: str) -> str:
    return '$."' + name.replace('"', '""') + '"'


def _value_of(field: str, dialect: str) -> ColumnElement[Any]:
    if field == "latency_ms":
        return FeedbackEvent.latency_ms.expression
    if field == "confidence":
        return FeedbackEvent.confidence.expression
    if field.startswith(METRIC_PREFIX) and len(field) > len(METRIC_PREFIX):
        return _metric_number(field.removeprefix(METRIC_PREFIX), dialect)
    raise ValueError(f"unknown percentile field {field!r}")


def _filter_clauses(spec_filter: CriterionFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if spec_filter.app is not None:
        clauses.append(FeedbackEvent.app_id.in_(select(App.id).where(App.name == spec_filter.app)))
    if spec_filter.feature is not None:
        clauses.append(FeedbackEvent.feature == spec_filter.feature)
    if spec_filter.model is not None:
        clauses.append(FeedbackEvent.model == spec_filter.model)
    if spec_filter.confidence_above is not None:
        clauses.append(FeedbackEvent.confidence > spec_filter.confidence_above)
    if spec_filter.rated_only:
        clauses.append(FeedbackEvent.rating.is_not(None))
    return clauses


def _not_downvoted() -> ColumnElement[bool]:
    return func.coalesce(FeedbackEvent.rating, "") != Rating.DOWN


def _triaged_as_not_model_issue() -> ColumnElement[bool]:
    return exists().where(
        Triage.event_id == FeedbackEvent.id, Triage.status == TriageStatus.NOT_A_MODEL_ISSUE
    )


def _condition(
    condition: Condition, dialect: str
) -> tuple[ColumnElement[bool], list[ColumnElement[bool]]]:
    """(what counts as meeting it, what else an event needs to be counted at all)."""
    match condition:
        case RatedUp():
            return FeedbackEvent.rating == Rating.UP, []
        case NotDownvoted():
            return _not_downvoted(), []
        case NotDownvotedAsModelIssue():
            return or_(_not_downvoted(), _triaged_as_not_model_issue()), []
        case MetricIs(name=name, value=value):
            reported, equals = _metric_is(name, value, dialect)
            return equals, [reported]


def _in_period() -> list[ColumnElement[bool]]:
    """[:start, :end), bound when the statement runs."""
    return [
        FeedbackEvent.occurred_at >= bindparam("start"),
        FeedbackEvent.occurred_at < bindparam("end"),
    ]


def _period_index(bounds: Sequence[datetime]) -> ColumnElement[int]:
    """0 for events in [bounds[0], bounds[1]), 1 for the next period, and so on."""
    return case(
        *[
            (FeedbackEvent.occurred_at < bound, literal_column(str(i)))
            for i, bound in enumerate(bounds[1:-1])
        ],
        else_=literal_column(str(len(bounds) - 2)),
    )


def _period_of(periods: int) -> ColumnElement[int]:
    """0 for events before :bound_1, 1 before :bound_2, and so on: periods - 1 after the last."""
    return case(
        *[
            (FeedbackEvent.occurred_at < bindparam(f"bound_{i}"), literal_column(str(i - 1)))
            for i in range(1, periods)
        ],
        else_=literal_column(str(periods - 1)),
    )


def nearest_rank(n: int, percentile: float) -> int:
    """The 1-based rank of the pN value among n sorted values: ceil(p/100 * n), at least 1."""
    p = _exact(percentile)
    return max(1, -((-n * p.numerator) // (100 * p.denominator)))


def _exact(percentile: float) -> Fraction:
    # Through str, so 99.9 means 999/10 rather than the nearest binary fraction.
    return Fraction(str(percentile))


def _rank_sql(n: ColumnElement[int], percentile: float) -> ColumnElement[int]:
    """nearest_rank in SQL: ceil(n * num / den) in integer arithmetic, the same everywhere."""
    p = _exact(percentile)
    numerator, denominator = p.numerator, 100 * p.denominator
    return (n * numerator + (denominator - 1)) // denominator


# ---------------------------------------------------------------------------------------------
# Criteria


def _check_bounds(bounds: Sequence[datetime]) -> None:
    if len(bounds) < 2 or any(a >= b for a, b in pairwise(bounds)):
        raise ValueError("periods must end after they start: bounds must strictly increase")


def compute_criterion(
    session: Session,
    spec: CriterionSpec,
    start: datetime,
    end: datetime,
    scope: Scope | None = None,
) -> CriterionResult:
    """The criterion's value over [start, end), with its 95% interval; within `scope` if given."""
    _check_bounds([start, end])
    if isinstance(spec, ShareSpec):
        return share_result(*_share_counts(session, spec, start, end, scope))
    return _percentile(session, spec, start, end, scope)


def compute_criterion_series(
    session: Session,
    spec: CriterionSpec,
    bounds: Sequence[datetime],
    *,
    counts: CriterionCounts | None = None,
) -> CriterionSeries:
    """The criterion for each period between consecutive `bounds`, and over all of them.

    `counts`: the criterion's counts over the same bounds from `count_criteria`, when the caller
    counted several criteria in one pass. Otherwise a query per period rather than one bucketed
    query: each uses the occurred_at index for its own range, and for one criterion SQLite
    spends more evaluating a per-row CASE than scanning a range twice.
    A share over the whole span adds up the periods' counts; a percentile adds up their sizes
    and reads its own values at ranks (so does each period).
    """
    _check_bounds(bounds)
    if counts is None:
        per_period = [_counts(session, spec, a, b) for a, b in pairwise(bounds)]
    else:
        per_period = counts.periods
    periods = [
        _result(session, spec, a, b, n, met)
        for (a, b), (n, met) in zip(pairwise(bounds), per_period, strict=True)
    ]
    if len(periods) == 1:
        return CriterionSeries(periods, periods[0])
    n, met = sum(n for n, _ in per_period), sum(met for _, met in per_period)
    return CriterionSeries(periods, _result(session, spec, bounds[0], bounds[-1], n, met))


def _counts(
    session: Session, spec: CriterionSpec, start: datetime, end: datetime
) -> tuple[int, int]:
    if isinstance(spec, ShareSpec):
        return _share_counts(session, spec, start, end)
    query = _percentile_count_query(spec, backend_of(session), None)
    return session.execute(query, _params(start, end, None)).scalar_one(), 0


def _result(
    session: Session, spec: CriterionSpec, start: datetime, end: datetime, n: int, met: int
) -> CriterionResult:
    """The criterion over [start, end) from its counts: a share is done, a percentile reads its
    values at ranks."""
    if isinstance(spec, ShareSpec):
        return share_result(n, met)
    return _percentile(session, spec, start, end, n=n)


def count_criteria(
    session: Session,
    specs: Sequence[CriterionSpec],
    bounds: Sequence[datetime],
    dimensions: tuple[Dimension, ...] = (),
) -> list[CriterionCounts]:
    """Each criterion's counts for each period between consecutive `bounds`, and for each group
    along `dimensions` (NULL keys folded into ""), all in one statement.

    One pass over the span evaluates every criterion's conditions on each row, where a statement
    per criterion and period scans the span once per criterion, and groups it once per criterion
    (SQLite groups by sorting, so that is a sort of the span each). Rows no criterion counts are
    left out before grouping.
    """
    _check_bounds(bounds)
    if not specs:
        return []
    periods = len(bounds) - 1
    query = _criteria_counts_query(tuple(specs), backend_of(session), dimensions, periods)
    params: dict[str, Any] = {"start": bounds[0], "end": bounds[-1]}
    params.update({f"bound_{i}": bound for i, bound in enumerate(bounds[1:-1], start=1)})
    per_period = [[[0, 0] for _ in range(periods)] for _ in specs]
    per_group: list[dict[tuple[str, ...], list[int]]] = [{} for _ in specs]
    for row in session.execute(query, params):
        period, rest = (row[0], row[1:]) if periods > 1 else (0, row)
        keys, counts = tuple(rest[: len(dimensions)]), rest[len(dimensions) :]
        for index in range(len(specs)):
            n, met = counts[2 * index], counts[2 * index + 1]
            for total in (per_period[index][period], per_group[index].setdefault(keys, [0, 0])):
                total[0] += n
                total[1] += met
    return [
        CriterionCounts(
            [(n, met) for n, met in periods_of],
            [(keys, n, met) for keys, (n, met) in groups.items() if n],
        )
        for periods_of, groups in zip(per_period, per_group, strict=True)
    ]


@lru_cache(maxsize=64)
def _criteria_counts_query(
    specs: tuple[CriterionSpec, ...], dialect: str, dimensions: tuple[Dimension, ...], periods: int
) -> Select[Any]:
    """([period,] one key per dimension, then counted and met for each spec) per group."""
    grouping: list[Any] = [group_key(by).label(f"key_{i}") for i, by in enumerate(dimensions)]
    if periods > 1:
        grouping.insert(0, _period_of(periods).label("period"))
    columns: list[Any] = []
    counted_by_any = []
    for spec in specs:
        counted, meets = _counted_and_meeting(spec, dialect)
        counted_by_any.append(counted)
        columns.append(func.count(case((counted, 1))))
        # Nested rather than AND: the condition (a triage lookup, a JSON path) only where counted.
        columns.append(
            func.count(case((counted, case((meets, 1))))) if meets is not None else literal(0)
        )
    query = select(*grouping, *columns).where(*_in_period(), or_(*counted_by_any))
    return query.group_by(*grouping) if grouping else query


def _counted_and_meeting(
    spec: CriterionSpec, dialect: str
) -> tuple[ColumnElement[bool], ColumnElement[bool] | None]:
    """(which events the criterion counts, which of those meet it; None for a percentile)."""
    if isinstance(spec, PercentileSpec):
        value = _value_of(spec.field, dialect)
        return and_(value.is_not(None), *_filter_clauses(spec.filter)), None
    meets, required = _condition(spec.condition, dialect)
    clauses = [*_filter_clauses(spec.filter), *required]
    return (and_(*clauses) if clauses else true()), meets


def _params(start: datetime, end: datetime, scope: Scope | None) -> dict[str, Any]:
    params: dict[str, Any] = {"start": start, "end": end}
    if scope is not None:
        params["group"] = scope.name
    return params


def _share_counts(
    session: Session, spec: ShareSpec, start: datetime, end: datetime, scope: Scope | None = None
) -> tuple[int, int]:
    """(events counted, events meeting the condition) in [start, end)."""
    query = _share_query(spec, backend_of(session), scope and scope.key)
    sample, met = session.execute(query, _params(start, end, scope)).one()
    return sample, met


# Statements are built once per criterion, dialect and kind of scope, then run for each period
# with new bounds: a week's trend reuses one statement seven times instead of rebuilding it.
@lru_cache(maxsize=256)
def _share_query(spec: ShareSpec, dialect: str, scope: ScopeKey | None) -> Select[int, int]:
    meets, required = _condition(spec.condition, dialect)
    return select(func.count(), func.count(case((meets, 1)))).where(
        *_in_period(), *_filter_clauses(spec.filter), *required, *_scope_clauses(scope)
    )


def share_result(sample: int, met: int) -> CriterionResult:
    """met of sample as a share, with its Wilson interval (None without data)."""
    # Divide in Python from exact integer counts: no database float formatting differences.
    if not sample:
        return CriterionResult(value=None, sample=0, met=0)
    return CriterionResult(met / sample, sample, wilson_interval(met, sample), met)


def _percentile(
    session: Session,
    spec: PercentileSpec,
    start: datetime,
    end: datetime,
    scope: Scope | None = None,
    *,
    n: int | None = None,
) -> CriterionResult:
    """Count the values (unless the caller knows `n`), then read the ones at the needed ranks."""
    dialect, params = backend_of(session), _params(start, end, scope)
    key = scope and scope.key
    if n is None:
        n = session.execute(_percentile_count_query(spec, dialect, key), params).scalar_one()
    from_top = _exact(spec.percentile) > 50
    query = _values_at_ranks_query(spec, dialect, key, from_top)

    def values_at(ranks: Sequence[int]) -> dict[int, float]:
        # Positions counted from the end the statement sorts from: p95 reads about 5% of rows.
        positions = {(n - rank + 1 if from_top else rank): rank for rank in ranks}
        found = session.execute(
            query, {**params, "depth": max(positions), "positions": sorted(positions)}
        )
        return {positions[position]: float(value) for position, value in found}

    return percentile_result(n, spec.percentile, values_at)


def percentile_result(
    n: int, percentile: float, values_at: Callable[[Sequence[int]], Mapping[int, float]]
) -> CriterionResult:
    """pN of n values and its order-statistic interval, reading values by 1-based rank.

    The interval is None when n is too small for one at 95% (p95 needs 59 values) or for p100.
    """
    if n == 0:
        return EMPTY
    rank = nearest_rank(n, percentile)
    q = float(_exact(percentile) / 100)
    ranks = percentile_rank_interval(n, q) if q < 1 else None
    values = values_at([rank, *(ranks or ())])
    if ranks is None:
        return CriterionResult(values[rank], n)
    low, high = ranks
    return CriterionResult(values[rank], n, Interval(values[low], values[high]))


def _values(spec: PercentileSpec, dialect: str, scope: ScopeKey | None) -> tuple[Any, list[Any]]:
    value = _value_of(spec.field, dialect).label("value")
    where = [*_in_period(), value.is_not(None), *_filter_clauses(spec.filter)]
    return value, where + _scope_clauses(scope)


@lru_cache(maxsize=256)
def _percentile_count_query(
    spec: PercentileSpec, dialect: str, scope: ScopeKey | None
) -> Select[Any]:
    _, where = _values(spec, dialect, scope)
    return select(func.count()).where(*where)


@lru_cache(maxsize=256)
def _values_at_ranks_query(
    spec: PercentileSpec, dialect: str, scope: ScopeKey | None, from_top: bool
) -> Select[Any]:
    """(position, value) at the wanted `:positions` from the nearer end, in one statement.

    Sorted from the nearer end (p95 descending) and cut at `:depth`, the farthest position
    wanted, so both databases keep only that many rows in a bounded sort instead of sorting
    them all; the three ranks of a value and its interval cost one scan.
    """
    value, where = _values(spec, dialect, scope)
    nearest = (
        select(value)
        .where(*where)
        .order_by(value.desc() if from_top else value.asc())
        .limit(bindparam("depth", type_=Integer))
        .subquery()
    )
    order = nearest.c.value.desc() if from_top else nearest.c.value.asc()
    ranked = select(
        func.row_number().over(order_by=order).label("position"), nearest.c.value
    ).subquery()
    return select(ranked.c.position, ranked.c.value).where(
        ranked.c.position.in_(bindparam("positions", expanding=True))
    )


def significantly_different(a: CriterionResult, b: CriterionResult) -> bool:
    """Beyond noise at 95%: a two-proportion test for shares, non-overlapping intervals for
    percentiles. No data (or no interval) on either side is never a difference."""
    if a.met is not None and b.met is not None:
        return two_proportion_test(a.met, a.sample, b.met, b.sample).significant
    if a.interval is None or b.interval is None:
        return False
    return significantly_different_percentiles(a.interval, b.interval)


# ---------------------------------------------------------------------------------------------
# Downvotes and triage


@dataclass(frozen=True)
class DownvoteCounts:
    events: int
    downvotes: int
    triaged: int


@dataclass(frozen=True)
class NameCount:
    name: str | None
    count: int


@dataclass(frozen=True)
class CategoryWeekOverWeek:
    """How often a category was used this period and the one before."""

    name: str
    count: int
    previous: int


@dataclass(frozen=True)
class DownvoteRef:
    """A downvote to point at: enough to recognise it, and where its Slack alert is."""

    event_id: int
    occurred_at: datetime
    app: str
    feature: str | None
    model: str | None
    comment: str | None  # the first EXCERPT_CHARS characters
    response: str  # the first EXCERPT_CHARS characters
    slack_channel_id: str | None
    slack_ts: str | None


@dataclass(frozen=True)
class MedianDuration:
    seconds: float | None
    sample: int


def _downvoted_between(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [
        FeedbackEvent.rating == Rating.DOWN,
        FeedbackEvent.occurred_at >= start,
        FeedbackEvent.occurred_at < end,
    ]


def downvote_counts(session: Session, start: datetime, end: datetime) -> DownvoteCounts:
    """Events, downvotes, and downvotes already triaged, in [start, end)."""
    is_down = FeedbackEvent.rating == Rating.DOWN
    # Nested, not AND: PostgreSQL goes on to the lookups when the rating is NULL (NULL AND false
    # is false), so "is_down AND triaged" looked up every unrated event too.
    row = session.execute(
        select(
            func.count(),
            func.count(case((is_down, 1))),
            func.count(case((is_down, case((triaged(), 1))))),
        ).where(FeedbackEvent.occurred_at >= start, FeedbackEvent.occurred_at < end)
    ).one()
    return DownvoteCounts(events=row[0], downvotes=row[1], triaged=row[2])


def top_categories(
    session: Session, start: datetime, end: datetime, *, limit: int = 5
) -> list[NameCount]:
    """Categories on downvotes of [start, end), most used first."""
    count = func.count().label("n")
    query = (
        select(EventCategory.category, count)
        .select_from(EventCategory)
        .join(FeedbackEvent, FeedbackEvent.id == EventCategory.event_id)
        .where(*_downvoted_between(start, end))
        .group_by(EventCategory.category)
        .order_by(count.desc(), EventCategory.category)
        .limit(limit)
    )
    return [NameCount(name, n) for name, n in session.execute(query)]


def categories_compared(
    session: Session, previous_start: datetime, start: datetime, end: datetime
) -> list[CategoryWeekOverWeek]:
    """Category counts in [start, end) beside [previous_start, start), busiest first."""
    period = _period_index([previous_start, start, end]).label("period")
    query = (
        select(EventCategory.category, period, func.count().label("n"))
        .select_from(EventCategory)
        .join(FeedbackEvent, FeedbackEvent.id == EventCategory.event_id)
        .where(*_downvoted_between(previous_start, end))
        .group_by(EventCategory.category, period)
    )
    counts: dict[str, list[int]] = {}
    for name, index, n in session.execute(query):
        counts.setdefault(name, [0, 0])[index] = n
    changes = [CategoryWeekOverWeek(name, now, before) for name, (before, now) in counts.items()]
    return sorted(changes, key=lambda c: (-c.count, -c.previous, c.name))


def top_downvoted(
    session: Session,
    by: Literal["feature", "model", "app"],
    start: datetime,
    end: datetime,
    *,
    limit: int = 5,
) -> list[NameCount]:
    """Features (or models, or apps) with the most downvotes in [start, end)."""
    column = {"feature": FeedbackEvent.feature, "model": FeedbackEvent.model, "app": App.name}[by]
    count = func.count().label("n")
    query = (
        select(column, count)
        .select_from(FeedbackEvent)
        .join(App, App.id == FeedbackEvent.app_id)
        .where(*_downvoted_between(start, end))
        .group_by(column)
        # NULLS LAST spelled out: the databases disagree on where NULL sorts by default.
        .order_by(count.desc(), column.asc().nulls_last())
        .limit(limit)
    )
    return [NameCount(name, n) for name, n in session.execute(query)]


def _downvote_refs() -> Select[Any]:
    return (
        select(
            FeedbackEvent.id.label("event_id"),
            FeedbackEvent.occurred_at,
            App.name.label("app"),
            FeedbackEvent.feature,
            FeedbackEvent.model,
            func.substr(FeedbackEvent.comment, 1, EXCERPT_CHARS).label("comment"),
            func.substr(FeedbackEvent.response, 1, EXCERPT_CHARS).label("response"),
            Alert.slack_channel_id,
            Alert.slack_ts,
        )
        .join(App, App.id == FeedbackEvent.app_id)
        .outerjoin(Alert, Alert.event_id == FeedbackEvent.id)
    )


def _ref(row: Any) -> DownvoteRef:
    return DownvoteRef(
        event_id=row.event_id,
        occurred_at=row.occurred_at,
        app=row.app,
        feature=row.feature,
        model=row.model,
        comment=row.comment,
        response=row.response,
        slack_channel_id=row.slack_channel_id,
        slack_ts=row.slack_ts,
    )


def latest_downvotes(
    session: Session, spec_filter: CriterionFilter, start: datetime, end: datetime, *, limit: int
) -> list[DownvoteRef]:
    """The newest downvotes of [start, end) among the events a criterion looks at."""
    query = (
        _downvote_refs()
        .where(*_downvoted_between(start, end), *_filter_clauses(spec_filter))
        .order_by(FeedbackEvent.occurred_at.desc(), FeedbackEvent.id.desc())
        .limit(limit)
    )
    return [_ref(row) for row in session.execute(query)]


def untriaged_count(session: Session, end: datetime) -> int:
    """The backlog: downvotes before `end` that nobody has triaged yet."""
    query = select(func.count()).where(
        FeedbackEvent.rating == Rating.DOWN, FeedbackEvent.occurred_at < end, ~triaged()
    )
    return session.execute(query).scalar_one()


def oldest_untriaged(session: Session, end: datetime, *, limit: int = 5) -> list[DownvoteRef]:
    """The downvotes before `end` that have waited longest for triage."""
    query = (
        _downvote_refs()
        .where(FeedbackEvent.rating == Rating.DOWN, FeedbackEvent.occurred_at < end, ~triaged())
        .order_by(FeedbackEvent.occurred_at, FeedbackEvent.id)
        .limit(limit)
    )
    return [_ref(row) for row in session.execute(query)]


def representative_downvotes(
    session: Session, categories: Sequence[str], start: datetime, end: datetime, *, per: int = 2
) -> dict[str, list[DownvoteRef]]:
    """Up to `per` downvotes for each category: ones with a comment first, then the latest."""
    if not categories:
        return {}
    order = func.row_number().over(
        partition_by=EventCategory.category,
        order_by=(
            case((FeedbackEvent.comment.is_(None), 1), else_=0),
            FeedbackEvent.occurred_at.desc(),
            FeedbackEvent.id.desc(),
        ),
    )
    ranked = (
        _downvote_refs()
        .add_columns(EventCategory.category, order.label("pick"))
        .join(EventCategory, EventCategory.event_id == FeedbackEvent.id)
        .where(*_downvoted_between(start, end), EventCategory.category.in_(categories))
        .subquery()
    )
    query = select(ranked).where(ranked.c.pick <= per).order_by(ranked.c.category, ranked.c.pick)
    picked: dict[str, list[DownvoteRef]] = {name: [] for name in categories}
    for row in session.execute(query):
        picked[row.category].append(_ref(row))
    return picked


def _epoch_seconds(column: Any, dialect: str) -> ColumnElement[int]:
    """Whole seconds since 1970, exact on both databases (sub-second arithmetic differs)."""
    if dialect == POSTGRESQL:
        return cast(extract("epoch", func.date_trunc("second", column)), BigInteger)
    return cast(func.strftime("%s", column), BigInteger)


def median_time_to_triage(session: Session, start: datetime, end: datetime) -> MedianDuration:
    """Median of triaged_at - received_at over the downvotes of [start, end) already triaged."""
    dialect = backend_of(session)
    seconds = _epoch_seconds(Triage.triaged_at, dialect) - _epoch_seconds(
        FeedbackEvent.received_at, dialect
    )
    ranked = (
        select(
            seconds.label("seconds"),
            func.row_number().over(order_by=seconds).label("rank"),
            func.count().over().label("n"),
        )
        .select_from(FeedbackEvent)
        .join(Triage, Triage.event_id == FeedbackEvent.id)
        .where(*_downvoted_between(start, end), Triage.triaged_at.is_not(None))
        .subquery()
    )
    # The middle row, or the two middle rows when n is even.
    middle = select(ranked.c.seconds, ranked.c.n).where(
        ranked.c.rank.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2])
    )
    rows = session.execute(middle).all()
    if not rows:
        return MedianDuration(seconds=None, sample=0)
    median = sum(int(row.seconds) for row in rows) / len(rows)
    return MedianDuration(seconds=median, sample=rows[0].n)


@dataclass(frozen=True)
class GroupCounts:
    """How many distinct problems a period's downvotes were, and the biggest ones."""

    groups: int  # a downvote not (yet) in a group counts as one of its own
    top: list[tuple[int, DownvoteRef]]  # (the group's downvotes in the period, its first one)


def group_counts(session: Session, start: datetime, end: datetime, *, limit: int) -> GroupCounts:
    size = func.count().label("size")
    grouped = session.execute(
        select(GroupMember.group_id, size)
        .join(FeedbackEvent, FeedbackEvent.id == GroupMember.event_id)
        .where(*_downvoted_between(start, end))
        .group_by(GroupMember.group_id)
        .order_by(size.desc(), GroupMember.group_id)
    ).all()
    alone = session.scalar(
        select(func.count())
        .select_from(FeedbackEvent)
        .outerjoin(GroupMember, GroupMember.event_id == FeedbackEvent.id)
        .where(*_downvoted_between(start, end), GroupMember.event_id.is_(None))
    )
    biggest = [(row.group_id, row.size) for row in grouped[:limit] if row.size > 1]
    heads: dict[int, int] = {
        group_id: head
        for group_id, head in session.execute(
            select(DownvoteGroup.id, DownvoteGroup.head_event_id).where(
                DownvoteGroup.id.in_([group_id for group_id, _ in biggest])
            )
        )
    }
    refs = {
        row.event_id: _ref(row)
        for row in session.execute(_downvote_refs().where(FeedbackEvent.id.in_(heads.values())))
    }
    top = [(members, refs[heads[group_id]]) for group_id, members in biggest]
    return GroupCounts(len(grouped) + (alone or 0), top)
