"""`downvote slack check`, and what `serve` says at start: a setup checked against Slack."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from bot.service import build_service
from bot.settings import Settings
from tests.support.alerting import alert_statuses, make_worker, store_downvotes
from tests.support.cli import run_cli
from tests.support.databases import register_app
from tests.support.fake_slack import FakeSlack, derive_channel_id
from tests.support.polling import wait_until
from tests.support.processes import downvote_env


def slack_env(database_url: str, slack: FakeSlack, **extra: str) -> dict[str, str]:
    settings = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "SLACK_API_URL": slack.api_url,
        "SLACK_CHANNEL": "#alerts",
    }
    return downvote_env(database_url, **{**settings, **extra})


def test_the_readme_setup_passes_and_joins_the_public_channel(database_url: str) -> None:
    with FakeSlack() as slack:  # #alerts exists, public, and the bot was never invited
        result = run_cli(slack_env(database_url, slack), "slack", "check")
        assert result.returncode == 0, result.stderr
        assert f"#alerts ({derive_channel_id('alerts')})" in result.stdout
        assert "team Fake Team" in result.stdout
        assert slack.is_member("#alerts")  # joined, so crash recovery can read it


def test_a_private_channel_the_bot_is_not_in_is_named_with_its_fix(
    database_url: str, sessions: sessionmaker[Session]
) -> None:
    register_app(sessions, "private-app", channel="#secret")
    with FakeSlack() as slack:
        slack.add_channel("#secret", private=True)
        result = run_cli(slack_env(database_url, slack), "slack", "check")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("downvote: #secret: ") and "/invite @Downvote in #secret" in line
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_scopes_and_a_bad_token_are_each_one_line(database_url: str) -> None:
    with FakeSlack() as slack:
        slack.revoke("channels:join", "files:write")
        result = run_cli(slack_env(database_url, slack), "slack", "check")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert any(line.startswith("downvote: missing scope channels:join") for line in lines)
        assert any(line.startswith("downvote: missing scope files:write") for line in lines)
        assert any("#alerts" in line and "missing_scope" in line for line in lines)

        wrong = run_cli(
            slack_env(database_url, slack, SLACK_BOT_TOKEN="xoxb-wrong"), "slack", "check"
        )
        assert wrong.returncode == 1
        assert "SLACK_BOT_TOKEN does not work (invalid_auth)" in wrong.stderr

    preview = run_cli(downvote_env(database_url), "slack", "check")
    assert preview.returncode == 1 and "preview mode" in preview.stderr


async def test_alerts_to_a_private_channel_fail_saying_to_invite_the_bot(
    sessions: sessionmaker[Session], database_url: str
) -> None:
    app = register_app(sessions, "private-app", channel="#secret")
    store_downvotes(sessions, app, [{"prompt": "p", "response": "r"}], channel="#secret")
    with FakeSlack() as slack:
        slack.add_channel("#secret", private=True)
        worker = make_worker(sessions, slack)
        await worker.deliver_due()
        assert alert_statuses(sessions) == ["failed"]
        listed = run_cli(slack_env(database_url, slack), "alerts", "failed")
    [line] = listed.stdout.strip().splitlines()
    assert "private-app" in line and "/invite @Downvote in #secret" in line


def test_serve_logs_what_will_not_work_and_serves_anyway(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeSlack() as slack:
        slack.revoke("channels:join")
        connected = settings.model_copy(
            update={
                "slack_bot_token": SecretStr(slack.token),
                "slack_signing_secret": SecretStr("secret"),
                "slack_api_url": slack.api_url,
                "slack_channel": "#alerts",
            }
        )
        with caplog.at_level(logging.WARNING), TestClient(build_service(connected).app) as client:
            wait_until(
                lambda: "missing scope channels:join" in caplog.text, "the start-up check's warning"
            )
            assert client.get("/healthz").status_code == 200
