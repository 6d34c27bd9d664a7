"""Alert message builders: pure functions from one downvote to Block Kit, within Slack's limits.

Layout of long text: the parent message shows the beginning of the comment, prompt, response and
correction; whatever does not fit follows as thread replies, in order, each one mrkdwn text of at
most 3,000 characters ("*Prompt (2/5)*" then the fenced chunk). Text is split on the raw
(redacted) string, each piece is then escaped and measured, so no split cuts an `&amp;` entity, a
surrogate pair or (where avoidable) an emoji sequence. Lengths are counted in UTF-16 code units,
which is never less than what Slack counts.

Fences: user text inside ``` goes through `mrkdwn.defuse_fences` (a ZWSP after a backtick that is
followed by a backtick, and at the ends), reversed exactly by `mrkdwn.restore_fences`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.actions import ActionId, BlockId, control_block_id
from bot.mrkdwn import ZWSP, code_block, escape, mention, slack_date, unescape
from bot.redact import Redactor

SECTION_TEXT_LIMIT = 3000
HEADER_TEXT_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
OPTION_TEXT_LIMIT = 75
OPTION_VALUE_LIMIT = 150
MAX_OPTIONS = 100
MAX_CONTEXT_ELEMENTS = 10
URL_LIMIT = 3000
# Slack also rejects messages whose blocks carry "too much" text in total (`msg_blocks_too_long`,
# undocumented, observed around 12,000-13,000 characters), so the parent keeps all strings in its
# blocks under this budget and lets the thread carry the rest.
BLOCKS_TEXT_BUDGET = 11_000
# The triage controls change after posting, but the split of the text must not (replies are
# resumed by number after a restart), so the text gets what is left after this fixed reserve.
CONTROLS_RESERVE = 5_000
OPTIONS_TEXT_BUDGET = 2_500  # picker options (text, value, type), selected ones first
STATE_CATEGORIES_CHARS = 600  # category list in the state line
REPLY_LABEL_RESERVE = 40  # "*Correction (1234/1234)*\n" fits
CONTINUATION_RESERVE = 48  # "\n_(continued in thread: 1234 more parts)_" fits
MIN_PIECE = 200  # never start a chunk in less room than this: move to the next part instead
FALLBACK_TEXT_CHARS = 300
METADATA_ID_CHARS = 128
INLINE_CHARS = 200  # model, user id, app… in the context line
EVENT_TYPE = "downvote_alert"

STATUS_LABELS = {
    "new": "New",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "not_a_model_issue": "Not a model issue",
}

Kind = Literal["code", "quote"]
Block = dict[str, Any]


@dataclass(frozen=True)
class AlertContent:
    """What the alert shows; built by the caller from the stored event (unredacted)."""

    event_id: int
    external_id: str
    app_name: str
    feature: str | None
    model: str | None
    latency_ms: float | None
    confidence: float | None
    user_id: str | None
    occurred_at: datetime
    comment: str | None
    prompt: str | list[dict[str, Any]]
    response: str
    trace_url: str | None
    correction: str | None


@dataclass(frozen=True)
class TriageView:
    """Current triage state, rendered under the controls (Slack user ids become mentions)."""

    categories: tuple[str, ...] = ()
    status: str = "new"  # new | acknowledged | resolved | not_a_model_issue
    assignee: str | None = None
    last_actor: str | None = None
    last_action_at: datetime | None = None
    notes: int = 0


@dataclass(frozen=True)
class AlertMessage:
    """One alert: the parent message plus the thread replies that carry the rest of the text."""

    text: str
    blocks: list[Block]
    replies: list[str]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class _Segment:
    """A run of user text with an optional bold label (a chat message's role)."""

    label: str
    text: str


@dataclass(frozen=True)
class _Field:
    """A titled piece of user text that may continue in the thread."""

    block_id: BlockId
    title: str
    kind: Kind
    segments: tuple[_Segment, ...]
    costs: tuple[list[int], ...]  # per segment, from _cumulative_costs


def _field(block_id: BlockId, title: str, kind: Kind, segments: tuple[_Segment, ...]) -> _Field:
    costs = tuple(_cumulative_costs(segment.text, kind) for segment in segments)
    return _Field(block_id, title, kind, segments, costs)


# ---------------------------------------------------------------------------------------------
# Public API


def alert_message(
    content: AlertContent,
    *,
    triage: TriageView = TriageView(),
    categories: Sequence[str],
    redactor: Redactor,
) -> AlertMessage:
    """Build the alert (parent blocks, thread replies, metadata) for one downvote."""
    fields = _fields(content, redactor)
    head = _head_blocks(content, redactor)
    trace = _trace_blocks(content)
    content_budget = BLOCKS_TEXT_BUDGET - CONTROLS_RESERVE - blocks_text_size([*head, *trace])
    budgets = _allocate([_field_need(field) for field in fields], content_budget)
    sections: list[Block] = []
    replies: list[str] = []
    for field, budget in zip(fields, budgets, strict=True):
        parent_text, field_replies = _render_field(field, parent_budget=budget)
        sections.append(_section(parent_text, block_id=field.block_id))
        replies.extend(field_replies)
    return AlertMessage(
        text=_fallback_text(content, redactor),
        blocks=[*head, *sections, *trace, *triage_blocks(content.event_id, triage, categories)],
        replies=replies,
        metadata=alert_metadata(content),
    )


def alert_metadata(content: AlertContent) -> dict[str, Any]:
    """Message metadata that lets listeners and history scans find the event behind a message."""
    external_id = content.external_id[:METADATA_ID_CHARS]  # metadata must stay small
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"event_id": content.event_id, "external_id": external_id},
    }


def reply_blocks(reply: str) -> list[Block]:
    """Blocks for posting one thread reply (verbatim, so nothing in it is auto-linked)."""
    return [_section(reply)]


def chat_role_label(role: Any) -> str:
    """One-line, markup-free label for a chat message's role (shown bold before its content)."""
    text = " ".join(str(role if role is not None else "").split()).replace("*", "").replace("`", "")
    return _truncate_raw(text, 50) or "message"


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


def slack_len(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units (astral characters count twice)."""
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def blocks_text_size(blocks: Sequence[Any]) -> int:
    """Total length of every string in a block tree, measured the way we budget the parent."""
    return sum(slack_len(value) for value in _strings(blocks))


def message_as_text(msg: AlertMessage) -> str:
    """Render an alert readably for the console (preview mode, no Slack token)."""
    lines = [_block_as_text(block) for block in msg.blocks]
    for number, reply in enumerate(msg.replies, start=1):
        lines.append(f"--- thread reply {number}/{len(msg.replies)} ---\n{reply}")
    return _plain("\n".join(line for line in lines if line))


# ---------------------------------------------------------------------------------------------
# Fields and splitting


def _fields(content: AlertContent, redactor: Redactor) -> list[_Field]:
    fields: list[_Field] = []
    if content.comment:
        comment = _Segment("", redactor.redact(content.comment))
        fields.append(_field(BlockId.COMMENT, "Comment", "quote", (comment,)))
    fields.append(_field(BlockId.PROMPT, "Prompt", "code", _prompt_segments(content, redactor)))
    response = _Segment("", redactor.redact(content.response))
    fields.append(_field(BlockId.RESPONSE, "Response", "code", (response,)))
    if content.correction:
        correction = _Segment("", redactor.redact(content.correction))
        fields.append(_field(BlockId.CORRECTION, "Correction", "code", (correction,)))
    return fields


def _prompt_segments(content: AlertContent, redactor: Redactor) -> tuple[_Segment, ...]:
    prompt = redactor.redact_prompt(content.prompt)
    if isinstance(prompt, str):
        return (_Segment("", prompt),)
    return tuple(
        _Segment(
            chat_role_label(message.get("role") if isinstance(message, dict) else None),
            chat_message_text(message),
        )
        for message in prompt
    ) or (_Segment("", ""),)


def _render_field(field: _Field, *, parent_budget: int) -> tuple[str, list[str]]:
    """Render a field as the parent's section text (within parent_budget) plus thread replies."""
    heading = f"*{field.title}*\n"
    first_budget = parent_budget - slack_len(heading) - CONTINUATION_RESERVE
    parts = _pack(field, first_budget, SECTION_TEXT_LIMIT - REPLY_LABEL_RESERVE)
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


def _pack(field: _Field, first_budget: int, reply_budget: int) -> list[list[str]]:
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
    return _grapheme_safe(text, start, end)


def _grapheme_safe(text: str, start: int, end: int) -> int:
    """Move a hard cut back (a little) so it does not split an emoji sequence or accent."""
    for cut in range(end, max(start, end - 32), -1):
        if _is_safe_cut(text, cut):
            return cut
    return end


def _is_safe_cut(text: str, cut: int) -> bool:
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


def _field_need(field: _Field) -> int:
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


def _allocate(needs: list[int], total: int) -> list[int]:
    """Share the parent's text budget: small fields get what they need, big ones split the rest."""
    floor = MIN_PIECE + 100
    budgets = [0] * len(needs)
    remaining = max(total, floor * len(needs))
    for done, index in enumerate(sorted(range(len(needs)), key=needs.__getitem__)):
        share = remaining // (len(needs) - done)
        budgets[index] = max(floor, min(needs[index], share, SECTION_TEXT_LIMIT))
        remaining -= budgets[index]
    return budgets


# ---------------------------------------------------------------------------------------------
# Head: header, context, fallback text


def _head_blocks(content: AlertContent, redactor: Redactor) -> list[Block]:
    header_raw = f"👎 {_one_line(redactor.redact(content.app_name)) or 'unnamed app'}"
    if content.feature:
        header_raw += f" · {_one_line(redactor.redact(content.feature))}"
    header = {
        "type": "header",
        "text": {"type": "plain_text", "text": _truncate_escaped(header_raw, HEADER_TEXT_LIMIT)},
    }
    return [header, _context(_meta_elements(content, redactor))]


def _meta_elements(content: AlertContent, redactor: Redactor) -> list[str]:
    elements: list[str] = []
    if content.model:
        elements.append(f"*Model:* {_inline(redactor.redact(content.model))}")
    if content.latency_ms is not None:
        elements.append(f"*Latency:* {content.latency_ms:,.0f} ms")
    if content.confidence is not None:
        elements.append(f"*Confidence:* {content.confidence:.2f}")
    if content.user_id:
        elements.append(f"*User:* {_inline(redactor.redact(content.user_id))}")
    elements.append(slack_date(content.occurred_at))
    elements.append(f"*Event:* {_inline(content.external_id)}")
    if content.trace_url and not _is_link(content.trace_url):
        elements.append(f"*Trace:* {_inline(redactor.redact(content.trace_url))}")
    return elements


def _fallback_text(content: AlertContent, redactor: Redactor) -> str:
    """Short notification text (push, unread list); the blocks carry the real content."""
    text = f"👎 {content.app_name}"
    if content.feature:
        text += f" · {content.feature}"
    if content.comment:
        text += f": {content.comment}"
    return _truncate_escaped(_one_line(redactor.redact(text)), FALLBACK_TEXT_CHARS)


# ---------------------------------------------------------------------------------------------
# Controls: trace link, category picker, buttons, state line


def _trace_blocks(content: AlertContent) -> list[Block]:
    if not (content.trace_url and _is_link(content.trace_url)):
        return []
    trace = _button("Open trace", ActionId.OPEN_TRACE, content.event_id)
    trace["url"] = content.trace_url
    return [{"type": "actions", "block_id": BlockId.TRACE.value, "elements": [trace]}]


def triage_blocks(event_id: int, triage: TriageView, categories: Sequence[str]) -> list[Block]:
    """The triage part of the alert (divider, picker, buttons, state line): what updates change."""
    revision = _revision(triage, categories)
    picker: list[Block] = []
    select = _category_select(triage.categories, categories)
    if select is not None:
        picker.append(select)
    picker.append(_button("New category…", ActionId.NEW_CATEGORY, event_id))
    state = _context([_triage_state(triage)])
    state["block_id"] = BlockId.STATE.value
    return [
        {"type": "divider"},
        _actions(BlockId.CATEGORIES, event_id, revision, picker),
        _actions(BlockId.CONTROLS, event_id, revision, _triage_buttons(event_id, triage)),
        state,
    ]


def _triage_buttons(event_id: int, triage: TriageView) -> list[Block]:
    resolved = triage.status == "resolved"
    not_model = triage.status == "not_a_model_issue"
    resolve = _button("Reopen" if resolved else "Resolved", ActionId.RESOLVE, event_id)
    if not resolved:
        resolve["style"] = "primary"
    label = "Mark as model issue" if not_model else "Not a model issue"
    return [
        resolve,
        _button(label, ActionId.NOT_MODEL_ISSUE, event_id),
        _button("Assign to me", ActionId.ASSIGN_ME, event_id),
        _button("Add note", ActionId.ADD_NOTE, event_id),
    ]


def _category_select(selected: Sequence[str], categories: Sequence[str]) -> Block | None:
    names = _picker_names(selected, categories)
    if not names:
        return None
    options = {name: _option(name) for name in names}
    select: Block = {
        "type": "multi_static_select",
        "action_id": ActionId.CATEGORIES.value,
        "placeholder": {"type": "plain_text", "text": "Edge-case categories"},
        "options": list(options.values()),
    }
    initial = [options[name] for name in dict.fromkeys(selected) if name in options]
    if initial:
        select["initial_options"] = initial
    return select


def _picker_names(selected: Sequence[str], categories: Sequence[str]) -> list[str]:
    """Options in configured order; selected ones always kept within Slack's 100 / our size cap."""
    usable = [name for name in dict.fromkeys([*categories, *selected]) if _usable_value(name)]
    chosen = set(selected)
    keep: set[str] = set()
    size = 0
    for name in sorted(usable, key=lambda name: name not in chosen):  # selected first, stable
        cost = slack_len(name) + slack_len(_option_text(name)) + len("plain_text")
        if len(keep) < MAX_OPTIONS and size + cost <= OPTIONS_TEXT_BUDGET:
            keep.add(name)
            size += cost
    return [name for name in usable if name in keep]


def _usable_value(name: str) -> bool:
    return 0 < len(name) <= OPTION_VALUE_LIMIT and bool(name.strip())


def _option(name: str) -> Block:
    return {"text": {"type": "plain_text", "text": _option_text(name)}, "value": name}


def _option_text(name: str) -> str:
    return _truncate_escaped(_one_line(name), OPTION_TEXT_LIMIT)


def _triage_state(triage: TriageView) -> str:
    """One line: categories, status, assignee, who acted last and when, notes."""
    names = _one_line(", ".join(triage.categories))
    names = _truncate_escaped(names, STATE_CATEGORIES_CHARS) if names else "none"
    status = STATUS_LABELS.get(triage.status) or _inline(triage.status)
    parts = [f"*Categories:* {names}", f"*Status:* {status}"]
    parts.append(f"*Assigned:* {_who(triage.assignee) if triage.assignee else 'nobody'}")
    if triage.last_actor:
        by = f"by {_who(triage.last_actor)}"
        if triage.last_action_at is not None:
            by += f" at {slack_date(triage.last_action_at)}"
        parts.append(by)
    if triage.notes:
        parts.append(f"*Notes:* {triage.notes}")
    return " · ".join(parts)


def _who(user_id: str) -> str:
    """A Slack member as a mention; anything else as short escaped text."""
    return mention(user_id) if mention(user_id).startswith("<@") else _inline(user_id)


def _revision(triage: TriageView, categories: Sequence[str]) -> str:
    """Short digest of what the controls show: a new block id per state defeats client caching."""
    state = repr((triage, tuple(categories))).encode("utf-8", errors="surrogatepass")
    return hashlib.blake2s(state, digest_size=4).hexdigest()


# ---------------------------------------------------------------------------------------------
# Small Block Kit builders


def _section(text: str, *, block_id: BlockId | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    if block_id is not None:
        block["block_id"] = block_id.value
    return block


def _context(texts: Sequence[str]) -> Block:
    elements = [{"type": "mrkdwn", "text": text, "verbatim": True} for text in texts]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS]}


def _actions(block: BlockId, event_id: int, revision: str, elements: list[Block]) -> Block:
    block_id = control_block_id(block, event_id, revision)
    return {"type": "actions", "block_id": block_id, "elements": elements}


def _button(text: str, action: ActionId, event_id: int) -> Block:
    return {
        "type": "button",
        "action_id": action.value,
        "text": {"type": "plain_text", "text": _truncate_escaped(text, BUTTON_TEXT_LIMIT)},
        "value": str(event_id),
    }


# ---------------------------------------------------------------------------------------------
# Text helpers


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _inline(text: str) -> str:
    """Escaped single-line rendering of a short user value (model, user id, app…)."""
    return _truncate_escaped(_one_line(text), INLINE_CHARS)


def _truncate_raw(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: _grapheme_safe(text, 0, limit - 1)] + "…"


def _truncate_escaped(text: str, limit: int) -> str:
    """Escape text, cutting the raw text first (never an entity) so the result fits `limit`."""
    escaped = escape(text)
    if slack_len(escaped) <= limit:
        return escaped
    costs = _cumulative_costs(text, "quote")  # escape costs; text here is single-line
    end = bisect_right(costs, limit - 1) - 1
    return escape(text[: _grapheme_safe(text, 0, end) if end > 0 else 0]) + "…"


def _is_link(url: str) -> bool:
    """A trace URL Slack accepts on a button: http(s), no spaces, within the length limit."""
    if len(url) > URL_LIMIT or any(char.isspace() for char in url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


# ---------------------------------------------------------------------------------------------
# Console rendering

_DATE_RE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_MENTION_RE = re.compile(r"<@([A-Z0-9]+)>")


def _block_as_text(block: Block) -> str:
    kind = block.get("type")
    if kind in ("header", "section"):
        return str(block["text"]["text"])
    if kind == "context":
        return " · ".join(str(element["text"]) for element in block["elements"])
    if kind == "divider":
        return "─" * 40
    if kind == "actions":
        return "  ".join(_element_as_text(element) for element in block["elements"])
    return ""


def _element_as_text(element: Block) -> str:
    if element.get("type") == "multi_static_select":
        chosen = {option["value"] for option in element.get("initial_options", [])}
        marks = (
            f"[{'x' if option['value'] in chosen else ' '}] {option['text']['text']}"
            for option in element["options"]
        )
        return "Categories: " + ", ".join(marks)
    label = f"[{element['text']['text']}]"
    return f"{label} {element['url']}" if "url" in element else label


def _plain(text: str) -> str:
    """Turn our mrkdwn back into readable console text (dates, mentions, entities, ZWSPs)."""
    text = _DATE_RE.sub(r"\1", text)
    text = _MENTION_RE.sub(r"@\1", text)
    return unescape(text).replace(ZWSP, "")
