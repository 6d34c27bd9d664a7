"""A fake Slack Socket Mode server: a real WebSocket the real slack_sdk client connects to.

It runs aiohttp on its own event loop in a daemon thread, so tests drive it from their own thread
while the app under test runs on another loop. ``attach`` it to a ``FakeSlack`` so that
``apps.connections.open`` hands out its URL. Rules quote
https://docs.slack.dev/apis/events-api/using-socket-mode unless noted.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from storage.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from tests.support.fake_slack.fake import FakeSlack

T = TypeVar("T")

# "must be sent within 3 seconds of receiving the payload. If your app doesn't do that, the Slack
# user who interacted with the app will see an error message" (handling-user-interaction).
ACK_DEADLINE_SECONDS = 3.0
DEFAULT_APP_ID = "A0FAKEAPP"  # the app id inside DEFAULT_APP_TOKEN
_CONTROL_TIMEOUT = 5.0


class Ack(NamedTuple):
    """An acknowledgement the app sent: the message as received and how long it took."""

    envelope_id: str
    message: dict[str, Any]
    seconds: float


class SocketModeServer:
    """Slack's side of Socket Mode: says hello, sends envelopes, times the app's acks."""

    def __init__(
        self,
        *,
        app_id: str = DEFAULT_APP_ID,
        host: str = "127.0.0.1",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.app_id = app_id
        self.clock = clock  # times acks; a FakeClock makes a late ack without waiting
        self._host = host
        self._port = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tickets: set[str] = set()
        self._live: list[web.WebSocketResponse] = []  # open connections, oldest first
        self._connections = 0
        self._sent_at: dict[str, float] = {}  # envelope_id -> clock() when it was sent
        self._acks: dict[str, Ack] = {}
        self._received: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SocketModeServer:
        """Listen on an ephemeral port, serving from a daemon thread with its own event loop."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="fake-slack-socket-mode", daemon=True
        )
        self._thread.start()
        if not ready.wait(_CONTROL_TIMEOUT) or self._startup_error is not None:
            raise RuntimeError("the Socket Mode server did not start") from self._startup_error
        return self

    def stop(self) -> None:
        """Close every connection (as Slack going away would), stop the loop, join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._on_loop(self._close_all(WSCloseCode.GOING_AWAY))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_CONTROL_TIMEOUT)
            self._loop = self._thread = None

    def __enter__(self) -> SocketModeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def attach(self, fake: FakeSlack) -> SocketModeServer:
        """Make ``fake`` answer ``apps.connections.open`` with this server's URL."""
        fake.socket_mode = self
        return self

    @property
    def url(self) -> str:
        """A fresh connection URL, as each apps.connections.open call returns.

        "This API method uses an app-level token to generate a dynamic WebSocket URL"; Slack's
        looks like ``wss://…/link/?ticket=12348&app_id=5678``. Only issued tickets connect.
        """
        if self._thread is None:
            raise RuntimeError("SocketModeServer is not running; use `with SocketModeServer():`")
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://{self._host}:{self._port}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- what the test does ------------------------------------------------------------------

    def send(self, type: str, payload: dict[str, Any]) -> str:
        """Send an envelope on the newest live connection and return its ``envelope_id``.

        "each payload may be sent to any of the connections"; the envelope is
        ``{"payload", "envelope_id", "type", "accepts_response_payload"}``, and Slack's examples
        accept a response payload for slash commands and interactions, not for events_api.
        """
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": type != "events_api",
        }
        self._on_loop(self._send_newest(envelope, envelope_id))
        return envelope_id

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect: ``{"type": "disconnect", "reason": …}``.

        Slack sends reason "link_disabled", "warning" or "refresh_requested"; the connection
        itself stays open, as the client is the one expected to move to a new URL.
        """
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
        self._on_loop(self._send_newest(message, None))

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The app's ack for ``envelope_id``: ``{"envelope_id": …, "payload": …optional}``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self._acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no ack for envelope {envelope_id} after {timeout}s; "
                        f"{len(self._live)} live connection(s), received {self._received[-5:]}"
                    )
                self._changed.wait(remaining)
            return self._acks[envelope_id].message

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> None:
        """Wait until clients have connected ``count`` times in all (reconnections included)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._connections < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self._connections} Socket Mode connection(s) after {timeout}s, "
                        f"expected {count}"
                    )
                self._changed.wait(remaining)

    @property
    def connections(self) -> int:
        """How many times a client has connected."""
        with self._lock:
            return self._connections

    @property
    def live_connections(self) -> int:
        with self._lock:
            return len(self._live)

    @property
    def acks(self) -> list[Ack]:
        with self._lock:
            return list(self._acks.values())

    @property
    def late_acks(self) -> list[Ack]:
        """Acks that came after Slack's 3 s: the user would have seen an error."""
        return [ack for ack in self.acks if ack.seconds > ACK_DEADLINE_SECONDS]

    @property
    def unacked(self) -> list[str]:
        """Envelopes sent and never acked (so far): also an error for the user after 3 s."""
        with self._lock:
            return [e for e in self._sent_at if e not in self._acks]

    @property
    def received(self) -> list[dict[str, Any]]:
        """Every JSON message the app sent, acks included, in arrival order."""
        with self._lock:
            return list(self._received)

    # -- the server loop ---------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, 0))
            self._port = int(sock.getsockname()[1])
            app = web.Application()
            app.router.add_get("/link", self._connection)
            app.router.add_get("/link/", self._connection)
            runner = web.AppRunner(app, handle_signals=False)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock).start())
        except BaseException as e:
            self._startup_error = e
            ready.set()
            loop.close()
            return
        self._runner, self._loop = runner, loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop from the calling (test) thread."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("SocketModeServer is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CONTROL_TIMEOUT)

    async def _connection(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            known = request.query.get("ticket") in self._tickets
        if not known:
            return web.Response(status=401, text="invalid ticket")
        # autoping answers the client's pings with pongs echoing their payload, which slack_sdk
        # needs: without them it marks the session stale and reconnects.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._changed:
            self._connections += 1
            self._live.append(ws)
            live = len(self._live)
            self._changed.notify_all()
        # "After you connect to the WebSocket, Slack will send a hello message".
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": live,
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 3600,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive(message.data)
        finally:
            with self._changed:
                if ws in self._live:
                    self._live.remove(ws)
                self._changed.notify_all()
        return ws

    def _receive(self, text: str) -> None:
        """Record a message from the app; one with an ``envelope_id`` acks that envelope.

        "Use the envelope_id field … to send a response back to Slack acknowledging that you've
        received the event: {"envelope_id": …, "payload": … // optional}".
        """
        arrived = self.clock.monotonic()
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        message: dict[str, Any] = parsed if isinstance(parsed, dict) else {"__invalid__": text}
        envelope_id = str(message.get("envelope_id"))
        with self._changed:
            self._received.append(message)
            sent = self._sent_at.get(envelope_id)
            if sent is not None and envelope_id not in self._acks:
                self._acks[envelope_id] = Ack(envelope_id, message, arrived - sent)
            self._changed.notify_all()

    async def _send_newest(self, message: dict[str, Any], envelope_id: str | None) -> None:
        with self._lock:
            ws = self._live[-1] if self._live else None
        if ws is None or ws.closed:
            raise RuntimeError("no live Socket Mode connection to send to")
        if envelope_id is not None:
            with self._lock:
                self._sent_at[envelope_id] = self.clock.monotonic()
        await ws.send_str(json.dumps(message))

    async def _close_all(self, code: int) -> None:
        with self._lock:
            live = list(self._live)
        await asyncio.gather(*(ws.close(code=code) for ws in live), return_exceptions=True)
