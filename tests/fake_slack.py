"""A real HTTP fake of the Slack Web API.

Tests point the real slack_sdk client at it (``base_url=slack.api_url``), so request encoding,
error handling and the retry handlers all run as in production; only Slack itself is fake.
Run it standalone for benchmarks: ``python -m tests.fake_slack --port 8765 --latency-ms 50``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import math
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

DEFAULT_TOKEN = "xoxb-test-token"
BOT_USER_ID = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
TEAM_ID = "T0FAKETEAM"
PERMALINK_BASE = "https://fake.slack"
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT_CHARS = 40_000

Params = dict[str, Any]
T = TypeVar("T")

_API_PREFIX = "/api/"
_UPLOAD_PREFIX = "/upload/v1/"
_RESPONSE_URL_PREFIX = "/actions/"
_CONTROL_PREFIX = "/_fake/"
_ID_RE = re.compile(r"^[CGDU][A-Z0-9]{6,}$")
_USER_RE = re.compile(r"^[UW][A-Z0-9]{2,}$")


class Call(NamedTuple):
    """One request the fake received, in arrival order (failed and retried ones included)."""

    method: str
    params: Params


class Outcome(NamedTuple):
    """How the fake answered a call; ``status`` 0 means the connection was dropped."""

    method: str
    status: int
    error: str | None


class SlackError(Exception):
    """A Slack API error: answered as HTTP 200 ``{"ok": false, "error": ...}`` like Slack does."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class _RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"ratelimited, retry after {retry_after}s")
        self.retry_after = retry_after


class ManualClock:
    """A monotonic clock tests advance by hand, so time-based failures need no waiting."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --------------------------------------------------------------------------------------------
# Block Kit validation: pure functions returning Slack-style "msg [json-pointer:/path]" strings.

_ANY_TEXT = ("plain_text", "mrkdwn")
_PLAIN = ("plain_text",)
Check = Callable[[dict[str, Any], str], list[str]]


def _problem(message: str, pointer: str) -> str:
    return f"{message} [json-pointer:{pointer}]"


def _check_string(
    value: Any, pointer: str, *, max_len: int, min_len: int = 0, required: bool = True
) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, str):
        return [_problem("must provide a string", pointer)]
    if len(value) > max_len:
        return [_problem(f"must be less than {max_len + 1} characters", pointer)]
    if len(value) < min_len:
        return [_problem(f"must be more than {min_len - 1} characters", pointer)]
    return []


def _check_text(
    obj: Any,
    pointer: str,
    *,
    max_len: int,
    types: tuple[str, ...] = _ANY_TEXT,
    required: bool = True,
) -> list[str]:
    if obj is None and not required:
        return []
    if not isinstance(obj, dict):
        return [_problem("must provide an object", pointer)]
    problems = []
    if obj.get("type") not in types:
        problems.append(_problem("must be a valid enum value", f"{pointer}/type"))
    return problems + _check_string(obj.get("text"), f"{pointer}/text", max_len=max_len, min_len=1)


def _check_list(value: Any, pointer: str, *, max_items: int, min_items: int = 0) -> list[str]:
    if not isinstance(value, list):
        return [_problem("must provide an array", pointer)]
    if len(value) > max_items:
        return [_problem(f"no more than {max_items} items allowed", pointer)]
    if len(value) < min_items:
        return [_problem(f"must provide at least {min_items} items", pointer)]
    return []


def _check_each(items: Any, pointer: str, check: Check, *, max_items: int) -> list[str]:
    problems = _check_list(items, pointer, max_items=max_items, min_items=1)
    if problems:
        return problems
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(_problem("must provide an object", f"{pointer}/{i}"))
        else:
            problems += check(item, f"{pointer}/{i}")
    return problems


def _check_option(option: dict[str, Any], pointer: str) -> list[str]:
    return (
        _check_text(option.get("text"), f"{pointer}/text", max_len=75)
        + _check_string(option.get("value"), f"{pointer}/value", max_len=150)
        + _check_text(
            option.get("description"), f"{pointer}/description", max_len=75, required=False
        )
    )


def _option_group_check(group: dict[str, Any], pointer: str) -> list[str]:
    return _check_text(
        group.get("label"), f"{pointer}/label", max_len=75, types=_PLAIN
    ) + _check_each(group.get("options"), f"{pointer}/options", _check_option, max_items=100)


def _check_button(element: dict[str, Any], pointer: str) -> list[str]:
    problems = (
        _check_text(element.get("text"), f"{pointer}/text", max_len=75, types=_PLAIN)
        + _check_string(
            element.get("action_id"), f"{pointer}/action_id", max_len=255, required=False
        )
        + _check_string(element.get("value"), f"{pointer}/value", max_len=2000, required=False)
        + _check_string(element.get("url"), f"{pointer}/url", max_len=3000, required=False)
    )
    if element.get("style") not in (None, "primary", "danger"):
        problems.append(_problem("must be a valid enum value", f"{pointer}/style"))
    return problems


def _check_static_select(element: dict[str, Any], pointer: str) -> list[str]:
    problems = _check_text(
        element.get("placeholder"),
        f"{pointer}/placeholder",
        max_len=150,
        types=_PLAIN,
        required=False,
    )
    if "option_groups" in element:
        return problems + _check_each(
            element["option_groups"], f"{pointer}/option_groups", _option_group_check, max_items=100
        )
    return problems + _check_each(
        element.get("options"), f"{pointer}/options", _check_option, max_items=100
    )


def _check_overflow(element: dict[str, Any], pointer: str) -> list[str]:
    return _check_each(element.get("options"), f"{pointer}/options", _check_option, max_items=5)


def _check_choice_list(element: dict[str, Any], pointer: str) -> list[str]:
    return _check_each(element.get("options"), f"{pointer}/options", _check_option, max_items=10)


def _check_image_element(element: dict[str, Any], pointer: str) -> list[str]:
    problems = _check_string(
        element.get("alt_text"), f"{pointer}/alt_text", max_len=2000, min_len=1
    )
    if "image_url" not in element and "slack_file" not in element:
        problems.append(_problem("must provide image_url or slack_file", pointer))
    return problems


def _no_check(element: dict[str, Any], pointer: str) -> list[str]:
    return []


_ELEMENT_CHECKS: dict[str, Check] = {
    "button": _check_button,
    "static_select": _check_static_select,
    "multi_static_select": _check_static_select,
    "overflow": _check_overflow,
    "checkboxes": _check_choice_list,
    "radio_buttons": _check_choice_list,
    "image": _check_image_element,
    **dict.fromkeys(
        (
            "users_select", "multi_users_select", "conversations_select",
            "multi_conversations_select", "channels_select", "multi_channels_select",
            "external_select", "multi_external_select", "datepicker", "timepicker",
            "datetimepicker", "plain_text_input", "email_text_input", "url_text_input",
            "number_input", "rich_text_input", "file_input", "workflow_button",
        ),
        _no_check,
    ),
}  # fmt: skip


def _check_element(element: dict[str, Any], pointer: str) -> list[str]:
    check = _ELEMENT_CHECKS.get(element.get("type", ""))
    if check is None:
        return [_problem(f"unsupported type: {element.get('type')}", f"{pointer}/type")]
    return check(element, pointer)


def _check_section(block: dict[str, Any], pointer: str) -> list[str]:
    if "text" not in block and "fields" not in block:
        return [_problem("must provide either text or fields", pointer)]
    problems = _check_text(block.get("text"), f"{pointer}/text", max_len=3000, required=False)
    fields = block.get("fields")
    if fields is not None:
        field_problems = _check_list(fields, f"{pointer}/fields", max_items=10, min_items=1)
        for i, item in enumerate([] if field_problems else fields):
            field_problems += _check_text(item, f"{pointer}/fields/{i}", max_len=2000)
        problems += field_problems
    if isinstance(block.get("accessory"), dict):
        problems += _check_element(block["accessory"], f"{pointer}/accessory")
    return problems


def _check_header(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_text(block.get("text"), f"{pointer}/text", max_len=150, types=_PLAIN)


def _check_context_element(element: dict[str, Any], pointer: str) -> list[str]:
    if element.get("type") == "image":
        return _check_image_element(element, pointer)
    if element.get("type") in _ANY_TEXT:
        return _check_text(element, pointer, max_len=3000)
    return [_problem(f"unsupported type: {element.get('type')}", f"{pointer}/type")]


def _check_context(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_each(
        block.get("elements"), f"{pointer}/elements", _check_context_element, max_items=10
    )


def _check_actions(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_each(block.get("elements"), f"{pointer}/elements", _check_element, max_items=25)


def _check_image_block(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_image_element(block, pointer) + _check_text(
        block.get("title"), f"{pointer}/title", max_len=2000, types=_PLAIN, required=False
    )


def _check_markdown(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_string(block.get("text"), f"{pointer}/text", max_len=12_000, min_len=1)


def _check_input(block: dict[str, Any], pointer: str) -> list[str]:
    problems = _check_text(block.get("label"), f"{pointer}/label", max_len=2000, types=_PLAIN)
    element = block.get("element")
    if not isinstance(element, dict):
        return [*problems, _problem("must provide an object", f"{pointer}/element")]
    return problems + _check_element(element, f"{pointer}/element")


_BLOCK_CHECKS: dict[str, Check] = {
    "section": _check_section,
    "header": _check_header,
    "context": _check_context,
    "actions": _check_actions,
    "image": _check_image_block,
    "markdown": _check_markdown,
    "input": _check_input,
    **dict.fromkeys(("divider", "rich_text", "file", "video", "table", "call"), _no_check),
}


def _check_block(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict):
        return [_problem("must provide an object", pointer)]
    check = _BLOCK_CHECKS.get(block.get("type", ""))
    if check is None:
        return [_problem(f"unsupported type: {block.get('type')}", f"{pointer}/type")]
    return check(block, pointer) + _check_string(
        block.get("block_id"), f"{pointer}/block_id", max_len=255, required=False
    )


def validate_blocks(blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Return Slack's ``invalid_blocks`` errors for ``blocks``; empty when Slack accepts them."""
    problems = _check_list(blocks, "/blocks", max_items=max_blocks)
    if problems:
        return problems
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        problems += _check_block(block, f"/blocks/{i}")
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if isinstance(block_id, str):
            if block_id in seen_ids:
                problems.append(_problem("duplicate block_id", f"/blocks/{i}/block_id"))
            seen_ids.add(block_id)
    return problems


def validate_view(view: Any) -> list[str]:
    """Return Slack's ``invalid_arguments`` errors for a modal or home tab view."""
    if not isinstance(view, dict):
        return [_problem("must provide an object", "/view")]
    problems = []
    if view.get("type") not in ("modal", "home"):
        problems.append(_problem("must be a valid enum value", "/view/type"))
    if view.get("type") == "modal":
        problems += _check_text(view.get("title"), "/view/title", max_len=24, types=_PLAIN)
        for key in ("submit", "close"):
            problems += _check_text(
                view.get(key), f"/view/{key}", max_len=24, types=_PLAIN, required=False
            )
    problems += _check_string(
        view.get("private_metadata"), "/view/private_metadata", max_len=3000, required=False
    )
    problems += _check_string(
        view.get("callback_id"), "/view/callback_id", max_len=255, required=False
    )
    return problems + validate_blocks(view.get("blocks"), max_blocks=MAX_VIEW_BLOCKS)


# --------------------------------------------------------------------------------------------
# Request parsing helpers.


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _int_param(params: Params, key: str, default: int) -> int:
    try:
        return int(params.get(key, default))
    except (TypeError, ValueError):
        raise SlackError("invalid_arguments", detail=f"{key} must be an integer") from None


def _json_param(params: Params, key: str, error: str) -> Any:
    """Decode a JSON-valued argument, which form-encoded requests send as a string."""
    value = params.get(key)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise SlackError(error) from None


def _ts_micros(ts: Any, error: str) -> int:
    try:
        return int(Decimal(str(ts)) * 1_000_000)
    except InvalidOperation:
        raise SlackError(error) from None


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: Any) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(str(cursor)).decode().removeprefix("offset:"))
    except ValueError:
        raise SlackError("invalid_cursor") from None


def derive_channel_id(name: str) -> str:
    """Map a channel name to a stable fake id, so every process agrees on it."""
    return "C" + hashlib.sha1(name.encode()).hexdigest()[:10].upper()


def _content(params: Params) -> Params:
    """Parse and validate a message's text, blocks, attachments and metadata like Slack does."""
    content: Params = {}
    if "text" in params and params["text"] is not None:
        content["text"] = str(params["text"])
        if len(content["text"]) > MAX_TEXT_CHARS:
            raise SlackError("msg_too_long")
    if params.get("blocks") is not None:
        blocks = _json_param(params, "blocks", "invalid_blocks_format")
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        problems = validate_blocks(blocks)
        if problems:
            raise SlackError("invalid_blocks", errors=problems)
        content["blocks"] = blocks
    if params.get("attachments") is not None:
        attachments = _json_param(params, "attachments", "invalid_attachments")
        if not isinstance(attachments, list):
            raise SlackError("invalid_attachments")
        content["attachments"] = attachments
    if params.get("metadata") is not None:
        content["metadata"] = _metadata(params)
    return content


def _metadata(params: Params) -> dict[str, Any] | None:
    metadata = _json_param(params, "metadata", "invalid_metadata_format")
    if metadata == {}:
        return None  # chat.update: an empty object removes the metadata
    if not (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    ):
        raise SlackError("invalid_metadata_format")
    return metadata


# --------------------------------------------------------------------------------------------
# Failure injection.


@dataclass
class _Rule:
    """An injected failure or delay, active until its count or deadline runs out."""

    kind: str  # "status" | "ratelimit" | "drop" | "hang"
    status: int = 200
    retry_after: int = 0
    seconds: float = 0.0
    remaining: int | None = None
    until: float | None = None
    methods: frozenset[str] | None = None

    def expired(self, now: float) -> bool:
        return self.remaining == 0 or (self.until is not None and now >= self.until)

    def applies_to(self, method: str) -> bool:
        return self.methods is None or method in self.methods


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
        return cls(status, json.dumps(payload).encode(), headers=headers or {})

    @classmethod
    def text(cls, text: str, status: int = 200) -> _Reply:
        return cls(status, text.encode(), content_type="text/plain; charset=utf-8")


@dataclass(frozen=True)
class _Request:
    verb: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


# --------------------------------------------------------------------------------------------
# The fake.


class FakeSlack:
    """A Slack Web API served over real HTTP from a background thread, recording what it is sent."""

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        channels: Iterable[str] | None = None,
        missing_channels: Iterable[str] = (),
        not_in_channels: Iterable[str] = (),
        latency_ms: float = 0.0,
        rate_limit_per_channel_per_sec: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        valid = [tokens] if isinstance(tokens, str) else list(tokens)
        self.tokens = frozenset(valid)
        self.token = valid[0] if valid else DEFAULT_TOKEN  # the one tests should hand to clients
        self.clock = clock
        self.wall_clock = wall_clock
        self._host, self._port = host, port
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        self._names: dict[str, str] = {}  # channel id -> name, for ids derived from names
        self._existing = None if channels is None else {self.channel_id(c) for c in channels}
        self._missing = {self.channel_id(c) for c in missing_channels}
        self._not_member = {self.channel_id(c) for c in not_in_channels}

        self._latency_s = latency_ms / 1000
        self._faults: list[_Rule] = []
        self._hangs: list[_Rule] = []
        self._per_channel_rate: float | None = rate_limit_per_channel_per_sec
        self._buckets: dict[str, _Bucket] = {}

        self._calls: list[Call] = []
        self._outcomes: list[Outcome] = []
        self._messages: list[dict[str, Any]] = []
        self._by_channel: dict[str, list[dict[str, Any]]] = {}
        self._by_key: dict[tuple[str, str], dict[str, Any]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._files: list[dict[str, Any]] = []
        self._response_urls: dict[str, tuple[str | None, str | None]] = {}
        self._responses: list[dict[str, Any]] = []
        self._last_ts = 0
        self._serial = 0
        self._version = 0  # bumped on every recorded change; wait_for watches it

        self._methods: dict[str, Callable[[Params], Params]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.info": self._conversations_info,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "users.info": self._users_info,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Start serving on an ephemeral port (or the one given) from a daemon thread."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self._host, self._port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-slack-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung responses are abandoned and open connections closed."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not running; use `with FakeSlack() as slack:`")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """The ``base_url`` for slack_sdk clients (our ``SLACK_API_URL``)."""
        return f"{self.url}api/"

    # -- channels ----------------------------------------------------------------------------

    def channel_id(self, channel: str) -> str:
        """Resolve "#name", "name" or an id to the channel id the fake uses for it."""
        raw = channel.strip().lstrip("#")
        if _ID_RE.match(raw):
            return raw
        name = raw.lower()
        channel_id = derive_channel_id(name)
        self._names.setdefault(channel_id, name)
        return channel_id

    def add_channel(self, channel: str) -> None:
        """Make a channel exist (and the bot a member), e.g. after it was missing."""
        with self._lock:
            channel_id = self.channel_id(channel)
            self._missing.discard(channel_id)
            self._not_member.discard(channel_id)
            if self._existing is not None:
                self._existing.add(channel_id)

    def remove_channel(self, channel: str) -> None:
        """Make calls to a channel fail with ``channel_not_found`` from now on."""
        with self._lock:
            self._missing.add(self.channel_id(channel))

    def set_member(self, channel: str, is_member: bool) -> None:
        """Choose whether posting to an existing channel fails with ``not_in_channel``."""
        with self._lock:
            channel_id = self.channel_id(channel)
            if is_member:
                self._not_member.discard(channel_id)
            else:
                self._not_member.add(channel_id)

    def _resolve(self, params: Params, key: str = "channel") -> str:
        raw = params.get(key)
        if not raw or not isinstance(raw, str):
            raise SlackError("channel_not_found")
        channel_id = self.channel_id(raw)
        exists = channel_id not in self._missing and (
            self._existing is None or channel_id in self._existing or channel_id[0] in "DU"
        )
        if not exists:
            raise SlackError("channel_not_found")
        return channel_id

    def _member_channel(self, params: Params, key: str = "channel") -> str:
        channel_id = self._resolve(params, key)
        if channel_id in self._not_member:
            raise SlackError("not_in_channel")
        return channel_id

    # -- failure injection -------------------------------------------------------------------

    def fail_with_status(
        self,
        status: int = 500,
        *,
        for_seconds: float | None = None,
        count: int | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer the next calls with an HTTP error (until ``heal()`` if neither limit is given)."""
        self._add_rule(self._faults, _Rule("status", status=status), for_seconds, count, methods)

    def rate_limit(
        self,
        retry_after: int = 2,
        *,
        for_seconds: float | None = None,
        count: int | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer the next calls with 429, ``Retry-After`` and ``{"error": "ratelimited"}``."""
        rule = _Rule("ratelimit", status=429, retry_after=retry_after)
        self._add_rule(self._faults, rule, for_seconds, count, methods)

    def drop_connections(
        self,
        *,
        for_seconds: float | None = None,
        count: int | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Close the next calls' connections without answering, as when Slack is unreachable."""
        self._add_rule(self._faults, _Rule("drop", status=0), for_seconds, count, methods)

    def hang(
        self,
        seconds: float,
        *,
        for_seconds: float | None = None,
        count: int | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Delay the next responses by ``seconds`` (shutdown abandons them rather than waiting)."""
        self._add_rule(self._hangs, _Rule("hang", seconds=seconds), for_seconds, count, methods)

    def latency(self, ms: float) -> None:
        """Delay every response by ``ms`` milliseconds (kept by ``heal()``: it is not a failure)."""
        with self._lock:
            self._latency_s = ms / 1000

    @property
    def rate_limit_per_channel_per_sec(self) -> float | None:
        return self._per_channel_rate

    @rate_limit_per_channel_per_sec.setter
    def rate_limit_per_channel_per_sec(self, per_sec: float | None) -> None:
        with self._lock:
            self._per_channel_rate = per_sec
            self._buckets.clear()

    def heal(self) -> None:
        """Clear injected errors, rate limits, dropped connections and hangs."""
        with self._lock:
            self._faults.clear()
            self._hangs.clear()

    def _add_rule(
        self,
        rules: list[_Rule],
        rule: _Rule,
        for_seconds: float | None,
        count: int | None,
        methods: Iterable[str] | None,
    ) -> None:
        with self._lock:
            rule.remaining = count
            rule.until = None if for_seconds is None else self.clock() + for_seconds
            rule.methods = None if methods is None else frozenset(methods)
            rules.append(rule)

    def _take_rule(self, rules: list[_Rule], method: str) -> _Rule | None:
        with self._lock:
            now = self.clock()
            rules[:] = [r for r in rules if not r.expired(now)]
            for rule in rules:
                if rule.applies_to(method):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
            return None

    def _take_channel_token(self, channel_id: str) -> None:
        """Enforce the per-channel limit with a token bucket, allowing Slack-like short bursts."""
        rate = self._per_channel_rate
        if not rate:
            return
        now = self.clock()
        bucket = self._buckets.setdefault(channel_id, _Bucket(tokens=max(1.0, rate), updated=now))
        bucket.tokens = min(max(1.0, rate), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise _RateLimited(retry_after=max(1, math.ceil((1 - bucket.tokens) / rate)))
        bucket.tokens -= 1

    # -- recorded state ----------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every API call received, in order, as ``(method, params)`` (a snapshot)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Params]:
        """The params of every call to ``method``, in order."""
        return [c.params for c in self.calls if c.method == method]

    @property
    def outcomes(self) -> list[Outcome]:
        """How each call was answered, in the order the answers were decided."""
        with self._lock:
            return list(self._outcomes)

    def messages(self, channel: str | None = None, *, thread_ts: str | None = None) -> list[Params]:
        """Posted messages (replies included), oldest first; optionally one channel or thread."""
        with self._lock:
            found = (
                self._messages
                if channel is None
                else self._by_channel.get(self.channel_id(channel), [])
            )
            if thread_ts is not None:
                found = [m for m in found if m["thread_ts"] == thread_ts]
            return copy.deepcopy(found)

    def message(self, channel: str, ts: str) -> Params:
        """The message posted at ``ts`` in ``channel``; KeyError if there is none."""
        with self._lock:
            return copy.deepcopy(self._by_key[(self.channel_id(channel), ts)])

    @property
    def ephemerals(self) -> list[Params]:
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    @property
    def views(self) -> list[Params]:
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    @property
    def files(self) -> list[Params]:
        """Files shared by ``files.completeUploadExternal``, with their uploaded bytes."""
        with self._lock:
            return copy.deepcopy(self._files)

    @property
    def responses(self) -> list[Params]:
        """Payloads posted to URLs from ``response_url()``."""
        with self._lock:
            return copy.deepcopy(self._responses)

    def add_message(
        self,
        channel: str,
        text: str = "",
        *,
        user: str = "U0SOMEONE",
        thread_ts: str | None = None,
        blocks: list[Params] | None = None,
        metadata: Params | None = None,
    ) -> Params:
        """Record a message someone else posted, e.g. to check the bot ignores it."""
        with self._changed:
            message = self._store(
                self.channel_id(channel),
                {"text": text, "blocks": blocks, "metadata": metadata},
                thread_ts=thread_ts,
                user=user,
                bot_id=None,
                params={},
            )
            self._bump()
            return copy.deepcopy(message)

    def response_url(self, channel: str | None = None, ts: str | None = None) -> str:
        """A ``response_url`` for a fake interaction; ``replace_original`` edits that message."""
        with self._lock:
            self._serial += 1
            key = str(self._serial)
            self._response_urls[key] = (None if channel is None else self.channel_id(channel), ts)
        return f"{self.url}{_RESPONSE_URL_PREFIX.strip('/')}/{key}"

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 10.0,
        description: str | None = None,
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked whenever the fake records something)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._version
            result = predicate()  # outside the lock, so a slow predicate never stalls the server
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self._lock:
                    raise AssertionError(self._timeout_message(predicate, timeout, description))
            with self._changed:
                if self._version == seen:
                    # Also wake now and then, in case the predicate reads state outside the fake.
                    self._changed.wait(min(remaining, 0.1))

    async def async_wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 10.0,
        description: str | None = None,
    ) -> T:
        """``wait_for`` for async tests: it must not block the loop the code under test runs on."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout, description)

    def wait_for_messages(
        self, count: int, channel: str | None = None, timeout: float = 10.0
    ) -> list[Params]:
        """Wait for at least ``count`` messages (in ``channel``) and return them all."""

        def enough() -> list[Params] | None:
            found = self.messages(channel)
            return found if len(found) >= count else None

        return self.wait_for(enough, timeout, f"{count} message(s) in {channel or 'any channel'}")

    def _bump(self) -> None:
        """Note a change and wake waiters; call with the lock held."""
        self._version += 1
        self._changed.notify_all()

    def _timeout_message(
        self, predicate: Callable[[], Any], timeout: float, description: str | None
    ) -> str:
        what = description or getattr(predicate, "__name__", repr(predicate))
        recent = [f"{o.method} -> {o.status} {o.error or 'ok'}" for o in self._outcomes[-10:]]
        return (
            f"FakeSlack: timed out after {timeout}s waiting for {what}; "
            f"{len(self._calls)} call(s), {len(self._messages)} message(s); "
            f"last outcomes: {recent or 'none'}"
        )

    # -- HTTP entry point (called from server threads) ----------------------------------------

    def _serve(self, request: _Request) -> _Reply | None:
        """Answer one HTTP request, or return None to drop the connection unanswered."""
        if request.path.startswith(_CONTROL_PREFIX):
            return self._control(request)
        name, params = self._route(request)
        if name is None:
            return _Reply.json({"ok": False, "error": "not_found"}, status=404)
        with self._changed:
            self._calls.append(Call(name, {k: v for k, v in params.items() if k != "token"}))
            self._bump()
        reply = self._answer(name, params, request)
        with self._changed:
            error = None
            if reply is None:
                error = "connection_dropped"
            elif reply.content_type.startswith("application/json"):
                error = json.loads(reply.body).get("error")
            self._outcomes.append(Outcome(name, 0 if reply is None else reply.status, error))
            self._bump()
        return reply

    def _route(self, request: _Request) -> tuple[str | None, Params]:
        path = request.path
        if path.startswith(_API_PREFIX):
            return path[len(_API_PREFIX) :], self._parse_params(request)
        if path.startswith(_UPLOAD_PREFIX):
            return "upload", {"file_id": path[len(_UPLOAD_PREFIX) :], "length": len(request.body)}
        if path.startswith(_RESPONSE_URL_PREFIX):
            return "response_url", {
                "key": path[len(_RESPONSE_URL_PREFIX) :],
                **self._parse_params(request),
            }
        return None, {}

    @staticmethod
    def _parse_params(request: _Request) -> Params:
        """Merge query string and body: slack_sdk sends JSON for messages and views, else a form."""
        params: Params = dict(parse_qsl(request.query, keep_blank_values=True))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not request.body:
            return params
        if content_type == "application/json":
            try:
                body = json.loads(request.body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return {**params, "__invalid_json__": True}
            return (
                {**params, **body}
                if isinstance(body, dict)
                else {**params, "__invalid_json__": True}
            )
        if content_type == "application/x-www-form-urlencoded":
            params.update(
                parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            )
        return params

    def _answer(self, name: str, params: Params, request: _Request) -> _Reply | None:
        hang = self._take_rule(self._hangs, name)
        delay = self._latency_s + (hang.seconds if hang else 0.0)
        if delay > 0 and self._stopping.wait(delay):
            return None  # shutting down: abandon the hung response
        fault = self._take_rule(self._faults, name)
        if fault is not None:
            return _fault_reply(fault)
        try:
            if name == "upload":
                return self._receive_upload(params["file_id"], request.body)
            if name == "response_url":
                return self._receive_response(params)
            return _Reply.json({"ok": True, **self._call_method(name, params, request.headers)})
        except SlackError as e:
            return _Reply.json({"ok": False, "error": e.error, **e.extra})
        except _RateLimited as e:
            return _rate_limited_reply(e.retry_after)
        except Exception:
            traceback.print_exc()
            return _Reply.json({"ok": False, "error": "fake_slack_bug"}, status=500)

    def _call_method(self, name: str, params: Params, headers: dict[str, str]) -> Params:
        handler = self._methods.get(name)
        if handler is None:
            raise SlackError("unknown_method", req_method=name)
        if params.get("__invalid_json__"):
            raise SlackError("invalid_json")
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else params.get("token")
        if not token:
            raise SlackError("not_authed")
        if token not in self.tokens:
            raise SlackError("invalid_auth")
        with self._changed:
            result = handler(params)
            self._bump()
            return result

    # -- storage -----------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """A unique, increasing ts from the wall clock, so ``oldest=<a time>`` filters work."""
        self._last_ts = max(int(self.wall_clock() * 1_000_000), self._last_ts + 1)
        return _format_ts(self._last_ts)

    def _thread_root(self, channel_id: str, thread_ts: Any) -> str | None:
        if not thread_ts:
            return None
        parent = self._by_key.get((channel_id, str(thread_ts)))
        # Replying to a reply lands in the parent's thread, as in Slack.
        return parent["thread_ts"] if parent and parent["thread_ts"] else str(thread_ts)

    def _store(
        self,
        channel_id: str,
        content: Params,
        *,
        thread_ts: Any,
        user: str,
        bot_id: str | None,
        params: Params,
    ) -> Params:
        root = self._thread_root(channel_id, thread_ts)
        message: Params = {
            "channel": channel_id,
            "ts": self._next_ts(),
            "text": content.get("text", ""),
            "blocks": content.get("blocks"),
            "attachments": content.get("attachments"),
            "metadata": content.get("metadata"),
            "thread_ts": root,
            "reply_broadcast": _flag(params.get("reply_broadcast", False)),
            "reply_count": 0,
            "user": user,
            "bot_id": bot_id,
            "updates": [],
            "params": {k: v for k, v in params.items() if k != "token"},
        }
        parent = self._by_key.get((channel_id, root)) if root else None
        if parent is not None:
            parent["reply_count"] += 1
            parent["latest_reply"] = message["ts"]
        self._messages.append(message)
        self._by_channel.setdefault(channel_id, []).append(message)
        self._by_key[(channel_id, message["ts"])] = message
        return message

    def _find(self, channel_id: str, ts: Any) -> Params:
        message = self._by_key.get((channel_id, str(ts)))
        if message is None:
            raise SlackError("message_not_found")
        return message

    def _render(self, message: Params, *, include_metadata: bool) -> Params:
        """Shape a stored message the way Slack's history and replies return it."""
        out: Params = {
            "type": "message",
            "ts": message["ts"],
            "user": message["user"],
            "text": message["text"],
        }
        if message["bot_id"]:
            out["bot_id"] = message["bot_id"]
        for key in ("blocks", "attachments"):
            if message[key]:
                out[key] = message[key]
        if message["thread_ts"]:
            out["thread_ts"] = message["thread_ts"]
        elif message["reply_count"]:
            out.update(
                thread_ts=message["ts"],
                reply_count=message["reply_count"],
                latest_reply=message["latest_reply"],
            )
        if include_metadata and message["metadata"]:
            out["metadata"] = message["metadata"]
        if message["updates"]:
            out["edited"] = {"user": message["user"], "ts": message["updates"][-1]["edited_ts"]}
        return out

    # -- Web API methods (run under the lock) ------------------------------------------------

    def _auth_test(self, params: Params) -> Params:
        return {
            "url": f"{PERMALINK_BASE}/",
            "team": "Fake Team",
            "user": "downvote",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: Params) -> Params:
        channel_id = self._member_channel(params)
        content = _content(params)
        if not (content.get("text") or content.get("blocks") or content.get("attachments")):
            raise SlackError("no_text")
        self._take_channel_token(channel_id)
        message = self._store(
            channel_id,
            content,
            thread_ts=params.get("thread_ts"),
            user=BOT_USER_ID,
            bot_id=BOT_ID,
            params=params,
        )
        return {
            "channel": channel_id,
            "ts": message["ts"],
            "message": self._render(message, include_metadata=True),
        }

    def _chat_update(self, params: Params) -> Params:
        channel_id = self._member_channel(params)
        message = self._find(channel_id, params.get("ts"))
        if message["bot_id"] != BOT_ID:
            raise SlackError("cant_update_message")
        content = _content(params)
        # Like Slack: blocks, attachments and metadata not given are kept.
        updated = {
            key: content.get(key, message[key])
            for key in ("text", "blocks", "attachments", "metadata")
        }
        if not (updated["text"] or updated["blocks"] or updated["attachments"]):
            raise SlackError("no_text")
        message.update(updated)
        message["updates"].append({**copy.deepcopy(updated), "edited_ts": self._next_ts()})
        return {
            "channel": channel_id,
            "ts": message["ts"],
            "text": message["text"],
            "message": self._render(message, include_metadata=True),
        }

    def _chat_post_ephemeral(self, params: Params) -> Params:
        channel_id = self._member_channel(params)
        if not params.get("user"):
            raise SlackError("user_not_found")
        content = _content(params)
        if not (content.get("text") or content.get("blocks") or content.get("attachments")):
            raise SlackError("no_text")
        message_ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel_id,
                "user": params["user"],
                "message_ts": message_ts,
                "thread_ts": params.get("thread_ts"),
                "text": content.get("text", ""),
                "blocks": content.get("blocks"),
            }
        )
        return {"message_ts": message_ts}

    def _chat_get_permalink(self, params: Params) -> Params:
        channel_id = self._resolve(params)
        message = self._find(channel_id, params.get("message_ts"))
        permalink = f"{PERMALINK_BASE}/archives/{channel_id}/p{message['ts'].replace('.', '')}"
        if message["thread_ts"]:
            permalink += f"?thread_ts={message['thread_ts']}&cid={channel_id}"
        return {"channel": channel_id, "permalink": permalink}

    def _page(self, messages: list[Params], params: Params, *, default_limit: int) -> Params:
        """Filter by oldest/latest (exclusive unless ``inclusive``), then paginate by cursor."""
        oldest = _ts_micros(params.get("oldest") or 0, "invalid_ts_oldest")
        latest = _ts_micros(params["latest"], "invalid_ts_latest") if params.get("latest") else None
        inclusive = _flag(params.get("inclusive", False))

        def in_range(message: Params) -> bool:
            ts = _ts_micros(message["ts"], "invalid_ts")
            after = ts >= oldest if inclusive else ts > oldest
            before = latest is None or (ts <= latest if inclusive else ts < latest)
            return after and before

        limit = max(1, min(_int_param(params, "limit", default_limit), 999))
        selected = [m for m in messages if in_range(m)]
        start = _decode_cursor(params.get("cursor"))
        page = selected[start : start + limit]
        has_more = start + limit < len(selected)
        include_metadata = _flag(params.get("include_all_metadata", False))
        return {
            "messages": [self._render(m, include_metadata=include_metadata) for m in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": _encode_cursor(start + limit) if has_more else ""},
        }

    def _conversations_history(self, params: Params) -> Params:
        channel_id = self._member_channel(params)
        # Like Slack, thread replies appear only in conversations.replies (unless broadcast).
        top_level = [
            m
            for m in self._by_channel.get(channel_id, [])
            if not m["thread_ts"] or m["reply_broadcast"]
        ]
        return {**self._page(top_level[::-1], params, default_limit=100), "pin_count": 0}

    def _conversations_replies(self, params: Params) -> Params:
        channel_id = self._member_channel(params)
        ts = str(params.get("ts", ""))
        parent = self._by_key.get((channel_id, ts))
        if parent is None:
            raise SlackError("thread_not_found")
        root = parent["thread_ts"] or parent["ts"]
        thread = [
            m for m in self._by_channel[channel_id] if m["ts"] == root or m["thread_ts"] == root
        ]
        return self._page(thread, params, default_limit=1000)

    def _conversations_info(self, params: Params) -> Params:
        channel_id = self._resolve(params)
        name = self._names.get(channel_id, channel_id.lower())
        return {
            "channel": {
                "id": channel_id,
                "name": name,
                "is_channel": True,
                "is_archived": False,
                "is_member": channel_id not in self._not_member,
            }
        }

    def _views_open(self, params: Params) -> Params:
        if not params.get("trigger_id"):
            raise SlackError("invalid_arguments", detail="trigger_id is required")
        view = self._valid_view(params)
        self._serial += 1
        view_id = f"V{self._serial:010d}"
        self._views[view_id] = {
            "id": view_id,
            "trigger_id": params["trigger_id"],
            "view": view,
            "hash": f"{self._serial}.hash",
            "updates": [],
        }
        return {"view": self._render_view(self._views[view_id])}

    def _views_update(self, params: Params) -> Params:
        view = self._valid_view(params)
        record = self._views.get(str(params.get("view_id")))
        if record is None and params.get("external_id"):
            matches = [
                v
                for v in self._views.values()
                if v["view"].get("external_id") == params["external_id"]
            ]
            record = matches[-1] if matches else None
        if record is None:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != record["hash"]:
            raise SlackError("hash_conflict")
        self._serial += 1
        record["view"], record["hash"] = view, f"{self._serial}.hash"
        record["updates"].append(copy.deepcopy(view))
        return {"view": self._render_view(record)}

    def _valid_view(self, params: Params) -> Params:
        view = _json_param(params, "view", "invalid_arguments")
        problems = validate_view(view)
        if problems:
            raise SlackError("invalid_arguments", response_metadata={"messages": problems})
        return cast(Params, view)

    @staticmethod
    def _render_view(record: Params) -> Params:
        return {
            **record["view"],
            "id": record["id"],
            "hash": record["hash"],
            "team_id": TEAM_ID,
            "state": {"values": {}},
        }

    def _files_get_upload_url(self, params: Params) -> Params:
        if not params.get("filename"):
            raise SlackError("invalid_arguments", detail="filename is required")
        length = _int_param(params, "length", -1)
        if length < 0:
            raise SlackError("invalid_arguments", detail="length is required")
        self._serial += 1
        file_id = f"F{self._serial:010d}"
        self._uploads[file_id] = {
            "id": file_id,
            "name": params["filename"],
            "length": length,
            "alt_txt": params.get("alt_txt"),
            "bytes": None,
        }
        return {
            "upload_url": f"{self.url}{_UPLOAD_PREFIX.strip('/')}/{file_id}",
            "file_id": file_id,
        }

    def _files_complete_upload(self, params: Params) -> Params:
        items = _json_param(params, "files", "invalid_arguments")
        if not isinstance(items, list) or not items:
            raise SlackError("invalid_arguments", detail="files must be a non-empty JSON array")
        raw_channels = [c for c in str(params.get("channels") or "").split(",") if c]
        if params.get("channel_id"):
            raw_channels.insert(0, params["channel_id"])
        channel_ids = [self._member_channel({"channel": c}) for c in raw_channels]
        shared = []
        for item in items:
            upload = self._uploads.get(str(item.get("id") if isinstance(item, dict) else item))
            if upload is None or upload["bytes"] is None:
                raise SlackError("file_not_found")
            shared.append(
                {
                    **upload,
                    "title": item.get("title") or upload["name"],
                    "channel": channel_ids[0] if channel_ids else None,
                    "channels": channel_ids,
                    "initial_comment": params.get("initial_comment"),
                    "thread_ts": params.get("thread_ts"),
                }
            )
        self._files.extend(shared)
        return {
            "files": [
                {
                    "id": f["id"],
                    "name": f["name"],
                    "title": f["title"],
                    "size": len(f["bytes"]),
                    "permalink": f"{PERMALINK_BASE}/files/{BOT_USER_ID}/{f['id']}/{f['name']}",
                }
                for f in shared
            ]
        }

    def _users_info(self, params: Params) -> Params:
        user = str(params.get("user", ""))
        if not _USER_RE.match(user):
            raise SlackError("user_not_found")
        name = f"user-{user.lower()}"
        return {
            "user": {
                "id": user,
                "team_id": TEAM_ID,
                "name": name,
                "real_name": name,
                "tz": "UTC",
                "is_bot": user == BOT_USER_ID,
                "profile": {"display_name": name, "real_name": name},
            }
        }

    # -- non-API endpoints -------------------------------------------------------------------

    def _receive_upload(self, file_id: str, data: bytes) -> _Reply:
        with self._changed:
            upload = self._uploads.get(file_id)
            if upload is None:
                return _Reply.text("file not found", status=404)
            upload["bytes"] = data
            self._bump()
        return _Reply.text(f"OK - {len(data)}")

    def _receive_response(self, params: Params) -> _Reply:
        with self._changed:
            key = params.pop("key")
            if key not in self._response_urls:
                return _Reply.text("no_such_response_url", status=404)
            channel_id, ts = self._response_urls[key]
            payload = {k: v for k, v in params.items() if k != "__invalid_json__"}
            if channel_id and ts and _flag(payload.get("replace_original", False)):
                try:
                    self._chat_update({**payload, "channel": channel_id, "ts": ts})
                except SlackError as e:
                    return _Reply.text(e.error, status=400)
            self._responses.append(
                {"url": key, "channel": channel_id, "ts": ts, "payload": payload}
            )
            self._bump()
        return _Reply.json({"ok": True})

    def _control(self, request: _Request) -> _Reply:
        """A small HTTP control API, so benchmarks can steer a fake running in another process."""
        action = request.path[len(_CONTROL_PREFIX) :]
        if action == "state":
            with self._lock:
                return _Reply.json(
                    {
                        "calls": len(self._calls),
                        "calls_by_method": Counter(c.method for c in self._calls),
                        "outcomes_by_status": Counter(str(o.status) for o in self._outcomes),
                        "messages": len(self._messages),
                        "messages_by_channel": {c: len(m) for c, m in self._by_channel.items()},
                        "files": len(self._files),
                    }
                )
        if action == "messages":
            channel = dict(parse_qsl(request.query)).get("channel")
            return _Reply.json(self.messages(channel))
        actions: dict[str, Callable[..., None]] = {
            "fail": self.fail_with_status,
            "rate_limit": self.rate_limit,
            "hang": self.hang,
            "drop_connections": self.drop_connections,
            "latency": self.latency,
            "heal": self.heal,
        }
        if action not in actions:
            return _Reply.json({"ok": False, "error": "unknown_control"}, status=404)
        try:
            actions[action](**json.loads(request.body or b"{}"))
        except (TypeError, ValueError) as e:
            return _Reply.json({"ok": False, "error": str(e)}, status=400)
        return _Reply.json({"ok": True})


def _fault_reply(rule: _Rule) -> _Reply | None:
    if rule.kind == "drop":
        return None
    if rule.kind == "ratelimit":
        return _rate_limited_reply(rule.retry_after)
    error = "fatal_error" if rule.status >= 500 else f"http_{rule.status}"
    return _Reply.json({"ok": False, "error": error}, status=rule.status)


def _rate_limited_reply(retry_after: int) -> _Reply:
    return _Reply.json(
        {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(retry_after)}
    )


# --------------------------------------------------------------------------------------------
# HTTP plumbing.


class _Server(ThreadingHTTPServer):
    """Threads are daemons and not joined on close, so a hung request never blocks shutdown."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: FakeSlack) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, sock: socket.socket, *, open_: bool) -> None:
        with self._open_lock:
            if open_:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_connections(self) -> None:
        """Close kept-alive connections too, so a stopped fake really stops answering."""
        with self._open_lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as slack_sdk's aiohttp session expects

    def setup(self) -> None:
        super().setup()
        cast(_Server, self.server).track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(_Server, self.server).track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the fake's record, not its access log, is what tests look at."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        url = urlsplit(self.path)
        request = _Request(
            verb=self.command,
            path=url.path,
            query=url.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = cast(_Server, self.server).fake._serve(request)
        if reply is None:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (e.g. its timeout during a hang)
            self.close_connection = True


# --------------------------------------------------------------------------------------------
# Standalone process, for benchmarks.


def _stdin_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, or until stdin closes when stdin is a pipe."""
    parser = argparse.ArgumentParser(prog="python -m tests.fake_slack", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit-per-channel-per-sec", type=float, default=None)
    parser.add_argument(
        "--token", action="append", help=f"valid token (repeatable; default {DEFAULT_TOKEN})"
    )
    args = parser.parse_args(argv)

    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    fake = FakeSlack(
        tokens=args.token or (DEFAULT_TOKEN,),
        latency_ms=args.latency_ms,
        rate_limit_per_channel_per_sec=args.rate_limit_per_channel_per_sec,
        host=args.host,
        port=args.port,
    )
    with fake:
        print(fake.api_url, flush=True)
        if _stdin_is_pipe():

            def wait_for_eof() -> None:
                sys.stdin.buffer.read()
                done.set()

            threading.Thread(target=wait_for_eof, daemon=True).start()
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
