"""A real HTTP fake of the Slack Web API.

Tests point the real slack_sdk client at it (``base_url=slack.api_url``), so request encoding,
error handling and the retry handlers all run as in production; only Slack itself is fake.
Run it standalone for benchmarks: ``python -m tests.support.fake_slack --port 8765``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import math
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import parse_qsl

from storage.clock import SYSTEM_CLOCK, Clock
from tests.support.fake_slack.blocks import (
    MAX_BLOCKS_TEXT_CHARS,
    blocks_text_chars,
    validate_blocks,
    validate_view,
)
from tests.support.fake_slack.server import Reply, Request, Server
from tests.support.fake_slack.workspace import (
    DEFAULT_PUBLIC_CHANNELS,
    ID_RE,
    SlackError,
    Workspace,
    channel_name,
    derive_channel_id,
)

DEFAULT_TOKEN = "xoxb-test-token"
DEFAULT_APP_TOKEN = "xapp-1-A0FAKEAPP-1-test"
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
BOT_USER_ID = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
TEAM_ID = "T0FAKETEAM"
PERMALINK_BASE = "https://fake.slack"
MAX_TEXT_CHARS = 40_000

Params = dict[str, Any]
T = TypeVar("T")

_API_PREFIX = "/api/"
_UPLOAD_PREFIX = "/upload/v1/"
_RESPONSE_URL_PREFIX = "/actions/"
_CONTROL_PREFIX = "/_fake/"
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


class _RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"ratelimited, retry after {retry_after}s")
        self.retry_after = retry_after


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
        # Slack also refuses a message whose blocks carry too much text in all: "12,000 text
        # characters with a buffer for block containers" (Slack staff); observed from about
        # 11,300 characters. Counted here over every string in the blocks.
        if blocks_text_chars(blocks) > MAX_BLOCKS_TEXT_CHARS:
            raise SlackError("msg_blocks_too_long")
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

    kind: str  # "status" | "error" | "ratelimit" | "drop" | "hang"
    status: int = 200
    error: str = ""
    retry_after: int = 0
    seconds: float = 0.0
    remaining: int | None = None
    until: float | None = None
    methods: frozenset[str] | None = None
    after: int = 0  # matching calls still to let through before the rule applies

    def expired(self, now: float) -> bool:
        return self.remaining == 0 or (self.until is not None and now >= self.until)

    def applies_to(self, method: str) -> bool:
        return self.methods is None or method in self.methods


@dataclass
class _Bucket:
    tokens: float
    updated: float


# --------------------------------------------------------------------------------------------
# The fake.


class FakeSlack:
    """A Slack Web API served over real HTTP from a background thread, recording what it is sent."""

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        channels: Iterable[str] = DEFAULT_PUBLIC_CHANNELS,
        private_channels: Iterable[str] = (),
        member_of: Iterable[str] = (),
        scopes: Iterable[str] | None = None,
        app_tokens: Iterable[str] = (DEFAULT_APP_TOKEN,),
        latency_ms: float = 0.0,
        rate_limit_per_channel_per_sec: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        valid = [tokens] if isinstance(tokens, str) else list(tokens)
        self.tokens = frozenset(valid)
        self.token = valid[0] if valid else DEFAULT_TOKEN  # the one tests should hand to clients
        self.clock = clock  # the service's clock in a test that sets one: rules, limits, ts
        self._host, self._port = host, port
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

        self.app_tokens = frozenset(app_tokens)
        self.socket_mode: Any = None  # a SocketModeServer, for apps.connections.open
        self.workspace = Workspace(
            public=channels, private=private_channels, member_of=member_of, scopes=scopes
        )

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
        self.deleted: list[Params] = []  # chat.delete calls that removed a message
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
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "conversations.list": self._conversations_list,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "users.info": self._users_info,
            "apps.connections.open": self._apps_connections_open,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Start serving on an ephemeral port (or the one given) from a daemon thread."""
        if self._server is None:
            self._stopping.clear()
            self._server = Server((self._host, self._port), self)
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
        """The id of a channel of the workspace, given "#name", "name" or its id."""
        if ID_RE.match(channel.strip()):
            return channel.strip()
        return derive_channel_id(channel_name(channel))

    def add_channel(self, channel: str, *, private: bool = False, member: bool = False) -> None:
        """Create a channel (again); by default public, and the bot not in it."""
        with self._lock:
            self.workspace.add(channel, private=private, member=member)

    def remove_channel(self, channel: str) -> None:
        """Delete a channel: calls naming it fail with ``channel_not_found`` from now on."""
        with self._lock:
            self.workspace.by_name(channel).exists = False

    def set_member(self, channel: str, is_member: bool) -> None:
        """Invite the bot to a channel (or remove it), as a member of the channel would."""
        with self._lock:
            self.workspace.by_name(channel).member = is_member

    def is_member(self, channel: str) -> bool:
        with self._lock:
            return self.workspace.by_name(channel).member

    def grant(self, *scopes: str) -> None:
        """Reinstall the app with more scopes."""
        with self._lock:
            self.workspace.scopes = self.workspace.scopes | set(scopes)

    def revoke(self, *scopes: str) -> None:
        with self._lock:
            self.workspace.scopes = self.workspace.scopes - set(scopes)

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

    def fail_with_error(
        self,
        error: str,
        *,
        count: int | None = None,
        methods: Iterable[str] | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next calls with a Slack error (HTTP 200, ``{"ok": false, "error": …}``),
        for errors the fake cannot otherwise be led to (`is_archived`, `account_inactive`…);
        `after` lets that many matching calls succeed first (a failure midway through a thread)."""
        rule = _Rule("error", error=error, after=after)
        self._add_rule(self._faults, rule, None, count, methods)

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
            rule.until = None if for_seconds is None else self.clock.monotonic() + for_seconds
            rule.methods = None if methods is None else frozenset(methods)
            rules.append(rule)

    def _take_rule(self, rules: list[_Rule], method: str) -> _Rule | None:
        with self._lock:
            now = self.clock.monotonic()
            rules[:] = [r for r in rules if not r.expired(now)]
            for rule in rules:
                if rule.applies_to(method):
                    if rule.after:
                        rule.after -= 1
                        continue
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
            return None

    def _take_channel_token(self, channel_id: str) -> None:
        """Enforce the per-channel limit with a token bucket, allowing Slack-like short bursts."""
        rate = self._per_channel_rate
        if not rate:
            return
        now = self.clock.monotonic()
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
        """Record a message posted outside the test's calls: by someone else (to check the bot
        ignores it), or by the bot itself (`user=BOT_USER_ID`: e.g. before a crash)."""
        with self._changed:
            message = self._store(
                self.channel_id(channel),
                {"text": text, "blocks": blocks, "metadata": metadata},
                thread_ts=thread_ts,
                user=user,
                bot_id=BOT_ID if user == BOT_USER_ID else None,
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

    def _serve(self, request: Request) -> Reply | None:
        """Answer one HTTP request, or return None to drop the connection unanswered."""
        if request.path.startswith(_CONTROL_PREFIX):
            return self._control(request)
        name, params = self._route(request)
        if name is None:
            return Reply.json({"ok": False, "error": "not_found"}, status=404)
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

    def _route(self, request: Request) -> tuple[str | None, Params]:
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
    def _parse_params(request: Request) -> Params:
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

    def _answer(self, name: str, params: Params, request: Request) -> Reply | None:
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
            answer = self._call_method(name, params, request.headers)
            return Reply.json({"ok": True, **answer}, headers=self._scope_headers())
        except SlackError as e:
            return Reply.json(
                {"ok": False, "error": e.error, **e.extra}, headers=self._scope_headers()
            )
        except _RateLimited as e:
            return _rate_limited_reply(e.retry_after)
        except Exception:
            traceback.print_exc()
            return Reply.json({"ok": False, "error": "fake_slack_bug"}, status=500)

    def _scope_headers(self) -> dict[str, str]:
        """ "X-OAuth-Scopes lists the scopes your token has authorized", on every answer."""
        return {"x-oauth-scopes": ", ".join(sorted(self.workspace.scopes))}

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
        if token not in self.tokens | self.app_tokens:
            raise SlackError("invalid_auth")
        # An app-level token (xapp-) opens Socket Mode connections and does nothing else; a
        # bot token cannot open them: "not_allowed_token_type".
        if (token in self.app_tokens) != (name in APP_TOKEN_METHODS):
            raise SlackError("not_allowed_token_type")
        with self._changed:
            result = handler(params)
            self._bump()
            return result

    # -- storage -----------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """A unique, increasing ts from the wall clock, so ``oldest=<a time>`` filters work."""
        self._last_ts = max(int(self.clock.now().timestamp() * 1_000_000), self._last_ts + 1)
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
        channel = self.workspace.find(params.get("channel"), names=True)
        self.workspace.post_allowed(channel)
        channel_id = channel.id
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
        # "Channel containing the message to be updated": an id (Slack staff: "chat.update
        # doesn't accept a channel name for channel argument while chat.postMessage does").
        channel = self.workspace.find(params.get("channel"), names=False)
        self.workspace.post_allowed(channel)
        channel_id = channel.id
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

    def _chat_delete(self, params: Params) -> Params:
        # "channel: Channel containing the message to be deleted": an id, as for chat.update
        # (slack-ruby-client#270: a name gives channel_not_found, "Same happens for chat_delete").
        channel = self.workspace.find(params.get("channel"), names=False)
        self.workspace.require("chat:write")
        message = self._find(channel.id, params.get("ts"))  # "message_not_found"
        if message["bot_id"] != BOT_ID:
            # "cant_delete_message: Authenticated user does not have permission to delete this
            # message" (a bot token deletes only its own messages)
            raise SlackError("cant_delete_message")
        # A deleted parent's replies stay in the thread under "This message was deleted."; here
        # the message is gone and its replies stay, which is what our tests look at.
        self._messages.remove(message)
        self._by_channel[channel.id].remove(message)
        del self._by_key[(channel.id, message["ts"])]
        self.deleted.append({"channel": channel.id, "ts": message["ts"]})
        return {"channel": channel.id, "ts": message["ts"]}

    def _chat_post_ephemeral(self, params: Params) -> Params:
        channel = self.workspace.find(params.get("channel"), names=True)
        self.workspace.post_allowed(channel)
        channel_id = channel.id
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
        channel_id = self.workspace.find(params.get("channel"), names=False).id
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

    def _readable(self, params: Params) -> str:
        """A channel id whose history the bot may read: id, scope and membership checked."""
        channel = self.workspace.find(params.get("channel"), names=False)
        self.workspace.require_read(channel, "channels:history", "groups:history")
        self.workspace.require_member(channel)
        return channel.id

    def _conversations_history(self, params: Params) -> Params:
        channel_id = self._readable(params)
        # Like Slack, thread replies appear only in conversations.replies (unless broadcast).
        top_level = [
            m
            for m in self._by_channel.get(channel_id, [])
            if not m["thread_ts"] or m["reply_broadcast"]
        ]
        return {**self._page(top_level[::-1], params, default_limit=100), "pin_count": 0}

    def _conversations_replies(self, params: Params) -> Params:
        channel_id = self._readable(params)
        ts = str(params.get("ts", ""))
        parent = self._by_key.get((channel_id, ts))
        if parent is None:
            raise SlackError("thread_not_found")
        root = parent["thread_ts"] or parent["ts"]
        thread = [
            m for m in self._by_channel[channel_id] if m["ts"] == root or m["thread_ts"] == root
        ]
        # "limit: The maximum number of items to return. Fewer than the requested number of
        # items may be returned": Slack pages long threads, so a reader must follow the cursor.
        return self._page(thread, params, default_limit=1000)

    def _conversations_info(self, params: Params) -> Params:
        channel = self.workspace.find(params.get("channel"), names=False)
        self.workspace.require_read(channel, "channels:read", "groups:read")
        return {"channel": channel.info()}

    def _conversations_join(self, params: Params) -> Params:
        """ "channels:join: Join public channels in a workspace"; private channels are joined only
        by invitation ("method_not_supported_for_channel_type")."""
        channel = self.workspace.find(params.get("channel"), names=False)
        self.workspace.require("channels:join")
        if channel.private:
            raise SlackError("method_not_supported_for_channel_type")
        if channel.archived:
            raise SlackError("is_archived")
        already = channel.member
        channel.member = True
        answer: Params = {"channel": channel.info()}
        if already:
            answer["warning"] = "already_in_channel"
        return answer

    def _conversations_list(self, params: Params) -> Params:
        """Public channels need channels:read; private ones groups:read, and only those the bot
        is in are listed ("private channels your app has been added to")."""
        types = {t.strip() for t in str(params.get("types") or "public_channel").split(",")}
        if "public_channel" in types:
            self.workspace.require("channels:read")
        if "private_channel" in types:
            self.workspace.require("groups:read")
        exclude_archived = _flag(params.get("exclude_archived", False))
        listed = [
            channel.info()
            for channel in self.workspace.channels.values()
            if channel.exists
            and ("private_channel" if channel.private else "public_channel") in types
            and (channel.member or not channel.private)
            and not (exclude_archived and channel.archived)
        ]
        limit = max(1, min(_int_param(params, "limit", 100), 1000))
        start = _decode_cursor(params.get("cursor"))
        more = start + limit < len(listed)
        return {
            "channels": listed[start : start + limit],
            "response_metadata": {"next_cursor": _encode_cursor(start + limit) if more else ""},
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
        self.workspace.require("files:write")
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
        self.workspace.require("files:write")
        items = _json_param(params, "files", "invalid_arguments")
        if not isinstance(items, list) or not items:
            raise SlackError("invalid_arguments", detail="files must be a non-empty JSON array")
        raw_channels = [c for c in str(params.get("channels") or "").split(",") if c]
        if params.get("channel_id"):
            raw_channels.insert(0, params["channel_id"])
        channel_ids = [self._shareable(c) for c in raw_channels]
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

    def _shareable(self, raw: str) -> str:
        """files.completeUploadExternal shares only into a channel id the bot is a member of."""
        channel = self.workspace.find(raw, names=False)
        self.workspace.require_member(channel)
        return channel.id

    def _apps_connections_open(self, params: Params) -> Params:
        """ "This API method uses an app-level token to generate a dynamic WebSocket URL"."""
        if self.socket_mode is None:
            raise SlackError("invalid_auth")  # this fake app has no Socket Mode
        return {"url": self.socket_mode.url}

    def _users_info(self, params: Params) -> Params:
        self.workspace.require("users:read")
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

    def _receive_upload(self, file_id: str, data: bytes) -> Reply:
        with self._changed:
            upload = self._uploads.get(file_id)
            if upload is None:
                return Reply.text("file not found", status=404)
            upload["bytes"] = data
            self._bump()
        return Reply.text(f"OK - {len(data)}")

    def _receive_response(self, params: Params) -> Reply:
        with self._changed:
            key = params.pop("key")
            if key not in self._response_urls:
                return Reply.text("no_such_response_url", status=404)
            channel_id, ts = self._response_urls[key]
            payload = {k: v for k, v in params.items() if k != "__invalid_json__"}
            if channel_id and ts and _flag(payload.get("replace_original", False)):
                try:
                    self._chat_update({**payload, "channel": channel_id, "ts": ts})
                except SlackError as e:
                    return Reply.text(e.error, status=400)
            self._responses.append(
                {"url": key, "channel": channel_id, "ts": ts, "payload": payload}
            )
            self._bump()
        return Reply.json({"ok": True})

    def _control(self, request: Request) -> Reply:
        """A small HTTP control API, so benchmarks can steer a fake running in another process."""
        action = request.path[len(_CONTROL_PREFIX) :]
        if action == "state":
            with self._lock:
                return Reply.json(
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
            return Reply.json(self.messages(channel))
        actions: dict[str, Callable[..., None]] = {
            "fail": self.fail_with_status,
            "rate_limit": self.rate_limit,
            "hang": self.hang,
            "drop_connections": self.drop_connections,
            "latency": self.latency,
            "heal": self.heal,
        }
        if action not in actions:
            return Reply.json({"ok": False, "error": "unknown_control"}, status=404)
        try:
            actions[action](**json.loads(request.body or b"{}"))
        except (TypeError, ValueError) as e:
            return Reply.json({"ok": False, "error": str(e)}, status=400)
        return Reply.json({"ok": True})


def _fault_reply(rule: _Rule) -> Reply | None:
    if rule.kind == "drop":
        return None
    if rule.kind == "ratelimit":
        return _rate_limited_reply(rule.retry_after)
    if rule.kind == "error":
        return Reply.json({"ok": False, "error": rule.error})
    error = "fatal_error" if rule.status >= 500 else f"http_{rule.status}"
    return Reply.json({"ok": False, "error": error}, status=rule.status)


def _rate_limited_reply(retry_after: int) -> Reply:
    return Reply.json(
        {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(retry_after)}
    )
