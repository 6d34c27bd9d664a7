"""Triage through signed Slack payloads against the real app and the fake Slack."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from bot.config import DownvoteConfig
from bot.service import build_service
from bot.settings import Settings
from storage import triage
from storage.periods import local_midnight
from storage.records import EventFilter, event_record_dict, iter_events
from tests.support.clock import FakeClock
from tests.support.databases import RegisteredApp, audit_trail
from tests.support.fake_slack import FakeSlack
from tests.support.polling import wait_until
from tests.support.prompts import distinct_prompt
from tests.support.server import LiveServer
from tests.support.signing import signed
from tests.support.slack_payloads import (
    SIGNING_SECRET,
    block_action,
    block_suggestion,
    button_click,
    categories_pick,
    external_pick,
    find_element,
    signed_form,
    slash_command,
    view_submission,
)


@dataclass
class Triaging:
    slack: FakeSlack
    client: TestClient
    sessions: sessionmaker[Session]
    app: RegisteredApp
    sent: int = 0

    def downvote(self, **event: Any) -> dict[str, Any]:
        """Send a downvote and return its message once the worker has posted it."""
        before = len(self.parents())
        self.sent += 1  # each its own problem: no grouping
        payload = {"prompt": distinct_prompt(self.sent), "response": "Marlowe", "rating": "down",
                   **event}  # fmt: skip
        body, headers = signed(self.app.secret, payload)
        assert self.client.post("/v1/feedback", content=body, headers=headers).status_code == 202
        self.slack.wait_for(lambda: len(self.parents()) > before, description="the alert")
        return self.parents()[-1]

    def parents(self) -> list[dict[str, Any]]:
        return [m for m in self.slack.messages() if m["thread_ts"] is None]

    def current(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message as Slack shows it now (after chat.update)."""
        now = self.slack.message(message["channel"], message["ts"])
        assert now is not None
        return now

    def click(
        self, message: dict[str, Any], action: dict[str, Any], user: str = "U0ALICE"
    ) -> httpx.Response:
        form = block_action(message, action, user=user, response_url=self.slack.response_url())
        body, headers = signed_form(form)
        return self.client.post("/slack/events", content=body, headers=headers)

    def wait_for_text(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        def showing() -> dict[str, Any] | None:
            now = self.current(message)
            return now if text in json.dumps(now["blocks"]) else None

        return self.slack.wait_for(showing, description=f"the message to show {text!r}")

    def snapshot(self, message: dict[str, Any]) -> triage.TriageSnapshot:
        with self.sessions() as session:
            return triage.snapshot(session, message["metadata"]["event_payload"]["event_id"])


def selected_on(message: dict[str, Any] | None) -> set[str]:
    """The categories the message's picker shows as chosen."""
    _, picker = find_element(message or {"blocks": []}, "triage_categories")
    return {option["value"] for option in picker.get("initial_options", [])}


@pytest.fixture
def slack_settings(settings: Settings, slack: FakeSlack) -> Settings:
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr(slack.token),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": slack.api_url,
            "slack_channel": "#alerts",
        }
    )


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def triaging(
    slack_settings: Settings, slack: FakeSlack, sessions: sessionmaker[Session],
    registered_app: RegisteredApp,
) -> Iterator[Triaging]:  # fmt: skip
    with TestClient(build_service(slack_settings).app) as client:
        yield Triaging(slack, client, sessions, registered_app)


def test_choosing_a_category_is_stored_shown_and_exported(triaging: Triaging) -> None:
    message = triaging.downvote()
    response = triaging.click(message, categories_pick(message, ["hallucination"]))
    assert response.status_code == 200
    updated = triaging.wait_for_text(message, "*Categories:* hallucination")
    assert updated["ts"] == message["ts"]
    assert "<@U0ALICE>" in json.dumps(updated["blocks"])  # "by @user at time"
    with triaging.sessions() as session:
        [record] = [event_record_dict(r) for r in iter_events(session, EventFilter())]
        event_id = message["metadata"]["event_payload"]["event_id"]
        [audit] = audit_trail(session, event_id)
    assert record["categories"] == ["hallucination"]
    assert record["status"] == "acknowledged" and record["triaged_by"] == "U0ALICE"
    assert (audit.slack_user, audit.action, audit.new_value) == (
        "U0ALICE",
        "category_added",
        "hallucination",
    )


def test_status_assignment_and_note_persist_and_show(triaging: Triaging) -> None:
    message = triaging.downvote()
    triaging.click(message, button_click(message, "triage_not_model_issue"))
    message = triaging.wait_for_text(message, "Mark as model issue")
    assert triaging.snapshot(message).status == "not_a_model_issue"
    triaging.click(message, button_click(message, "triage_resolve"))
    message = triaging.wait_for_text(message, "Reopen")
    assert triaging.snapshot(message).status == "resolved"
    triaging.click(message, button_click(message, "triage_assign_me"), user="U0BOB")
    message = triaging.wait_for_text(message, "*Assigned:* <@U0BOB>")
    assert triaging.snapshot(message).assignee == "U0BOB"

    triaging.click(message, button_click(message, "triage_add_note"))
    [opened] = triaging.slack.wait_for(lambda: triaging.slack.views, description="the note modal")
    view = opened["view"]
    note = "Retrieval returned the <!channel> wiki page & an old doc"
    form = view_submission(view["callback_id"], view["private_metadata"], note, user="U0BOB")
    body, headers = signed_form(form)
    assert triaging.client.post("/slack/events", content=body, headers=headers).status_code == 200
    [reply] = triaging.slack.wait_for(
        lambda: triaging.slack.messages(message["channel"], thread_ts=message["ts"]),
        description="the note in the thread",
    )
    assert "&lt;!channel&gt; wiki page &amp; an old doc" in reply["text"]
    assert "<!channel>" not in reply["text"]
    triaging.wait_for_text(message, "*Notes:* 1")
    assert triaging.snapshot(message).notes == 1

    # Clicking again undoes: Reopen goes back to acknowledged.
    triaging.click(message, button_click(message, "triage_resolve"))
    triaging.wait_for_text(message, '"Resolved"')
    assert triaging.snapshot(message).status == "acknowledged"


def test_new_category_from_the_modal_is_added_for_everyone(triaging: Triaging) -> None:
    message = triaging.downvote()
    triaging.click(message, button_click(message, "triage_new_category"))
    [opened] = triaging.slack.wait_for(lambda: triaging.slack.views, description="the modal")
    view = opened["view"]
    form = view_submission(
        view["callback_id"], view["private_metadata"], "  prompt  injection ", user="U0ALICE"
    )
    body, headers = signed_form(form)
    assert triaging.client.post("/slack/events", content=body, headers=headers).status_code == 200
    triaging.wait_for_text(message, "*Categories:* prompt injection")
    second = triaging.downvote()
    assert '"prompt injection"' in json.dumps(second["blocks"])  # offered on new alerts too


@pytest.mark.parametrize(
    "tamper",
    ["wrong-secret", "six-minutes-old"],
)
def test_forged_or_replayed_payloads_are_refused(triaging: Triaging, tamper: str) -> None:
    import time

    message = triaging.downvote()
    form = block_action(message, categories_pick(message, ["refusal"]), user="U0EVE",
                        response_url=triaging.slack.response_url())  # fmt: skip
    if tamper == "wrong-secret":
        body, headers = signed_form(form, secret="not-the-secret")
    else:
        body, headers = signed_form(form, timestamp=int(time.time()) - 6 * 60)
    assert triaging.client.post("/slack/events", content=body, headers=headers).status_code == 401
    assert triaging.snapshot(message).categories == ()
    assert triaging.slack.calls_to("chat.update") == []


def test_click_on_an_unknown_event_gets_an_ephemeral_message(triaging: Triaging) -> None:
    message = triaging.downvote()
    stranger = {**button_click(message, "triage_resolve"), "value": "987654"}
    response = triaging.click(message, stranger)
    assert response.status_code == 200
    [answer] = triaging.slack.wait_for(lambda: triaging.slack.responses, description="a reply")
    assert answer["payload"]["response_type"] == "ephemeral"
    assert "no record of this alert" in answer["payload"]["text"]


def test_concurrent_picks_by_two_people_both_survive(
    slack_settings: Settings, slack: FakeSlack, sessions: sessionmaker[Session],
    registered_app: RegisteredApp,
) -> None:  # fmt: skip
    with (
        LiveServer(build_service(slack_settings).app) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        body, headers = signed(
            registered_app.secret, {"prompt": "p", "response": "r", "rating": "down"}
        )
        assert http.post("/v1/feedback", content=body, headers=headers).status_code == 202
        [message] = slack.wait_for(lambda: slack.messages(), description="the alert")
        picks = [("U0ALICE", "hallucination"), ("U0BOB", "refusal"), ("U0CAROL", "off-topic")]

        async def click_all() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url) as client:
                requests = []
                for user, category in picks:
                    form = block_action(message, categories_pick(message, [category]), user=user,
                                        response_url=slack.response_url())  # fmt: skip
                    body, headers = signed_form(form)
                    requests.append(client.post("/slack/events", content=body, headers=headers))
                return [r.status_code for r in await asyncio.gather(*requests)]

        assert asyncio.run(click_all()) == [200, 200, 200]
        with sessions() as session:
            event_id = message["metadata"]["event_payload"]["event_id"]
            assert set(triage.snapshot(session, event_id).categories) == {
                "hallucination",
                "refusal",
                "off-topic",
            }
            assert {a.slack_user for a in audit_trail(session, event_id)} == {
                "U0ALICE",
                "U0BOB",
                "U0CAROL",
            }
        everyone = {"hallucination", "refusal", "off-topic"}
        slack.wait_for(
            lambda: selected_on(slack.message(message["channel"], message["ts"])) == everyone,
            description="the message to show all three",
        )  # fmt: skip


def test_slash_command_counts_and_lists_untriaged(
    slack_settings: Settings, sessions: sessionmaker[Session], registered_app: RegisteredApp,
    awkward_moment: tuple[FakeClock, str],
) -> None:  # fmt: skip
    """ "Today" is the configured zone's day, whenever the test runs."""
    clock, zone = awkward_moment
    with FakeSlack(clock=clock) as slack:
        configured = slack_settings.model_copy(
            update={"slack_api_url": slack.api_url, "downvote_timezone": zone}
        )
        with TestClient(build_service(configured, clock=clock).app) as client:
            counts_and_backlog(Triaging(slack, client, sessions, registered_app))
        with TestClient(build_service(configured, clock=clock).app) as client:
            # Half an hour into the next day there (not necessarily in UTC): nothing yet today.
            local = clock.now().astimezone(ZoneInfo(zone))
            next_midnight = local_midnight(local.date() + timedelta(days=1), ZoneInfo(zone))
            clock.set(next_midnight + timedelta(minutes=30))
            body, headers = signed_form(slash_command("", user="U0ALICE"))
            later = client.post("/slack/events", content=body, headers=headers)
            assert "*0* downvotes today" in later.text and "*1* waiting" in later.text


def counts_and_backlog(triaging: Triaging) -> None:
    first = triaging.downvote(id="first")
    triaging.downvote(id="second")
    triaging.click(first, button_click(first, "triage_resolve"))
    triaging.wait_for_text(first, "Reopen")
    body, headers = signed_form(slash_command("", user="U0ALICE"))
    counts = triaging.client.post("/slack/events", content=body, headers=headers)
    assert "*2* downvotes today" in counts.text and "*1* waiting" in counts.text
    body, headers = signed_form(slash_command("untriaged", user="U0ALICE"))
    listing = triaging.client.post("/slack/events", content=body, headers=headers)
    assert "second" in listing.text and "first" not in listing.text
    assert "/archives/" in listing.text


def test_every_one_of_many_long_categories_can_be_found_and_picked(
    slack_settings: Settings, slack: FakeSlack, sessions: sessionmaker[Session],
    registered_app: RegisteredApp,
) -> None:  # fmt: skip
    """21 categories of ~60 characters do not fit a static picker; each is still pickable."""
    names = [
        f"{n:02d} " + "a failure mode with a fairly long and descriptive name, too"[:57]
        for n in range(21)
    ]
    config = DownvoteConfig(categories=names)
    with TestClient(build_service(slack_settings, config=config).app) as client:
        triaging = Triaging(slack, client, sessions, registered_app)
        message = triaging.downvote()
        _, select = find_element(message, "triage_categories")
        assert select["type"] == "multi_external_select"
        chosen: list[dict[str, Any]] = []
        for name in names:
            body, headers = signed_form(block_suggestion(message, name[:2], user="U0ALICE"))
            offered = client.post("/slack/events", content=body, headers=headers).json()["options"]
            assert [o["value"] for o in offered] == [name]  # found by what was typed
            chosen.append(offered[0])
        body, headers = signed_form(block_suggestion(message, "", user="U0BOB"))
        everything = client.post("/slack/events", content=body, headers=headers).json()["options"]
        assert [o["value"] for o in everything] == names  # an empty query lists them all

        triaging.click(message, external_pick(message, chosen))
        triaging.slack.wait_for(
            lambda: set(triaging.snapshot(message).categories) == set(names),
            description="all 21 categories stored",
        )


def test_unpicking_a_category_removes_it_and_is_audited(triaging: Triaging) -> None:
    message = triaging.downvote()
    triaging.click(message, categories_pick(message, ["hallucination", "refusal"]))
    message = triaging.wait_for_text(message, "*Categories:* hallucination, refusal")
    triaging.click(message, categories_pick(message, ["hallucination"]), user="U0BOB")
    triaging.slack.wait_for(
        lambda: selected_on(triaging.current(message)) == {"hallucination"},
        description="the message to show hallucination alone",
    )
    assert triaging.snapshot(message).categories == ("hallucination",)
    with triaging.sessions() as session:
        trail = audit_trail(session, message["metadata"]["event_payload"]["event_id"])
    assert [(a.slack_user, a.action, a.old_value) for a in trail][-1] == (
        "U0BOB", "category_removed", "refusal",
    )  # fmt: skip


def submit(triaging: Triaging, callback_id: str, private_metadata: str, value: str) -> Any:
    form = view_submission(callback_id, private_metadata, value, user="U0ALICE")
    body, headers = signed_form(form)
    response = triaging.client.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 200
    return response.json() if response.content else None


def open_modal(triaging: Triaging, message: dict[str, Any], action_id: str) -> dict[str, Any]:
    before = len(triaging.slack.views)
    triaging.click(message, button_click(message, action_id))
    views = triaging.slack.wait_for(
        lambda: triaging.slack.views if len(triaging.slack.views) > before else None,
        description="the modal",
    )
    view: dict[str, Any] = views[-1]["view"]
    return view


def test_modal_mistakes_are_answered_in_the_modal_and_change_nothing(triaging: Triaging) -> None:
    message = triaging.downvote()
    note = open_modal(triaging, message, "triage_add_note")
    empty = submit(triaging, note["callback_id"], note["private_metadata"], "   ")
    assert empty == {"response_action": "errors", "errors": {"value": "The note is empty."}}
    category = open_modal(triaging, message, "triage_new_category")
    too_long = submit(triaging, category["callback_id"], category["private_metadata"], "x" * 61)
    assert too_long["response_action"] == "errors"
    assert "1 to 60 characters" in too_long["errors"]["value"]
    stranger = json.dumps({"event_id": 987654})
    unknown = submit(triaging, category["callback_id"], stranger, "new one")
    assert "no record of this alert" in unknown["errors"]["value"]
    snapshot = triaging.snapshot(message)
    assert (snapshot.notes, snapshot.categories) == (0, ())


def test_an_unknown_downvote_argument_gets_the_usage(triaging: Triaging) -> None:
    body, headers = signed_form(slash_command("everything please", user="U0ALICE"))
    answer = triaging.client.post("/slack/events", content=body, headers=headers)
    assert "Usage: `/downvote`" in answer.text


def test_a_payload_from_something_else_is_acked_and_ignored(
    triaging: Triaging, caplog: pytest.LogCaptureFixture
) -> None:
    message = triaging.downvote()
    foreign = {**button_click(message, "triage_resolve"), "value": "x", "block_id": "theirs"}
    assert triaging.click(message, foreign).status_code == 200
    assert "ignored a Slack payload" in caplog.text
    assert triaging.snapshot(message).status == "new"


def test_slack_refusing_the_update_is_logged_and_the_click_kept(
    triaging: Triaging, caplog: pytest.LogCaptureFixture
) -> None:
    message = triaging.downvote()
    triaging.slack.remove_channel("#alerts")  # the channel is gone: chat.update is refused
    assert triaging.click(message, button_click(message, "triage_assign_me")).status_code == 200
    wait_until(lambda: "Slack refused a call: channel_not_found" in caplog.text, "the log line")
    assert triaging.snapshot(message).assignee == "U0ALICE"
