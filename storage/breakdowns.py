"""A criterion per model, feature or app: the busiest groups, and which are worse than the rest.

One GROUP BY returns each group's counts; nothing but counts and a few values at chosen ranks
comes back. For a share, "the rest" of a group is the total minus the group, so the comparison
(a two-proportion test) costs no query. For a percentile, a group is worse than the rest when its
interval lies wholly beyond the rest's on the worse side; that is a count (how many of the rest's
values lie beyond the group's interval end), so one statement settles it for every group instead
of reading each rest's values at three ranks. Only groups whose value is on the worse side of the
overall one are counted: a quantile of a mixture lies between its parts' quantiles, so no other
group can be worse than the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Float, Select, and_, bindparam, case, func, select
from sqlalchemy.orm import Session

from storage.criteria import (
    CriterionCounts,
    CriterionResult,
    CriterionSpec,
    Dimension,
    PercentileSpec,
    Scope,
    ShareSpec,
    _condition,
    _exact,
    _filter_clauses,
    _in_period,
    _percentile,
    _values,
    group_key,
    share_result,
    significantly_different,
)
from storage.db import backend_of
from storage.stats import percentile_rank_interval


@dataclass(frozen=True)
class GroupResult:
    """One model's (feature's, app's) value; `worse`: significantly worse than all the others."""

    name: str  # "" for events that name none
    result: CriterionResult
    worse: bool


@dataclass(frozen=True)
class _Counts:
    name: str
    n: int
    met: int


def breakdown(
    session: Session,
    spec: CriterionSpec,
    by: Dimension,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    higher_is_better: bool,
    overall: CriterionResult | None = None,
) -> list[GroupResult]:
    """The `limit` groups with the most events counted in [start, end), busiest first."""
    return breakdowns(
        session, spec, (by,), start, end, limit=limit, higher_is_better=higher_is_better,
        overall=overall,
    )[by]  # fmt: skip


def breakdowns(
    session: Session,
    spec: CriterionSpec,
    dimensions: tuple[Dimension, ...],
    start: datetime,
    end: datetime,
    *,
    limit: int,
    higher_is_better: bool,
    overall: CriterionResult | None = None,
    counts: CriterionCounts | None = None,
) -> dict[Dimension, list[GroupResult]]:
    """`breakdown` along several dimensions, counted in one GROUP BY over all of them (one scan
    of the range instead of one per dimension; the rows are combinations, a few dozen).

    `overall`: the criterion over the same range, when the caller has it (saves a percentile).
    `counts`: its counts per group along `dimensions` over the same range, from
    `count_criteria`, when the caller counted several criteria at once (saves the GROUP BY).
    """
    if counts is None:
        query = _group_counts_query(spec, backend_of(session), dimensions)
        found = session.execute(query, {"start": start, "end": end})
        rows = [(tuple(row[: len(dimensions)]), row.n, getattr(row, "met", 0)) for row in found]
    else:
        rows = counts.groups
    per_group = {by: _per_group(rows, index) for index, by in enumerate(dimensions)}
    if isinstance(spec, ShareSpec):
        return {
            by: _share_groups(by_counts[:limit], by_counts, higher_is_better)
            for by, by_counts in per_group.items()
        }
    total = sum(n for _, n, _ in rows)
    if overall is None and total:
        overall = _percentile(session, spec, start, end, n=total)
    groups = {
        by: [
            (row.name, _percentile(session, spec, start, end, Scope(by, row.name), n=row.n))
            for row in by_counts[:limit]
        ]
        for by, by_counts in per_group.items()
    }
    candidates = [
        (by, name, result)
        for by, named in groups.items()
        for name, result in named
        if overall is not None and _worse(result, overall, higher_is_better, strict=False)
    ]
    worse = _worse_than_the_rest(session, spec, start, end, candidates, total, higher_is_better)
    return {
        by: [GroupResult(name, result, (by, name) in worse) for name, result in named]
        for by, named in groups.items()
    }


def _per_group(rows: list[tuple[tuple[str, ...], int, int]], index: int) -> list[_Counts]:
    """Counts per value of the index-th key, busiest first, ties by name."""
    totals: dict[str, list[int]] = {}
    for keys, n, met in rows:
        total = totals.setdefault(keys[index], [0, 0])
        total[0] += n
        total[1] += met
    ordered = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    return [_Counts(name, n, met) for name, (n, met) in ordered]


def _worse_than_the_rest(
    session: Session, spec: PercentileSpec, start: datetime, end: datetime,
    candidates: list[tuple[Dimension, str, CriterionResult]], total: int, higher_is_better: bool,
) -> set[tuple[Dimension, str]]:  # fmt: skip
    """The candidates significantly worse than all other events: `_worse(group, rest)`, in one
    statement instead of the rest's percentile for each.

    Worse means on the worse side with the intervals apart. A value lies inside its interval, so
    when lower is better that is rest.high < group.low, where rest.high is the rest's value at
    ascending rank u of its n: below group.low exactly when at most n - u of the rest's values
    are at or above group.low. When higher is better: rest.low (rank l) > group.high exactly when
    at most l - 1 of them are at or below group.high.
    """
    q = float(_exact(spec.percentile) / 100)
    checks = []  # (by, name, the group's interval end facing the rest, most rest values beyond)
    for by, name, result in candidates:
        rest_n = total - result.sample
        ranks = percentile_rank_interval(rest_n, q) if rest_n and q < 1 else None
        if ranks is None or result.interval is None:
            continue  # no interval on one side: never significantly different
        if higher_is_better:
            checks.append((by, name, result.interval.high, ranks[0] - 1))
        else:
            checks.append((by, name, result.interval.low, rest_n - ranks[1]))
    if not checks:
        return set()
    dimensions = tuple(by for by, _, _, _ in checks)
    query = _rest_beyond_query(spec, backend_of(session), dimensions, higher_is_better)
    params: dict[str, Any] = {"start": start, "end": end}
    for index, (_, name, edge, _) in enumerate(checks):
        params[f"group_{index}"], params[f"edge_{index}"] = name, edge
    beyond = session.execute(query, params).one()
    return {
        (by, name)
        for (by, name, _, most), count in zip(checks, beyond, strict=True)
        if count <= most
    }


def _share_groups(
    top: list[_Counts], rows: list[_Counts], higher_is_better: bool
) -> list[GroupResult]:
    total, total_met = sum(row.n for row in rows), sum(row.met for row in rows)
    groups = []
    for row in top:
        result = share_result(row.n, row.met)
        rest = share_result(total - row.n, total_met - row.met)
        groups.append(GroupResult(row.name, result, _worse(result, rest, higher_is_better)))
    return groups


def _worse(
    group: CriterionResult, rest: CriterionResult, higher_is_better: bool, *, strict: bool = True
) -> bool:
    """Is the group on the worse side of `rest` (and, when strict, beyond noise)?"""
    if group.value is None or rest.value is None:
        return False
    lower = group.value < rest.value
    on_worse_side = lower if higher_is_better else group.value > rest.value
    if not strict:
        return on_worse_side or group.value == rest.value
    return on_worse_side and significantly_different(group, rest)


@lru_cache(maxsize=256)
def _rest_beyond_query(
    spec: PercentileSpec, dialect: str, dimensions: tuple[Dimension, ...], higher_is_better: bool
) -> Select[Any]:
    """For each i: the values outside group :group_i of `dimensions[i]` at or beyond :edge_i
    (at or below it when higher is better), all counted in one scan."""
    value, where = _values(spec, dialect, None)
    counts: list[Any] = []
    for index, by in enumerate(dimensions):
        edge = bindparam(f"edge_{index}", type_=Float)
        beyond = value <= edge if higher_is_better else value >= edge
        counts.append(
            func.count(case((and_(beyond, group_key(by) != bindparam(f"group_{index}")), 1)))
        )
    return select(*counts).where(*where)


@lru_cache(maxsize=256)
def _group_counts_query(
    spec: CriterionSpec, dialect: str, dimensions: tuple[Dimension, ...]
) -> Select[Any]:
    """(one key per dimension, n[, met]) per combination of keys."""
    keys = [group_key(by).label(f"key_{index}") for index, by in enumerate(dimensions)]
    n = func.count().label("n")
    if isinstance(spec, PercentileSpec):
        _, where = _values(spec, dialect, None)
        columns: list[Any] = [*keys, n]
    else:
        meets, required = _condition(spec.condition, dialect)
        where = [*_in_period(), *_filter_clauses(spec.filter), *required]
        columns = [*keys, n, func.count(case((meets, 1))).label("met")]
    return select(*columns).where(*where).group_by(*keys)
