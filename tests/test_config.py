"""downvote.toml: what a valid file means, and one clear line when it is wrong."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import (
    DEFAULT_CATEGORIES,
    ConfigError,
    DownvoteConfig,
    PercentileCriterion,
    ShareCriterion,
    Target,
    load_config,
)
from bot.service import summary_timezone
from bot.settings import Settings
from storage.criteria import (
    CriterionFilter,
    MetricIs,
    NotDownvoted,
    NotDownvotedAsModelIssue,
    PercentileSpec,
    RatedUp,
    ShareSpec,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "downvote.example.toml"

SHARE = """
[[criteria]]
name = "Satisfaction"
kind = "share"
condition = "rating = up"
target = ">= 0.92"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "downvote.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# Valid files


def test_no_file_gives_the_seed_criteria_and_default_categories() -> None:
    config = load_config(None)
    assert [c.name for c in config.criteria] == [
        "Satisfaction",
        "Response time",
        "High-confidence agreement",
    ]
    assert config.categories == list(DEFAULT_CATEGORIES)
    assert config.schedule.daily == time(9, 0)
    assert (config.schedule.weekly.day_name, config.schedule.weekly.at) == ("mon", time(9, 0))
    assert config.redaction.enabled and config.redaction.patterns == []


def test_seed_criteria_mean_what_the_issue_says() -> None:
    satisfaction, response_time, agreement = load_config(None).criteria
    assert satisfaction.to_spec() == ShareSpec(RatedUp(), CriterionFilter(rated_only=True))
    assert satisfaction.target == Target(">=", 0.92)
    assert response_time.to_spec() == PercentileSpec("latency_ms", 95)
    assert response_time.target == Target("<=", 500)
    assert agreement.to_spec() == ShareSpec(
        NotDownvotedAsModelIssue(), CriterionFilter(confidence_above=0.9)
    )
    assert agreement.target == Target(">=", 0.90)


def test_example_file_loads_and_starts_with_the_defaults() -> None:
    config = load_config(EXAMPLE)
    assert config.criteria[:3] == DownvoteConfig().criteria
    functions = config.criteria[3]
    assert isinstance(functions, ShareCriterion)
    assert functions.to_spec() == ShareSpec(
        MetricIs("tests_passed", True), CriterionFilter(feature="codegen")
    )
    assert functions.target == Target(">=", 0.95)
    assert functions.min_sample == 50
    assert config.categories == list(DEFAULT_CATEGORIES)
    assert [p.name for p in config.redaction.patterns] == ["email", "card number"]
    assert re.search(config.redaction.patterns[0].regex, "write to ada@example.com")


def test_sections_left_out_keep_their_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[schedule]\ndaily = "17:30"\n'))
    assert config.schedule.daily == time(17, 30)
    assert config.criteria == DownvoteConfig().criteria
    assert load_config(write(tmp_path, "criteria = []\n")).criteria == []


@pytest.mark.parametrize(
    ("condition", "meaning"),
    [
        ("rating = up", RatedUp()),
        ("not downvoted", NotDownvoted()),
        ("not downvoted as model issue", NotDownvotedAsModelIssue()),
        ("  not   downvoted  ", NotDownvoted()),
        ("metrics.tests_passed = true", MetricIs("tests_passed", True)),
        ("metrics.label_match = false", MetricIs("label_match", False)),
    ],
)
def test_conditions(tmp_path: Path, condition: str, meaning: object) -> None:
    text = SHARE.replace('"rating = up"', f'"{condition}"')
    criterion = load_config(write(tmp_path, text)).criteria[0]
    assert isinstance(criterion, ShareCriterion)
    assert criterion.condition == meaning


@pytest.mark.parametrize(
    ("target", "meaning"),
    [(">= 0.92", Target(">=", 0.92)), (">=92%", Target(">=", 0.92)), ("< .5", Target("<", 0.5))],
)
def test_share_targets(tmp_path: Path, target: str, meaning: Target) -> None:
    text = SHARE.replace('">= 0.92"', f'"{target}"')
    assert load_config(write(tmp_path, text)).criteria[0].target == meaning


def test_percentile_with_filter_and_metric_field(tmp_path: Path) -> None:
    text = """
[[criteria]]
name = "Eval score"
kind = "percentile"
field = "metrics.score"
percentile = 99.9
target = "> 3.5"
min_sample = 5

[criteria.filter]
app = "support-bot"
model = "gpt-x"
rated_only = true
"""
    criterion = load_config(write(tmp_path, text)).criteria[0]
    assert isinstance(criterion, PercentileCriterion)
    assert criterion.to_spec() == PercentileSpec(
        "metrics.score", 99.9, CriterionFilter(app="support-bot", model="gpt-x", rated_only=True)
    )
    assert criterion.verdict(3.6, 5) is True
    assert criterion.verdict(3.5, 5) is False
    assert criterion.verdict(9.0, 4) is None  # not enough data


def test_timezone_override(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[schedule]\ntimezone = "Europe/Paris"\n'))
    assert summary_timezone(Settings(downvote_timezone="UTC"), config).key == "Europe/Paris"
    new_york = Settings(downvote_timezone="America/New_York")
    assert summary_timezone(new_york, load_config(None)).key == "America/New_York"


@pytest.mark.parametrize(
    ("weekly", "day"), [("mon 09:00", "mon"), ("Friday 17:45", "fri"), ("sun 00:00", "sun")]
)
def test_weekly_schedule(tmp_path: Path, weekly: str, day: str) -> None:
    config = load_config(write(tmp_path, f'[schedule]\nweekly = "{weekly}"\n'))
    assert config.schedule.weekly.day_name == day


# ---------------------------------------------------------------------------------------------
# Mistakes: one line naming the file, the line, the key and the reason


def test_unknown_field(tmp_path: Path) -> None:
    message = error_for(tmp_path, SHARE + 'treshold = ">= 0.9"\n')
    assert message == (
        f"{tmp_path / 'downvote.toml'}:7: criteria[0].treshold: unknown key "
        "(expected one of: name, min_sample, filter, target, kind, condition)"
    )


def test_unknown_top_level_section(tmp_path: Path) -> None:
    message = error_for(tmp_path, 'categories = ["a"]\n[schedul]\ndaily = "09:00"\n')
    assert message.endswith(
        ":2: schedul: unknown key (expected one of: criteria, categories, schedule, "
        "redaction, grouping, spike, retention, limits)"
    )


def test_bad_target(tmp_path: Path) -> None:
    text = SHARE + SHARE.replace("Satisfaction", "Other").replace('">= 0.92"', '"lots"')
    message = error_for(tmp_path, text)
    assert message == (
        f"{tmp_path / 'downvote.toml'}:12: criteria[1].target: "
        'expected a comparison like ">= 0.92" or ">= 92%", got "lots"'
    )


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ('">= 92"', 'a share is between 0 and 1 (or 0% and 100%), got ">= 92"'),
        ('"= 0.9"', 'expected a comparison like ">= 0.92" or ">= 92%", got "= 0.9"'),
        ("0.92", 'expected a comparison like ">= 0.92" or ">= 92%", got 0.92'),
    ],
)
def test_other_bad_share_targets(tmp_path: Path, target: str, reason: str) -> None:
    message = error_for(tmp_path, SHARE.replace('">= 0.92"', target))
    assert ":6: criteria[0].target: " + reason in message


def test_percent_is_only_for_shares(tmp_path: Path) -> None:
    text = '[[criteria]]\nname = "p95"\nkind = "percentile"\nfield = "latency_ms"\n'
    text += 'percentile = 95\ntarget = "<= 50%"\n'
    assert error_for(tmp_path, text).endswith(
        ':6: criteria[0].target: a percentile target is a plain number like "<= 500", got "<= 50%"'
    )


def test_bad_timezone(tmp_path: Path) -> None:
    message = error_for(tmp_path, '[schedule]\ntimezone = "Mars/Olympus_Mons"\n')
    assert message == (
        f"{tmp_path / 'downvote.toml'}:2: schedule.timezone: "
        'expected an IANA time zone like "Europe/Paris", got "Mars/Olympus_Mons"'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SHARE.replace('"rating = up"', '"rating = great"'),
            ':5: criteria[0].condition: expected one of "rating = up", "not downvoted", '
            '"not downvoted as model issue", "metrics.<name> = true|false", got "rating = great"',
        ),
        (
            SHARE.replace('kind = "share"', 'kind = "average"'),
            ':4: criteria[0].kind: expected "share" or "percentile", got "average"',
        ),
        (
            SHARE.replace('kind = "share"\n', ""),
            ':2: criteria[0].kind: required key is missing (expected "share" or "percentile")',
        ),
        (
            SHARE.replace('condition = "rating = up"\n', ""),
            ":2: criteria[0].condition: required key is missing",
        ),
        (
            SHARE + 'field = "latency_ms"\n',
            ':7: criteria[0].field: only a "percentile" criterion has this key '
            "(this one has: name, min_sample, filter, target, kind, condition)",
        ),
        (
            SHARE + "min_sample = 0\n",
            ":7: criteria[0].min_sample: input should be greater than or equal to 1, got 0",
        ),
        (
            SHARE + 'min_sample = "20"\n',
            ':7: criteria[0].min_sample: input should be a valid integer, got "20"',
        ),
        (
            SHARE + "[criteria.filter]\nconfidence_abov = 0.9\n",
            ":8: criteria[0].filter.confidence_abov: unknown key (expected one of: app, feature, "
            "model, confidence_above, rated_only)",
        ),
        (
            SHARE + SHARE,
            ':9: criteria[1].name: "Satisfaction" is already used by criteria[0].name',
        ),
        (
            'categories = ["refusal", "refusal"]\n',
            ':1: categories[1]: "refusal" is already used by categories[0]',
        ),
        (
            '[schedule]\ndaily = "9am"\n',
            ':2: schedule.daily: expected a 24-hour time like "09:00", got "9am"',
        ),
        (
            '[schedule]\nweekly = "someday 09:00"\n',
            ':2: schedule.weekly: expected a day and a time like "mon 09:00", got "someday 09:00"',
        ),
        (
            '[[redaction.patterns]]\nname = "x"\nregex = "(unclosed"\n',
            ":3: redaction.patterns[0].regex: not a valid regular expression",
        ),
        (
            "[[criteria]]\nname = \nkind",
            ":2: not valid TOML: Invalid value (at line 2, column 8)",
        ),
    ],
)
def test_mistakes_name_line_key_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    message = error_for(tmp_path, text)
    assert message.startswith(str(tmp_path / "downvote.toml") + ":")
    assert expected in message


def test_percentile_field_and_percentile_are_checked(tmp_path: Path) -> None:
    text = '[[criteria]]\nname = "x"\nkind = "percentile"\nfield = "latency"\n'
    text += 'percentile = 95\ntarget = "<= 5"\n'
    assert ':4: criteria[0].field: expected "latency_ms", "confidence" or "metrics.<name>"' in (
        error_for(tmp_path, text)
    )
    text = text.replace('"latency"', '"latency_ms"').replace("= 95", "= 0")
    assert ":5: criteria[0].percentile: input should be greater than 0, got 0" in error_for(
        tmp_path, text
    )


def test_several_mistakes_are_counted(tmp_path: Path) -> None:
    message = error_for(tmp_path, SHARE + "colour = 1\nshape = 2\n")
    assert message.endswith("(and 1 more)")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(tmp_path / "missing.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'categories = ["caf\xe9"]\n')
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)


@given(
    op=st.sampled_from([">=", "<=", ">", "<"]),
    number=st.decimals(min_value=0, max_value=1, places=4),
    value=st.floats(min_value=0, max_value=1),
)
def test_share_target_compares_like_the_operator(op: str, number: object, value: float) -> None:
    criterion = ShareCriterion.model_validate(
        {"name": "x", "kind": "share", "condition": "rating = up", "target": f"{op} {number}"}
    )
    threshold = float(str(number))
    expected = {">=": value >= threshold, "<=": value <= threshold}.get(
        op, value > threshold if op == ">" else value < threshold
    )
    assert criterion.verdict(value, 100) is expected


# ---------------------------------------------------------------------------------------------
# [limits]


def test_limits_default_to_no_rate_limit_and_64_bodies_in_flight(tmp_path: Path) -> None:
    limits = load_config(write(tmp_path, "")).limits
    assert (limits.events_per_minute, limits.bodies_in_flight) == (None, 64)


def test_limits_are_read(tmp_path: Path) -> None:
    text = "[limits]\nevents_per_minute = 600\nbodies_in_flight = 8\n"
    limits = load_config(write(tmp_path, text)).limits
    assert (limits.events_per_minute, limits.bodies_in_flight) == (600, 8)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "events_per_minute = 0",
            "limits.events_per_minute: input should be greater than or equal to 1, got 0",
        ),
        (
            'events_per_minute = "100"',
            'limits.events_per_minute: input should be a valid integer, got "100"',
        ),
        (
            "bodies_in_flight = -1",
            "limits.bodies_in_flight: input should be greater than or equal to 1, got -1",
        ),
        (
            "per_minute = 5",
            "limits.per_minute: unknown key (expected one of: events_per_minute, bodies_in_flight)",
        ),
    ],
)
def test_bad_limits_say_which_key_and_why(tmp_path: Path, line: str, reason: str) -> None:
    message = error_for(tmp_path, f"[limits]\n{line}\n")
    assert message == f"{tmp_path / 'downvote.toml'}:2: {reason}"
