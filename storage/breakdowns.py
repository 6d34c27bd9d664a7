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
) -> dict[Dimension, list[GroupResult]]:
    """`breakdown` along several dimensions, counted in one GROUP BY over all of them (one scan
    of the range instead of one per dimension; the rows are combinations, a few dozen).

    `overall`: the criterion over the same range, when the caller has it (saves a percentile).
    """
    query = _group_counts_query(spec, backend_of(session), dimensions)
    rows = list(session.execute(query, {"start": start, "end": end}))
    if isinstance(spec, PercentileSpec) and overall is None:
        overall = _overall(session, spec, start, end, _per_group(rows, 0))
    found = {}
    for index, by in enumerate(dimensions):
        counts = _per_group(rows, index)
        if isinstance(spec, ShareSpec):
            found[by] = _share_groups(counts[:limit], counts, higher_is_better)
        else:
            found[by] = _percentile_groups(
                session, spec, by, start, end, counts, limit, higher_is_better, overall
            )
    return found


def _per_group(rows: list[Any], index: int) -> list[_Counts]:
    """Counts per value of the index-th key, busiest first, ties by name."""
    totals: dict[str, list[int]] = {}
    for row in rows:
        total = totals.setdefault(row[index], [0, 0])
        total[0] += row.n
        total[1] += getattr(row, "met", 0)
    ordered = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    return [_Counts(name, n, met) for name, (n, met) in ordered]


def _overall(
    session: Session, spec: PercentileSpec, start: datetime, end: datetime, counts: list[_Counts]
) -> CriterionResult | None:
    total = sum(c.n for c in counts)
    return _percentile(session, spec, start, end, n=total) if total else None


def _percentile_groups(
    session: Session, spec: PercentileSpec, by: Dimension, start: datetime, end: datetime,
    counts: list[_Counts], limit: int, higher_is_better: bool, overall: CriterionResult | None,
) -> list[GroupResult]:  # fmt: skip
    total = sum(c.n for c in counts)
    groups = []
    for row in counts[:limit]:
        result = _percentile(session, spec, start, end, Scope(by, row.name), n=row.n)
        worse = False
        if overall is not None and _worse(result, overall, higher_is_better, strict=False):
            rest_scope = Scope(by, row.name, inside=False)
            rest = _percentile(session, spec, start, end, rest_scope, n=total - row.n)
            worse = _worse(result, rest, higher_is_better, strict=True)
        groups.append(GroupResult(row.name, result, worse))
    return groups


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
