"""A criterion per model, feature or app: the busiest groups, and which are worse than the rest.

One GROUP BY returns each group's counts; nothing but counts and a few values at chosen ranks
comes back. For a share, "the rest" of a group is the total minus the group, so the comparison
(a two-proportion test) costs no query. For a percentile the rest needs its own count and ranks,
read only for groups whose value is on the worse side of the overall one: a quantile of a mixture
lies between its parts' quantiles, so no other group can be worse than the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from storage.criteria import (
    CriterionResult,
    CriterionSpec,
    Dimension,
    PercentileSpec,
    Scope,
    ShareSpec,
    _condition,
    _filter_clauses,
    _in_period,
    _percentile,
    _values,
    group_key,
    share_result,
    significantly_different,
)
from storage.db import backend_of


@dataclass(frozen=True)
class GroupResult:
    """One model's (feature's, app's) value; `worse`: significantly worse than all the others."""

    name: str  # "" for events that name none
    result: CriterionResult
    worse: bool


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
    """The `limit` groups with the most events counted in [start, end), busiest first.

    `overall`: the criterion over the same range, when the caller has it (saves a percentile).
    """
    dialect = backend_of(session)
    params = {"start": start, "end": end}
    rows = list(session.execute(_group_counts_query(spec, dialect, by), params))
    if isinstance(spec, ShareSpec):
        return _share_groups(rows[:limit], rows, higher_is_better)
    total = sum(row.n for row in rows)
    if overall is None and rows:
        overall = _percentile(session, spec, start, end, n=total)
    groups = []
    for row in rows[:limit]:
        scope = Scope(by, row.name)
        result = _percentile(session, spec, start, end, scope, n=row.n)
        worse = False
        if overall is not None and _worse(result, overall, higher_is_better, strict=False):
            rest_scope = Scope(by, row.name, inside=False)
            rest = _percentile(session, spec, start, end, rest_scope, n=total - row.n)
            worse = _worse(result, rest, higher_is_better, strict=True)
        groups.append(GroupResult(row.name, result, worse))
    return groups


def _share_groups(top: list[Any], rows: list[Any], higher_is_better: bool) -> list[GroupResult]:
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
def _group_counts_query(spec: CriterionSpec, dialect: str, by: Dimension) -> Select[Any]:
    """(name, n[, met]) per group, busiest first; ties by name so the order is stable."""
    key = group_key(by).label("name")
    n = func.count().label("n")
    if isinstance(spec, PercentileSpec):
        _, where = _values(spec, dialect, None)
        columns: list[Any] = [key, n]
    else:
        meets, required = _condition(spec.condition, dialect)
        where = [*_in_period(), *_filter_clauses(spec.filter), *required]
        columns = [key, n, func.count(case((meets, 1))).label("met")]
    return select(*columns).where(*where).group_by(key).order_by(n.desc(), key)
