"""The daily summary and weekly digest a team reads: known numbers in, the right verdicts out."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from bot.config import DownvoteConfig
from bot.summaries.chart import trend_figure
from bot.summaries.formatting import EN_DASH
from bot.summaries.queries import Verdict, daily_summary, weekly_digest
from bot.summaries.render import (
    SlackSummary,
    _section_texts,
    daily_summary_message,
    daily_summary_text,
    weekly_digest_chart,
    weekly_digest_message,
    weekly_digest_text,
)
from storage.criteria import CriterionResult
from storage.models import Alert, EventCategory, FeedbackEvent, Triage
from tests.support.databases import DATABASES, fresh_session

NEW_YORK = ZoneInfo("America/New_York")
# The acceptance day is the 23-hour day of the spring clock change: its bounds must be right.
DAY = date(2026, 3, 8)
NOW = datetime(2026, 3, 9, 14, 0, tzinfo=NEW_YORK)


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    with fresh_session(request.param, tmp_path) as session:
        yield session


def config_with(*criteria: dict[str, Any]) -> DownvoteConfig:
    return DownvoteConfig.model_validate({"criteria": list(criteria)})


SATISFACTION = {
    "name": "Satisfaction",
    "kind": "share",
    "condition": "rating = up",
    "target": ">= 0.92",
    "filter": {"rated_only": True},
}
SATISFACTION_AT_90 = {**SATISFACTION, "name": "Satisfaction at 90%", "target": ">= 90%"}
RESPONSE_TIME = {
    "name": "Response time",
    "kind": "percentile",
    "field": "latency_ms",
    "percentile": 95,
    "target": "<= 500",
}
AGREEMENT = {
    "name": "High-confidence agreement",
    "kind": "share",
    "condition": "not downvoted as model issue",
    "target": ">= 0.90",
    "filter": {"confidence_above": 0.9},
}
RARE_FEATURE = {
    "name": "Rare feature agreement",
    "kind": "share",
    "condition": "not downvoted",
    "target": ">= 0.5",
    "filter": {"feature": "rare"},
}
ACCEPTANCE = config_with(SATISFACTION, SATISFACTION_AT_90, RESPONSE_TIME, AGREEMENT, RARE_FEATURE)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


class Day:
    """Builds a day of events at chosen local times."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.count = 0

    def event(self, at: datetime, **fields: Any) -> FeedbackEvent:
        self.count += 1
        event = FeedbackEvent(
            app_id=1,
            external_id=f"e{self.count}",
            prompt="question",
            response=fields.pop("response", "answer"),
            occurred_at=at,
            received_at=at,
            **fields,
        )
        self.session.add(event)
        self.session.flush()
        return event

    def many(self, at: datetime, ratings: Sequence[str | None]) -> None:
        """Insert in one statement: fast enough for the thousands some tests need."""
        rows = [
            {
                "app_id": 1,
                "external_id": f"bulk{self.count + i}",
                "prompt": "question",
                "response": "answer",
                "rating": rating,
                "occurred_at": at,
                "received_at": at,
            }
            for i, rating in enumerate(ratings)
        ]
        self.count += len(rows)
        self.session.execute(insert(FeedbackEvent), rows)


def build_acceptance_day(session: Session) -> None:
    """A day whose true values are known.

    - Satisfaction: 90 up and 10 down among rated events (share 0.9000), plus unrated ones.
    - Response time: latencies 5, 10, ..., 500 ms, so the nearest-rank p95 is exactly 475 ms.
    - High-confidence agreement: 40 events with confidence > 0.9, 4 of them downvoted and one of
      those triaged as not a model issue: (36 + 1) / 40 = 0.925. Confidence exactly 0.9 is out.
    - Rare feature: 5 events, under the default minimum sample of 20.
    - The day before: 19 up of 20 (0.95), p95 400 ms. Events just after the day don't count.
    """
    day = Day(session)
    for i in range(100):
        event = day.event(
            local(DAY, 0) + timedelta(minutes=13 * i),  # 00:00 to 21:27, across the skipped hour
            rating="down" if i < 4 or i >= 94 else "up",
            latency_ms=float(5 * (i + 1)),
            confidence=0.95 if i < 40 else 0.5,
        )
        if i == 0:
            session.add(Triage(event_id=event.id, status="not_a_model_issue", updated_at=NOW))
    for _ in range(10):
        day.event(local(DAY, 23, 30), rating=None)
    for _ in range(5):
        day.event(local(DAY, 23, 59), rating=None, confidence=0.9)
    for _ in range(5):
        day.event(local(DAY, 12), rating=None, feature="rare")
    for i in range(20):
        day.event(
            local(DAY - timedelta(days=1), 10), rating="down" if i == 0 else "up", latency_ms=400.0
        )
    day.event(local(DAY + timedelta(days=1), 0), rating="down", latency_ms=99999.0)
    session.flush()


def test_acceptance_day_shows_known_values_and_verdicts(db: Session) -> None:
    build_acceptance_day(db)
    summary = daily_summary(db, ACCEPTANCE, DAY, NEW_YORK, NOW)
    results = {line.criterion.name: line.result for line in summary.criteria}
    assert results["Satisfaction"] == CriterionResult(0.9, 100)
    assert results["Satisfaction at 90%"] == CriterionResult(0.9, 100)
    assert results["Response time"] == CriterionResult(475.0, 100)
    assert results["High-confidence agreement"] == CriterionResult(0.925, 40)
    assert results["Rare feature agreement"] == CriterionResult(1.0, 5)

    text = daily_summary_text(summary)
    # 90 of 100 is 82.6–94.5% (Wilson, 95%): neither ≥ 92% nor < 92% for sure.
    assert (
        "➖ Satisfaction: 90.0% (82.6–94.5%) · n = 100 · target ≥ 92% · uncertain · "
        "−5.0 pp vs previous day (within noise)"
    ) in text
    assert "➖ Satisfaction at 90%: 90.0% (82.6–94.5%) · n = 100 · target ≥ 90% · uncertain" in text
    # Ranks 90 and 100 of 100 (order-statistic interval of p95): 450 and 500 ms, all ≤ 500 ms.
    assert (
        "✅ Response time: 475 ms (450–500 ms) · n = 100 · target ≤ 500 ms · "
        "+75 ms vs previous day (within noise)"
    ) in text
    assert (
        "➖ High-confidence agreement: 92.5% (80.1–97.4%) · n = 40 · target ≥ 90% · uncertain\n"
    ) in text
    assert "⚪ Rare feature agreement: not enough data (n = 5, needs 20) · target ≥ 50%" in text
    assert "10 downvotes in 10 groups (120 events) · 10% triaged (1 of 10)" in text
    verdicts = [line.verdict for line in summary.criteria]
    assert verdicts == [
        Verdict.UNCERTAIN,
        Verdict.UNCERTAIN,
        Verdict.MET,
        Verdict.UNCERTAIN,
        Verdict.NOT_ENOUGH_DATA,
    ]


def test_acceptance_day_in_slack_blocks(db: Session) -> None:
    build_acceptance_day(db)
    summary = daily_summary(db, ACCEPTANCE, DAY, NEW_YORK, NOW)
    message = daily_summary_message(summary)
    fallback, blocks = message.text, message.blocks
    assert fallback == (
        "Daily summary · Sun 8 Mar 2026: 1 of 4 criteria met (3 uncertain), 10 downvotes"
    )
    assert blocks[0]["text"]["text"] == "Daily summary · Sun 8 Mar 2026"
    criteria = blocks[1]["text"]["text"]
    assert "➖ *Satisfaction*: 90.0% (82.6–94.5%) · n = 100 · target ≥ 92% · uncertain" in criteria
    assert "✅ *Response time*: 475 ms" in criteria
    assert_within_slack_limits(message)


def test_change_is_left_out_when_the_previous_day_lacked_data(db: Session) -> None:
    day = Day(db)
    for i in range(30):
        day.event(local(DAY, 9), rating="up" if i else "down", latency_ms=100.0)
    day.event(local(DAY - timedelta(days=1), 9), rating="up", latency_ms=100.0)
    summary = daily_summary(db, config_with(SATISFACTION, RESPONSE_TIME), DAY, NEW_YORK, NOW)
    assert all(line.change is None for line in summary.criteria)
    assert "vs previous day" not in daily_summary_text(summary)


def test_value_is_never_rounded_onto_the_wrong_side_of_the_target(db: Session) -> None:
    day = Day(db)
    day.many(local(DAY, 9), ["up"] * 9199 + ["down"] * 801)  # 91.99%
    summary = daily_summary(db, config_with(SATISFACTION), DAY, NEW_YORK, NOW)
    assert "➖ Satisfaction: 91.99% (91.4–92.5%) · n = 10,000" in daily_summary_text(summary)


def test_downvotes_triage_and_oldest_untriaged_with_links(db: Session) -> None:
    day = Day(db)
    old = day.event(local(DAY - timedelta(days=3), 16, 5), rating="down", comment="<!channel> & co")
    db.add(
        Alert(
            event_id=old.id,
            status="posted",
            next_attempt_at=NOW,
            created_at=NOW,
            slack_channel_id="C0123",
            slack_ts="1772900000.000200",
        )
    )
    triaged = day.event(local(DAY, 10), rating="down", feature="summarize")
    db.add(EventCategory(event_id=triaged.id, category="hallucination", added_at=NOW))
    day.event(local(DAY, 11), rating="down", response="an answer\nover two lines")
    day.event(local(DAY, 12), rating="up")
    db.flush()
    summary = daily_summary(db, config_with(), DAY, NEW_YORK, NOW)
    text = daily_summary_text(summary)
    assert "2 downvotes in 2 groups (3 events) · 50% triaged (1 of 2)" in text
    assert "Top categories: hallucination (1)" in text
    assert "Oldest untriaged (2 waiting)" in text
    assert (
        "• Thu 5 Mar 16:05 (https://slack.com/archives/C0123/p1772900000000200) · chat"
        " · “<!channel> & co” · waiting 3 d 20 h"
    ) in text
    assert "• Sun 8 Mar 11:00 · chat · “an answer over two lines” · waiting 27 h" in text

    blocks = daily_summary_message(summary).blocks
    oldest = blocks[-2]["text"]["text"]
    assert (
        "<https://slack.com/archives/C0123/p1772900000000200|Thu 5 Mar 16:05> · chat"
        " · “&lt;!channel&gt; &amp; co”"
    ) in oldest
    assert "<!channel>" not in json.dumps(blocks)


def test_permalink_function_is_used_and_may_decline(db: Session) -> None:
    day = Day(db)
    event = day.event(local(DAY, 10), rating="down")
    db.add(
        Alert(
            event_id=event.id,
            next_attempt_at=NOW,
            created_at=NOW,
            slack_channel_id="C1",
            slack_ts="1.2",
        )
    )
    db.flush()
    summary = daily_summary(db, config_with(), DAY, NEW_YORK, NOW)
    linked = daily_summary_text(summary, permalink=lambda c, ts: f"https://x.test/{c}/{ts}")
    assert "(https://x.test/C1/1.2)" in linked
    assert "https://" not in daily_summary_text(summary, permalink=lambda c, ts: None)


def test_a_day_in_progress_says_so(db: Session) -> None:
    summary = daily_summary(db, config_with(), NOW.date(), NEW_YORK, NOW)
    assert daily_summary_text(summary).startswith("Daily summary · Mon 9 Mar 2026 (so far)\n")


def test_many_criteria_stay_within_slack_limits(db: Session) -> None:
    criteria = [
        {**SATISFACTION, "name": f"Criterion {i} " + "x" * 80, "filter": {"feature": "f" * 100}}
        for i in range(120)
    ]
    summary = daily_summary(db, config_with(*criteria), DAY, NEW_YORK, NOW)
    message = daily_summary_message(summary)
    assert_within_slack_limits(message)
    assert message.parts, "this much text does not fit one message: the rest is in the thread"
    everything = [message.blocks, *message.parts]
    shown = sum(json.dumps(b).count("Criterion ") for blocks in everything for b in blocks)
    assert shown == 120  # packed into sections and thread parts, none lost


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in strings(item)]


def assert_within_slack_limits(message: SlackSummary) -> None:
    """Slack's own numbers: 50 blocks a message, 150 for a header, 3,000 for a section, and
    about 12,000 characters of text in all (msg_blocks_too_long), for every message posted."""
    for blocks in [message.blocks, *message.parts]:
        assert len(blocks) <= 50
        assert sum(utf16_len(text) for text in strings(blocks)) <= 12_000
        for block in blocks:
            if block["type"] == "header":
                assert utf16_len(block["text"]["text"]) <= 150
            if block["type"] == "section":
                assert utf16_len(block["text"]["text"]) <= 3000


# ---------------------------------------------------------------------------------------------
# Weekly


WEEK_DAY = date(2026, 3, 4)  # a Wednesday; its week is Mon 2 - Sun 8 Mar, with the clock change


def build_week(session: Session) -> None:
    """Day i of the week (0 = Monday) has 20 rated events, i of them downvotes."""
    day = Day(session)
    monday = date(2026, 3, 2)
    for i in range(7):
        for j in range(20):
            event = day.event(
                local(monday + timedelta(days=i), 12, j),
                rating="down" if j < i else "up",
                latency_ms=float(100 * i + j),
                feature="summarize" if j % 2 else "translate",
                model="m1",
                comment=f"complaint {i}.{j}" if j == 0 else None,
            )
            if j < i:
                category = "hallucination" if j % 2 == 0 else "refusal"
                session.add(EventCategory(event_id=event.id, category=category, added_at=NOW))
                session.add(
                    Triage(
                        event_id=event.id,
                        status="resolved",
                        triaged_at=event.received_at + timedelta(minutes=10 * (j + 1)),
                        updated_at=NOW,
                    )
                )
    last_week = day.event(local(date(2026, 2, 25), 12), rating="down")
    session.add(EventCategory(event_id=last_week.id, category="too slow", added_at=NOW))
    session.flush()


def test_weekly_digest_trend_has_seven_days(db: Session) -> None:
    build_week(db)
    digest = weekly_digest(
        db, config_with(SATISFACTION, RESPONSE_TIME), WEEK_DAY, NEW_YORK, NOW + timedelta(days=7)
    )
    satisfaction, response_time = digest.criteria
    assert [d for d, _ in satisfaction.days] == [date(2026, 3, 2) + timedelta(i) for i in range(7)]
    assert [r.value for _, r in satisfaction.days] == [(20 - i) / 20 for i in range(7)]
    assert satisfaction.week == CriterionResult(119 / 140, 140)
    assert [r.value for _, r in response_time.days] == [100.0 * i + 18 for i in range(7)]
    assert response_time.week == CriterionResult(612.0, 140)  # rank 133 of 140

    text = weekly_digest_text(digest)
    assert text.startswith(f"Weekly digest · Mon 2 Mar {EN_DASH} Sun 8 Mar 2026\n")
    assert "❌ Satisfaction: 85.0% (78.2–90.0%) · n = 140 · target ≥ 92%" in text
    assert "Mon 100.0% (83.9–100.0%) · Tue 95.0% (76.4–99.1%) · Wed 90.0% (69.9–97.2%)" in text
    # 20 latencies a day are too few for a p95 interval: the days show the value alone.
    assert "Mon 18 ms · Tue 118 ms · Wed 218 ms" in text
    assert "21 downvotes in 21 groups (140 events; last week 1 of 1) · 100% triaged" in text
    assert "• hallucination: 12 (last week 0, +12)" in text
    assert "• too slow: 0 (last week 1, -1)" in text
    # Waits of 10 min (x6), 20 (x5), 30 (x4), 40 (x3), 50 (x2), 60: the 11th of 21 is 20 min.
    assert "Median time to triage: 20 min (n = 21)" in text
    assert "Features: translate (12), summarize (9)" in text
    assert "Models: m1 (21)" in text
    assert "Examples: hallucination" in text
    assert "“complaint 6.0”" in text  # the latest with a comment comes first


def test_weekly_chart_has_seven_points_per_criterion(db: Session) -> None:
    build_week(db)
    config = config_with(SATISFACTION, RESPONSE_TIME, RARE_FEATURE)
    digest = weekly_digest(db, config, WEEK_DAY, NEW_YORK, NOW + timedelta(days=7))
    png = weekly_digest_chart(digest)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")

    series = {t.criterion.name: [(d, r.value) for d, r in t.days] for t in digest.criteria}
    figure = trend_figure(series, {"Satisfaction": 0.92})
    panels = figure.get_axes()
    assert len(panels) == 3
    for panel in panels:
        assert numpy.size(panel.get_lines()[0].get_xdata()) == 7


def test_weekly_blocks_stay_within_limits_and_leave_the_chart_to_the_thread(db: Session) -> None:
    build_week(db)
    digest = weekly_digest(db, config_with(SATISFACTION), WEEK_DAY, NEW_YORK, NOW)
    message = weekly_digest_message(digest)
    fallback, blocks = message.text, message.blocks
    assert (
        fallback
        == f"Weekly digest · Mon 2 Mar {EN_DASH} Sun 8 Mar 2026: 0 of 1 criteria met, 21 downvotes"
    )
    assert_within_slack_limits(message)
    assert not [b for b in blocks if b["type"] == "image"]  # uploaded into the thread instead


def test_empty_week_renders(db: Session) -> None:
    digest = weekly_digest(db, DownvoteConfig(), WEEK_DAY, NEW_YORK, NOW)
    text = weekly_digest_text(digest)
    assert "not enough data (n = 0, needs 20)" in text
    assert f"Median time to triage: {EN_DASH}" in text
    assert weekly_digest_chart(digest).startswith(b"\x89PNG")


def test_the_chart_shows_at_most_twelve_criteria(db: Session) -> None:
    build_week(db)
    many = [{**SATISFACTION, "name": f"Criterion {n}"} for n in range(30)]
    digest = weekly_digest(db, config_with(*many), WEEK_DAY, NEW_YORK, NOW)
    png = weekly_digest_chart(digest)
    height = int.from_bytes(png[20:24], "big")  # the PNG header's IHDR height
    one = weekly_digest_chart(weekly_digest(db, config_with(SATISFACTION), WEEK_DAY, NEW_YORK, NOW))
    assert height <= 12 * int.from_bytes(one[20:24], "big")


@pytest.mark.parametrize(
    ("line", "sections"),
    [
        ("x" * 2998, 1),  # "T" + newline + 2,998 = 3,000: Slack's limit, one section
        ("x" * 2999, 2),  # 3,001: one character over, so the line starts the next section
        ("\N{GRINNING FACE}" * 1499, 1),  # astral characters count twice (UTF-16): 3,000
        ("\N{GRINNING FACE}" * 1500, 2),  # 3,002
    ],
)
def test_digest_sections_are_packed_up_to_slacks_3000_and_no_further(
    line: str, sections: int
) -> None:
    """A section block's text may hold 3,000 characters (Slack's Block Kit reference), counted
    in UTF-16 units; the digest packs lines up to that and never splits one."""
    texts = _section_texts("T", [line])
    assert len(texts) == sections
    assert all(len(t.encode("utf-16-le")) // 2 <= 3000 for t in texts)
    assert "\n".join(texts) == f"T\n{line}"
