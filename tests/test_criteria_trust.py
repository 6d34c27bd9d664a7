"""Criteria you can trust (issue 12): intervals, real changes, breakdowns, before/after.

Expected numbers are computed here from the formulas (or taken from the issue), never from the
product's own constants; every test runs on each backend under test.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from bot.config import DownvoteConfig
from bot.summaries.queries import Verdict, daily_summary, weekly_digest
from bot.summaries.render import daily_summary_text, weekly_digest_message, weekly_digest_text
from storage.models import FeedbackEvent
from tests.support.cli import run_cli
from tests.support.databases import RegisteredApp
from tests.support.processes import downvote_env

DAY = date(2026, 11, 18)  # a Wednesday
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
TZ = ZoneInfo("UTC")
Z95 = NormalDist().inv_cdf(0.975)
SATISFACTION = {
    "name": "Satisfaction", "kind": "share", "condition": "rating = up", "target": ">= 0.92",
    "filter": {"rated_only": True},
}  # fmt: skip
RESPONSE_TIME = {
    "name": "Response time", "kind": "percentile", "field": "latency_ms", "percentile": 95,
    "target": "<= 500",
}  # fmt: skip
CONFIG = DownvoteConfig.model_validate({"criteria": [SATISFACTION, RESPONSE_TIME]})
CONFIG_TOML = """
[[criteria]]
name = "Satisfaction"
kind = "share"
condition = "rating = up"
target = ">= 0.92"
filter = { rated_only = true }

[[criteria]]
name = "Response time"
kind = "percentile"
field = "latency_ms"
percentile = 95
target = "<= 500"
"""


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval straight from its textbook formula."""
    p = successes / n
    denominator = 1 + Z95**2 / n
    center = (p + Z95**2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denominator
    return center - half, center + half


def pooled_p_value(s1: int, n1: int, s2: int, n2: int) -> float:
    pooled = (s1 + s2) / (n1 + n2)
    z = (s1 / n1 - s2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 2 * (1 - NormalDist().cdf(abs(z)))


def add_answers(
    sessions: sessionmaker[Session], app: RegisteredApp, day: date, *, up: int, down: int,
    **fields: Any,
) -> None:  # fmt: skip
    """`up` thumbs-up and `down` thumbs-down answers on `day`, spread over its morning."""
    start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    tag = f"{day}-{fields.get('model')}-{fields.get('feature')}"
    rows = [
        {
            "app_id": app.app_id, "external_id": f"{tag}-{i}", "prompt": "p", "response": "r",
            "rating": "up" if i < up else "down", "occurred_at": start + timedelta(seconds=i),
            "received_at": start + timedelta(seconds=i), **fields,
        }
        for i in range(up + down)
    ]  # fmt: skip
    with sessions.begin() as session:
        session.execute(insert(FeedbackEvent), rows)


def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "downvote.toml"
    config.write_text(CONFIG_TOML)
    return downvote_env(database_url, DOWNVOTE_CONFIG=str(config))


def percent_interval(successes: int, n: int) -> str:
    low, high = wilson(successes, n)
    return f"({low * 100:.1f}–{high * 100:.1f}%)"


# ---------------------------------------------------------------------------------------------
# 1. Two models on one day: both shown with intervals, B significantly worse.


def test_the_worse_model_is_marked_in_the_digest_and_on_the_console(
    database_url: str, sessions: sessionmaker[Session], registered_app: RegisteredApp,
    tmp_path: Path,
) -> None:  # fmt: skip
    add_answers(sessions, registered_app, DAY, up=475, down=25, model="A")
    add_answers(sessions, registered_app, DAY, up=425, down=75, model="B")
    assert percent_interval(425, 500) == "(81.6–87.9%)"  # the "about 81.6–87.9%"
    assert pooled_p_value(425, 500, 475, 500) < 0.05

    with sessions() as session:
        digest = weekly_digest(session, CONFIG, DAY, TZ, NOW)
    text = weekly_digest_text(digest)
    overall = f"Satisfaction: 90.0% {percent_interval(900, 1000)} · n = 1,000"
    assert overall in text
    assert "model B: 85.0% (81.6–87.9%) · n = 500 · significantly worse" in text
    assert f"model A: 95.0% {percent_interval(475, 500)} · n = 500\n" in text
    slack = str(weekly_digest_message(digest).blocks)
    assert "model B: 85.0% (81.6–87.9%) · n = 500 · significantly worse" in slack

    ran = run_cli(
        cli_env(database_url, tmp_path), "criteria", "--by", "model",
        "--since", DAY.isoformat(), "--until", (DAY + timedelta(days=1)).isoformat(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert overall in ran.stdout
    assert "model B: 85.0% (81.6–87.9%) · n = 500 · significantly worse" in ran.stdout
    assert f"model A: 95.0% {percent_interval(475, 500)} · n = 500\n" in ran.stdout


def test_the_daily_summary_breaks_down_only_a_failing_criterion(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    add_answers(sessions, registered_app, DAY, up=475, down=25, model="A", latency_ms=100.0)
    add_answers(sessions, registered_app, DAY, up=300, down=200, model="B", latency_ms=100.0)
    with sessions() as session:
        summary = daily_summary(session, CONFIG, DAY, TZ, NOW)
    text = daily_summary_text(summary)
    assert "❌ Satisfaction: 77.5%" in text
    assert "model B: 60.0%" in text and "significantly worse" in text
    assert "✅ Response time: 100 ms (100–100 ms)" in text
    assert text.count("model A") == 1  # under Satisfaction only


# ---------------------------------------------------------------------------------------------
# 2. Day-over-day changes: noise or real.


@pytest.mark.parametrize(
    ("n", "before_up", "after_up", "shown"),
    [
        (285, 268, 259, "−3.2 pp vs previous day (within noise)"),  # 94.0% -> 90.9%
        (2000, 1880, 1680, "−10.0 pp vs previous day (significant)"),  # 94.0% -> 84.0%
    ],
)
def test_a_change_is_marked_significant_only_when_it_is(
    sessions: sessionmaker[Session], registered_app: RegisteredApp,
    n: int, before_up: int, after_up: int, shown: str,
) -> None:  # fmt: skip
    assert (pooled_p_value(before_up, n, after_up, n) < 0.05) == ("significant" in shown)
    add_answers(sessions, registered_app, DAY - timedelta(days=1), up=before_up, down=n - before_up)
    add_answers(sessions, registered_app, DAY, up=after_up, down=n - after_up)
    with sessions() as session:
        text = daily_summary_text(daily_summary(session, CONFIG, DAY, TZ, NOW))
    assert f"· n = {n:,} · target ≥ 92%" in text
    assert shown in text


# ---------------------------------------------------------------------------------------------
# 3. A small sample near the target is uncertain.


def test_36_of_40_against_92_percent_is_uncertain(
    sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    low, high = wilson(36, 40)
    assert low < 0.92 < high
    add_answers(sessions, registered_app, DAY, up=36, down=4)
    with sessions() as session:
        summary = daily_summary(session, CONFIG, DAY, TZ, NOW)
    satisfaction = summary.criteria[0]
    assert satisfaction.verdict is Verdict.UNCERTAIN
    text = daily_summary_text(summary)
    line = next(line for line in text.splitlines() if "Satisfaction" in line)
    assert line == (
        f"➖ Satisfaction: 90.0% {percent_interval(36, 40)} · n = 40 · target ≥ 92% · uncertain"
    )
    assert "❌" not in line and "✅" not in line


# ---------------------------------------------------------------------------------------------
# 4. Before/after on the console.


def test_compare_prints_both_sides_and_the_significance_of_every_criterion(
    database_url: str, sessions: sessionmaker[Session], registered_app: RegisteredApp,
    tmp_path: Path,
) -> None:  # fmt: skip
    add_answers(sessions, registered_app, DAY, up=475, down=25, model="A", latency_ms=300.0)
    add_answers(sessions, registered_app, DAY, up=425, down=75, model="B", latency_ms=900.0)
    ran = run_cli(
        cli_env(database_url, tmp_path), "criteria", "--compare", "model=A,model=B",
        "--since", DAY.isoformat(), "--until", (DAY + timedelta(days=1)).isoformat(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "Comparing model A with model B",
        "Satisfaction",
        f"  model A: 95.0% {percent_interval(475, 500)} · n = 500 · met",
        "  model B: 85.0% (81.6–87.9%) · n = 500 · missed",
        "  difference: −10.0 pp (significant)",
        "Response time",
        "  model A: 300 ms (300–300 ms) · n = 500 · met",
        "  model B: 900 ms (900–900 ms) · n = 500 · missed",
        "  difference: +600 ms (significant)",
    ]


def test_compare_days_before_and_after(
    database_url: str, sessions: sessionmaker[Session], registered_app: RegisteredApp,
    tmp_path: Path,
) -> None:  # fmt: skip
    add_answers(sessions, registered_app, DAY - timedelta(days=1), up=268, down=17)
    add_answers(sessions, registered_app, DAY, up=259, down=26)
    before, after = DAY - timedelta(days=1), DAY
    ran = run_cli(
        cli_env(database_url, tmp_path), "criteria",
        "--before", f"{before}..{before}", "--after", f"{after}..{after}",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "  difference: −3.2 pp (within noise)" in ran.stdout
    assert "Response time\n  before" in ran.stdout  # every criterion, even without data


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--compare", "model=A"], "--compare takes two sides"),
        (["--compare", "colour=A,model=B"], "--compare sides look like model=NAME"),
        (["--compare", "model=A,model=B", "--before", "2026-11-01..2026-11-02"], "either"),
        (["--before", "2026-11-01..2026-11-02"], "--before and --after go together"),
        (["--before", "2026-11-01", "--after", "2026-11-02..2026-11-03"], "a range of days"),
        (["--before", "2026-11-05..2026-11-01", "--after", "2026-11-02..2026-11-03"], "start"),
        (["--by", "colour"], "--by must be model, feature or app"),
        (["--since", "yesterday"], "--since must be a date"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "--since must be before"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_1(
    database_url: str, tmp_path: Path, args: list[str], reason: str
) -> None:
    ran = run_cli(cli_env(database_url, tmp_path), "criteria", *args)
    assert ran.returncode == 1
    assert ran.stdout == ""
    assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("downvote: ")
    assert reason in ran.stderr


# ---------------------------------------------------------------------------------------------
# The chart: the interval as a band, the target labelled, the unit on the axis.


def test_the_chart_shows_each_day_s_interval_the_labelled_target_and_the_unit() -> None:
    from bot.summaries.chart import trend_figure

    days = [DAY + timedelta(days=i) for i in range(7)]
    figure = trend_figure(
        {"Satisfaction": [(d, 0.9) for d in days], "Response time": [(d, 420.0) for d in days]},
        {"Satisfaction": 0.92, "Response time": 500.0},
        percent={"Satisfaction"},
        bands={"Satisfaction": [(0.86, 0.93)] * 6 + [None], "Response time": [(380.0, 455.0)] * 7},
        units={"Response time": "ms"},
    )
    share, latency = figure.get_axes()
    for panel in (share, latency):
        [band] = panel.collections  # fill_between: one shaded area
        assert band.get_label() == "95% interval"
    assert [t.get_text() for t in share.texts] == ["target 92%"]
    assert [t.get_text() for t in latency.texts] == ["target 500"]
    assert (share.get_ylabel(), latency.get_ylabel()) == ("%", "ms")


# ---------------------------------------------------------------------------------------------
# 6. Intervals from SQL against a direct computation, on every backend.


def binomial_cdf(j: int, n: int, q: float) -> float:
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(j + 1))


def direct_ranks(n: int, q: float) -> tuple[int, int]:
    """Equal-tailed order-statistic ranks, straight from the binomial sums (2.5% each side)."""
    low = max(r for r in range(1, n + 1) if binomial_cdf(r - 1, n, q) <= 0.025)
    high = min(r for r in range(1, n + 1) if 1 - binomial_cdf(r - 1, n, q) <= 0.025)
    return low, high


@settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(
    latencies=st.lists(st.integers(1, 5000), min_size=40, max_size=160),
    ups=st.integers(0, 160),
    percentile=st.sampled_from([50, 90]),
)
def test_sql_intervals_equal_a_direct_computation(
    sessions: sessionmaker[Session], registered_app: RegisteredApp,
    latencies: list[int], ups: int, percentile: int,
) -> None:  # fmt: skip
    from storage.criteria import PercentileSpec, RatedUp, ShareSpec, compute_criterion

    n = len(latencies)
    ups = min(ups, n)
    start = datetime(2026, 11, 18, tzinfo=UTC)
    rows = [
        {
            "app_id": registered_app.app_id, "external_id": f"h{i}", "prompt": "p",
            "response": "r", "rating": "up" if i < ups else "down",
            "latency_ms": float(latency), "occurred_at": start + timedelta(seconds=i),
            "received_at": start,
        }
        for i, latency in enumerate(latencies)
    ]  # fmt: skip
    with sessions() as session:
        session.execute(insert(FeedbackEvent), rows)
        end = start + timedelta(days=1)
        p = compute_criterion(session, PercentileSpec("latency_ms", percentile), start, end)
        share = compute_criterion(session, ShareSpec(RatedUp()), start, end)
        session.rollback()
    ordered = sorted(float(v) for v in latencies)
    low, high = direct_ranks(n, percentile / 100)
    assert p.value == ordered[math.ceil(n * percentile / 100) - 1]
    assert p.interval is not None
    assert (p.interval.low, p.interval.high) == (ordered[low - 1], ordered[high - 1])
    assert share.interval is not None
    assert share.interval.low == pytest.approx(wilson(ups, n)[0] if ups else 0.0, abs=1e-12)
    assert share.interval.high == pytest.approx(wilson(ups, n)[1] if ups < n else 1.0, abs=1e-12)


def test_criteria_by_app_and_compare_apps(
    database_url: str, sessions: sessionmaker[Session], registered_app: RegisteredApp,
    tmp_path: Path,
) -> None:  # fmt: skip
    from tests.support.databases import register_app

    other = register_app(sessions, "other-bot")
    add_answers(sessions, registered_app, DAY, up=95, down=5)
    add_answers(sessions, other, DAY, up=60, down=40, feature="search")
    env = cli_env(database_url, tmp_path)
    since, until = DAY.isoformat(), (DAY + timedelta(days=1)).isoformat()
    ran = run_cli(env, "criteria", "--by", "app", "--since", since, "--until", until)
    assert ran.returncode == 0, ran.stderr
    assert f"app support-bot: 95.0% {percent_interval(95, 100)} · n = 100\n" in ran.stdout
    assert "app other-bot: 60.0% " in ran.stdout and "significantly worse" in ran.stdout
    ran = run_cli(
        env, "criteria", "--compare", "app=support-bot,feature=search",
        "--since", since, "--until", until,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "  difference: −35.0 pp (significant)" in ran.stdout


def direct_percentile(values: list[float], q: float) -> tuple[float, float, float]:
    """(nearest-rank value, interval low, interval high) from the sorted values themselves."""
    ordered = sorted(values)
    low, high = direct_ranks(len(ordered), q)
    return ordered[math.ceil(len(ordered) * q) - 1], ordered[low - 1], ordered[high - 1]


@settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(
    models=st.lists(
        st.tuples(st.integers(0, 1500), st.lists(st.integers(1, 2000), min_size=40, max_size=90)),
        min_size=2, max_size=3,
    ),
    percentile=st.sampled_from([50, 90]),
    higher_is_better=st.booleans(),
)  # fmt: skip
def test_a_percentile_group_is_worse_exactly_when_its_interval_is_beyond_the_rest_s(
    sessions: sessionmaker[Session], registered_app: RegisteredApp,
    models: list[tuple[int, list[int]]], percentile: int, higher_is_better: bool,
) -> None:  # fmt: skip
    """`worse` against each group and the rest computed here: value on the worse side, and the
    two 95% intervals apart (ties and shifted groups included)."""
    from storage.breakdowns import breakdown
    from storage.criteria import PercentileSpec

    start = datetime(2026, 11, 18, tzinfo=UTC)
    values = {
        f"m{i}": [float(offset + v) for v in latencies]
        for i, (offset, latencies) in enumerate(models)
    }
    rows = [
        {
            "app_id": registered_app.app_id, "external_id": f"{model}-{i}", "prompt": "p",
            "response": "r", "model": model, "latency_ms": latency,
            "occurred_at": start + timedelta(seconds=i), "received_at": start,
        }
        for model, latencies in values.items()
        for i, latency in enumerate(latencies)
    ]  # fmt: skip
    q = percentile / 100
    expected = {}
    for model, own in values.items():
        rest = [v for other, theirs in values.items() if other != model for v in theirs]
        (value, low, high), (rest_value, rest_low, rest_high) = (
            direct_percentile(own, q), direct_percentile(rest, q)
        )  # fmt: skip
        worse_side = value < rest_value if higher_is_better else value > rest_value
        expected[model] = worse_side and (high < rest_low or rest_high < low)
    with sessions() as session:
        session.execute(insert(FeedbackEvent), rows)
        groups = breakdown(
            session, PercentileSpec("latency_ms", percentile), "model", start,
            start + timedelta(days=1), limit=5, higher_is_better=higher_is_better,
        )  # fmt: skip
        session.rollback()
    assert {group.name: group.worse for group in groups} == expected
