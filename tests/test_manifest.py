"""The Slack app manifest names every URL and scope the code relies on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.triage.app import EVENTS_PATH

ROOT = Path(__file__).resolve().parent.parent
# Web API methods → the bot scope each needs (api.slack.com/methods).
SCOPE_OF = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "conversations_history": "channels:history",
    "conversations_replies": "channels:history",
    "files_upload_v2": "files:write",
    "views_open": None,  # needs only a trigger_id
    "views_update": None,
}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    return data


def methods_called() -> set[str]:
    source = "\n".join(p.read_text() for p in (ROOT / "bot").rglob("*.py"))
    return set(re.findall(r"client\.([a-z]+_[A-Za-z0-9_]+)", source))


def test_every_called_method_has_its_scope() -> None:
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    called = methods_called()
    assert "chat_postMessage" in called and "chat_update" in called
    unknown = called - SCOPE_OF.keys()
    assert not unknown, f"add these methods' scopes to SCOPE_OF and the manifest: {unknown}"
    missing = {SCOPE_OF[m] for m in called if SCOPE_OF[m]} - scopes
    assert not missing
    assert "commands" in scopes


def test_urls_point_at_the_bolt_route() -> None:
    data = manifest()
    urls = [data["settings"]["interactivity"]["request_url"]]
    urls += [command["url"] for command in data["features"]["slash_commands"]]
    assert all(url.endswith("/slack/events") for url in urls)
    assert [c["command"] for c in data["features"]["slash_commands"]] == ["/downvote"]
    assert EVENTS_PATH == "/slack/events"
