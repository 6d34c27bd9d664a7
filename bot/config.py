"""`downvote.toml`: criteria, categories, schedule and redaction, checked before anything runs.

A mistake stops `serve` with one line naming the file, the line, the key and the reason, e.g.
`downvote.toml:14: criteria[1].target: expected a comparison like ">= 0.92", got "lots"`.
List indexes in key paths count from 0, like the `[[criteria]]` tables in the file.
"""

from __future__ import annotations

import json
import operator
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from bot.alerts.backtracking import nests_unbounded_repeats
from storage.criteria import (
    Condition,
    CriterionFilter,
    CriterionSpec,
    MetricIs,
    NotDownvoted,
    NotDownvotedAsModelIssue,
    PercentileSpec,
    RatedUp,
    ShareSpec,
)

DEFAULT_CATEGORIES = (
    "hallucination",
    "wrong or outdated facts",
    "ignored instructions",
    "wrong format",
    "refusal",
    "unsafe or toxic",
    "off-topic",
    "incomplete",
    "tool or retrieval error",
    "too slow",
    "user error",
)
METRIC_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(Exception):
    """A one-line, user-facing reason why downvote.toml cannot be used."""


# ---------------------------------------------------------------------------------------------
# The small grammars inside strings: targets, conditions, fields, times.


@dataclass(frozen=True)
class Target:
    """A comparison the value must satisfy, e.g. `>= 0.92` or `<= 500`."""

    op: Literal[">=", "<=", ">", "<"]
    threshold: float

    def is_met_by(self, value: float) -> bool:
        return _COMPARE[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_TARGET = re.compile(r"\s*(>=|<=|>|<)\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(%?)\s*")


def _got(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _parse_target(value: object, *, percent_allowed: bool) -> Target:
    if isinstance(value, Target):
        return value
    example = '">= 0.92" or ">= 92%"' if percent_allowed else '"<= 500"'
    match = _TARGET.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a comparison like {example}, got {_got(value)}")
    op, number, percent = match.groups()
    if percent and not percent_allowed:
        raise ValueError(f"a percentile target is a plain number like {example}, got {_got(value)}")
    threshold = float(number) / (100 if percent else 1)
    if percent_allowed and threshold > 1:
        raise ValueError(
            f"a share is between 0 and 1 (or 0% and 100%), got {_got(value)}; "
            'write ">= 0.92" or ">= 92%"'
        )
    return Target(op=op, threshold=threshold)  # type: ignore[arg-type]


def _share_target(value: object) -> Target:
    return _parse_target(value, percent_allowed=True)


def _number_target(value: object) -> Target:
    return _parse_target(value, percent_allowed=False)


_FIXED_CONDITIONS: dict[str, Condition] = {
    "rating = up": RatedUp(),
    "not downvoted": NotDownvoted(),
    "not downvoted as model issue": NotDownvotedAsModelIssue(),
}
_METRIC_CONDITION = re.compile(rf"metrics\.({METRIC_NAME}) = (true|false)")
CONDITION_FORMS = (*_FIXED_CONDITIONS, "metrics.<name> = true|false")


def _condition(value: object) -> Condition:
    if isinstance(value, RatedUp | NotDownvoted | NotDownvotedAsModelIssue | MetricIs):
        return value
    if isinstance(value, str):
        text = " ".join(value.split())  # forgive extra spaces, nothing else
        if text in _FIXED_CONDITIONS:
            return _FIXED_CONDITIONS[text]
        match = _METRIC_CONDITION.fullmatch(text)
        if match:
            return MetricIs(name=match[1], value=match[2] == "true")
    forms = ", ".join(f'"{form}"' for form in CONDITION_FORMS)
    raise ValueError(f"expected one of {forms}, got {_got(value)}")


_FIELD = re.compile(rf"latency_ms|confidence|metrics\.{METRIC_NAME}")


def _field(value: object) -> str:
    if isinstance(value, str) and _FIELD.fullmatch(value):
        return value
    raise ValueError(f'expected "latency_ms", "confidence" or "metrics.<name>", got {_got(value)}')


_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def _clock(value: object) -> time:
    if isinstance(value, time):
        return value
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'expected a 24-hour time like "09:00", got {_got(value)}')
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class WeeklyTime:
    weekday: int  # Monday is 0, as in date.weekday()
    at: time

    @property
    def day_name(self) -> str:
        """The three-letter day, as cron and APScheduler spell it."""
        return WEEKDAYS[self.weekday]


def _weekly(value: object) -> WeeklyTime:
    if isinstance(value, WeeklyTime):
        return value
    parts = value.split() if isinstance(value, str) else []
    day = parts[0].lower()[:3] if len(parts) == 2 else ""
    if day not in WEEKDAYS or not parts[0].lower().startswith(day):
        raise ValueError(f'expected a day and a time like "mon 09:00", got {_got(value)}')
    return WeeklyTime(weekday=WEEKDAYS.index(day), at=_clock(parts[1]))


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f'expected an IANA time zone like "Europe/Paris", got {_got(value)}'
        ) from exc
    return value


# ---------------------------------------------------------------------------------------------
# The file's sections


class _Section(BaseModel):
    # strict: TOML has real types, so "20" for a number is a mistake worth reporting.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Name = Annotated[str, Field(min_length=1, max_length=100)]
Label = Annotated[str, Field(min_length=1, max_length=255)]  # as long as the event fields


class Filter(_Section):
    """Which events a criterion looks at; every key given must match."""

    app: Name | None = None
    feature: Label | None = None
    model: Label | None = None
    confidence_above: float | None = None
    rated_only: bool = False

    def to_spec(self) -> CriterionFilter:
        return CriterionFilter(
            app=self.app,
            feature=self.feature,
            model=self.model,
            confidence_above=self.confidence_above,
            rated_only=self.rated_only,
        )


class _Criterion(_Section):
    name: Name
    min_sample: int = Field(default=20, ge=1)
    filter: Filter = Filter()
    target: Target

    def verdict(self, value: float | None, sample: int) -> bool | None:
        """Pass (True) or fail (False); None when the sample is too small to say."""
        if value is None or sample < self.min_sample:
            return None
        return self.target.is_met_by(value)


class ShareCriterion(_Criterion):
    """The share of events meeting `condition`, e.g. thumbs-up among rated answers."""

    kind: Literal["share"]
    condition: Annotated[Condition, PlainValidator(_condition)]
    target: Annotated[Target, PlainValidator(_share_target)]

    def to_spec(self) -> CriterionSpec:
        return ShareSpec(condition=self.condition, filter=self.filter.to_spec())


class PercentileCriterion(_Criterion):
    """pN of a numeric field, e.g. p95 of latency_ms."""

    kind: Literal["percentile"]
    field: Annotated[str, PlainValidator(_field)]
    percentile: float = Field(gt=0, le=100)
    target: Annotated[Target, PlainValidator(_number_target)]

    def to_spec(self) -> CriterionSpec:
        return PercentileSpec(
            field=self.field, percentile=self.percentile, filter=self.filter.to_spec()
        )


Criterion = ShareCriterion | PercentileCriterion
_TaggedCriterion = Annotated[Criterion, Field(discriminator="kind")]


class Schedule(_Section):
    daily: Annotated[time, PlainValidator(_clock)] = time(9, 0)
    weekly: Annotated[WeeklyTime, PlainValidator(_weekly)] = WeeklyTime(0, time(9, 0))
    timezone: Annotated[str | None, PlainValidator(_timezone)] = None


class RedactionPattern(_Section):
    name: Name
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc}): {_got(value)}") from exc
        if nests_unbounded_repeats(value):
            raise ValueError(
                "a repeat inside a repeat (like (a+)+) can take seconds on one long prompt: "
                f"rewrite it without the nested + or *, got {_got(value)}"
            )
        return value


class Redaction(_Section):
    enabled: bool = True
    patterns: list[RedactionPattern] = []


class Grouping(_Section):
    """Near-duplicate downvotes share one alert (see README, One problem, one alert)."""

    enabled: bool = True
    similarity: float = Field(default=0.8, gt=0, le=1)  # estimated Jaccard of the prompts
    window_days: float = Field(default=7, gt=0)  # since the group's last member
    suggest_similarity: float = Field(default=0.5, gt=0, le=1)  # like earlier triaged ones


class SpikeLimits(_Section):
    """When an app's downvotes jump, new groups gather in one message's thread."""

    enabled: bool = True
    min_count: int = Field(default=20, ge=1)  # downvotes in the window
    factor: float = Field(default=5, ge=1)  # times the usual count per window
    window_minutes: float = Field(default=10, gt=0)
    baseline_days: float = Field(default=7, gt=0)
    quiet_minutes: float = Field(default=10, gt=0)  # below the threshold this long: over


class Retention(_Section):
    """How long events are kept: older ones are deleted daily (default: kept forever)."""

    days: int | None = Field(default=None, ge=1)
    slack_messages: bool = False  # also delete their alerts from Slack (opt-in)


class Limits(_Section):
    """Abuse limits of the receiver, per process (see README, Limits)."""

    events_per_minute: int | None = Field(default=None, ge=1)  # per app; None: no limit
    bodies_in_flight: int = Field(default=64, ge=1)  # request bodies held at once, all apps


DEFAULT_CRITERIA_TOML = """
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

[[criteria]]
name = "High-confidence agreement"
kind = "share"
condition = "not downvoted as model issue"
target = ">= 0.90"
filter = { confidence_above = 0.9 }
"""


def default_criteria() -> list[Criterion]:
    """The seed criteria of an LLM app, used when the file declares none."""
    adapter = TypeAdapter(list[_TaggedCriterion])
    return adapter.validate_python(tomllib.loads(DEFAULT_CRITERIA_TOML)["criteria"])


class DownvoteConfig(_Section):
    criteria: list[_TaggedCriterion] = Field(default_factory=default_criteria)
    categories: list[Name] = list(DEFAULT_CATEGORIES)
    schedule: Schedule = Schedule()
    redaction: Redaction = Redaction()
    grouping: Grouping = Grouping()
    spike: SpikeLimits = SpikeLimits()
    retention: Retention = Retention()
    limits: Limits = Limits()

    @field_validator("criteria")
    @classmethod
    def _unique_names(cls, value: list[Criterion]) -> list[Criterion]:
        _reject_duplicates([c.name for c in value], "criteria", "name")
        return value

    @field_validator("categories")
    @classmethod
    def _unique_categories(cls, value: list[str]) -> list[str]:
        _reject_duplicates(value, "categories", "")
        return value


class _ErrorAt(ValueError):
    """A list-level error that belongs to one item: `loc` points the message at its line."""

    def __init__(self, message: str, loc: tuple[int | str, ...]) -> None:
        super().__init__(message)
        self.loc = loc


def _reject_duplicates(names: Sequence[str], where: str, suffix: str) -> None:
    first_seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first_seen:
            loc: tuple[int | str, ...] = (where, index, suffix) if suffix else (where, index)
            path = f"{where}[{first_seen[name]}]" + (f".{suffix}" if suffix else "")
            raise _ErrorAt(f"{_got(name)} is already used by {path}", loc)
        first_seen[name] = index


# ---------------------------------------------------------------------------------------------
# Loading and explaining errors


def load_config(path: Path | None) -> DownvoteConfig:
    """Read and check the file; None gives the defaults. Raises ConfigError."""
    if path is None:
        return DownvoteConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        where = f"{path}:{line[1]}" if line else str(path)
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    try:
        return DownvoteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, text)) from None


_TAGS = {"share", "percentile"}
_MODELS_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): DownvoteConfig,
    ("criteria", "*", "share"): ShareCriterion,
    ("criteria", "*", "percentile"): PercentileCriterion,
    ("criteria", "*", "share", "filter"): Filter,
    ("criteria", "*", "percentile", "filter"): Filter,
    ("schedule",): Schedule,
    ("redaction",): Redaction,
    ("redaction", "patterns", "*"): RedactionPattern,
    ("grouping",): Grouping,
    ("spike",): SpikeLimits,
    ("retention",): Retention,
    ("limits",): Limits,
}


def _explain(exc: ValidationError, path: Path, text: str) -> str:
    """The first error as `file:line: key.path: reason`, plus how many more there are."""
    errors = exc.errors()
    error = errors[0]
    raw_loc = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _ErrorAt):
        raw_loc = cause.loc
    loc = _without_union_tags(raw_loc)
    reason = _reason(error, raw_loc)
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "kind")
    line = _line_of(text, loc)
    where = f"{path}:{line}" if line else str(path)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {_key_path(loc) or '(top level)'}: {reason}{more}"


def _without_union_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic puts the discriminator's value after the list index: criteria.1.share.target
    if len(loc) > 2 and loc[0] == "criteria" and loc[2] in _TAGS:
        return (*loc[:2], *loc[3:])
    return loc


def _reason(error: Any, raw_loc: tuple[int | str, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(raw_loc)
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_not_found":
        return 'required key is missing (expected "share" or "percentile")'
    if kind == "union_tag_invalid":
        return f'expected "share" or "percentile", got {_got(error["ctx"]["tag"])}'
    message = str(error["msg"])
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    value = error.get("input")
    if isinstance(value, str | int | float | bool):
        return f"{message}, got {_got(value)}"
    return message


def _unknown_key(raw_loc: tuple[int | str, ...]) -> str:
    shape = tuple("*" if isinstance(p, int) else p for p in raw_loc[:-1])
    model = _MODELS_AT.get(shape)
    if model is None:
        return "unknown key"
    allowed = ", ".join(model.model_fields)
    key = raw_loc[-1]
    other_kind = {ShareCriterion: "percentile", PercentileCriterion: "share"}.get(model)
    if other_kind and key in _MODELS_AT[("criteria", "*", other_kind)].model_fields:
        return f'only a "{other_kind}" criterion has this key (this one has: {allowed})'
    return f"unknown key (expected one of: {allowed})"


def _key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?")
_KEY = re.compile(r"\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line that defines `loc`, else its closest enclosing table or key: a cheap scan.

    Tracks [table] and [[array]] headers and `key =` lines; good enough to point at a mistake.
    """
    best: tuple[int, int] | None = None  # (matched depth, line number)
    arrays: dict[tuple[str, ...], int] = {}
    table: tuple[int | str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.fullmatch(line)
        if header:
            names = tuple(_unquote(p) for p in header[2].split("."))
            if header[1] == "[[":
                arrays[names] = arrays.get(names, -1) + 1
            table = _resolve(names, arrays)
            here = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            here = table + tuple(_unquote(p) for p in key[1].split("."))
        depth = _common_prefix(here, loc)
        if depth == len(here) and (best is None or depth > best[0]):
            best = (depth, number)
    return best[1] if best and best[0] > 0 else None


def _resolve(names: tuple[str, ...], arrays: dict[tuple[str, ...], int]) -> tuple[int | str, ...]:
    """criteria.filter -> ("criteria", 3, "filter") when we are in the 4th [[criteria]]."""
    resolved: list[int | str] = []
    for i, name in enumerate(names):
        resolved.append(name)
        if names[: i + 1] in arrays:
            resolved.append(arrays[names[: i + 1]])
    return tuple(resolved)


def _unquote(part: str) -> str:
    return part.strip().strip("\"'")


def _common_prefix(a: Sequence[int | str], b: Sequence[int | str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
