"""Slack's size limits, and measuring text the way Slack may: one place for both.

The numbers are Slack's (Block Kit reference, `chat.postMessage`); `BLOCKS_TEXT_BUDGET` is ours.
Lengths are counted in UTF-16 code units, never less than what Slack counts, so anything that
fits here fits there. Truncation never splits an emoji sequence, an accent or an `&amp;` entity.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

MESSAGE_TEXT = 40_000  # chat.postMessage `text`
MAX_BLOCKS = 50  # blocks in one message
SECTION_TEXT = 3_000  # section block text
HEADER_TEXT = 150  # header block text
BUTTON_TEXT = 75  # button label
BUTTON_VALUE = 2_000  # button value
OPTION_TEXT = 75  # select option label
OPTION_VALUE = 150  # select option value
MAX_OPTIONS = 100  # options of a static select
MAX_CONTEXT_ELEMENTS = 10  # elements of a context block
URL = 3_000  # a button's url
# Slack also refuses messages whose blocks carry "too much" text in total (`msg_blocks_too_long`,
# undocumented, observed around 12,000-13,000 characters), so we keep all of a message's block
# strings under this and let the thread carry the rest.
BLOCKS_TEXT_BUDGET = 11_000

ELLIPSIS = "…"
NOTE_RESERVE = 200  # what `spill` leaves free in each message for a "continued in thread" note


def slack_len(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units (astral characters count twice)."""
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def blocks_text_size(blocks: Sequence[Any]) -> int:
    """Total length of every string in a block tree: what `BLOCKS_TEXT_BUDGET` bounds."""
    return sum(slack_len(value) for value in _strings(blocks))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def spill(
    blocks: Sequence[dict[str, Any]], *, budget: int = BLOCKS_TEXT_BUDGET, most: int = MAX_BLOCKS
) -> list[list[dict[str, Any]]]:
    """Blocks as consecutive messages that each fit Slack: the first is the message, the rest
    follow in its thread. Each keeps a block and NOTE_RESERVE characters free for a note."""
    messages: list[list[dict[str, Any]]] = [[]]
    used = 0
    for block in blocks:
        cost = blocks_text_size([block])
        full = len(messages[-1]) + 2 > most or used + cost + NOTE_RESERVE > budget
        if messages[-1] and full:
            messages.append([])
            used = 0
        if not messages[-1] and block.get("type") == "divider":
            continue  # a thread part does not start with a divider
        messages[-1].append(block)
        used += cost
    return messages


def truncate(text: str, limit: int) -> str:
    """`text` if it fits `limit` UTF-16 units, else as much as fits with an ellipsis.

    Safe for mrkdwn that is already escaped: a cut never lands inside an `&amp;` entity.
    """
    if slack_len(text) <= limit:
        return text
    end, used = 0, 0
    room = limit - slack_len(ELLIPSIS)
    for char in text[: room + 1]:  # no more characters than units can fit
        used += 2 if char > "\uffff" else 1
        if used > room:
            break
        end += 1
    end = grapheme_safe_cut(text, 0, end)
    entity = text.rfind("&", max(0, end - 4), end)
    if entity >= 0 and ";" not in text[entity:end]:
        end = entity
    return text[:end] + ELLIPSIS


def grapheme_safe_cut(text: str, start: int, end: int) -> int:
    """Move a hard cut back (a little) so it does not split an emoji sequence or accent."""
    for cut in range(end, max(start, end - 32), -1):
        if _is_safe_cut(text, cut):
            return cut
    return end


def _is_safe_cut(text: str, cut: int) -> bool:
    if cut >= len(text):
        return True
    before, after = text[cut - 1], text[cut]
    if (before, after) == ("\r", "\n") or before == "\u200d" or _extends(after):
        return False
    if _is_regional(before) and _is_regional(after):
        run = 0
        while cut - run - 1 >= 0 and _is_regional(text[cut - run - 1]):
            run += 1
        return run % 2 == 0
    return True


def _extends(char: str) -> bool:
    """Characters that belong to the previous one: joiners, selectors, skin tones, tags, marks."""
    code = ord(char)
    return (
        char == "\u200d"
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or 0xE0100 <= code <= 0xE01EF
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
    )


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF
