"""`downvote serve` end to end: the newcomer's path, crashes, and replicas."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage import triage
from storage.models import Alert, DownvoteGroup
from tests.support.alerting import alert_statuses
from tests.support.databases import RegisteredApp
from tests.support.fake_slack import DEFAULT_APP_TOKEN, FakeSlack
from tests.support.fake_slack.socket_mode import SocketModeServer
from tests.support.polling import wait_until
from tests.support.processes import ROOT, downvote_env, run_cli, serving
from tests.support.prompts import distinct_prompt
from tests.support.signing import signed
from tests.support.slack_payloads import block_action, categories_pick, slash_command

pytestmark = pytest.mark.slow  # real `downvote serve` processes: signals, crashes, replicas


def slack_env(database_url: str, slack: FakeSlack, **extra: str) -> dict[str, str]:
    return downvote_env(
        database_url,
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET="test-signing-secret",
        SLACK_API_URL=slack.api_url,
        SLACK_CHANNEL="#alerts",
        **extra,
    )


def parents(slack: FakeSlack) -> list[dict[str, object]]:
    return [m for m in slack.messages() if m["thread_ts"] is None]


def test_newcomer_path_in_preview_mode(database_url: str, tmp_path: Path) -> None:
    env = downvote_env(database_url)
    with serving(env, cwd=tmp_path) as server:
        assert "downvote apps add" in server.text() and "send-test" in server.text()
        sent = run_cli(env, "send-test", "--url", server.url, cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        assert "202" in sent.stdout
        # One access line per request, as uvicorn writes it.
        access_line = r'INFO: {5}127\.0\.0\.1:\d+ - "POST /v1/feedback HTTP/1\.1" 202 Accepted\n'
        assert re.search(access_line, server.text()), server.text()
        wait_until(lambda: "preview mode" in server.text(), "the alert printed in preview mode")
        assert "It invented a citation" in server.text()
        assert server.terminate() == 0
    exported = run_cli(env, "export", cwd=tmp_path)
    assert "Which paper introduced the transformer" in exported.stdout


def test_sigkill_between_accepting_and_posting_delivers_once(
    database_url: str, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    with FakeSlack() as slack:
        slack.hang(600, methods=["chat.postMessage"])  # Slack never answers the first post
        env = slack_env(database_url, slack, DOWNVOTE_ALERT_LEASE_SECONDS="1")
        with serving(env) as first:
            body, headers = signed(
                registered_app.secret, {"prompt": "p", "response": "r", "rating": "down"}
            )
            assert (
                httpx.post(f"{first.url}/v1/feedback", content=body, headers=headers).status_code
                == 202
            )
            slack.wait_for(lambda: slack.calls_to("chat.postMessage"), description="a post attempt")
            first.kill()
        slack.heal()
        with serving(env) as second:
            slack.wait_for(lambda: parents(slack), description="the alert after restart")
            wait_until(lambda: alert_statuses(sessions) == ["posted"], "the alert marked posted")
            assert second.terminate() == 0
        assert len(parents(slack)) == 1
        assert slack.is_member("#alerts")  # joined to read its history; never invited
    assert run_cli(env, "alerts", "failed").stdout.strip() == "no failed alerts"


def kind_of(message: dict[str, object]) -> str:
    return str((message.get("metadata") or {}).get("event_type", ""))  # type: ignore[attr-defined]


def test_killed_during_slack_deletions_a_restart_finishes_them(
    database_url: str, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    with FakeSlack() as slack:
        env = slack_env(database_url, slack, DOWNVOTE_ALERT_LEASE_SECONDS="1")
        with serving(env) as first:
            for n in range(2):
                body, headers = signed(
                    registered_app.secret,
                    {"id": f"f{n}", "user_id": "u_9", "prompt": distinct_prompt(n),
                     "response": "r", "rating": "down"},
                )  # fmt: skip
                posted = httpx.post(f"{first.url}/v1/feedback", content=body, headers=headers)
                assert posted.status_code == 202
            wait_until(lambda: alert_statuses(sessions) == ["posted"] * 2, "2 alerts posted")
            slack.hang(600, methods=["chat.delete"])  # Slack never answers the first deletion
            forgot = run_cli(env, "forget", "--user-id", "u_9", "--yes")
            assert forgot.returncode == 0, forgot.stderr
            slack.wait_for(lambda: slack.calls_to("chat.delete"), description="a deletion")
            first.kill()
        slack.heal()
        assert len(parents(slack)) == 2
        with serving(env) as second:
            slack.wait_for(
                lambda: not parents(slack), description="both messages deleted", timeout=30
            )
            assert second.terminate() == 0


def test_two_replicas_post_each_of_200_downvotes_once(
    database_url: str, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    with FakeSlack() as slack:
        env = slack_env(database_url, slack)
        with serving(env) as one, serving(env) as two:

            async def send_all() -> list[int]:
                async with httpx.AsyncClient(timeout=60) as http:
                    sends = []
                    for n in range(200):
                        body, headers = signed(
                            registered_app.secret,
                            {
                                "id": f"r{n}",
                                "prompt": distinct_prompt(n),
                                "response": "r",
                                "rating": "down",
                            },
                        )
                        url = (one if n % 2 else two).url
                        sends.append(http.post(f"{url}/v1/feedback", content=body, headers=headers))
                    return [r.status_code for r in await asyncio.gather(*sends)]

            assert asyncio.run(send_all()) == [202] * 200
            wait_until(
                lambda: alert_statuses(sessions).count("posted") == 200, "200 alerts posted", 120
            )
            assert one.terminate() == 0 and two.terminate() == 0
        alerts = [m for m in slack.messages() if kind_of(m) == "downvote_alert"]
        ids = [m["metadata"]["event_payload"]["event_id"] for m in alerts]  # type: ignore[index]
        assert len(ids) == 200 and len(set(ids)) == 200
        # A burst from nowhere is a spike: one message, however many replicas saw it.
        assert [kind_of(m) for m in parents(slack)].count("downvote_spike") == 1


def test_workers_share_one_port_and_post_each_downvote_once(
    database_url: str, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    with FakeSlack() as slack:
        env = slack_env(database_url, slack)
        with serving(env, ROOT, "--workers", "2", "--no-access-log") as server:
            wait_until(
                lambda: len(re.findall(r"Started server process \[(\d+)\]", server.text())) == 2,
                "two worker processes started",
            )

            async def send_all() -> list[int]:
                async with httpx.AsyncClient(timeout=60) as http:
                    sends = []
                    for n in range(60):
                        body, headers = signed(
                            registered_app.secret,
                            {"id": f"w{n}", "prompt": distinct_prompt(n), "response": "r",
                             "rating": "down" if n % 3 == 0 else "up"},
                        )  # fmt: skip
                        sends.append(
                            http.post(f"{server.url}/v1/feedback", content=body, headers=headers)
                        )
                    return [r.status_code for r in await asyncio.gather(*sends)]

            assert asyncio.run(send_all()) == [202] * 60
            wait_until(
                lambda: alert_statuses(sessions).count("posted") == 20, "20 alerts posted", 120
            )
            assert server.terminate() == 0
        assert '"POST /v1/feedback' not in server.text()  # --no-access-log
        alerts = [m for m in slack.messages() if kind_of(m) == "downvote_alert"]
        ids = [m["metadata"]["event_payload"]["event_id"] for m in alerts]  # type: ignore[index]
        assert len(ids) == 20 and len(set(ids)) == 20


def test_two_replicas_make_one_group_of_six_near_identical_downvotes(
    database_url: str, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    """Both processes place downvotes at once; one lock per app keeps them in one group."""
    prompts = [f"Where is my order #{n}? The tracking page says nothing at all." for n in range(6)]
    with FakeSlack() as slack:
        env = slack_env(database_url, slack)
        with serving(env) as one, serving(env) as two:

            async def send_all() -> list[int]:
                async with httpx.AsyncClient(timeout=60) as http:
                    sends = []
                    for n, prompt in enumerate(prompts):
                        body, headers = signed(
                            registered_app.secret,
                            {"id": f"o{n}", "prompt": prompt, "response": "r", "rating": "down"},
                        )
                        url = (one if n % 2 else two).url
                        sends.append(http.post(f"{url}/v1/feedback", content=body, headers=headers))
                    return [r.status_code for r in await asyncio.gather(*sends)]

            assert asyncio.run(send_all()) == [202] * 6
            wait_until(lambda: alert_statuses(sessions) == ["posted"] * 6, "6 alerts posted", 60)
            assert one.terminate() == 0 and two.terminate() == 0
        [parent] = parents(slack)
        thread = slack.messages(str(parent["channel"]), thread_ts=str(parent["ts"]))
        assert len(thread) == 5  # the other five, in its thread
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(DownvoteGroup)) == 1


def test_sigterm_while_slack_holds_a_post_hands_it_to_another_process_at_once(
    database_url: str, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    """The claim is given back on SIGTERM (checked against Slack first), not after its lease."""
    with FakeSlack() as slack:
        slack.hang(600, methods=["chat.postMessage"])  # Slack never answers this post
        env = slack_env(database_url, slack, DOWNVOTE_ALERT_LEASE_SECONDS="600")
        with serving(env) as first:
            body, headers = signed(
                registered_app.secret, {"prompt": "p", "response": "r", "rating": "down"}
            )
            response = httpx.post(f"{first.url}/v1/feedback", content=body, headers=headers)
            assert response.status_code == 202
            slack.wait_for(lambda: slack.calls_to("chat.postMessage"), description="a post attempt")
            assert first.terminate() == 0
        with sessions() as session:
            claimed_until = session.scalar(select(Alert.claimed_until))
        assert claimed_until is not None and claimed_until <= datetime.now(UTC)  # lease ended
        slack.heal()
        with serving(env) as second:  # 600 s before the lease would have let it in
            slack.wait_for(lambda: parents(slack), description="the alert, from the second")
            wait_until(lambda: alert_statuses(sessions) == ["posted"], "the alert marked posted")
            assert second.terminate() == 0
        assert len(parents(slack)) == 1
        assert slack.calls_to("conversations.history")  # it looked before posting again


def test_serve_with_an_app_token_answers_over_socket_mode(
    database_url: str, registered_app: RegisteredApp, sessions: sessionmaker[Session]
) -> None:
    """A real `serve` process connects over Socket Mode: a category picked and `/downvote` sent
    over the socket are acked within Slack's 3 s, and the category is stored."""
    with FakeSlack() as slack, SocketModeServer() as socket:
        socket.attach(slack)
        env = slack_env(database_url, slack, SLACK_APP_TOKEN=DEFAULT_APP_TOKEN)
        with serving(env) as server:
            socket.wait_for_connections(1)
            body, headers = signed(
                registered_app.secret, {"prompt": "Who wrote Hamlet?", "response": "Marlowe",
                                        "rating": "down"},
            )  # fmt: skip
            response = httpx.post(f"{server.url}/v1/feedback", content=body, headers=headers)
            assert response.status_code == 202
            [alert] = slack.wait_for(lambda: parents(slack), description="the alert")
            form = block_action(
                alert, categories_pick(alert, ["hallucination"]), user="U0ALICE",
                response_url=slack.response_url(str(alert["channel"]), str(alert["ts"])),
            )  # fmt: skip
            socket.wait_for_ack(socket.send("interactive", json.loads(form["payload"])))
            event_id = int(alert["metadata"]["event_payload"]["event_id"])  # type: ignore[index]
            with sessions() as session:
                assert triage.snapshot(session, event_id).categories == ("hallucination",)
            ack = socket.wait_for_ack(
                socket.send("slash_commands", slash_command("", user="U0ALICE"))
            )
            assert "*1* downvote today" in ack["payload"]["text"]
            assert server.terminate() == 0
        assert socket.unacked == [] and socket.late_acks == []
