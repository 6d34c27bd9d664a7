"""Long user text laid out as the parent message's sections plus numbered thread replies.

Each field (comment, prompt, response, correction) gets part of the parent's text budget; what
does not fit follows in the thread, in order, each reply one mrkdwn text of at most 3,000
characters ("*Prompt (2/5)*" then the fenced chunk). Text is split on the raw (redacted) string,
each piece is then escaped and measured, so no split cuts an `&amp;` entity, a surrogate pair or
(where avoidable) an emoji sequence. Where the text splits never depends on the triage state, so
a thread resumed after a restart lines up with what was posted before.

Fences: user text inside ``` goes through `mrkdwn.defuse_fences` (a ZWSP after a backtick that
is followed by a backtick, and at the ends), which can be reversed exactly.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal

from bot.alerts.redaction import Redactor
from bot.slack.ids import BlockId
from bot.slack.limits import SECTION_TEXT, grapheme_safe_cut, slack_len, truncate
from bot.slack.mrkdwn import code_block, escape
from storage.events import EventView

REPLY_LABEL_RESERVE = 40  # "*Correction (1234/1234)*\n" fits
CONTINUATION_RESERVE = 48  # "\n_(continued in thread: 1234 more parts)_" fits
MIN_PIECE = 200  # never start a chunk in less room than this: move to the next part instead
ROLE_LABEL_CHARS = 50

Kind = Literal["code", "quote"]


@dataclass(frozen=True)
class _Segment:
    """A run of user text with an optional bold label (a chat message's role)."""

    label: str
    text: str


@dataclass(frozen=True)
class Field:
    """A titled piece of user text that may continue in the thread."""

    block_id: BlockId
    title: str
    kind: Kind
    segments: tuple[_Segment, ...]
    costs: tuple[list[int], ...]  # per segment, from _cumulative_costs


def _field(block_id: BlockId, title: str, kind: Kind, segments: tuple[_Segment, ...]) -> Field:
    costs = tuple(_cumulative_costs(segment.text, kind) for segment in segments)
    return Field(block_id, title, kind, segments, costs)


def text_fields(event: EventView, redactor: Redactor) -> list[Field]:
    """The event's user text, redacted, as the fields the alert shows."""
    fields: list[Field] = []
    if event.comment:
        comment = _Segment("", redactor.redact(event.comment))
        fields.append(_field(BlockId.COMMENT, "Comment", "quote", (comment,)))
    fields.append(_field(BlockId.PROMPT, "Prompt", "code", _prompt_segments(event, redactor)))
    response = _Segment("", redactor.redact(event.response))
    fields.append(_field(BlockId.RESPONSE, "Response", "code", (response,)))
    if event.correction:
        correction = _Segment("", redactor.redact(event.correction))
        fields.append(_field(BlockId.CORRECTION, "Correction", "code", (correction,)))
    return fields


def _prompt_segments(event: EventView, redactor: Redactor) -> tuple[_Segment, ...]:
    prompt = redactor.redact_prompt(event.prompt)
    if isinstance(prompt, str):
        return (_Segment("", prompt),)
    return tuple(
        _Segment(
            chat_role_label(message.get("role") if isinstance(message, dict) else None),
            chat_message_text(message),
        )
        for message in prompt
    ) or (_Segment("", ""),)


def chat_role_label(role: Any) -> str:
    """One-line, markup-free label for a chat message's role (shown bold before its content)."""
    text = " ".join(str(role if role is not None else "").split()).replace("*", "").replace("`", "")
    return truncate(text, ROLE_LABEL_CHARS) or "message"


def chat_message_text(message: Any) -> str:
    """The text shown for one chat message: its content, or JSON for anything structured."""
    if not isinstance(message, dict):
        return _json(message)
    content = message.get("content")
    text = content if isinstance(content, str) else "" if content is None else _json(content)
    extra = {key: value for key, value in message.items() if key not in ("role", "content")}
    if extra:
        text = f"{text}\n{_json(extra)}" if text else _json(extra)
    return text


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def render_field(field: Field, *, parent_budget: int) -> tuple[str, list[str]]:
    """Render a field as the parent's section text (within parent_budget) plus thread replies."""
    heading = f"*{field.title}*\n"
    first_budget = parent_budget - slack_len(heading) - CONTINUATION_RESERVE
    parts = _pack(field, first_budget, SECTION_TEXT - REPLY_LABEL_RESERVE)
    total = len(parts)
    parent = heading + "\n".join(parts[0])
    if total > 1:
        plural = "s" if total > 2 else ""
        parent += f"\n_(continued in thread: {total - 1} more part{plural})_"
    replies = [
        f"*{field.title} ({number}/{total})*\n" + "\n".join(part)
        for number, part in enumerate(parts[1:], start=2)
    ]
    return parent, replies


def _pack(field: Field, first_budget: int, reply_budget: int) -> list[list[str]]:
    """Lay the field's segments out as pieces in parts; part 0 is the parent, the rest replies."""
    parts: list[list[str]] = [[]]
    used = 0
    for segment, costs in zip(field.segments, field.costs, strict=True):
        fixed = _fixed_cost(field.kind)
        position, continued = 0, False
        while True:
            budget = first_budget if len(parts) == 1 else reply_budget
            prefix = _piece_prefix(segment.label, continued=continued)
            separator = 1 if parts[-1] else 0
            room = budget - used - separator - slack_len(prefix) - fixed
            fits = costs[-1] - costs[position] <= room
            # Too little room left here: continue in a fresh reply (the parent may stay empty).
            if not fits and room < MIN_PIECE and (parts[-1] or len(parts) == 1):
                parts.append([])
                used = 0
                continue
            end = len(segment.text) if fits else _cut(segment.text, position, costs, room)
            piece = prefix + _render(segment.text[position:end], field.kind)
            parts[-1].append(piece)
            used += separator + slack_len(piece)
            position, continued = end, True
            if position >= len(segment.text):
                break
            parts.append([])
            used = 0
    return parts


def _piece_prefix(label: str, *, continued: bool) -> str:
    if not label:
        return ""
    suffix = " _(continued)_" if continued else ""
    return f"*{escape(label)}*{suffix}\n"


def _render(text: str, kind: Kind) -> str:
    if kind == "code":
        return code_block(text)
    return "\n".join(">" + escape(line) for line in text.split("\n"))


def _fixed_cost(kind: Kind) -> int:
    """Per-piece overhead beyond the characters: fences plus a possible leading ZWSP, or '>'."""
    return 7 if kind == "code" else 1


# Upper bound of a raw character's rendered length: escapes, the ZWSP a backtick may get, the
# quote marker after a line break; astral characters count 2, everything else 1.
_CHAR_COSTS: dict[Kind, dict[str, int]] = {
    "code": {"&": 5, "<": 4, ">": 4, "`": 2},
    "quote": {"&": 5, "<": 4, ">": 4, "\n": 2},
}


def _cumulative_costs(text: str, kind: Kind) -> list[int]:
    """Prefix sums of character costs, so any chunk's upper bound is one subtraction."""
    table = _CHAR_COSTS[kind]
    costs = (table.get(char) or (2 if char > "\uffff" else 1) for char in text)
    return list(accumulate(costs, initial=0))


def _cut(text: str, start: int, costs: list[int], room: int) -> int:
    """Pick where a chunk starting at `start` ends: as far as fits, preferably at a line break."""
    end = bisect_right(costs, costs[start] + room) - 1
    end = max(end, start + 1)  # room >= MIN_PIECE, so this only guards against misuse
    half = start + (end - start) // 2
    newline = text.rfind("\n", start, end)
    if newline >= half:
        return newline + 1
    space = text.rfind(" ", start, end)
    if space >= half:
        return space + 1
    return grapheme_safe_cut(text, start, end)


def field_need(field: Field) -> int:
    """Upper bound of the field's section length if it were not split."""
    heading = slack_len(f"*{field.title}*\n")
    pieces = (
        slack_len(_piece_prefix(segment.label, continued=False))
        + costs[-1]
        + _fixed_cost(field.kind)
        + 1
        for segment, costs in zip(field.segments, field.costs, strict=True)
    )
    return heading + sum(pieces) + CONTINUATION_RESERVE


def allocate(needs: list[int], total: int) -> list[int]:
    """Share the parent's text budget: small fields get what they need, big ones split the rest."""
    floor = MIN_PIECE + 100
    budgets = [0] * len(needs)
    remaining = max(total, floor * len(needs))
    for done, index in enumerate(sorted(range(len(needs)), key=needs.__getitem__)):
        share = remaining // (len(needs) - done)
        budgets[index] = max(floor, min(needs[index], share, SECTION_TEXT))
        remaining -= budgets[index]
    return budgets
