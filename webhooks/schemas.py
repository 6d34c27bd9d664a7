"""The feedback event as apps send it, validated with pydantic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
)

from storage.events import NEW_EVENT_FIELDS, NewEvent, new_external_id
from storage.states import Rating

MAX_BATCH = 1000


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000; refuse it on every database so behaviour is the same.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


# Said in the schema for clients and test generators; checked by _no_nul (cheaper than a regex).
NO_NUL = {"pattern": "^[^\\u0000]*$"}
Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra=NO_NUL)]
ShortText = Annotated[str, Field(max_length=255, json_schema_extra=NO_NUL), AfterValidator(_no_nul)]


def _nul_inside(value: Any) -> bool:
    """Whether U+0000 is in any string or key of a JSON value (PostgreSQL's JSON functions
    refuse it, as its text does)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _nul_inside(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_nul_inside(item) for item in value)
    return False


def _no_nul_inside(value: dict[str, Any]) -> dict[str, Any]:
    if _nul_inside(value):
        raise ValueError("must not contain the NUL character (U+0000) in any key or string")
    return value


# Any JSON value without U+0000, registered as a component by webhooks.openapi.
JSON_VALUE = "#/components/schemas/JsonValue"
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value; no string or key may contain U+0000.",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", **NO_NUL},
        {"type": "array", "items": {"$ref": JSON_VALUE}},
        {
            "type": "object",
            "propertyNames": NO_NUL,
            "additionalProperties": {"$ref": JSON_VALUE},
        },
    ],
}
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_no_nul_inside),
    WithJsonSchema(
        {"type": "object", "propertyNames": NO_NUL, "additionalProperties": {"$ref": JSON_VALUE}},
        mode="validation",
    ),
]


def _not_a_number(value: Any) -> Any:
    """A time is written as one (RFC 3339), as documented: pydantic alone would also read a
    number, or a string of digits, as Unix seconds or milliseconds, a guess we do not make."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected a time like 2026-11-26T10:00:00Z, got a number")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(f"expected a time like 2026-11-26T10:00:00Z, got {value!r}")
    return value


def _in_utc(value: datetime) -> datetime:
    """Kept in UTC (no offset means UTC): PostgreSQL refuses offsets past ±15:59, which RFC 3339
    allows, and one day's edge of the calendar cannot be moved to UTC at all."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once moved to UTC") from None


Moment = Annotated[
    datetime, BeforeValidator(_not_a_number), AfterValidator(_in_utc), Field(strict=False)
]


def _prompt(value: Any) -> str | list[dict[str, Any]]:
    """A string, or chat messages kept exactly as sent (name, tool_calls… included)."""
    if isinstance(value, str):
        return _no_nul(value)
    if not isinstance(value, list):
        raise ValueError("must be a string or a list of chat messages like {role, content}")
    for index, message in enumerate(value):
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or len(role) > 255 or "\x00" in role:
            raise ValueError(f"message {index} needs a `role`: a string of at most 255 characters")
        if _nul_inside(message):
            raise ValueError(f"message {index} must not contain U+0000 in any key or string")
    return value


# No spaces or control characters, spelled out: `\s` differs between pydantic's regex engine
# and the ECMAScript one of OpenAPI clients and Schemathesis (U+0085 is a space to one only).
URL = (
    r"^https?://[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
    r"\u3000\ufeff]+$"
)
_CHAT_MESSAGE = {
    "type": "object",
    "description": "A chat message, kept exactly as sent (name, tool_calls… included).",
    "properties": {
        "role": {"type": "string", "maxLength": 255, **NO_NUL},
        "content": {"$ref": JSON_VALUE},
    },
    "propertyNames": NO_NUL,
    "additionalProperties": {"$ref": JSON_VALUE},
    "required": ["role"],
}
Prompt = Annotated[
    str | list[dict[str, Any]],
    PlainValidator(_prompt),
    WithJsonSchema(
        {"anyOf": [{"type": "string", **NO_NUL}, {"type": "array", "items": _CHAT_MESSAGE}]},
        mode="validation",
    ),
]


class FeedbackIn(BaseModel):
    """One feedback event. Only `prompt` and `response` are required."""

    # strict: a field takes the JSON type its schema names (no `false` for 0, no "840" for 840).
    model_config = ConfigDict(extra="forbid", strict=True)

    id: ShortText | None = Field(default=None, min_length=1)
    rating: Rating | None = None
    comment: Text | None = None
    prompt: Prompt
    response: Text
    model: ShortText | None = None
    feature: ShortText | None = None
    latency_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    confidence: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    user_id: ShortText | None = None
    session_id: ShortText | None = None
    trace_id: ShortText | None = None
    trace_url: Annotated[str, Field(pattern=URL, max_length=4096)] | None = None
    correction: Text | None = None
    metrics: JsonObject | None = None
    metadata: JsonObject | None = None
    occurred_at: Moment | None = None

    def to_new_event(self, *, webhook_id: str | None, now: datetime) -> NewEvent:
        """Resolve the idempotency key and defaults into what storage keeps."""
        occurred_at = self.occurred_at or now
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        return NewEvent(
            **{name: getattr(self, name) for name in _SAME_NAMED},
            external_id=self.id or webhook_id or new_external_id(now),
            occurred_at=occurred_at,
            webhook_id=webhook_id,
        )


# The fields that pass to storage as they are (NewEvent names them the same).
_SAME_NAMED = tuple(
    name for name in NEW_EVENT_FIELDS if name not in ("external_id", "occurred_at", "webhook_id")
)
assert set(_SAME_NAMED) <= set(FeedbackIn.model_fields), "FeedbackIn and NewEvent disagree"


class FeedbackBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    events: list[FeedbackIn] = Field(min_length=1, max_length=MAX_BATCH)


class FeedbackAccepted(BaseModel):
    id: str
    duplicate: bool


class BatchAccepted(BaseModel):
    accepted: int
    duplicates: int
    ids: list[str]


class EventPage(BaseModel):
    events: list[dict[str, Any]]
    next_cursor: str | None
