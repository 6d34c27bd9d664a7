"""A real HTTP fake of the Slack Web API (see `fake`), for tests and benchmarks."""

from tests.support.fake_slack.blocks import validate_blocks, validate_view
from tests.support.fake_slack.fake import (
    BOT_USER_ID,
    DEFAULT_APP_TOKEN,
    DEFAULT_TOKEN,
    Call,
    FakeSlack,
    Outcome,
)
from tests.support.fake_slack.workspace import DEFAULT_PUBLIC_CHANNELS, derive_channel_id

__all__ = [
    "BOT_USER_ID",
    "DEFAULT_APP_TOKEN",
    "DEFAULT_PUBLIC_CHANNELS",
    "DEFAULT_TOKEN",
    "Call",
    "FakeSlack",
    "Outcome",
    "derive_channel_id",
    "validate_blocks",
    "validate_view",
]
