"""Criteria and summary numbers in SQL: the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from storage.breakdowns import breakdowns
from storage.criteria import (
    CategoryWeekOverWeek,
    CriterionFilter,
    CriterionResult,
    MetricIs,
    NameCount,
    NotDownvoted,
    NotDownvotedAsModelIssue,
    PercentileSpec,
    RatedUp,
    ShareSpec,
    categories_compared,
    compute_criterion,
    compute_criterion_series,
    count_criteria,
    downvote_counts,
    median_time_to_triage,
    nearest_rank,
    oldest_untriaged,
    representative_downvotes,
    top_categories,
    top_downvoted,
    untriaged_count,
)
from storage.models import Alert, App, EventCategory, FeedbackEvent, Triage
from tests.support.databases import DATABASES, fresh_session

T0 = datetime(2026, 3, 2, tzinfo=UTC)
DAY = timedelta(days=1)
HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    with fresh_session(request.param, tmp_path) as session:
        yield session


class Events:
    """Adds events with sensible defaults, so each test states only what it is about."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.count = 0

    def add(self, *, at: datetime = T0, app_id: int = 1, **fields: Any) -> FeedbackEvent:
        self.count += 1
        event = FeedbackEvent(
            app_id=app_id,
            external_id=f"e{self.count}",
            prompt="question",
            response=fields.pop("response", "answer"),
            occurred_at=at,
            received_at=fields.pop("received_at", at),
            **fields,
        )
        self.session.add(event)
        self.session.flush()
        return event

    def triage(self, event: FeedbackEvent, status: str, *, after: timedelta | None = None) -> None:
        self.session.add(
            Triage(
                event_id=event.id,
                status=status,
                triaged_at=event.received_at + after if after is not None else None,
                updated_at=T0,
            )
        )
        self.session.flush()

    def categorise(self, event: FeedbackEvent, *names: str) -> None:
        for name in names:
            self.session.add(EventCategory(event_id=event.id, category=name, added_at=T0))
        self.session.flush()

    def alert(self, event: FeedbackEvent, channel: str, ts: str) -> None:
        self.session.add(
            Alert(
                event_id=event.id,
                next_attempt_at=T0,
                created_at=T0,
                status="posted",
                slack_channel_id=channel,
                slack_ts=ts,
            )
        )
        self.session.flush()


@pytest.fixture
def events(db: Session) -> Events:
    return Events(db)


def share(db: Session, condition: Any, **filters: Any) -> CriterionResult:
    spec = ShareSpec(condition, CriterionFilter(**filters))
    return compute_criterion(db, spec, T0, T0 + DAY)


def percentile(db: Session, field: str, p: float, **filters: Any) -> CriterionResult:
    spec = PercentileSpec(field, p, CriterionFilter(**filters))
    return compute_criterion(db, spec, T0, T0 + DAY)


# ---------------------------------------------------------------------------------------------
# Shares


def test_share_of_thumbs_up_among_rated(db: Session, events: Events) -> None:
    for rating in ["up"] * 9 + ["down"] + [None] * 5:
        events.add(rating=rating)
    assert share(db, RatedUp(), rated_only=True) == CriterionResult(0.9, 10)
    assert share(db, RatedUp()) == CriterionResult(9 / 15, 15)


def test_not_downvoted_counts_silence_as_agreement(db: Session, events: Events) -> None:
    for rating in ["up", "down", None, None]:
        events.add(rating=rating)
    assert share(db, NotDownvoted()) == CriterionResult(0.75, 4)


def test_not_a_model_issue_counts_as_agreement(db: Session, events: Events) -> None:
    events.add(rating="up")
    events.add(rating=None)
    events.triage(events.add(rating="down"), "not_a_model_issue")
    events.triage(events.add(rating="down"), "resolved")
    events.add(rating="down")
    assert share(db, NotDownvotedAsModelIssue()) == CriterionResult(0.6, 5)


def test_metric_share_counts_only_events_reporting_a_boolean(db: Session, events: Events) -> None:
    for value in [True, True, True, False]:
        events.add(metrics={"tests_passed": value})
    events.add(metrics={"tests_passed": "true"})  # a string is not a boolean
    events.add(metrics={"tests_passed": 1})
    events.add(metrics={"other": True})
    events.add(metrics=None)
    assert share(db, MetricIs("tests_passed", True)) == CriterionResult(0.75, 4)
    assert share(db, MetricIs("tests_passed", False)) == CriterionResult(0.25, 4)


def test_empty_period_has_no_value(db: Session, events: Events) -> None:
    events.add(rating="up", at=T0 - timedelta(seconds=1))
    assert share(db, RatedUp()) == CriterionResult(None, 0)
    assert percentile(db, "latency_ms", 95) == CriterionResult(None, 0)


def test_period_is_half_open(db: Session, events: Events) -> None:
    events.add(rating="up", at=T0)
    events.add(rating="down", at=T0 + DAY - timedelta(microseconds=1))
    events.add(rating="down", at=T0 + DAY)
    assert share(db, RatedUp()) == CriterionResult(0.5, 2)


def test_filters_combine(db: Session, events: Events) -> None:
    db.add(App(name="other", created_at=T0))
    db.flush()
    other = db.query(App).filter_by(name="other").one().id
    events.add(rating="up", feature="summarize", model="m1", confidence=0.95)
    events.add(rating="down", feature="summarize", model="m1", confidence=0.95)
    events.add(rating="up", feature="summarize", model="m1", confidence=0.9)  # not above 0.9
    events.add(rating="up", feature="translate", model="m1", confidence=0.99)
    events.add(rating="up", feature="summarize", model="m2", confidence=0.99)
    events.add(rating="up", feature="summarize", model="m1", confidence=0.99, app_id=other)
    events.add(rating=None, feature="summarize", model="m1", confidence=0.99)
    assert share(db, RatedUp(), confidence_above=0.9) == CriterionResult(4 / 6, 6)
    assert share(db, RatedUp(), app="chat", feature="summarize", model="m1") == CriterionResult(
        2 / 4, 4
    )
    assert share(
        db, RatedUp(), app="chat", feature="summarize", confidence_above=0.9, rated_only=True
    ) == CriterionResult(2 / 3, 3)
    assert share(db, RatedUp(), app="nobody") == CriterionResult(None, 0)


# ---------------------------------------------------------------------------------------------
# Percentiles


def test_p95_is_nearest_rank(db: Session, events: Events) -> None:
    for ms in range(1, 101):
        events.add(latency_ms=float(ms * 10))
    events.add(latency_ms=None)
    assert percentile(db, "latency_ms", 95) == CriterionResult(950.0, 100)
    assert percentile(db, "latency_ms", 50) == CriterionResult(500.0, 100)
    assert percentile(db, "latency_ms", 100) == CriterionResult(1000.0, 100)
    assert percentile(db, "latency_ms", 0.5) == CriterionResult(10.0, 100)


def test_percentile_of_a_metric_ignores_values_that_are_not_numbers(
    db: Session, events: Events
) -> None:
    for score in [3, 1.5, 2, "fast", True, None, [1]]:
        events.add(metrics={"score": score})
    events.add(metrics={})
    assert percentile(db, "metrics.score", 50) == CriterionResult(2.0, 3)
    assert percentile(db, "metrics.score", 100) == CriterionResult(3.0, 3)


def test_percentile_respects_filter(db: Session, events: Events) -> None:
    for i in range(10):
        events.add(confidence=i / 10, latency_ms=float(i), rating="down" if i > 5 else "up")
    assert percentile(db, "confidence", 50, rated_only=True) == CriterionResult(0.4, 10)
    assert percentile(db, "latency_ms", 100, confidence_above=0.75) == CriterionResult(9.0, 2)


def test_unknown_field_is_a_programming_error(db: Session) -> None:
    with pytest.raises(ValueError, match="unknown percentile field"):
        percentile(db, "colour", 50)


@pytest.mark.parametrize(
    ("n", "p", "rank"),
    [(1, 95, 1), (20, 95, 19), (21, 95, 20), (100, 99.9, 100), (1000, 99.9, 999), (3, 0.1, 1)],
)
def test_nearest_rank(n: int, p: float, rank: int) -> None:
    assert nearest_rank(n, p) == rank


def _python_nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(Fraction(str(p)) / 100 * len(ordered))) - 1]


@HYPOTHESIS
@given(
    values=st.lists(
        st.floats(min_value=-1e9, max_value=1e9, allow_nan=False).map(lambda v: round(v, 3))
        | st.integers(0, 5).map(float),  # plenty of ties
        min_size=1,
        max_size=60,
    ),
    p=st.sampled_from([0.1, 1, 25, 33.3, 50, 90, 95, 99, 99.9, 100])
    | st.floats(min_value=0.01, max_value=100).map(lambda v: round(v, 2)),
)
def test_sql_percentile_equals_python_nearest_rank(
    db: Session, events: Events, values: list[float], p: float
) -> None:
    try:
        for value in values:
            events.add(latency_ms=value, metrics={"m": value})
        expected = CriterionResult(_python_nearest_rank(values, p), len(values))
        assert percentile(db, "latency_ms", p) == expected
        assert percentile(db, "metrics.m", p) == expected
    finally:
        db.rollback()


# ---------------------------------------------------------------------------------------------
# Several periods in one query


@HYPOTHESIS
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=7 * 24 * 60 - 1), max_size=40),
    cuts=st.sets(st.integers(min_value=1, max_value=7 * 24 * 60 - 1), max_size=6),
)
def test_series_equals_one_query_per_period(
    db: Session, events: Events, offsets: list[int], cuts: set[int]
) -> None:
    try:
        for i, minutes in enumerate(offsets):
            events.add(
                at=T0 + timedelta(minutes=minutes),
                rating=["up", "down", None][i % 3],
                latency_ms=float(i * 37 % 11),
            )
        bounds = [T0 + timedelta(minutes=m) for m in [0, *sorted(cuts), 7 * 24 * 60]]
        for spec in (ShareSpec(RatedUp()), PercentileSpec("latency_ms", 90)):
            series = compute_criterion_series(db, spec, bounds)
            singles = [compute_criterion(db, spec, start, end) for start, end in pairwise(bounds)]
            assert series.periods == singles
            assert series.whole == compute_criterion(db, spec, bounds[0], bounds[-1])
    finally:
        db.rollback()


def shown(result: CriterionResult) -> tuple[Any, ...]:
    """Everything a result shows, its interval and count of successes included."""
    return (result.value, result.sample, result.interval, result.met)


TOGETHER = [
    ShareSpec(RatedUp(), CriterionFilter(rated_only=True)),
    ShareSpec(NotDownvoted(), CriterionFilter(app="chat")),
    ShareSpec(NotDownvotedAsModelIssue(), CriterionFilter(confidence_above=0.5)),
    ShareSpec(MetricIs("tests_passed", True), CriterionFilter(feature="codegen")),
    PercentileSpec("latency_ms", 90),
    PercentileSpec("metrics.tokens", 50, CriterionFilter(model="m1")),
]


@HYPOTHESIS
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 3 * 24 * 60 - 1),  # minute of the three days
            st.sampled_from(["up", "down", None]),
            st.one_of(st.none(), st.integers(1, 9).map(float)),  # latency, ties likely
            st.one_of(st.none(), st.sampled_from([0.2, 0.5, 0.9])),  # confidence
            st.sampled_from(["m1", "m2", None]),  # model
            st.sampled_from(["codegen", "chat", None]),  # feature
            st.sampled_from([None, {"tests_passed": True}, {"tests_passed": False},
                             {"tests_passed": 1}, {"tokens": 3}, {"tokens": "3"}]),
            st.booleans(),  # a downvote triaged as not a model issue
        ),
        max_size=50,
    ),
    by=st.sampled_from([(), ("model", "feature"), ("app",)]),
)  # fmt: skip
def test_criteria_counted_together_equal_each_counted_alone(
    db: Session, events: Events, rows: list[tuple[Any, ...]], by: tuple[Any, ...]
) -> None:
    """One grouped pass for several criteria (the weekly digest's) gives each criterion's
    series and breakdowns exactly as its own statements do."""
    try:
        for minute, rating, latency, confidence, model, feature, metrics, dismissed in rows:
            event = events.add(
                at=T0 + timedelta(minutes=minute), rating=rating, latency_ms=latency,
                confidence=confidence, model=model, feature=feature, metrics=metrics,
            )  # fmt: skip
            if dismissed and rating == "down":
                events.triage(event, "not_a_model_issue")
        bounds = [T0, T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY]
        together = count_criteria(db, TOGETHER, bounds, by)
        for spec, counts in zip(TOGETHER, together, strict=True):
            series = compute_criterion_series(db, spec, bounds, counts=counts)
            alone = compute_criterion_series(db, spec, bounds)
            assert [*map(shown, series.periods), shown(series.whole)] == [
                *map(shown, alone.periods), shown(alone.whole)
            ]  # fmt: skip
            for higher_is_better in (True, False):
                found, each = (
                    breakdowns(
                        db, spec, by, bounds[0], bounds[-1], limit=5,
                        higher_is_better=higher_is_better, counts=given_counts,
                    )
                    for given_counts in (counts, None)
                )  # fmt: skip
                assert {
                    dimension: [(g.name, shown(g.result), g.worse) for g in groups]
                    for dimension, groups in found.items()
                } == {
                    dimension: [(g.name, shown(g.result), g.worse) for g in groups]
                    for dimension, groups in each.items()
                }
    finally:
        db.rollback()


def test_series_rejects_unordered_bounds(db: Session) -> None:
    with pytest.raises(ValueError, match="must end after they start"):
        compute_criterion_series(db, ShareSpec(RatedUp()), [T0 + DAY, T0])


# ---------------------------------------------------------------------------------------------
# Downvotes and triage


def test_downvote_counts_and_triaged_share(db: Session, events: Events) -> None:
    events.add(rating="up")
    events.triage(events.add(rating="down"), "resolved")
    events.categorise(events.add(rating="down"), "refusal")  # a category alone counts
    events.triage(events.add(rating="down"), "new")  # opened but untouched
    events.add(rating="down")
    counts = downvote_counts(db, T0, T0 + DAY)
    assert (counts.events, counts.downvotes, counts.triaged) == (5, 4, 2)


def test_oldest_untriaged_first_with_their_alert(db: Session, events: Events) -> None:
    newest = events.add(rating="down", at=T0 + timedelta(hours=5), comment="late")
    oldest = events.add(rating="down", at=T0 - 3 * DAY, comment="x" * 1000)
    events.triage(events.add(rating="down", at=T0 - 4 * DAY), "resolved")
    events.add(rating="down", at=T0 + DAY)  # after the period
    events.alert(oldest, "C1", "1700000000.000100")
    refs = oldest_untriaged(db, T0 + DAY)
    assert [r.event_id for r in refs] == [oldest.id, newest.id]
    assert (refs[0].slack_channel_id, refs[0].slack_ts) == ("C1", "1700000000.000100")
    assert refs[0].comment == "x" * 300
    assert refs[0].app == "chat"
    assert refs[1].slack_ts is None
    assert untriaged_count(db, T0 + DAY) == 2


def test_top_categories_and_week_over_week(db: Session, events: Events) -> None:
    for _ in range(3):
        events.categorise(events.add(rating="down"), "hallucination")
    events.categorise(events.add(rating="down"), "refusal", "hallucination")
    events.categorise(events.add(rating="down", at=T0 - timedelta(hours=1)), "refusal", "too slow")
    assert top_categories(db, T0, T0 + DAY) == [
        NameCount("hallucination", 4),
        NameCount("refusal", 1),
    ]
    assert categories_compared(db, T0 - DAY, T0, T0 + DAY) == [
        CategoryWeekOverWeek("hallucination", 4, 0),
        CategoryWeekOverWeek("refusal", 1, 1),
        CategoryWeekOverWeek("too slow", 0, 1),
    ]


def test_top_features_and_models_by_downvotes(db: Session, events: Events) -> None:
    for feature, model in [("a", "m1"), ("a", "m2"), ("b", "m2"), (None, "m2")]:
        events.add(rating="down", feature=feature, model=model)
    events.add(rating="up", feature="b", model="m1")
    assert top_downvoted(db, "feature", T0, T0 + DAY) == [
        NameCount("a", 2),
        NameCount("b", 1),
        NameCount(None, 1),
    ]
    assert top_downvoted(db, "model", T0, T0 + DAY, limit=1) == [NameCount("m2", 3)]


@pytest.mark.parametrize(
    ("waits", "median"),
    [([60], 60.0), ([60, 120, 3600], 120.0), ([60, 120, 180, 3601], 150.0), ([1, 2], 1.5)],
)
def test_median_time_to_triage(
    db: Session, events: Events, waits: list[int], median: float
) -> None:
    for seconds in waits:
        events.triage(events.add(rating="down"), "resolved", after=timedelta(seconds=seconds))
    events.triage(events.add(rating="down"), "new")  # not triaged yet: no time
    result = median_time_to_triage(db, T0, T0 + DAY)
    assert (result.seconds, result.sample) == (median, len(waits))


def test_median_time_to_triage_of_nothing(db: Session) -> None:
    assert median_time_to_triage(db, T0, T0 + DAY).seconds is None


def test_representative_downvotes_prefer_a_comment_then_the_latest(
    db: Session, events: Events
) -> None:
    silent = events.add(rating="down", at=T0 + timedelta(hours=9))
    old = events.add(rating="down", at=T0 + timedelta(hours=1), comment="old")
    new = events.add(rating="down", at=T0 + timedelta(hours=2), comment="new")
    other = events.add(rating="down", at=T0 + timedelta(hours=3))
    for event in (silent, old, new):
        events.categorise(event, "hallucination")
    events.categorise(other, "refusal")
    events.alert(new, "C9", "1.2")
    picked = representative_downvotes(db, ["hallucination", "refusal", "unused"], T0, T0 + DAY)
    assert [r.event_id for r in picked["hallucination"]] == [new.id, old.id]
    assert picked["hallucination"][0].slack_channel_id == "C9"
    assert [r.event_id for r in picked["refusal"]] == [other.id]
    assert picked["unused"] == []
    assert representative_downvotes(db, [], T0, T0 + DAY) == {}
