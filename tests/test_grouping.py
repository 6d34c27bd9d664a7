"""One problem, one alert: near-duplicate downvotes grouped, regressions, suggestions.

Through the real service (ingest over HTTP, the delivery worker, slack-bolt for clicks) against
the fake Slack, on a clock the test moves: "at most one update every 10 s" is then exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.delivery import DeliveryPolicy
from bot.service import build_service
from bot.settings import Settings
from storage import triage
from tests.support.alerting import alert_statuses
from tests.support.cli import run_cli
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp, audit_trail
from tests.support.fake_slack import FakeSlack
from tests.support.polling import wait_until
from tests.support.processes import downvote_env
from tests.support.prompts import distinct_prompt
from tests.support.signing import signed
from tests.support.slack_payloads import (
    SIGNING_SECRET,
    block_action,
    button_click,
    categories_pick,
    signed_form,
)

# Six prompts a person reads as one: only case, spacing, punctuation and the order number vary.
SIX = [
    "Where is my order #10234? It should have arrived on Monday and tracking is empty.",
    "where is my order 10877?  it should have arrived on monday, and tracking is empty",
    "WHERE IS MY ORDER #55120? IT SHOULD HAVE ARRIVED ON MONDAY AND TRACKING IS EMPTY!",
    "Where is my order #7731 -- it should have arrived on Monday and tracking is empty",
    "Where is   my order #99001?It should have arrived on Monday; and tracking is empty.",
    "where is my order (#12) ? it should have arrived on monday and tracking is empty ...",
]
OTHER = "Summarise the attached contract in three bullet points for a non-lawyer, please."
ALERT = "downvote_alert"
REFUND_COMPLAINT = (
    "the assistant quoted a refund policy that we retired last spring instead of the "
    "current one published on the help centre page for premium customers"
)


@dataclass
class Team:
    """A team's app, channel and Slack, with the service running on the test's clock."""

    slack: FakeSlack
    client: TestClient
    sessions: sessionmaker[Session]
    app: RegisteredApp
    clock: FakeClock
    env: dict[str, str]
    sent: int = 0

    def send(self, prompt: str, comment: str | None = None) -> None:
        self.sent += 1
        payload = {"id": f"ev-{self.sent}", "prompt": prompt, "response": "I can't find that.",
                   "rating": "down", "comment": comment}  # fmt: skip
        body, headers = signed(self.app.secret, payload)
        assert self.client.post("/v1/feedback", content=body, headers=headers).status_code == 202

    def all_posted(self) -> None:
        wait_until(
            lambda: alert_statuses(self.sessions) == ["posted"] * self.sent,
            f"{self.sent} alerts posted",
        )

    def alerts(self) -> list[dict[str, Any]]:
        """The top-level alert messages, oldest first."""
        return [m for m in self.slack.messages() if m["thread_ts"] is None and kind(m) == ALERT]

    def thread(self, parent: dict[str, Any]) -> list[dict[str, Any]]:
        replies = self.slack.messages(parent["channel"], thread_ts=parent["ts"])
        return [m for m in replies if m["ts"] != parent["ts"]]

    def current(self, message: dict[str, Any]) -> dict[str, Any]:
        return self.slack.message(message["channel"], message["ts"])

    def wait_for_text(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        def showing() -> dict[str, Any] | None:
            now = self.current(message)
            return now if text in json.dumps(now["blocks"], ensure_ascii=False) else None

        return self.slack.wait_for(showing, description=f"the message to show {text!r}")

    def click(self, message: dict[str, Any], action: dict[str, Any], user: str) -> None:
        form = block_action(message, action, user=user, response_url=self.slack.response_url())
        body, headers = signed_form(form)
        assert self.client.post("/slack/events", content=body, headers=headers).status_code == 200

    def export(self) -> list[dict[str, Any]]:
        ran = run_cli(self.env, "export", "--rating", "any")
        assert ran.returncode == 0, ran.stderr
        return [json.loads(line) for line in ran.stdout.splitlines()]

    def event_id(self, message: dict[str, Any]) -> int:
        return int(message["metadata"]["event_payload"]["event_id"])


def kind(message: dict[str, Any]) -> str:
    return str((message.get("metadata") or {}).get("event_type", ""))


@pytest.fixture
def team(
    settings: Settings, database_url: str, sessions: sessionmaker[Session],
    registered_app: RegisteredApp,
) -> Iterator[Team]:  # fmt: skip
    clock = FakeClock()
    with FakeSlack(clock=clock) as slack:
        configured = settings.model_copy(
            update={
                "slack_bot_token": SecretStr(slack.token),
                "slack_signing_secret": SecretStr(SIGNING_SECRET),
                "slack_api_url": slack.api_url,
                "slack_channel": "#alerts",
            }
        )
        # The README's setup; the worker looks for due work often, so a moved clock shows soon.
        policy = DeliveryPolicy(idle_poll_seconds=0.05)
        service = build_service(configured, clock=clock, policy=policy)
        env = downvote_env(database_url)
        with TestClient(service.app) as client:
            yield Team(slack, client, sessions, registered_app, clock, env)


def six_in_one_group(team: Team) -> dict[str, Any]:
    for number, prompt in enumerate(SIX, start=1):
        team.send(prompt, comment=f"complaint number {number}")
    team.all_posted()
    [parent] = team.alerts()
    return parent


def test_six_near_identical_downvotes_make_one_message_seen_six_times(team: Team) -> None:
    parent = six_in_one_group(team)
    assert "complaint number 1" in json.dumps(parent["blocks"])
    comments = [json.dumps(reply["blocks"]) for reply in team.thread(parent)]
    for number in range(2, 7):
        assert sum(f"complaint number {number}" in text for text in comments) == 1
    # Slack sees at most one update per group every 10 s; the clock moves, the parent catches up.
    team.clock.advance(10)
    team.wait_for_text(parent, "Seen 6 times")
    team.send(OTHER, comment="a different problem")
    team.all_posted()
    assert len(team.alerts()) == 2
    assert "a different problem" in json.dumps(team.alerts()[1]["blocks"])


def test_updates_of_a_growing_group_are_at_most_one_every_ten_seconds(team: Team) -> None:
    parent = six_in_one_group(team)
    team.wait_for_text(parent, "Seen ")  # shown as soon as the group grows
    [first_update] = team.slack.calls_to("chat.update")
    team.send(SIX[0].replace("10234", "777"))
    team.send(SIX[1].replace("10877", "778"))
    team.all_posted()
    team.clock.advance(9)  # not yet 10 s since the last update
    for prompt in (OTHER, distinct_prompt(1)):  # two more passes of the worker, one after the other
        team.send(prompt)
        team.all_posted()
    assert team.slack.calls_to("chat.update") == [first_update]
    team.clock.advance(1)
    team.wait_for_text(parent, "Seen 8 times")
    assert len(team.slack.calls_to("chat.update")) == 2


def test_a_category_picked_on_the_group_is_on_every_member_now_and_later(team: Team) -> None:
    parent = six_in_one_group(team)
    team.click(parent, categories_pick(parent, ["hallucination"]), user="U0ALICE")
    team.wait_for_text(parent, "*Categories:* hallucination")
    team.send(SIX[2].replace("55120", "4242"), comment="a later one")  # joins after triage
    team.all_posted()
    team.clock.advance(10)
    grown = team.wait_for_text(parent, "Seen 7 times")  # the update keeps the triage shown
    assert "*Categories:* hallucination" in json.dumps(grown["blocks"], ensure_ascii=False)
    records = team.export()
    assert len(records) == 7
    assert {r["group_id"] for r in records} == {records[0]["group_id"]}
    assert records[0]["group_id"] is not None
    assert [r["group_size"] for r in records] == [7] * 7
    assert [r["categories"] for r in records] == [["hallucination"]] * 7
    assert {r["status"] for r in records} == {"acknowledged"}


def test_a_problem_back_after_resolved_gets_a_new_alert_offering_the_old_categories(
    team: Team,
) -> None:
    parent = six_in_one_group(team)
    team.click(parent, categories_pick(parent, ["hallucination"]), user="U0ALICE")
    parent = team.wait_for_text(parent, "*Categories:* hallucination")
    team.click(parent, button_click(parent, "triage_resolve"), user="U0BOB")
    team.wait_for_text(parent, "Reopen")
    team.clock.advance(3600)
    team.send(SIX[3].replace("7731", "8080"), comment="it is back")
    team.all_posted()
    first, back = team.alerts()
    assert first["ts"] == parent["ts"]
    text = json.dumps(back["blocks"], ensure_ascii=False)
    assert "it is back" in text
    assert "like a group resolved" in text and "<@U0BOB>" in text
    assert f"/archives/{parent['channel']}/p{parent['ts'].replace('.', '')}" in text
    apply = button_click(back, "triage_apply_categories")
    assert apply["text"]["text"] == "Apply hallucination"
    event_id = team.event_id(back)
    with team.sessions() as session:
        assert triage.snapshot(session, event_id).categories == ()  # never applied unasked
    team.click(back, apply, user="U0CAROL")
    team.wait_for_text(back, "*Categories:* hallucination")
    with team.sessions() as session:
        assert triage.snapshot(session, event_id).categories == ("hallucination",)
        applied = [a for a in audit_trail(session, event_id) if a.action == "suggestion_applied"]
    assert [(a.slack_user, a.new_value) for a in applied] == [("U0CAROL", "hallucination")]
    assert "triage_apply_categories" not in json.dumps(team.current(back)["blocks"])


def test_a_new_problem_like_triaged_ones_is_offered_their_category(team: Team) -> None:
    words = REFUND_COMPLAINT.split()
    team.send(" ".join(words))
    team.all_posted()
    [first] = team.alerts()
    team.click(first, categories_pick(first, ["refusal"]), user="U0ALICE")
    team.wait_for_text(first, "*Categories:* refusal")
    # Two words changed: alike (Jaccard of word pairs about 0.65), not the same problem (0.8).
    similar = [*words]
    similar[4], similar[14] = "policies", "latest"
    team.send(" ".join(similar))
    team.all_posted()
    first, second = team.alerts()
    text = json.dumps(second["blocks"], ensure_ascii=False)
    assert "*Suggested:* refusal (1 similar downvote)" in text
    with team.sessions() as session:
        assert triage.snapshot(session, team.event_id(second)).categories == ()


def test_groups_command_and_digest_count_groups(team: Team) -> None:
    parent = six_in_one_group(team)
    team.click(parent, categories_pick(parent, ["hallucination"]), user="U0ALICE")
    team.wait_for_text(parent, "*Categories:* hallucination")
    team.send(OTHER)
    team.all_posted()
    listed = run_cli(team.env, "groups", "--app", team.app.name)
    assert listed.returncode == 0, listed.stderr
    header, biggest, other = listed.stdout.splitlines()
    assert header.split("\t")[:3] == ["group", "app", "size"]
    assert biggest.split("\t")[2] == "6" and "hallucination" in biggest
    assert "where is my order" in biggest.lower()
    assert other.split("\t")[2] == "1" and "Summarise" in other
    since_tomorrow = (team.clock.now() + timedelta(days=1)).date().isoformat()
    assert run_cli(team.env, "groups", "--since", since_tomorrow).stdout == "no groups\n"
    unknown = run_cli(team.env, "groups", "--app", "nope")
    assert unknown.returncode == 1 and "no app named 'nope'" in unknown.stderr

    day = team.clock.now().date().isoformat()
    digest = run_cli(team.env, "digest", "daily", "--date", day, "--dry-run")
    assert digest.returncode == 0, digest.stderr
    assert "7 downvotes in 2 groups" in digest.stdout
    assert "Top groups:" in digest.stdout and "• 6 downvotes · " in digest.stdout
