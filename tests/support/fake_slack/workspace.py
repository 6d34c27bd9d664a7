"""The fake workspace: its channels, the bot's memberships and the scopes it was granted.

Every rule here is one Slack applies; the doc line it comes from is quoted next to it. What the
fake refuses, Slack refuses: a test that passes here does not rely on anything Slack forbids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MANIFEST = Path(__file__).resolve().parents[3] / "slack-manifest.yml"
# The README tells users to make one public channel and never to invite the bot to it.
DEFAULT_PUBLIC_CHANNELS = ("#general", "#alerts", "#quality", "#digests")
ID_RE = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class SlackError(Exception):
    """A Slack API error: answered as HTTP 200 ``{"ok": false, "error": ...}`` like Slack does."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def manifest_scopes() -> frozenset[str]:
    """The bot scopes of `slack-manifest.yml`: what a user who installs from it grants."""
    data = yaml.safe_load(MANIFEST.read_text())
    return frozenset(data["oauth_config"]["scopes"]["bot"])


def derive_channel_id(name: str) -> str:
    """A stable fake id for a channel name, so every process agrees on it."""
    return "C" + hashlib.sha1(name.encode()).hexdigest()[:10].upper()


def channel_name(channel: str) -> str:
    return channel.strip().lstrip("#").lower()


@dataclass
class Channel:
    id: str
    name: str
    private: bool = False
    archived: bool = False
    member: bool = False  # is the bot in it?
    exists: bool = True

    def info(self) -> dict[str, Any]:
        """A conversation object as conversations.info / list / join return it."""
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_private": self.private,
            "is_archived": self.archived,
            "is_member": self.member,
        }


class Workspace:
    """Channels by id and name; which the bot is in; the scopes its token carries."""

    def __init__(
        self,
        *,
        public: Iterable[str] = DEFAULT_PUBLIC_CHANNELS,
        private: Iterable[str] = (),
        member_of: Iterable[str] = (),
        scopes: Iterable[str] | None = None,
    ) -> None:
        self.scopes = manifest_scopes() if scopes is None else frozenset(scopes)
        self.channels: dict[str, Channel] = {}
        for name in public:
            self.add(name)
        for name in private:
            self.add(name, private=True)
        for name in member_of:
            self.by_name(name).member = True

    def add(self, channel: str, *, private: bool = False, member: bool = False) -> Channel:
        name = channel_name(channel)
        found = self.channels.get(derive_channel_id(name))
        if found is not None:
            found.exists, found.private, found.member = True, private, member or found.member
            return found
        created = Channel(derive_channel_id(name), name, private=private, member=member)
        self.channels[created.id] = created
        return created

    def by_name(self, channel: str) -> Channel:
        found = self.channels.get(derive_channel_id(channel_name(channel)))
        if found is None:
            raise KeyError(f"the fake workspace has no channel {channel!r}")
        return found

    def find(self, raw: Any, *, names: bool) -> Channel:
        """The channel a method's `channel` argument names, as Slack resolves it.

        Only chat.postMessage ("An encoded ID or channel name") and chat.postEphemeral ("Can
        be an encoded ID, or a name") take a name; chat.update, chat.delete, chat.getPermalink
        ("The ID of the conversation or channel containing the message"),
        conversations.history ("Conversation ID to fetch history for"), .replies, .info, .join
        ("ID of conversation to join") and files.completeUploadExternal ("Channel ID where the
        file will be shared") take an id. A name where an id is wanted is `channel_not_found`
        (Slack staff, python-slack-sdk#696: "This is a server-side spec").
        """
        if not isinstance(raw, str) or not raw.strip():
            raise SlackError("channel_not_found")
        text = raw.strip()
        if ID_RE.match(text):
            channel = self.channels.get(text)
        elif names:
            channel = self.channels.get(derive_channel_id(channel_name(text)))
        else:
            channel = None
        # A private channel is invisible to a bot that is not in it: "your app is not yet
        # allowed to know even the existence of the channel" (Slack staff, bolt-js#963), so
        # every method answers channel_not_found, as for a channel that does not exist.
        if channel is None or not channel.exists or (channel.private and not channel.member):
            raise SlackError("channel_not_found")
        return channel

    def require(self, needed: str) -> None:
        """ "missing_scope: The token used is not granted the specific scope permissions
        required to complete this request", answered with `needed` and `provided`."""
        if needed not in self.scopes:
            raise SlackError("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))

    def require_read(self, channel: Channel, public: str, private: str) -> None:
        """Reading a channel needs the scope for its kind (channels:… or groups:…)."""
        self.require(private if channel.private else public)

    def require_member(self, channel: Channel) -> None:
        """Reading history ("not_in_channel: … Only user tokens can access public channels they
        are not in") and sharing a file ("User/bot membership is required for the specified
        channel") need the bot in the channel, chat:write.public or not."""
        if not channel.member:
            raise SlackError("not_in_channel")

    def post_allowed(self, channel: Channel) -> None:
        """chat:write.public: "Send messages to channels your Slack app isn't a member of … your
        app must also request chat:write"; without it a non-member gets not_in_channel ("Cannot
        post user messages to a channel they are not in")."""
        self.require("chat:write")
        if channel.archived:
            raise SlackError("is_archived")
        if not channel.member and "chat:write.public" not in self.scopes:
            raise SlackError("not_in_channel")
