"""The Slack app manifest names every URL and scope the code relies on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.slack.check import REQUIRED_SCOPES
from bot.triage.app import EVENTS_PATH

ROOT = Path(__file__).resolve().parent.parent
# Web API methods → the bot scopes each needs, from Slack's method reference: history and
# listing need the public-channel scope and its private-channel twin (channels:… / groups:…).
SCOPES_OF: dict[str, set[str]] = {
    "chat_postMessage": {"chat:write", "chat:write.public"},  # posting without joining first
    "chat_update": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_delete": {"chat:write"},
    "conversations_history": {"channels:history", "groups:history"},
    "conversations_replies": {"channels:history", "groups:history"},
    "conversations_list": {"channels:read", "groups:read"},
    "conversations_info": {"channels:read", "groups:read"},
    "conversations_join": {"channels:join"},
    "files_upload_v2": {"files:write"},
    "auth_test": set(),
    "views_open": set(),  # needs only a trigger_id
    "views_update": set(),
}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    return data


def methods_called() -> set[str]:
    source = "\n".join(p.read_text() for p in (ROOT / "bot").rglob("*.py"))
    return set(re.findall(r"client\.([a-z]+_[A-Za-z0-9_]+)", source))


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    called = methods_called()
    assert {"chat_postMessage", "chat_update", "conversations_join"} <= called
    unknown = called - SCOPES_OF.keys()
    assert not unknown, f"add these methods' scopes to SCOPES_OF and the manifest: {unknown}"
    needed = {"commands"}.union(*(SCOPES_OF[method] for method in called))  # /downvote
    assert scopes - needed == set(), "the manifest asks for scopes nothing uses"
    assert needed - scopes == set(), "the code calls methods the manifest grants no scope for"


def test_urls_point_at_the_bolt_route() -> None:
    data = manifest()
    urls = [data["settings"]["interactivity"]["request_url"]]
    urls += [command["url"] for command in data["features"]["slash_commands"]]
    assert all(url.endswith("/slack/events") for url in urls)
    assert [c["command"] for c in data["features"]["slash_commands"]] == ["/downvote"]
    assert EVENTS_PATH == "/slack/events"


def test_slack_check_expects_the_manifest_s_scopes() -> None:
    """`downvote slack check` compares the granted scopes with these: they must be the same."""
    assert set(REQUIRED_SCOPES) == set(manifest()["oauth_config"]["scopes"]["bot"])


def test_the_category_search_is_served_by_the_bolt_route() -> None:
    interactivity = manifest()["settings"]["interactivity"]
    assert interactivity["message_menu_options_url"].endswith(EVENTS_PATH)
