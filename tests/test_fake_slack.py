"""The Slack fake behaves like Slack for the real slack_sdk clients, retries included."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.support.clock import FakeClock
from tests.support.fake_slack import DEFAULT_APP_TOKEN, FakeSlack, derive_channel_id

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
MRKDWN = {"type": "mrkdwn", "text": "x"}
METADATA = {"event_type": "downvote_alert", "event_payload": {"event_id": "fb_1"}}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def header(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": "header", "text": {"type": kind, "text": text}}


def button(text: str) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": "a"}


def option(text: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": "v"}


def select(options: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "actions", "elements": [{"type": "static_select", "options": options}]}


ALERTS = derive_channel_id("alerts")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """The README's setup: public channels the bot was never invited to (it joins #alerts)."""
    with FakeSlack(channels=["#alerts", "#other", "#digests"], member_of=["#alerts"]) as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.token, base_url=slack.api_url)


@pytest.fixture
def sync_client(slack: FakeSlack) -> WebClient:
    return WebClient(token=slack.token, base_url=slack.api_url)


# -- messages -----------------------------------------------------------------------------------


async def test_post_update_and_history_roundtrip_with_metadata(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(
        channel="#alerts", text="downvote", blocks=[section("v1")], metadata=METADATA
    )
    await client.chat_update(
        channel=posted["channel"], ts=posted["ts"], text="downvote", blocks=[section("v2")]
    )

    history = await client.conversations_history(channel=ALERTS, include_all_metadata=True)

    assert posted["channel"] == slack.channel_id("#alerts")
    [message] = history["messages"]
    assert message["ts"] == posted["ts"]
    assert message["metadata"] == METADATA  # kept: chat.update without metadata keeps it
    assert message["blocks"] == [section("v2")]
    assert message["text"] == "downvote"
    assert [u["blocks"] for u in slack.message("#alerts", posted["ts"])["updates"]] == [
        [section("v2")]
    ]


async def test_history_is_newest_first_filters_and_pages(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    ts = [(await client.chat_postMessage(channel=ALERTS, text=str(i)))["ts"] for i in range(5)]

    assert ts == sorted(ts) and len(set(ts)) == 5
    first = await client.conversations_history(channel=ALERTS, oldest=ts[1], limit=2)
    second = await client.conversations_history(
        channel=ALERTS,
        oldest=ts[1],
        limit=2,
        cursor=first["response_metadata"]["next_cursor"],
    )
    assert [m["text"] for m in first["messages"]] == ["4", "3"]
    assert [m["text"] for m in second["messages"]] == ["2"]  # oldest is exclusive
    assert first["has_more"] and not second["has_more"]
    assert "metadata" not in first["messages"][0]  # only with include_all_metadata


async def test_thread_replies_appear_in_replies_not_history(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="#alerts", text="parent")
    await client.chat_postMessage(channel="#alerts", text="reply", thread_ts=parent["ts"])

    history = await client.conversations_history(channel=ALERTS)
    replies = await client.conversations_replies(channel=ALERTS, ts=parent["ts"])
    link = await client.chat_getPermalink(channel=ALERTS, message_ts=replies["messages"][1]["ts"])

    assert [m["text"] for m in history["messages"]] == ["parent"]
    assert history["messages"][0]["reply_count"] == 1
    assert [m["text"] for m in replies["messages"]] == ["parent", "reply"]
    assert [m["text"] for m in slack.messages("#alerts", thread_ts=parent["ts"])] == ["reply"]
    channel_id = slack.channel_id("alerts")
    assert link["permalink"].startswith(f"https://fake.slack/archives/{channel_id}/p")
    assert f"thread_ts={parent['ts']}" in link["permalink"]


def test_form_encoded_json_arguments_are_decoded(slack: FakeSlack, sync_client: WebClient) -> None:
    sync_client.api_call(
        "chat.postMessage",
        params={
            "channel": "alerts",
            "blocks": json.dumps([section("hi")]),
            "metadata": json.dumps(METADATA),
        },
    )

    [message] = slack.messages("#alerts")
    assert message["blocks"] == [section("hi")] and message["metadata"] == METADATA


async def test_updating_unknown_or_foreign_messages_fails(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="#alerts", text="mine")
    human = slack.add_message("#alerts", "theirs")

    for channel, ts, error in [
        (ALERTS, "1.000001", "message_not_found"),
        (derive_channel_id("other"), posted["ts"], "message_not_found"),
        (ALERTS, human["ts"], "cant_update_message"),
    ]:
        with pytest.raises(SlackApiError) as e:
            await client.chat_update(channel=channel, ts=ts, text="x")
        assert e.value.response["error"] == error


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([{"type": "divider"}] * 51, "/blocks]"),
        ([section("x" * 3001)], "/blocks/0/text/text]"),
        ([header("x" * 151)], "/blocks/0/text/text]"),
        ([header("x", kind="mrkdwn")], "/blocks/0/text/type]"),
        ([{"type": "context", "elements": [MRKDWN] * 11}], "/blocks/0/elements]"),
        ([{"type": "actions", "elements": [button("x" * 76)]}], "/blocks/0/elements/0/text/text]"),
        ([select([option("x")] * 101)], "/blocks/0/elements/0/options]"),
        ([select([option("x" * 76)])], "/blocks/0/elements/0/options/0/text/text]"),
        ([{"type": "sparkles"}], "/blocks/0/type]"),
        ([section("")], "/blocks/0/text/text]"),
    ],
    ids=[
        "51-blocks", "section-3001", "header-151", "header-mrkdwn", "context-11",
        "button-76", "options-101", "option-text-76", "unknown-type", "empty-section",
    ],
)  # fmt: skip
async def test_invalid_blocks_are_rejected_like_slack(
    slack: FakeSlack, client: AsyncWebClient, blocks: list[dict[str, Any]], pointer: str
) -> None:
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="#alerts", text="t", blocks=blocks)

    assert e.value.response["error"] == "invalid_blocks"
    assert e.value.response["errors"][0].endswith(f"[json-pointer:{pointer}")
    assert slack.messages() == []


async def test_limits_at_the_edge_are_accepted(slack: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [section("x" * 3000)] + [{"type": "divider"}] * 48 + [select([option("o" * 75)] * 100)]

    await client.chat_postMessage(channel="#alerts", text="x" * 40_000, blocks=blocks)

    assert len(slack.messages()[0]["blocks"]) == 50


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({}, "no_text"),
        ({"text": "", "blocks": []}, "no_text"),
        ({"text": "t", "blocks": {"type": "divider"}}, "invalid_blocks_format"),
        ({"text": "t", "metadata": {"event_type": "x"}}, "invalid_metadata_format"),
    ],
)
async def test_bad_message_arguments_are_rejected(
    client: AsyncWebClient, arguments: dict[str, Any], error: str
) -> None:
    with pytest.raises(SlackApiError) as e:
        await client.api_call("chat.postMessage", json={"channel": "#alerts", **arguments})
    assert e.value.response["error"] == error


# -- auth, channels, other methods --------------------------------------------------------------


async def test_bad_or_missing_token_is_refused(slack: FakeSlack) -> None:
    for token, error in [("xoxb-wrong", "invalid_auth"), (None, "not_authed")]:
        with pytest.raises(SlackApiError) as e:
            await AsyncWebClient(token=token, base_url=slack.api_url).auth_test()
        assert e.value.response.status_code == 200
        assert e.value.response["error"] == error


async def test_a_name_is_accepted_only_where_slack_accepts_one(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="#alerts", text="by name")
    await client.chat_postEphemeral(channel="alerts", user="U0ALICE01", text="by name too")
    by_name = {
        "chat.update": {"channel": "#alerts", "ts": posted["ts"], "text": "x"},
        "chat.getPermalink": {"channel": "#alerts", "message_ts": posted["ts"]},
        "conversations.history": {"channel": "#alerts"},
        "conversations.replies": {"channel": "#alerts", "ts": posted["ts"]},
        "conversations.info": {"channel": "#alerts"},
        "conversations.join": {"channel": "#alerts"},
    }
    for method, arguments in by_name.items():
        with pytest.raises(SlackApiError) as e:
            await client.api_call(method, params=arguments)
        assert e.value.response["error"] == "channel_not_found", method
    await client.chat_update(channel=ALERTS, ts=posted["ts"], text="by id")


async def test_a_public_channel_takes_posts_but_not_reads_until_joined(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    other = derive_channel_id("other")
    posted = await client.chat_postMessage(channel="#other", text="chat:write.public")
    for read in (
        client.conversations_history(channel=other),
        client.conversations_replies(channel=other, ts=posted["ts"]),
        client.files_upload_v2(channel=other, file=PNG, filename="x.png"),
    ):
        with pytest.raises(SlackApiError, match="not_in_channel"):
            await read
    info = await client.conversations_info(channel=other)
    assert (info["channel"]["is_member"], info["channel"]["is_private"]) == (False, False)

    joined = await client.conversations_join(channel=other)
    again = await client.conversations_join(channel=other)
    assert joined["channel"]["is_member"] and again["warning"] == "already_in_channel"
    assert [m["text"] for m in (await client.conversations_history(channel=other))["messages"]] == [
        "chat:write.public"
    ]


async def test_a_private_channel_is_invisible_until_the_bot_is_invited(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.add_channel("#secret", private=True)
    secret = derive_channel_id("secret")
    for call in (
        client.chat_postMessage(channel="#secret", text="t"),
        client.chat_postMessage(channel=secret, text="t"),
        client.conversations_info(channel=secret),
        client.conversations_join(channel=secret),
    ):
        with pytest.raises(SlackApiError) as e:
            await call
        assert e.value.response["error"] == "channel_not_found"
    names = [
        c["name"] for c in (await client.conversations_list(types="private_channel"))["channels"]
    ]
    assert names == []

    slack.set_member("#secret", True)  # someone in #secret ran /invite @Downvote
    await client.chat_postMessage(channel="#secret", text="t")
    listed = await client.conversations_list(types="public_channel,private_channel")
    assert {c["name"]: c["is_private"] for c in listed["channels"]}["secret"] is True


async def test_deleted_and_unknown_channels_are_not_found(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.remove_channel("#other")
    for channel in ("#other", "#nowhere", "C0NOWHERE1"):
        with pytest.raises(SlackApiError, match="channel_not_found"):
            await client.chat_postMessage(channel=channel, text="t")
    slack.add_channel("#other")
    await client.chat_postMessage(channel="#other", text="back")


async def test_conversations_list_pages_and_needs_its_scopes(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    for n in range(5):
        slack.add_channel(f"#c{n}")
    pages: list[list[str]] = []
    cursor = None
    while cursor != "":
        page = await client.conversations_list(limit=3, cursor=cursor)
        pages.append([c["name"] for c in page["channels"]])
        cursor = page["response_metadata"]["next_cursor"]
    assert [len(names) for names in pages] == [3, 3, 2]
    assert sorted(name for names in pages for name in names) == [
        "alerts",
        "c0",
        "c1",
        "c2",
        "c3",
        "c4",
        "digests",
        "other",
    ]

    slack.revoke("groups:read")
    with pytest.raises(SlackApiError) as e:
        await client.conversations_list(types="private_channel")
    assert (e.value.response["error"], e.value.response["needed"]) == (
        "missing_scope",
        "groups:read",
    )


async def test_scopes_come_from_the_manifest_and_are_announced(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    answer = await client.auth_test()
    granted = set(answer.headers["x-oauth-scopes"].split(", "))
    assert {"chat:write", "chat:write.public", "channels:join"} <= granted

    slack.revoke("chat:write.public")
    with pytest.raises(SlackApiError, match="not_in_channel"):
        await client.chat_postMessage(channel="#other", text="no longer allowed")
    slack.revoke("channels:join")
    with pytest.raises(SlackApiError) as e:
        await client.conversations_join(channel=derive_channel_id("other"))
    assert e.value.response["needed"] == "channels:join"
    assert "chat:write" in e.value.response["provided"].split(",")


async def test_app_level_tokens_only_open_socket_mode_connections(slack: FakeSlack) -> None:
    app_client = AsyncWebClient(token=DEFAULT_APP_TOKEN, base_url=slack.api_url)
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await app_client.chat_postMessage(channel="#alerts", text="t")
    bot_client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await bot_client.apps_connections_open(app_token=slack.token)


async def test_too_much_text_in_blocks_is_refused(slack: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [section("x" * 3000) for _ in range(4)]
    with pytest.raises(SlackApiError, match="msg_blocks_too_long"):
        await client.chat_postMessage(channel="#alerts", text="t", blocks=blocks)
    await client.chat_postMessage(channel="#alerts", text="t", blocks=blocks[:3])


async def test_misc_methods(slack: FakeSlack, client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    ephemeral = await client.chat_postEphemeral(channel="#alerts", user="U0ALICE01", text="psst")
    opened = await client.views_open(trigger_id="t.1", view=_modal("Add note"))
    updated = await client.views_update(view_id=opened["view"]["id"], view=_modal("Saved"))
    with pytest.raises(SlackApiError, match="unknown_method"):
        await client.api_call("chat.teleport")
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        await client.views_open(trigger_id="t.2", view=_modal("x" * 25))

    assert auth["user_id"] == "U0FAKEBOT"
    assert slack.ephemerals[0]["message_ts"] == ephemeral["message_ts"]
    assert updated["view"]["title"]["text"] == "Saved"
    assert [v["view"]["title"]["text"] for v in slack.views] == ["Saved"]


def _modal(title: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title},
        "blocks": [{"type": "input", "label": {"type": "plain_text", "text": "Note"},
                    "element": {"type": "plain_text_input", "action_id": "note"}}],
    }  # fmt: skip


async def test_files_upload_v2_records_the_bytes(slack: FakeSlack, client: AsyncWebClient) -> None:
    await client.files_upload_v2(
        channel=ALERTS,
        file=PNG,
        filename="trend.png",
        title="7-day trend",
        initial_comment="Weekly digest",
    )

    [shared] = slack.files
    assert shared["bytes"] == PNG
    assert (shared["name"], shared["title"]) == ("trend.png", "7-day trend")
    assert shared["channel"] == ALERTS
    assert shared["initial_comment"] == "Weekly digest"
    assert [c.method for c in slack.calls] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal",
    ]  # fmt: skip


async def test_response_url_can_replace_the_original(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="#alerts", text="untriaged")

    url = slack.response_url("#alerts", posted["ts"])
    await AsyncWebhookClient(url).send(replace_original=True, text="resolved")

    assert slack.message("#alerts", posted["ts"])["text"] == "resolved"
    assert slack.responses[0]["payload"]["text"] == "resolved"


# -- failure injection --------------------------------------------------------------------------


async def test_429_is_retried_after_retry_after_then_succeeds(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    slack.rate_limit(retry_after=0, count=1)  # 0 s keeps the test fast; the header is still parsed

    await client.chat_postMessage(channel="#alerts", text="t")

    assert [c.method for c in slack.calls] == ["chat.postMessage"] * 2
    assert [o.status for o in slack.outcomes] == [429, 200]
    assert len(slack.messages()) == 1


async def test_429_carries_retry_after_and_ratelimited(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.rate_limit(retry_after=2, count=1, methods=["chat.postMessage"])
    await client.auth_test()  # other methods are unaffected

    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="#alerts", text="t")

    assert e.value.response.status_code == 429
    assert e.value.response.headers["Retry-After"] == "2"
    assert e.value.response["error"] == "ratelimited"


async def test_500_is_retried_by_the_server_error_handler(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    client.retry_handlers.append(
        AsyncServerErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0.01))
    )
    slack.fail_with_status(500, count=1)

    await client.chat_postMessage(channel="#alerts", text="t")

    assert [o.status for o in slack.outcomes] == [500, 200]


async def test_dropped_connection_is_retried_by_the_connection_error_handler(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    client.retry_handlers = [
        AsyncConnectionErrorRetryHandler(
            interval_calculator=FixedValueRetryIntervalCalculator(0.01)
        )
    ]
    slack.drop_connections(count=1)

    await client.auth_test()

    assert [o.status for o in slack.outcomes] == [0, 200]


async def test_an_error_after_some_calls_hits_only_the_next_one(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    """A failure midway through a thread: the first two posts pass, the third is refused."""
    slack.fail_with_error("internal_error", count=1, after=2, methods=["chat.postMessage"])
    await client.auth_test()  # other methods do not count
    for text in ("1", "2"):
        await client.chat_postMessage(channel="#alerts", text=text)
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="#alerts", text="3")
    await client.chat_postMessage(channel="#alerts", text="4")

    assert e.value.response["error"] == "internal_error"
    assert [m["text"] for m in slack.messages()] == ["1", "2", "4"]


async def test_time_based_failures_follow_the_clock_hook() -> None:
    clock = FakeClock()
    with FakeSlack(clock=clock, rate_limit_per_channel_per_sec=1, channels=["#a", "#b"]) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        await client.chat_postMessage(channel="#a", text="1")
        with pytest.raises(SlackApiError) as e:
            await client.chat_postMessage(channel="#a", text="2")
        assert e.value.response.headers["Retry-After"] == "1"
        await client.chat_postMessage(channel="#b", text="other channel")
        clock.advance(1)
        await client.chat_postMessage(channel="#a", text="3")

        slack.fail_with_status(503, for_seconds=5)
        with pytest.raises(SlackApiError):
            await client.auth_test()
        clock.advance(5)
        await client.auth_test()

        assert [m["text"] for m in slack.messages("#a")] == ["1", "3"]


async def test_heal_clears_failures_but_keeps_latency(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.latency(50)
    slack.fail_with_status(500)
    slack.rate_limit()
    slack.heal()

    started = time.monotonic()
    await client.auth_test()

    assert time.monotonic() - started >= 0.05


def test_a_hung_response_does_not_block_shutdown() -> None:
    slack = FakeSlack().start()
    client = WebClient(token=slack.token, base_url=slack.api_url, timeout=30, retry_handlers=[])
    slack.hang(60)
    errors: list[Exception] = []

    def call() -> None:
        try:
            client.auth_test()
        except Exception as e:
            errors.append(e)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    slack.wait_for(lambda: slack.calls, timeout=5)
    started = time.monotonic()
    slack.stop()
    caller.join(timeout=5)

    assert time.monotonic() - started < 3
    assert not caller.is_alive() and errors  # the client saw the connection close


# -- waiting ------------------------------------------------------------------------------------


async def test_async_wait_for_sees_posts_made_concurrently(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.latency(20)
    post = asyncio.create_task(client.chat_postMessage(channel="#alerts", text="later"))
    [message] = await slack.async_wait_for(lambda: slack.messages("#alerts"), timeout=5)
    await post
    assert message["text"] == "later"


def test_wait_for_times_out_with_a_useful_message(slack: FakeSlack, sync_client: WebClient) -> None:
    sync_client.auth_test()

    with pytest.raises(AssertionError, match=r"2 message\(s\) in #alerts.*auth.test -> 200"):
        slack.wait_for_messages(2, "#alerts", timeout=0.2)


# -- standalone process -------------------------------------------------------------------------


@pytest.mark.slow
def test_standalone_process_serves_until_stdin_closes() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_slack", "--port", "0", "--latency-ms", "1"],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        api_url = proc.stdout.readline().strip()
        WebClient(token="xoxb-test-token", base_url=api_url).chat_postMessage(
            channel="#general", text="t"
        )
        with urllib.request.urlopen(api_url.replace("/api/", "/_fake/state"), timeout=5) as r:
            state = json.load(r)
        proc.stdin.close()
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
    assert state["messages"] == 1 and state["calls_by_method"] == {"chat.postMessage": 1}
