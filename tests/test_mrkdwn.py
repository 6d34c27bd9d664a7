"""Escaping and fence defusing: user text must stay inert and come back exactly."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slack.mrkdwn import (
    ZWSP,
    code_block,
    defuse_fences,
    escape,
    mention,
    slack_date,
    unescape,
)
from tests.support.mrkdwn import restore_fences

# Text that stresses the escaping and the fence: entities, backticks, our own ZWSP, emoji.
tricky_text = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.sampled_from(["`", "``", "```", ZWSP, "&", "&amp;", "&lt;", "<", ">", "<!channel>"]),
        st.sampled_from(["👨‍👩‍👧", "🇫🇷", "e\u0301", "\n", "\U0001d54f"]),
    ),
    max_size=30,
).map("".join)


def test_escape_neutralises_mentions_and_links() -> None:
    text = "hi <!channel> <@U123> <https://evil|click> & bye"
    assert escape(text) == (
        "hi &lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|click&gt; &amp; bye"
    )


@given(tricky_text)
def test_escape_leaves_no_markup_and_round_trips(text: str) -> None:
    escaped = escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert re.fullmatch(r"(?:[^&]|&(?:amp|lt|gt);)*", escaped, re.S)
    assert unescape(escaped) == text


def test_unescape_is_one_pass() -> None:
    assert unescape("&amp;lt;") == "&lt;"


@given(tricky_text)
def test_defused_text_cannot_close_a_fence(text: str) -> None:
    defused = defuse_fences(text)
    assert "``" not in defused
    assert not defused.startswith("`") and not defused.endswith("`")
    assert restore_fences(defused) == text


@given(tricky_text)
def test_code_block_has_exactly_its_own_fences(text: str) -> None:
    block = code_block(text)
    assert block.startswith("```") and block.endswith("```")
    assert block.count("```") == 2
    assert restore_fences(unescape(block[3:-3])) == text


def test_defuse_examples() -> None:
    assert defuse_fences("a```b") == f"a`{ZWSP}`{ZWSP}`b"
    assert defuse_fences("`x`") == f"{ZWSP}`x`{ZWSP}"
    assert defuse_fences("plain") == "plain"
    assert code_block("") == f"```{ZWSP}```"
    assert restore_fences(ZWSP) == ""


@settings(max_examples=50)
@given(st.text(alphabet="`\u200bab", max_size=40))
def test_restore_inverts_defuse_on_dense_backticks(text: str) -> None:
    assert restore_fences(defuse_fences(text)) == text


def test_mention_only_for_slack_member_ids() -> None:
    assert mention("U012AB3CD") == "<@U012AB3CD>"
    assert mention("W0123ABC") == "<@W0123ABC>"
    assert mention("U1> <!channel") == "U1&gt; &lt;!channel"
    assert mention("alice") == "alice"


def test_slack_date_uses_unix_time_and_utc_fallback() -> None:
    moment = datetime(2026, 11, 26, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert slack_date(moment) == (
        f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|2026-11-26 08:00 UTC>"
    )


def test_slack_date_before_the_epoch_is_plain_text() -> None:
    assert slack_date(datetime(1969, 7, 20, 20, 17, tzinfo=UTC)) == "1969-07-20 20:17 UTC"


def test_slack_date_treats_naive_times_as_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4)
    assert slack_date(naive) == slack_date(naive.replace(tzinfo=UTC))
