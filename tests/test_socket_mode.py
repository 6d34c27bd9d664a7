"""Socket Mode end to end: the real service connects slack-bolt's socket client to a fake Slack.

Slack sends interactions and slash commands as envelopes over the WebSocket and needs each acked
within 3 seconds; the Web API calls the handlers make still go to the HTTP fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from bot.service import build_service
from bot.settings import Settings
from storage import triage
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp
from tests.support.fake_slack import DEFAULT_APP_TOKEN, FakeSlack
from tests.support.fake_slack.socket_mode import SocketModeServer
from tests.support.polling import wait_until
from tests.support.signing import signed
from tests.support.slack_payloads import (
    SIGNING_SECRET,
    block_action,
    categories_pick,
    slash_command,
)


@dataclass
class SocketModeApp:
    slack: FakeSlack
    socket: SocketModeServer
    client: TestClient
    sessions: sessionmaker[Session]
    app: RegisteredApp

    def downvote(self) -> dict[str, Any]:
        """Send a downvote over HTTP and return its alert once the worker has posted it."""
        before = len(self.slack.messages())
        payload = {"prompt": "Who wrote Hamlet?", "response": "Marlowe", "rating": "down"}
        body, headers = signed(self.app.secret, payload)
        assert self.client.post("/v1/feedback", content=body, headers=headers).status_code == 202
        self.slack.wait_for(lambda: len(self.slack.messages()) > before, description="the alert")
        return self.slack.messages()[-1]

    def pick_categories(self, message: dict[str, Any], categories: list[str], user: str) -> str:
        """A block_actions envelope: the payload Slack would POST as ``payload=<json>``, parsed."""
        form = block_action(
            message,
            categories_pick(message, categories),
            user=user,
            response_url=self.slack.response_url(message["channel"], message["ts"]),
        )
        return self.socket.send("interactive", json.loads(form["payload"]))

    def command(self, text: str = "", user: str = "U0ALICE") -> dict[str, Any]:
        """Run ``/downvote <text>`` over the socket and return the ack's payload."""
        ack = self.socket.wait_for_ack(
            self.socket.send("slash_commands", slash_command(text, user=user))
        )
        assert "payload" in ack, f"the ack carries no response: {ack}"
        return dict(ack["payload"])

    def event_id(self, message: dict[str, Any]) -> int:
        return int(message["metadata"]["event_payload"]["event_id"])

    def assert_acked_in_time(self) -> None:
        """Every envelope acked, none after Slack's 3 s (the user would see an error)."""
        assert self.socket.unacked == []
        assert self.socket.late_acks == []


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(clock=FakeClock()) as fake:
        yield fake


@pytest.fixture
def socket_mode(slack: FakeSlack) -> Iterator[SocketModeServer]:
    with SocketModeServer() as server:
        yield server.attach(slack)


@pytest.fixture
def socket_settings(settings: Settings, slack: FakeSlack) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr(slack.token),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_app_token": SecretStr(DEFAULT_APP_TOKEN),
            "slack_api_url": slack.api_url,
            "slack_channel": "#alerts",
        }
    )


@pytest.fixture
def connected(
    socket_settings: Settings, slack: FakeSlack, socket_mode: SocketModeServer,
    sessions: sessionmaker[Session], registered_app: RegisteredApp,
) -> Iterator[SocketModeApp]:  # fmt: skip
    """The service running (its lifespan opens the socket), connected once; its clock is the
    fake Slack's, stopped mid-morning, so "today" never straddles a midnight."""
    service = build_service(socket_settings, console=lambda _text: None, clock=slack.clock)
    with TestClient(service.app) as client:
        socket_mode.wait_for_connections(1)
        yield SocketModeApp(slack, socket_mode, client, sessions, registered_app)


def test_lifespan_connects_with_the_app_token(connected: SocketModeApp) -> None:
    assert connected.socket.connections == 1
    assert connected.socket.live_connections == 1
    assert len(connected.slack.calls_to("apps.connections.open")) == 1


def test_category_pick_is_acked_stored_and_shown(connected: SocketModeApp) -> None:
    message = connected.downvote()
    envelope_id = connected.pick_categories(message, ["hallucination"], user="U0ALICE")

    ack = connected.socket.wait_for_ack(envelope_id)
    assert ack["envelope_id"] == envelope_id
    # Written before the ack, so an acknowledged click survives a restart.
    with connected.sessions() as session:
        snapshot = triage.snapshot(session, connected.event_id(message))
    assert snapshot.categories == ("hallucination",)

    def showing() -> dict[str, Any] | None:
        now = connected.slack.message(message["channel"], message["ts"])
        return now if "*Categories:* hallucination" in json.dumps(now["blocks"]) else None

    updated = connected.slack.wait_for(showing, description="the alert to show the category")
    assert "<@U0ALICE>" in json.dumps(updated["blocks"])
    assert message["ts"] in [c["ts"] for c in connected.slack.calls_to("chat.update")]
    connected.assert_acked_in_time()


def test_slash_command_answers_in_the_ack(connected: SocketModeApp) -> None:
    connected.downvote()
    reply = connected.command()
    assert "*1* downvote today" in reply["text"]
    assert "*1* waiting for triage" in reply["text"]
    assert "Usage" in connected.command("nonsense")["text"]
    connected.assert_acked_in_time()


def test_reconnects_when_slack_asks_and_keeps_answering(connected: SocketModeApp) -> None:
    connected.downvote()
    assert "*1* waiting for triage" in connected.command()["text"]

    connected.socket.disconnect("refresh_requested")
    connected.socket.wait_for_connections(2)
    assert len(connected.slack.calls_to("apps.connections.open")) == 2
    # The client closes the old connection itself before opening the new one.
    wait_until(lambda: connected.socket.live_connections == 1, "the old connection to close")

    assert "*1* waiting for triage" in connected.command()["text"]
    connected.assert_acked_in_time()


async def test_the_fake_says_hello_times_acks_and_checks_tickets() -> None:
    """The fake itself, driven by a bare WebSocket client: its rules, without the app."""
    clock = FakeClock()
    with SocketModeServer(clock=clock) as server:
        async with aiohttp.ClientSession() as http:
            forged = server.url.replace("ticket=", "ticket=forged")
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(forged)
            async with http.ws_connect(server.url) as ws:
                hello = await ws.receive_json(timeout=5)
                assert hello["type"] == "hello"
                assert hello["connection_info"] == {"app_id": "A0FAKEAPP"}

                on_time = await asyncio.to_thread(server.send, "slash_commands", {"text": ""})
                late = await asyncio.to_thread(server.send, "interactive", {"type": "x"})
                envelopes = [await ws.receive_json(timeout=5) for _ in range(2)]
                assert [e["envelope_id"] for e in envelopes] == [on_time, late]
                assert all(e["accepts_response_payload"] for e in envelopes)
                await ws.send_json({"envelope_id": on_time, "payload": {"text": "hi"}})
                ack = await asyncio.to_thread(server.wait_for_ack, on_time)
                assert ack == {"envelope_id": on_time, "payload": {"text": "hi"}}
                assert server.unacked == [late]
                clock.advance(3.5)
                await ws.send_json({"envelope_id": late})
                await asyncio.to_thread(server.wait_for_ack, late)
                assert [a.envelope_id for a in server.late_acks] == [late]

                await asyncio.to_thread(server.disconnect)
                assert (await ws.receive_json(timeout=5))["reason"] == "refresh_requested"
        assert server.connections == 1
