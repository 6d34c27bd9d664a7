"""Slack's requests to /slack/events, shaped and signed exactly as Slack sends them."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

SIGNING_SECRET = "test-signing-secret"
TEAM = {"id": "T0FAKE", "domain": "fake"}


def signed_form(
    form: dict[str, str], *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A form-encoded body with X-Slack-Signature made by slack_sdk's own verifier."""
    body = urlencode(form)
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": str(timestamp),
        "x-slack-signature": signature,
    }
    return body.encode(), headers


def block_action(
    message: dict[str, Any],
    action: dict[str, Any],
    *,
    user: str,
    response_url: str,
) -> dict[str, str]:
    """A block_actions interaction on a posted message (Slack sends it as `payload=<json>`)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM["id"]},
        "api_app_id": "A0FAKE",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": message["channel"],
            "is_ephemeral": False,
        },
        "trigger_id": f"trigger.{time.time_ns()}",
        "team": TEAM,
        "channel": {"id": message["channel"], "name": "alerts"},
        "message": {
            "type": "message",
            "ts": message["ts"],
            "text": message["text"],
            "blocks": message["blocks"],
            "metadata": message.get("metadata"),
        },
        "response_url": response_url,
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
    }
    return {"payload": json.dumps(payload)}


def find_element(message: dict[str, Any], action_id: str) -> tuple[str, dict[str, Any]]:
    """The block id and element of a control on the message as Slack shows it."""
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return block["block_id"], element
    raise AssertionError(f"no {action_id} on the message")


def button_click(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    block_id, element = find_element(message, action_id)
    return {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id,
        "text": element["text"],
        "value": element["value"],
    }


def categories_pick(message: dict[str, Any], selected: list[str]) -> dict[str, Any]:
    block_id, element = find_element(message, "triage_categories")
    options = {o["value"]: o for o in element["options"]}
    return {
        "type": "multi_static_select",
        "action_id": "triage_categories",
        "block_id": block_id,
        "selected_options": [options[name] for name in selected],
    }


def view_submission(
    callback_id: str, private_metadata: str, value: str, *, user: str
) -> dict[str, str]:
    payload = {
        "type": "view_submission",
        "team": TEAM,
        "user": {"id": user, "username": user.lower(), "team_id": TEAM["id"]},
        "api_app_id": "A0FAKE",
        "token": "legacy-verification-token",
        "trigger_id": f"trigger.{time.time_ns()}",
        "view": {
            "id": "V0FAKE",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": {"value": {"value": {"type": "plain_text_input", "value": value}}}},
        },
    }
    return {"payload": json.dumps(payload)}


def slash_command(text: str, *, user: str, channel: str = "C0FAKE") -> dict[str, str]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM["id"],
        "team_domain": TEAM["domain"],
        "channel_id": channel,
        "channel_name": "alerts",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/downvote",
        "text": text,
        "api_app_id": "A0FAKE",
        "response_url": "https://hooks.slack.invalid/commands/T0FAKE/1/abc",
        "trigger_id": f"trigger.{time.time_ns()}",
    }


def block_suggestion(message: dict[str, Any], value: str, *, user: str) -> dict[str, str]:
    """What Slack sends as the user types into an external select on a message."""
    block_id, _ = find_element(message, "triage_categories")
    payload = {
        "type": "block_suggestion",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM["id"]},
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": message["channel"],
            "is_ephemeral": False,
        },
        "api_app_id": "A0FAKE",
        "token": "legacy-verification-token",
        "action_id": "triage_categories",
        "block_id": block_id,
        "value": value,
        "team": TEAM,
        "channel": {"id": message["channel"], "name": "alerts"},
        "message": {"type": "message", "ts": message["ts"], "blocks": message["blocks"]},
    }
    return {"payload": json.dumps(payload)}


def external_pick(message: dict[str, Any], options: list[dict[str, Any]]) -> dict[str, Any]:
    """A block_actions pick in the searchable picker: the options Slack offered and were chosen."""
    block_id, _ = find_element(message, "triage_categories")
    return {
        "type": "multi_external_select",
        "action_id": "triage_categories",
        "block_id": block_id,
        "selected_options": options,
    }
