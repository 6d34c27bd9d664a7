"""The `downvote` command line as a user runs it: its real entry point, one-line errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Alert
from tests.support.alerting import make_worker, store_downvotes
from tests.support.cli import run_cli
from tests.support.databases import RegisteredApp
from tests.support.fake_slack import FakeSlack
from tests.support.processes import ROOT, downvote_env

EVENTS = [
    {"prompt": [{"role": "user", "content": "Hi 👋, mail me at a@b.co"}], "response": "Hello",
     "comment": "rude", "correction": "Hello! How can I help?", "feature": "chat"},
    {"prompt": "Résumé, \"quoted\",\nnew line", "response": "r2", "metadata": {"plan": "pro"}},
]  # fmt: skip


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return downvote_env(database_url)


def test_apps_add_list_rotate(env: dict[str, str]) -> None:
    added = run_cli(env, "apps", "add", "support-bot", "--channel", "#support")
    assert added.returncode == 0, added.stderr
    assert "whsec_" in added.stdout and "dv_" in added.stdout
    listed = run_cli(env, "apps", "list")
    assert "support-bot\t#support" in listed.stdout
    assert "whsec_" not in listed.stdout  # secrets are shown once
    rotated = run_cli(env, "apps", "rotate", "support-bot")
    assert "whsec_" in rotated.stdout and "24 h" in rotated.stdout
    again = run_cli(env, "apps", "add", "support-bot")
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "exists already" in again.stderr
    assert "Traceback" not in again.stderr
    unknown = run_cli(env, "apps", "rotate", "nope")
    assert unknown.returncode == 1 and "no app named 'nope'" in unknown.stderr


def test_export_jsonl_and_csv_keep_every_character(
    env: dict[str, str],
    sessions: sessionmaker[Session],
    registered_app: RegisteredApp,
    tmp_path: Path,
) -> None:
    store_downvotes(sessions, registered_app, EVENTS)
    jsonl = run_cli(env, "export", "--rating", "down")
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == [e["prompt"] for e in EVENTS]
    assert rows[0]["input"] == EVENTS[0]["prompt"]
    assert rows[0]["expected"] == "Hello! How can I help?" and rows[0]["output"] == "Hello"
    assert rows[1]["metadata"] == {"plan": "pro"}
    assert "exported 2 events" in jsonl.stderr
    out = tmp_path / "events.csv"
    assert run_cli(env, "export", "--format", "csv", "-o", str(out)).returncode == 0
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert table[1]["prompt"] == EVENTS[1]["prompt"]
    assert json.loads(table[0]["prompt"]) == EVENTS[0]["prompt"]
    assert run_cli(env, "export", "--rating", "up").stdout == ""
    bad = run_cli(env, "export", "--since", "yesterday")
    assert bad.returncode == 1 and "--since must be a date" in bad.stderr


def test_failed_alerts_are_listed_and_retried(
    env: dict[str, str], sessions: sessionmaker[Session], registered_app: RegisteredApp
) -> None:
    """Each failed alert is one line (id, app, event, channel, attempts, reason); retrying one
    queues only it, with a fresh attempt budget."""
    store_downvotes(sessions, registered_app, EVENTS)
    with sessions.begin() as session:
        session.execute(
            update(Alert).where(Alert.id == 1).values(status="failed", attempts=1,
                                                      last_error="channel_not_found")
        )  # fmt: skip
        session.execute(
            update(Alert).where(Alert.id == 2).values(
                status="failed", attempts=12, channel="#support",
                last_error="gave up after 12 attempts: ratelimited",
            )
        )  # fmt: skip
    first = "1\tsupport-bot\tevent e0\tchannel (default)\t{}"
    second = (
        "2\tsupport-bot\tevent e1\tchannel #support\t12 attempts\t"
        "gave up after 12 attempts: ratelimited"
    )
    listed = run_cli(env, "alerts", "failed")
    assert listed.stdout.splitlines() == [first.format("1 attempts\tchannel_not_found"), second]
    assert run_cli(env, "alerts", "retry").returncode == 1
    retried = run_cli(env, "alerts", "retry", "1")
    assert retried.returncode == 0 and "queued 1" in retried.stdout
    assert run_cli(env, "alerts", "failed").stdout.splitlines() == [second]
    with FakeSlack() as slack:  # the channel was archived meanwhile: it fails again, at once
        slack.fail_with_error("is_archived", methods=["chat.postMessage"])
        asyncio.run(make_worker(sessions, slack).deliver_due())
    again = run_cli(env, "alerts", "failed").stdout.splitlines()
    assert again[0].startswith(first.format("1 attempts\tis_archived")) and again[1:] == [second]
    retried = run_cli(env, "alerts", "retry", "--all")
    assert retried.returncode == 0 and "queued 2" in retried.stdout
    assert run_cli(env, "alerts", "failed").stdout.strip() == "no failed alerts"
    missing = run_cli(env, "alerts", "retry", "99")
    assert missing.returncode == 1 and "no failed alert with id 99" in missing.stderr


def test_bad_settings_are_one_line(env: dict[str, str]) -> None:
    result = run_cli({**env, "DOWNVOTE_TIMEZONE": "Mars/Olympus"}, "apps", "list")
    assert result.returncode == 1
    assert "DOWNVOTE_TIMEZONE" in result.stderr and "Traceback" not in result.stderr
    unreachable = run_cli({**env, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"},
                          "apps", "list")  # fmt: skip
    assert unreachable.returncode == 1 and "cannot use the database" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_db_upgrade(env: dict[str, str]) -> None:
    result = run_cli(env, "db", "upgrade")
    assert result.returncode == 0 and "up to date" in result.stdout


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[schedule]\ndaily = "09:00"\nsurprise = 1\n', "surprise"),
        ('[[criteria]]\nname = "Fast"\nkind = "percentile"\nfield = "latency_ms"\n'
         'percentile = 95\ntarget = "quick"\n', "target"),
        ('[schedule]\ntimezone = "Mars/Olympus"\n', "timezone"),
    ],
    ids=["unknown-field", "bad-target", "bad-timezone"],
)  # fmt: skip
def test_serve_refuses_a_bad_config_in_one_line(
    env: dict[str, str], tmp_path: Path, toml: str, named: str
) -> None:
    (tmp_path / "downvote.toml").write_text(toml)
    result = run_cli(env, "serve", "--port", "1", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "downvote.toml" in line and named in line


def test_help_loads_no_heavy_library() -> None:
    """`downvote --help` stays quick: the command line imports each command's modules lazily."""
    probe = (
        "import sys; from bot.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'sqlalchemy', 'fastapi', 'slack_sdk', 'slack_bolt', 'matplotlib', 'pydantic'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "send-test" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
