"""Daily summary and weekly digest on a million events, beside the bare SQL they boil down to.

    .venv/bin/python benchmarks/summary.py [--events 1000000] [--days 30]
        [--db sqlite|postgresql|both] [--repeat 3] [--pg-url URL] [--no-extra-indexes]

Generates events over `--days` days (seeded, so every run sees the same data), with triage,
categories and posted alerts for the downvotes; then times `daily_summary` and `weekly_digest`
(criteria of downvote.example.toml) against hand-written SQL computing the same numbers with the
same algorithm through the bare DBAPI cursor. The ratio is the cost of our layer: SQLAlchemy
compilation, result objects, Python assembly. Figures are the median of `--repeat` warm runs.
Rendering (blocks, text, chart PNG) is timed separately: it does not touch the database.

PostgreSQL runs in a throwaway schema of the database at --pg-url, dropped at the end, and is
vacuumed after loading, as autovacuum would do.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bot.config import DownvoteConfig, load_config
from bot.summaries.queries import (
    DailySummary,
    Verdict,
    WeeklyDigest,
    daily_summary,
    weekly_digest,
)
from bot.summaries.render import (
    daily_summary_message,
    daily_summary_text,
    weekly_digest_chart,
    weekly_digest_message,
)
from storage.db import make_engine, make_sessionmaker
from storage.models import Base
from storage.periods import Period, last_complete_day, last_complete_week
from storage.stats import percentile_rank_interval

ROOT = Path(__file__).resolve().parent.parent

TZ = ZoneInfo("America/New_York")  # the range includes the March clock change
END = datetime(2026, 3, 31, 4, tzinfo=UTC)  # midnight in New York
NOW = END + timedelta(hours=13)
FEATURES = ["summarize", "translate", "codegen", "search", "chat"]
MODELS = ["gpt-x-2026-01", "gpt-x-mini", "claude-y"]
CATEGORIES = ["hallucination", "wrong format", "refusal", "incomplete", "too slow", "off-topic"]
STATUSES = ["resolved"] * 5 + ["not_a_model_issue"] * 2 + ["acknowledged"] + ["new"] * 2
EVENT_COLUMNS = (
    "id, app_id, external_id, rating, comment, prompt, response, model, feature, latency_ms, "
    "confidence, metrics, occurred_at, received_at"
)
ALERT_COLUMNS = (
    "event_id, status, attempts, replies_posted, next_attempt_at, created_at, slack_channel_id, "
    "slack_ts"
)
# Indexes the summary queries want beyond those in storage/models.py (see the report); IF NOT
# EXISTS since models.py took this one in.
EXTRA_INDEXES = [
    "CREATE INDEX IF NOT EXISTS ix_feedback_events_rating_occurred_at "
    "ON feedback_events (rating, occurred_at)",
]


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Data:
    events: list[tuple[Any, ...]]
    triage: list[tuple[Any, ...]]
    categories: list[tuple[Any, ...]]
    alerts: list[tuple[Any, ...]]


def generate(count: int, days: int, seed: int = 7) -> Data:
    """Events in time order (as they arrive), ~8% downvotes, most of them triaged."""
    rng = random.Random(seed)
    start = END - timedelta(days=days)
    span = (END - start).total_seconds()
    offsets = sorted(rng.random() * span for _ in range(count))
    data = Data([], [], [], [])
    for index, offset in enumerate(offsets, start=1):
        at = start + timedelta(seconds=offset)
        roll = rng.random()
        rating = "down" if roll < 0.08 else "up" if roll < 0.78 else None
        feature = FEATURES[index % len(FEATURES)]
        metrics = (
            json.dumps({"tests_passed": rng.random() < 0.96}) if feature == "codegen" else None
        )
        data.events.append(
            (
                index,
                1 + index % 2,
                f"ev_{index}",
                rating,
                "It invented a citation" if rating == "down" and rng.random() < 0.5 else None,
                json.dumps("What does the contract say about refunds?"),
                "An answer of modest length, as models give.",
                MODELS[index % len(MODELS)],
                feature,
                round(rng.lognormvariate(5.5, 0.5), 1),
                round(rng.random(), 3),
                metrics,
                at,
                at,
            )
        )
        if rating == "down":
            add_triage(data, rng, index, at)
    return data


def add_triage(data: Data, rng: random.Random, event_id: int, at: datetime) -> None:
    data.alerts.append((event_id, "posted", 1, 0, at, at, "C0DOWNVOTE", f"{at.timestamp():.6f}"))
    if rng.random() < 0.7:
        status = rng.choice(STATUSES)
        triaged_at = at + timedelta(minutes=rng.expovariate(1 / 90)) if status != "new" else None
        data.triage.append((event_id, status, triaged_at, at))
    if rng.random() < 0.6:
        for name in rng.sample(CATEGORIES, rng.choice([1, 1, 2])):
            data.categories.append((event_id, name, at))


def sqlite_time(moment: datetime | None) -> str | None:
    # SQLAlchemy's storage format for DateTime on SQLite: what our queries compare against.
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def load(engine: Engine, data: Data) -> None:
    """Insert fast: executemany on SQLite, COPY on PostgreSQL."""
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        now = NOW if not sqlite else sqlite_time(NOW)
        for app_id in (1, 2):
            cursor.execute(
                "INSERT INTO apps (id, name, created_at) VALUES "
                + ("(?, ?, ?)" if sqlite else "(%s, %s, %s)"),
                (app_id, f"app-{app_id}", now),
            )
        if sqlite:
            cursor.execute("BEGIN")
            load_sqlite(cursor, data)
        else:
            load_postgresql(cursor, data)
        raw.commit()
    finally:
        raw.close()


def load_sqlite(cursor: Any, data: Data) -> None:
    def with_times(rows: list[tuple[Any, ...]], *positions: int) -> Iterator[tuple[Any, ...]]:
        for row in rows:
            values = list(row)
            for p in positions:
                values[p] = sqlite_time(values[p])
            yield tuple(values)

    cursor.executemany(
        f"INSERT INTO feedback_events ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 14)})",
        with_times(data.events, 12, 13),
    )
    cursor.executemany(
        f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        with_times(data.alerts, 4, 5),
    )
    cursor.executemany(
        "INSERT INTO triage (event_id, status, triaged_at, updated_at) VALUES (?, ?, ?, ?)",
        with_times(data.triage, 2, 3),
    )
    cursor.executemany(
        "INSERT INTO event_categories (event_id, category, added_at) VALUES (?, ?, ?)",
        with_times(data.categories, 2),
    )


def load_postgresql(cursor: Any, data: Data) -> None:
    copies: list[tuple[str, Sequence[tuple[Any, ...]]]] = [
        (f"feedback_events ({EVENT_COLUMNS})", data.events),
        (f"alerts ({ALERT_COLUMNS})", data.alerts),
        ("triage (event_id, status, triaged_at, updated_at)", data.triage),
        ("event_categories (event_id, category, added_at)", data.categories),
    ]
    for target, rows in copies:
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    cursor.execute("SELECT setval('feedback_events_id_seq', (SELECT max(id) FROM feedback_events))")


# ---------------------------------------------------------------------------------------------
# The bare SQL: the same numbers, the same algorithm, no SQLAlchemy


class Bare:
    """Hand-written SQL for the summary numbers on one dialect, run on a raw DBAPI cursor."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self.cursor = cursor
        self.sqlite = dialect == "sqlite"

    def run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        self.cursor.execute(
            sql, [sqlite_time(p) if self.sqlite and isinstance(p, datetime) else p for p in params]
        )
        return list(self.cursor.fetchall())

    def metric_true(self, name: str) -> tuple[str, str]:
        if self.sqlite:
            t = f"json_type(e.metrics, '$.\"{name}\"')"
            return f"{t} = 'true'", f"{t} IN ('true', 'false')"
        return (
            f"(e.metrics ->> '{name}') = 'true'",
            f"json_typeof(e.metrics -> '{name}') = 'boolean'",
        )

    def share(self, met: str, where: str, bounds: Sequence[datetime]) -> list[tuple[int, int]]:
        """(n, met) per period: a query each, like ours."""
        return [
            self.run(
                f"SELECT count(*), count(CASE WHEN {met} THEN 1 END) FROM feedback_events e "
                f"WHERE e.occurred_at >= ? AND e.occurred_at < ?{where}",
                [start, end],
            )[0]
            for start, end in pairwise(bounds)
        ]

    P95_WHERE = "e.occurred_at >= ? AND e.occurred_at < ? AND e.latency_ms IS NOT NULL"

    def p95(
        self,
        start: datetime,
        end: datetime,
        extra: str = "",
        extra_params: Sequence[Any] = (),
        n: int | None = None,
    ) -> tuple[float, int, tuple[float, float] | None] | None:
        """Nearest rank 95 and its order-statistic interval: count, then the value at each rank
        (5% from the top, in a bounded sort), the ranks from storage.stats as ours."""
        where, params = self.P95_WHERE + extra, [start, end, *extra_params]
        if n is None:
            n = self.run(f"SELECT count(*) FROM feedback_events e WHERE {where}", params)[0][0]
        if not n:
            return None

        # One statement for the three ranks, as ours: the nearest 5% sorted (bounded), numbered.
        rank = (n * 95 + 99) // 100
        ranks = percentile_rank_interval(n, 0.95)
        wanted = [rank, *(ranks or ())]
        positions = sorted({n - r + 1 for r in wanted})
        marks = ", ".join("?" * len(positions))
        found = dict(
            self.run(
                "SELECT position, latency_ms FROM (SELECT row_number() OVER "
                "(ORDER BY latency_ms DESC) AS position, latency_ms FROM (SELECT e.latency_ms "
                f"FROM feedback_events e WHERE {where} ORDER BY e.latency_ms DESC LIMIT ?) x) y "
                f"WHERE position IN ({marks})",
                [*params, max(positions), *positions],
            )
        )
        band = (found[n - ranks[0] + 1], found[n - ranks[1] + 1]) if ranks else None
        return found[n - rank + 1], n, band

    def share_groups(self, met: str, where: str, start: datetime, end: datetime) -> None:
        """(model, feature, n, met) per pair, in one scan; per model and per feature (and the
        rest) are sums in Python, as ours."""
        self.run(
            "SELECT coalesce(e.model, ''), coalesce(e.feature, ''), count(*), "
            f"count(CASE WHEN {met} THEN 1 END) FROM feedback_events e "
            f"WHERE e.occurred_at >= ? AND e.occurred_at < ?{where} GROUP BY 1, 2",
            [start, end],
        )

    def p95_groups(
        self,
        start: datetime,
        end: datetime,
        overall: tuple[Any, ...] | None,
        pairs: Sequence[tuple[str, str, int]] | None = None,
    ) -> None:
        """Counts per (model, feature) in one scan (unless given); per model and per feature, the
        top five's p95 intervals; then, in one scan, for those on the worse side of the overall
        value, how many of the rest's latencies are at or above the group's interval low (ours
        compares that with the rest's rank interval)."""
        if pairs is None:
            pairs = self.run(
                "SELECT coalesce(e.model, ''), coalesce(e.feature, ''), count(*) "
                f"FROM feedback_events e WHERE {self.P95_WHERE} GROUP BY 1, 2",
                [start, end],
            )
        total = sum(n for _, _, n in pairs)
        beyond: list[tuple[str, list[Any]]] = []
        for index, column in enumerate(("model", "feature")):
            counts: dict[str, int] = {}
            for row in pairs:
                counts[row[index]] = counts.get(row[index], 0) + row[2]
            key = f"coalesce(e.{column}, '')"
            for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]:
                group = self.p95(start, end, f" AND {key} = ?", [name], n=n)
                rest = percentile_rank_interval(total - n, 0.95)
                if overall and group and group[0] >= overall[0] and group[2] and rest:
                    beyond.append(
                        (
                            f"count(CASE WHEN e.latency_ms >= ? AND {key} <> ? THEN 1 END)",
                            [group[2][0], name],
                        )
                    )
        if beyond:
            self.run(
                f"SELECT {', '.join(sql for sql, _ in beyond)} FROM feedback_events e "
                f"WHERE {self.P95_WHERE}",
                [*(p for _, params in beyond for p in params), start, end],
            )

    def shares(self) -> list[tuple[str, str]]:
        met, reported = self.metric_true("tests_passed")
        return [
            ("e.rating = 'up'", " AND e.rating IS NOT NULL"),
            (
                "(coalesce(e.rating, '') <> 'down' OR EXISTS (SELECT 1 FROM triage t "
                "WHERE t.event_id = e.id AND t.status = 'not_a_model_issue'))",
                " AND e.confidence > 0.9",
            ),
            (met, f" AND e.feature = 'codegen' AND {reported}"),
        ]

    def criteria(
        self, bounds: Sequence[datetime], whole: bool, broken_down: Sequence[bool]
    ) -> None:
        """The four criteria of downvote.example.toml per period (the p95 also over all of them),
        and those in `broken_down` (Satisfaction, Response time, ...) per model and feature."""
        start, end = bounds[0] if whole else bounds[-2], bounds[-1]
        (up, rated), (agree, confident), (passed, codegen) = self.shares()
        for index, (met, where) in enumerate([(up, rated), (agree, confident), (passed, codegen)]):
            self.share(met, where, bounds)
            if broken_down[[0, 2, 3][index]]:
                self.share_groups(met, where, start, end)
        days = [self.p95(a, b) for a, b in pairwise(bounds)]
        n = sum(day[1] for day in days if day)  # the week's count: the days' counts added up
        overall = self.p95(bounds[0], bounds[-1], n=n) if whole else days[-1]
        if broken_down[1]:
            self.p95_groups(start, end, overall)

    TRIAGED = (
        "(EXISTS (SELECT 1 FROM triage t WHERE t.event_id = e.id AND t.status <> 'new') "
        "OR EXISTS (SELECT 1 FROM event_categories c WHERE c.event_id = e.id))"
    )

    def counts(self, start: datetime, end: datetime) -> None:
        self.run(
            "SELECT count(*), count(CASE WHEN e.rating = 'down' THEN 1 END), "
            f"count(CASE WHEN e.rating = 'down' THEN CASE WHEN {self.TRIAGED} THEN 1 END END) "
            "FROM feedback_events e WHERE e.occurred_at >= ? AND e.occurred_at < ?",
            [start, end],
        )

    def top_categories(self, start: datetime, end: datetime) -> None:
        self.run(
            "SELECT c.category, count(*) n FROM event_categories c JOIN feedback_events e "
            "ON e.id = c.event_id WHERE e.rating = 'down' AND e.occurred_at >= ? "
            "AND e.occurred_at < ? GROUP BY c.category ORDER BY n DESC, c.category LIMIT 5",
            [start, end],
        )

    REF = (
        "SELECT e.id AS event_id, e.occurred_at, a.name AS app, e.feature, e.model, "
        "substr(e.comment, 1, 300) AS comment, substr(e.response, 1, 300) AS response, "
        "al.slack_channel_id, al.slack_ts "
        "FROM feedback_events e JOIN apps a ON a.id = e.app_id "
        "LEFT JOIN alerts al ON al.event_id = e.id "
    )

    def untriaged(self, end: datetime) -> None:
        where = f"WHERE e.rating = 'down' AND e.occurred_at < ? AND NOT {self.TRIAGED}"
        self.run(f"SELECT count(*) FROM feedback_events e {where}", [end])
        self.run(f"{self.REF}{where} ORDER BY e.occurred_at, e.id LIMIT 5", [end])

    def daily(self, period: Period, missed: Sequence[bool]) -> None:
        """`missed`: which criteria ours found missed, the ones the summary breaks down."""
        self.criteria([period.previous().start, period.start, period.end], False, missed)
        self.counts(period.start, period.end)
        self.top_categories(period.start, period.end)
        self.untriaged(period.end)

    def week_of_criteria(self, bounds: Sequence[datetime]) -> None:
        """The four criteria over a week, as ours: one GROUP BY (day, model, feature) counting
        them all; each share's days, week and groups are sums of its rows; the p95 reads its
        ranks for each day, the week and the top groups with the counts known."""
        day = " ".join(f"WHEN e.occurred_at < ? THEN {i}" for i in range(len(bounds) - 2))
        counted = [where.removeprefix(" AND ") for _, where in self.shares()]
        columns = [
            f"count(CASE WHEN {c} THEN 1 END), count(CASE WHEN {c} THEN CASE WHEN {met} THEN 1 END "
            "END)"
            for (met, _), c in zip(self.shares(), counted, strict=True)
        ]
        counted.append("e.latency_ms IS NOT NULL")
        rows = self.run(
            f"SELECT CASE {day} ELSE {len(bounds) - 2} END, coalesce(e.model, ''), "
            f"coalesce(e.feature, ''), {', '.join(columns)}, "
            "count(CASE WHEN e.latency_ms IS NOT NULL THEN 1 END) FROM feedback_events e "
            f"WHERE e.occurred_at >= ? AND e.occurred_at < ? AND ({' OR '.join(counted)}) "
            "GROUP BY 1, 2, 3",
            [*bounds[1:-1], bounds[0], bounds[-1]],
        )
        per_day = [0] * (len(bounds) - 1)
        pairs: dict[tuple[str, str], int] = {}
        for row in rows:
            per_day[row[0]] += row[-1]
            pairs[row[1], row[2]] = pairs.get((row[1], row[2]), 0) + row[-1]
        for (start, end), n in zip(pairwise(bounds), per_day, strict=True):
            self.p95(start, end, n=n)
        overall = self.p95(bounds[0], bounds[-1], n=sum(per_day))
        counted_pairs = [(model, feature, n) for (model, feature), n in pairs.items() if n]
        self.p95_groups(bounds[0], bounds[-1], overall, counted_pairs)

    def weekly(self, period: Period) -> None:
        previous = period.previous()
        self.week_of_criteria(period.day_bounds())
        for met, where in self.shares():  # last week's value, for the change
            self.share(met, where, [previous.start, previous.end])
        self.p95(previous.start, previous.end)
        self.counts(period.start, period.end)
        self.counts(previous.start, previous.end)
        self.run(
            "SELECT c.category, CASE WHEN e.occurred_at < ? THEN 0 ELSE 1 END AS period, count(*) "
            "FROM event_categories c JOIN feedback_events e ON e.id = c.event_id "
            "WHERE e.rating = 'down' AND e.occurred_at >= ? AND e.occurred_at < ? "
            "GROUP BY c.category, period",
            [period.start, previous.start, period.end],
        )
        seconds = (
            "(CAST(strftime('%s', t.triaged_at) AS INTEGER) "
            "- CAST(strftime('%s', e.received_at) AS INTEGER))"
            if self.sqlite
            else "(CAST(extract(epoch FROM date_trunc('second', t.triaged_at)) AS BIGINT) "
            "- CAST(extract(epoch FROM date_trunc('second', e.received_at)) AS BIGINT))"
        )
        self.run(
            f"SELECT s, n FROM (SELECT {seconds} s, row_number() OVER (ORDER BY {seconds}) r, "
            "count(*) OVER () n FROM feedback_events e JOIN triage t ON t.event_id = e.id "
            "WHERE e.rating = 'down' AND e.occurred_at >= ? AND e.occurred_at < ? "
            "AND t.triaged_at IS NOT NULL) x WHERE r IN ((n + 1) / 2, (n + 2) / 2)",
            [period.start, period.end],
        )
        for column in ("feature", "model"):
            self.run(
                f"SELECT e.{column}, count(*) n FROM feedback_events e JOIN apps a "
                "ON a.id = e.app_id WHERE e.rating = 'down' AND e.occurred_at >= ? "
                f"AND e.occurred_at < ? GROUP BY e.{column} "
                f"ORDER BY n DESC, e.{column} NULLS LAST LIMIT 5",
                [period.start, period.end],
            )
        self.run(
            "SELECT * FROM (SELECT r.*, c.category, row_number() OVER (PARTITION BY c.category "
            "ORDER BY CASE WHEN r.comment IS NULL THEN 1 ELSE 0 END, r.occurred_at DESC, "
            f"r.event_id DESC) pick FROM ({self.REF}"
            "WHERE e.rating = 'down' AND e.occurred_at >= ? AND e.occurred_at < ?) r "
            "JOIN event_categories c ON c.event_id = r.event_id WHERE c.category IN (?, ?, ?)) x "
            "WHERE pick <= 2",
            [period.start, period.end, *CATEGORIES[:3]],
        )


# ---------------------------------------------------------------------------------------------
# Timing


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    action()  # warm the page cache and SQLAlchemy's statement cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class Row:
    name: str
    ours: float
    bare: float | None

    def line(self) -> str:
        bare = f"{self.bare * 1000:>10,.0f}" if self.bare is not None else f"{'':>10}"
        ratio = f"{self.ours / self.bare:>6.2f}x" if self.bare else f"{'':>7}"
        return f"{self.name:<34} {self.ours * 1000:>10,.0f} {bare} {ratio}"


def measure(engine: Engine, config: DownvoteConfig, repeat: int) -> list[Row]:
    day = last_complete_day(NOW, TZ)
    week = last_complete_week(NOW, TZ)
    sessions = make_sessionmaker(engine)

    def ours_daily() -> DailySummary:
        with sessions() as session:
            return daily_summary(session, config, day.first_day, TZ, NOW)

    def ours_weekly() -> WeeklyDigest:
        with sessions() as session:
            return weekly_digest(session, config, week.first_day, TZ, NOW)

    raw = engine.raw_connection()
    try:
        bare = Bare(raw.cursor(), engine.dialect.name)

        missed = [line.verdict is Verdict.MISSED for line in ours_daily().criteria]

        def bare_daily() -> None:
            bare.daily(day, missed)
            raw.rollback()

        def bare_weekly() -> None:
            bare.weekly(week)
            raw.rollback()

        rows = [
            Row("daily summary (compute)", median_seconds(ours_daily, repeat), None),
            Row("weekly digest (compute)", median_seconds(ours_weekly, repeat), None),
        ]
        rows[0].bare = median_seconds(bare_daily, repeat)
        rows[1].bare = median_seconds(bare_weekly, repeat)
    finally:
        raw.close()
    summary, digest = ours_daily(), ours_weekly()
    rows.append(
        Row(
            "daily render (blocks + text)",
            median_seconds(
                lambda: (daily_summary_message(summary), daily_summary_text(summary)), repeat
            ),
            None,
        )
    )
    rows.append(
        Row(
            "weekly render (blocks + chart PNG)",
            median_seconds(
                lambda: (weekly_digest_message(digest), weekly_digest_chart(digest)), repeat
            ),
            None,
        )
    )
    return rows


def check_same_numbers(engine: Engine, config: DownvoteConfig) -> str:
    """Our criteria against the bare queries': a benchmark of wrong answers is worthless."""
    week = last_complete_week(NOW, TZ)
    with Session(engine) as session:
        digest = weekly_digest(session, config, week.first_day, TZ, NOW)
    raw = engine.raw_connection()
    try:
        bare = Bare(raw.cursor(), engine.dialect.name)
        bounds = week.day_bounds()
        shares = bare.share("e.rating = 'up'", " AND e.rating IS NOT NULL", bounds)
        p95s = [bare.p95(start, end) for start, end in pairwise(bounds)]
    finally:
        raw.close()
    ours = [(r.value, r.sample) for t in digest.criteria[:2] for _, r in t.days]
    theirs: list[tuple[float | None, int]] = [(met / n if n else None, n) for n, met in shares]
    theirs += [(row[0], row[1]) if row else (None, 0) for row in p95s]
    ours_bands = [r.interval for _, r in digest.criteria[1].days]
    their_bands = [row[2] if row else None for row in p95s]
    if [(i.low, i.high) if i else None for i in ours_bands] != their_bands:
        return "MISMATCH with the bare SQL (p95 intervals)"
    return "same numbers as the bare SQL" if ours == theirs else "MISMATCH with the bare SQL"


# ---------------------------------------------------------------------------------------------
# Databases


def sqlite_engine(directory: Path) -> Engine:
    return make_engine(f"sqlite:///{directory / 'bench.db'}")


def postgresql_engine(url: str, schema: str) -> Engine:
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return make_engine(url, connect_args={"options": f"-csearch_path={schema}"})


def drop_schema(url: str, schema: str) -> None:
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def prepare(engine: Engine, data: Data, extra_indexes: bool) -> float:
    started = time.perf_counter()
    Base.metadata.create_all(engine)
    load(engine, data)
    with engine.begin() as connection:
        if extra_indexes:
            for statement in EXTRA_INDEXES:
                connection.execute(text(statement))
    # As autovacuum leaves a table a while after a bulk insert (a server may run without it):
    # statistics, and on PostgreSQL the visibility map its index-only scans need.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE" if engine.dialect.name == "sqlite" else "VACUUM ANALYZE"))
    return time.perf_counter() - started


def run(kind: str, args: argparse.Namespace, data: Data, config: DownvoteConfig) -> None:
    schema = "bench_" + uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory() as directory:
        engine = (
            sqlite_engine(Path(directory))
            if kind == "sqlite"
            else postgresql_engine(args.pg_url, schema)
        )
        try:
            load_seconds = prepare(engine, data, not args.no_extra_indexes)
            print(
                f"\n{kind}: {len(data.events):,} events over {args.days} days, loaded in "
                f"{load_seconds:.1f} s; median of {args.repeat} warm runs; "
                f"{check_same_numbers(engine, config)}"
            )
            report(kind, measure(engine, config, args.repeat))
            if kind == "postgresql":
                # PostgreSQL's JIT (on by default) compiles queries whose *estimated* cost is
                # high, which correlated EXISTS inflate: measure without it too.
                no_jit = make_engine(
                    args.pg_url, connect_args={"options": f"-csearch_path={schema} -c jit=off"}
                )
                report("postgresql, jit=off", measure(no_jit, config, args.repeat))
                no_jit.dispose()
        finally:
            engine.dispose()
            if kind == "postgresql":
                drop_schema(args.pg_url, schema)


def report(title: str, rows: list[Row]) -> None:
    print(f"{title:<34} {'ours ms':>10} {'bare ms':>10} {'ratio':>7}")
    for row in rows:
        print(row.line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--no-extra-indexes",
        action="store_true",
        help="measure with only the indexes storage/models.py declares",
    )
    args = parser.parse_args()
    config = load_config(ROOT / "downvote.example.toml")
    started = time.perf_counter()
    data = generate(args.events, args.days)
    print(
        f"generated {len(data.events):,} events, {len(data.alerts):,} downvotes "
        f"in {time.perf_counter() - started:.1f} s; periods in {TZ.key}"
    )
    for kind in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        run(kind, args, data, config)


if __name__ == "__main__":
    main()
