"""Alert message: within Slack's limits, inert, and the full text survives the split."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient

from bot.alerts.controls import triage_blocks
from bot.alerts.message import AlertMessage, alert_message
from bot.alerts.preview import message_as_text
from bot.alerts.redaction import Redactor
from bot.alerts.splitting import chat_message_text, chat_role_label
from bot.config import DEFAULT_CATEGORIES
from bot.slack.ids import ActionId, BlockId, parse_block_id
from bot.slack.limits import blocks_text_size, slack_len
from bot.slack.mrkdwn import ZWSP, unescape
from storage.events import EventView
from storage.states import TriageStatus
from storage.triage import TriageSnapshot
from tests.support.fake_slack import FakeSlack
from tests.support.mrkdwn import restore_fences

HOSTILE = "<!channel> <@U123> <https://evil|click> &amp; <!here|here> <#C1> ```"
ASSIGNEE, ACTOR = "U012AB3CD", "W0123ABC"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def content(**changes: Any) -> EventView:
    base = EventView(
        id=42,
        app_id=1,
        received_at=NOW,
        external_id="fb_01H",
        app="shop",
        feature="summarize",
        model="gpt-x-2026-01",
        latency_ms=840.0,
        confidence=0.93,
        user_id="u_42",
        occurred_at=NOW,
        comment="It invented a citation",
        prompt="Summarise this",
        response="Here is a summary",
        trace_url="https://trace.example.com/abc",
        correction=None,
    )
    return replace(base, **changes)


def build(alert: EventView, triage: TriageSnapshot | None = None, **kwargs: Any) -> AlertMessage:
    return alert_message(
        alert,
        triage=triage or TriageSnapshot(),
        categories=kwargs.pop("categories", DEFAULT_CATEGORIES),
        redactor=kwargs.pop("redactor", Redactor()),
    )


# ---------------------------------------------------------------------------------------------
# Checks shared by the tests


def assert_within_limits(msg: AlertMessage) -> None:
    """Every limit the real Slack enforces (plus our budget for the undocumented total)."""
    assert 0 < slack_len(msg.text) <= 40_000
    assert 0 < len(msg.blocks) <= 50
    # msg_blocks_too_long: "12,000 text characters with a buffer for block containers" (Slack
    # staff); every string counted, astral characters twice, so this is the strict side.
    assert blocks_text_size(msg.blocks) <= 12_000
    block_ids = [block["block_id"] for block in msg.blocks if "block_id" in block]
    assert len(block_ids) == len(set(block_ids))
    assert all(len(block_id) <= 255 for block_id in block_ids)
    for block in msg.blocks:
        check_block(block)
    for reply in msg.replies:
        assert 0 < slack_len(reply) <= 3000
    assert msg.metadata["event_type"] == "downvote_alert"
    assert len(json.dumps(msg.metadata)) <= 2000  # as sent (ASCII-escaped), any external id


def check_block(block: dict[str, Any]) -> None:
    kind = block["type"]
    if kind == "header":
        assert block["text"]["type"] == "plain_text"
        assert 0 < slack_len(block["text"]["text"]) <= 150
    elif kind == "section":
        assert block["text"]["verbatim"] is True
        assert 0 < slack_len(block["text"]["text"]) <= 3000
    elif kind == "context":
        assert 0 < len(block["elements"]) <= 10
        for element in block["elements"]:
            assert element["verbatim"] is True
            assert 0 < slack_len(element["text"]) <= 3000
    elif kind == "actions":
        assert 0 < len(block["elements"]) <= 25
        for element in block["elements"]:
            check_element(element)
    else:
        assert kind == "divider"


def check_element(element: dict[str, Any]) -> None:
    if element["type"] == "button":
        assert 0 < slack_len(element["text"]["text"]) <= 75
        assert element["value"] == "42" or element["value"].isdigit()
        assert len(element.get("url", "")) <= 3000
        return
    assert element["action_id"] == ActionId.CATEGORIES
    for option in [*element.get("options", []), *element.get("initial_options", [])]:
        assert 0 < slack_len(option["text"]["text"]) <= 75
        assert 0 < len(option["value"]) <= 150
    if element["type"] == "multi_external_select":  # options come from block_suggestion
        assert "options" not in element and element["min_query_length"] == 0
        return
    assert element["type"] == "multi_static_select"
    options = element["options"]
    assert 0 < len(options) <= 100
    assert len({option["value"] for option in options}) == len(options)
    assert all(option in options for option in element.get("initial_options", []))


def rendered_strings(msg: AlertMessage) -> Iterator[str]:
    """Every string Slack renders: block texts (not option values or urls), fallback, replies."""
    yield msg.text
    yield from msg.replies
    yield from _texts(msg.blocks)


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            elif key not in ("value", "url"):
                yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


# Triage ids come from Slack itself, so any well-formed member id may be mentioned.
ALLOWED_MARKUP = re.compile(
    r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>]*>|<@[UW][A-Z0-9]{2,20}>"
)


def assert_inert(msg: AlertMessage) -> None:
    """Only our own markup (dates, triage mentions) may use `<`; every `&` starts an entity."""
    for text in rendered_strings(msg):
        rest = ALLOWED_MARKUP.sub("", text)
        assert "<" not in rest and ">" not in rest.replace("\n>", "\n").removeprefix(">"), text
        assert re.fullmatch(r"(?:[^&]|&(?:amp|lt|gt);)*", text, re.S), text


# ---------------------------------------------------------------------------------------------
# Reassembly: parse parent + replies back into the text they carry

PIECE_RE = re.compile(
    r"(?:\*(?P<label>[^*\n]*)\*(?P<cont> _\(continued\)_)?\n)?```(?P<body>.*?)```", re.S
)
REPLY_RE = re.compile(r"\*(?P<title>\w+) \((?P<number>\d+)/(?P<total>\d+)\)\*\n")
CONTINUED_RE = re.compile(r"\n_\(continued in thread: (\d+) more parts?\)_\Z")


def field_parts(msg: AlertMessage, block_id: BlockId, title: str) -> list[str]:
    """The parent's section body for a field, then its replies' bodies, checked for order."""
    [section] = [block for block in msg.blocks if block.get("block_id") == block_id]
    text = section["text"]["text"]
    assert text.startswith(f"*{title}*\n")
    body = text.removeprefix(f"*{title}*\n")
    more = CONTINUED_RE.search(body)
    total = 1 + (int(more.group(1)) if more else 0)
    bodies = [body[: more.start()] if more else body]
    for reply in msg.replies:
        head = REPLY_RE.match(reply)
        assert head is not None, reply
        if head.group("title") == title:
            assert int(head.group("number")) == len(bodies) + 1
            assert int(head.group("total")) == total
            bodies.append(reply[head.end() :])
    assert len(bodies) == total
    return bodies


def reassemble_code(bodies: list[str]) -> list[tuple[str, str]]:
    """Fenced pieces back to (label, text) segments; continuation pieces join their segment."""
    segments: list[tuple[str, str]] = []
    for body in bodies:
        position = 0
        for match in PIECE_RE.finditer(body):
            assert body[position : match.start()] in ("", "\n"), "stray text between pieces"
            position = match.end()
            label = unescape(match.group("label") or "")
            text = restore_fences(unescape(match.group("body")))
            continues = match.group("cont") or (segments and not label)
            if continues:
                assert segments[-1][0] == label
                segments[-1] = (label, segments[-1][1] + text)
            else:
                segments.append((label, text))
        assert position == len(body), "stray text after the last piece"
    return segments


def reassemble_quote(bodies: list[str]) -> str:
    lines = [line for body in bodies for line in body.split("\n")]
    assert all(line.startswith(">") for line in lines)
    chunks = ["\n".join(line[1:] for line in body.split("\n")) for body in bodies]
    return unescape("".join(chunks))


def reassemble(msg: AlertMessage) -> tuple[str, str]:
    """Recover the (redacted) text prompt and response from the parent and its replies."""
    [(_, prompt)] = reassemble_code(field_parts(msg, BlockId.PROMPT, "Prompt"))
    [(_, response)] = reassemble_code(field_parts(msg, BlockId.RESPONSE, "Response"))
    return prompt, response


# ---------------------------------------------------------------------------------------------
# Strategies

FRAGMENTS = [
    HOSTILE,
    "&",
    "<",
    ">",
    "`",
    "``",
    "```",
    ZWSP,
    "\n",
    "\r\n",
    "👨‍👩‍👧",
    "🇫🇷🇩🇪",
    "e\u0301",
    "\U0001d54f",
    "    indented code;\n",
    "bob@example.com",
    "sk-abcdefghijklmnopqrstuvwxyz012345",
]
pieces = st.lists(
    st.one_of(st.text(max_size=20), st.sampled_from(FRAGMENTS)), min_size=0, max_size=12
).map("".join)
# Up to ~100 KB: a random piece repeated, so huge inputs stay cheap to generate.
big_text = st.builds(
    lambda piece, times: (piece * times)[:100_000],
    pieces,
    st.sampled_from([1, 1, 1, 3, 40, 400, 4000]),
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
chat_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant", "tool"]) | st.text(max_size=60),
        "content": big_text | json_value,
    }
)
chat_prompt = st.lists(chat_message, max_size=6)
optional_text = st.none() | big_text
alerts = st.builds(
    EventView,
    id=st.integers(1, 2**53),
    app_id=st.just(1),
    received_at=st.just(NOW),
    external_id=st.text(max_size=300),
    app=st.text(max_size=300),
    feature=st.none() | st.text(max_size=300),
    model=st.none() | st.text(max_size=300),
    latency_ms=st.none() | st.floats(allow_nan=False, allow_infinity=False, min_value=0),
    confidence=st.none() | st.floats(0, 1),
    user_id=st.none() | st.text(max_size=300),
    occurred_at=st.datetimes(timezones=st.just(UTC)),
    comment=optional_text,
    prompt=big_text | chat_prompt,
    response=big_text,
    trace_url=st.none() | st.sampled_from(["https://t.example/x", "javascript:alert(1)", HOSTILE]),
    correction=optional_text,
)
triages = st.builds(
    TriageSnapshot,
    categories=st.lists(st.sampled_from([*DEFAULT_CATEGORIES, "<!channel> & co"]), max_size=4).map(
        tuple
    ),
    status=st.sampled_from(TriageStatus),
    assignee=st.none() | st.just(ASSIGNEE),
    last_actor=st.none() | st.just(ACTOR),
    last_action_at=st.none() | st.just(NOW),
    notes=st.integers(0, 5),
)


# ---------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alert=alerts, triage=triages, redact=st.booleans())
def test_any_alert_fits_slack_and_keeps_every_character(
    alert: EventView, triage: TriageSnapshot, redact: bool
) -> None:
    redactor = Redactor(enabled=redact)
    msg = build(alert, triage, redactor=redactor)
    assert_within_limits(msg)
    assert_inert(msg)

    prompt = redactor.redact_prompt(alert.prompt)
    segments = reassemble_code(field_parts(msg, BlockId.PROMPT, "Prompt"))
    if isinstance(prompt, str):
        assert segments == [("", prompt)]
    else:
        expected = [(chat_role_label(m["role"]), chat_message_text(m)) for m in prompt]
        assert segments == (expected or [("", "")])
    [(_, response)] = reassemble_code(field_parts(msg, BlockId.RESPONSE, "Response"))
    assert response == redactor.redact(alert.response)
    if alert.comment:
        comment = reassemble_quote(field_parts(msg, BlockId.COMMENT, "Comment"))
        assert comment == redactor.redact(alert.comment)
    if alert.correction:
        [(_, correction)] = reassemble_code(field_parts(msg, BlockId.CORRECTION, "Correction"))
        assert correction == redactor.redact(alert.correction)


any_categories = st.lists(
    st.text(max_size=160) | st.sampled_from(["&" * 150, "<!channel>" * 15, "🇫🇷" * 75]),
    max_size=300,
)
any_user = st.none() | st.just(ASSIGNEE) | st.text(max_size=500)
wild_triages = st.builds(
    TriageSnapshot,
    categories=st.lists(st.text(max_size=160), max_size=50).map(tuple),
    status=st.text(max_size=300),
    assignee=any_user,
    last_actor=any_user,
    last_action_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    notes=st.integers(0, 10**6),
)
LONG_ALERT = content(
    comment="c" * 5000, prompt="p&" * 8000, response="r<" * 8000, correction="x" * 9000
)
LONG_BASELINE = build(LONG_ALERT)


@settings(max_examples=40, deadline=None)
@given(triage=wild_triages | triages, categories=any_categories)
def test_triage_state_never_moves_the_split_and_keeps_the_alert_within_slack(
    triage: TriageSnapshot, categories: list[str]
) -> None:
    """Replies are resumed by number after a restart, so they must not depend on triage; and
    whatever the triage shows, the updated alert is one Slack takes."""
    controls = triage_blocks(42, triage, categories)
    msg = build(LONG_ALERT, triage, categories=categories)
    assert_within_limits(msg)
    assert_inert(msg)
    assert msg.replies == LONG_BASELINE.replies
    content_blocks = len(LONG_BASELINE.blocks) - len(controls)
    assert msg.blocks[:content_blocks] == LONG_BASELINE.blocks[:content_blocks]


def test_hostile_60kb_prompt_is_inert_and_complete() -> None:
    line = "def f(x):  # 🎉👨‍👩‍👧 <!channel> <@U123> <https://evil|click> a && b ``` \n"
    prompt = (line * 1000)[:60_000]
    alert = content(prompt=prompt, response=HOSTILE * 50, comment=HOSTILE, app=HOSTILE)
    msg = build(alert)
    assert_within_limits(msg)
    assert_inert(msg)
    everything = "\n".join(rendered_strings(msg)) + json.dumps(msg.blocks)
    for forbidden in ("<!channel", "<!here", "<@U123", "<http", "<#C1"):
        assert forbidden not in everything
    assert reassemble(msg) == (prompt, HOSTILE * 50)
    assert len(msg.replies) > 10


def test_small_alert_needs_no_thread() -> None:
    msg = build(content())
    assert msg.replies == []
    assert reassemble(msg) == ("Summarise this", "Here is a summary")
    assert "continued in thread" not in json.dumps(msg.blocks)


def test_parent_announces_how_many_parts_follow() -> None:
    msg = build(content(prompt="x" * 20_000))
    [prompt] = [block for block in msg.blocks if block.get("block_id") == BlockId.PROMPT]
    more = len([reply for reply in msg.replies if reply.startswith("*Prompt (")])
    assert prompt["text"]["text"].endswith(f"_(continued in thread: {more} more parts)_")
    assert msg.replies[0].startswith(f"*Prompt (2/{more + 1})*\n```")


def test_splits_prefer_line_breaks() -> None:
    prompt = "".join(f"line {number:05d} of the prompt\n" for number in range(2000))
    msg = build(content(prompt=prompt))
    for body in field_parts(msg, BlockId.PROMPT, "Prompt"):
        [(_, chunk)] = reassemble_code([body])
        assert chunk.endswith("\n")


def test_splits_never_break_an_emoji_sequence() -> None:
    family = "👨‍👩‍👧"
    msg = build(content(response=family * 5000))
    for body in field_parts(msg, BlockId.RESPONSE, "Response"):
        [(_, chunk)] = reassemble_code([body])
        assert chunk and chunk.count(family) * len(family) == len(chunk)


def test_chat_prompt_shows_roles_in_bold_and_json_for_structured_content() -> None:
    prompt = [
        {"role": "system", "content": "Be brief <!channel>"},
        {"role": "user", "content": [{"type": "text", "text": "Hi bob@example.com"}]},
    ]
    msg = build(content(prompt=prompt))
    [section] = [block for block in msg.blocks if block.get("block_id") == BlockId.PROMPT]
    text = section["text"]["text"]
    assert text.startswith("*Prompt*\n*system*\n```Be brief &lt;!channel&gt;```\n*user*\n```")
    [_, (_, user_text)] = reassemble_code(field_parts(msg, BlockId.PROMPT, "Prompt"))
    assert json.loads(user_text) == [{"type": "text", "text": "Hi [redacted email]"}]


def test_long_chat_message_continues_under_its_role() -> None:
    prompt = [{"role": "user", "content": "a" * 9000}, {"role": "assistant", "content": "ok"}]
    msg = build(content(prompt=prompt))
    assert any(reply.count("*user* _(continued)_\n```") == 1 for reply in msg.replies)
    segments = reassemble_code(field_parts(msg, BlockId.PROMPT, "Prompt"))
    assert segments == [("user", "a" * 9000), ("assistant", "ok")]


def test_text_is_redacted_before_it_is_shown() -> None:
    alert = content(
        comment="mail me: bob@example.com",
        prompt="key sk-abcdefghijklmnopqrstuvwxyz012345",
        response="card 4111 1111 1111 1111",
        user_id="bob@example.com",
    )
    dump = json.dumps(build(alert).blocks)
    for secret in ("bob@example.com", "sk-abcdefghij", "4111 1111"):
        assert secret not in dump
    assert "[redacted email]" in dump and "[redacted card]" in dump


def test_header_is_truncated_with_an_ellipsis_without_cutting_an_entity() -> None:
    msg = build(content(app="&" * 200, feature=None))
    header = msg.blocks[0]["text"]["text"]
    assert header.endswith("&amp;…") and slack_len(header) <= 150


def test_context_shows_metadata_and_a_localised_time() -> None:
    context = build(content()).blocks[1]
    texts = [element["text"] for element in context["elements"]]
    assert "*Model:* gpt-x-2026-01" in texts
    assert "*Latency:* 840 ms" in texts
    assert "*Confidence:* 0.93" in texts
    assert "*User:* u_42" in texts
    assert any(text.startswith(f"<!date^{int(NOW.timestamp())}^") for text in texts)


def test_triage_controls_reflect_state() -> None:
    triage = TriageSnapshot(
        categories=("refusal", "custom one"),
        status=TriageStatus.RESOLVED,
        assignee=ASSIGNEE,
        last_actor=ACTOR,
        last_action_at=NOW,
        notes=2,
    )
    msg = build(content(), triage)
    buttons = {
        element["action_id"]: element
        for block in msg.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }
    assert buttons[ActionId.RESOLVE]["text"]["text"] == "Reopen"
    assert "style" not in buttons[ActionId.RESOLVE]
    select = buttons[ActionId.CATEGORIES]
    assert [o["value"] for o in select["initial_options"]] == ["refusal", "custom one"]
    assert select["options"][-1]["value"] == "custom one"  # kept although not configured
    for action in (ActionId.NEW_CATEGORY, ActionId.ASSIGN_ME, ActionId.ADD_NOTE):
        assert buttons[action]["value"] == "42"
    state = msg.blocks[-1]["elements"][0]["text"]
    assert state.startswith("*Categories:* refusal, custom one · *Status:* Resolved")
    assert f"*Assigned:* <@{ASSIGNEE}>" in state and f"by <@{ACTOR}> at <!date^" in state
    assert "*Notes:* 2" in state


def test_open_state_offers_resolve_and_not_a_model_issue() -> None:
    msg = build(content())
    buttons = [e for b in msg.blocks if b["type"] == "actions" for e in b["elements"]]
    labels = {e["action_id"]: e["text"]["text"] for e in buttons if e["type"] == "button"}
    assert labels[ActionId.RESOLVE] == "Resolved"
    assert labels[ActionId.NOT_MODEL_ISSUE] == "Not a model issue"
    assert labels[ActionId.NEW_CATEGORY] == "New category…"
    resolve = next(e for e in buttons if e["action_id"] == ActionId.RESOLVE)
    assert resolve["style"] == "primary"
    flipped = build(content(), TriageSnapshot(status=TriageStatus.NOT_A_MODEL_ISSUE))
    flipped_labels = [
        e["text"]["text"]
        for b in flipped.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "button"
    ]
    assert "Mark as model issue" in flipped_labels


def test_control_block_ids_carry_event_id_and_change_with_state() -> None:
    def control_ids(msg: AlertMessage) -> list[str]:
        return [b["block_id"] for b in msg.blocks if b["type"] == "actions"][1:]

    before = control_ids(build(content()))
    after = control_ids(build(content(), TriageSnapshot(categories=("refusal",))))
    assert [parse_block_id(block_id) for block_id in before] == [
        (BlockId.CATEGORIES, 42),
        (BlockId.CONTROLS, 42),
    ]
    assert set(before).isdisjoint(after)
    assert control_ids(build(content())) == before  # deterministic


def picker(msg: AlertMessage) -> dict[str, Any]:
    [select] = [
        e
        for b in msg.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ActionId.CATEGORIES
    ]
    return select


def test_categories_that_do_not_fit_a_static_picker_get_a_searchable_one() -> None:
    many = [f"category {number:03d}" for number in range(300)]
    msg = build(content(), TriageSnapshot(categories=("category 299",)), categories=many)
    assert_within_limits(msg)
    select = picker(msg)
    assert select["type"] == "multi_external_select"
    assert [o["value"] for o in select["initial_options"]] == ["category 299"]


def test_a_few_short_categories_stay_a_static_picker_with_every_one() -> None:
    select = picker(build(content(), TriageSnapshot(categories=("refusal",))))
    assert select["type"] == "multi_static_select"
    assert [o["value"] for o in select["options"]] == list(DEFAULT_CATEGORIES)
    assert [o["value"] for o in select["initial_options"]] == ["refusal"]


def test_twenty_selected_long_categories_fit_within_slack_limits() -> None:
    """Slack repeats selected options in initial_options: they count against the budget too."""
    names = [f"{n:02d} " + "an edge case with a long descriptive name " * 2 for n in range(21)]
    names = [name[:70] for name in names]
    triage = TriageSnapshot(categories=tuple(names[:20]), assignee=ASSIGNEE, last_actor=ACTOR)
    msg = build(content(prompt="p" * 50_000, comment="c" * 5000), triage, categories=names)
    assert_within_limits(msg)
    assert blocks_text_size(msg.blocks) <= 11_000
    shown = {o["value"] for o in picker(msg)["initial_options"]}
    assert shown == set(names[:20])  # every selected category is shown as selected
    with FakeSlack() as slack:  # and Slack takes it, thread replies and all
        client = WebClient(token=slack.token, base_url=slack.api_url)
        posted = client.chat_postMessage(
            channel="#alerts", text=msg.text, blocks=msg.blocks, metadata=msg.metadata
        )
        for reply in msg.replies:
            client.chat_postMessage(channel=posted["channel"], text=reply, thread_ts=posted["ts"])
        assert len(slack.messages("#alerts")) == 1 + len(msg.replies)


def test_hostile_category_names_are_escaped_in_text() -> None:
    name = "<!channel> & co"
    msg = build(content(), TriageSnapshot(categories=(name,)), categories=[name])
    assert_inert(msg)
    [select] = [
        e
        for b in msg.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "multi_static_select"
    ]
    assert select["options"] == [
        {"text": {"type": "plain_text", "text": "&lt;!channel&gt; &amp; co"}, "value": name}
    ]


def test_no_picker_without_categories_but_new_category_stays() -> None:
    msg = build(content(), categories=[])
    elements = [e for b in msg.blocks if b["type"] == "actions" for e in b["elements"]]
    assert all(e["type"] == "button" for e in elements)
    assert any(e["action_id"] == ActionId.NEW_CATEGORY for e in elements)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://x.example/" + "a" * 3000])
def test_unusable_trace_url_is_shown_as_text_not_a_button(url: str) -> None:
    msg = build(content(trace_url=url))
    buttons = [e for b in msg.blocks if b["type"] == "actions" for e in b["elements"]]
    assert all(e["action_id"] != ActionId.OPEN_TRACE for e in buttons)
    assert any("*Trace:*" in e["text"] for e in msg.blocks[1]["elements"])


def test_trace_button_links_to_the_trace() -> None:
    msg = build(content())
    [trace] = [b for b in msg.blocks if b.get("block_id") == BlockId.TRACE]
    button = trace["elements"][0]
    assert button["url"] == "https://trace.example.com/abc"
    assert button["action_id"] == ActionId.OPEN_TRACE and button["value"] == "42"


def test_metadata_and_fallback_text() -> None:
    msg = build(content(comment="bad <!channel> " * 100))
    assert msg.metadata == {
        "event_type": "downvote_alert",
        "event_payload": {"event_id": 42, "external_id": "fb_01H"},
    }
    assert msg.text.startswith("👎 shop · summarize: bad &lt;!channel&gt;")
    assert msg.text.endswith("…") and slack_len(msg.text) <= 300


def test_message_as_text_is_readable() -> None:
    triage = TriageSnapshot(categories=("refusal",), assignee=ASSIGNEE)
    text = message_as_text(build(content(comment="a < b & c", prompt="p" * 9000), triage))
    assert text.startswith("👎 shop · summarize\n")
    assert ">a < b & c" in text
    assert "[x] refusal" in text and "[ ] hallucination" in text
    assert f"*Assigned:* @{ASSIGNEE}" in text
    assert "2026-11-26 10:00 UTC" in text
    assert "--- thread reply 1/" in text
    assert ZWSP not in text and "&amp;" not in text


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.text(min_size=1, max_size=150), min_size=1, max_size=40, unique=True),
    picked=st.integers(0, 40),
)
def test_any_category_selection_keeps_the_whole_alert_within_slack(
    names: list[str], picked: int
) -> None:
    """Whatever the categories and however many are picked, the parent stays under ~12,000."""
    triage = TriageSnapshot(
        categories=tuple(names[:picked]), status=TriageStatus.RESOLVED, assignee=ASSIGNEE,
        last_actor=ACTOR, last_action_at=NOW, notes=3,
    )  # fmt: skip
    msg = build(content(prompt="p" * 30_000, response="r" * 30_000), triage, categories=names)
    assert_within_limits(msg)
    assert blocks_text_size(msg.blocks) <= 12_000
