"""Block Kit validation as Slack applies it: pure functions returning Slack-style
"msg [json-pointer:/path]" strings (empty when Slack would accept the blocks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_BLOCKS_TEXT_CHARS = 12_000


def blocks_text_chars(value: Any) -> int:
    """Characters in every string of a block tree (what msg_blocks_too_long is about)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(blocks_text_chars(item) for item in value.values())
    if isinstance(value, list):
        return sum(blocks_text_chars(item) for item in value)
    return 0


_ANY_TEXT = ("plain_text", "mrkdwn")
_PLAIN = ("plain_text",)
Check = Callable[[dict[str, Any], str], list[str]]


def _problem(message: str, pointer: str) -> str:
    return f"{message} [json-pointer:{pointer}]"


def _check_string(
    value: Any, pointer: str, *, max_len: int, min_len: int = 0, required: bool = True
) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, str):
        return [_problem("must provide a string", pointer)]
    if len(value) > max_len:
        return [_problem(f"must be less than {max_len + 1} characters", pointer)]
    if len(value) < min_len:
        return [_problem(f"must be more than {min_len - 1} characters", pointer)]
    return []


def _check_text(
    obj: Any,
    pointer: str,
    *,
    max_len: int,
    types: tuple[str, ...] = _ANY_TEXT,
    required: bool = True,
) -> list[str]:
    if obj is None and not required:
        return []
    if not isinstance(obj, dict):
        return [_problem("must provide an object", pointer)]
    problems = []
    if obj.get("type") not in types:
        problems.append(_problem("must be a valid enum value", f"{pointer}/type"))
    return problems + _check_string(obj.get("text"), f"{pointer}/text", max_len=max_len, min_len=1)


def _check_list(value: Any, pointer: str, *, max_items: int, min_items: int = 0) -> list[str]:
    if not isinstance(value, list):
        return [_problem("must provide an array", pointer)]
    if len(value) > max_items:
        return [_problem(f"no more than {max_items} items allowed", pointer)]
    if len(value) < min_items:
        return [_problem(f"must provide at least {min_items} items", pointer)]
    return []


def _check_each(items: Any, pointer: str, check: Check, *, max_items: int) -> list[str]:
    problems = _check_list(items, pointer, max_items=max_items, min_items=1)
    if problems:
        return problems
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(_problem("must provide an object", f"{pointer}/{i}"))
        else:
            problems += check(item, f"{pointer}/{i}")
    return problems


def _check_option(option: dict[str, Any], pointer: str) -> list[str]:
    return (
        _check_text(option.get("text"), f"{pointer}/text", max_len=75)
        + _check_string(option.get("value"), f"{pointer}/value", max_len=150)
        + _check_text(
            option.get("description"), f"{pointer}/description", max_len=75, required=False
        )
    )


def _option_group_check(group: dict[str, Any], pointer: str) -> list[str]:
    return _check_text(
        group.get("label"), f"{pointer}/label", max_len=75, types=_PLAIN
    ) + _check_each(group.get("options"), f"{pointer}/options", _check_option, max_items=100)


def _check_button(element: dict[str, Any], pointer: str) -> list[str]:
    problems = (
        _check_text(element.get("text"), f"{pointer}/text", max_len=75, types=_PLAIN)
        + _check_string(
            element.get("action_id"), f"{pointer}/action_id", max_len=255, required=False
        )
        + _check_string(element.get("value"), f"{pointer}/value", max_len=2000, required=False)
        + _check_string(element.get("url"), f"{pointer}/url", max_len=3000, required=False)
    )
    if element.get("style") not in (None, "primary", "danger"):
        problems.append(_problem("must be a valid enum value", f"{pointer}/style"))
    return problems


def _check_static_select(element: dict[str, Any], pointer: str) -> list[str]:
    problems = _check_text(
        element.get("placeholder"),
        f"{pointer}/placeholder",
        max_len=150,
        types=_PLAIN,
        required=False,
    )
    if "option_groups" in element:
        return problems + _check_each(
            element["option_groups"], f"{pointer}/option_groups", _option_group_check, max_items=100
        )
    return problems + _check_each(
        element.get("options"), f"{pointer}/options", _check_option, max_items=100
    )


def _check_overflow(element: dict[str, Any], pointer: str) -> list[str]:
    return _check_each(element.get("options"), f"{pointer}/options", _check_option, max_items=5)


def _check_choice_list(element: dict[str, Any], pointer: str) -> list[str]:
    return _check_each(element.get("options"), f"{pointer}/options", _check_option, max_items=10)


def _check_image_element(element: dict[str, Any], pointer: str) -> list[str]:
    problems = _check_string(
        element.get("alt_text"), f"{pointer}/alt_text", max_len=2000, min_len=1
    )
    if "image_url" not in element and "slack_file" not in element:
        problems.append(_problem("must provide image_url or slack_file", pointer))
    return problems


def _no_check(element: dict[str, Any], pointer: str) -> list[str]:
    return []


_ELEMENT_CHECKS: dict[str, Check] = {
    "button": _check_button,
    "static_select": _check_static_select,
    "multi_static_select": _check_static_select,
    "overflow": _check_overflow,
    "checkboxes": _check_choice_list,
    "radio_buttons": _check_choice_list,
    "image": _check_image_element,
    **dict.fromkeys(
        (
            "users_select", "multi_users_select", "conversations_select",
            "multi_conversations_select", "channels_select", "multi_channels_select",
            "external_select", "multi_external_select", "datepicker", "timepicker",
            "datetimepicker", "plain_text_input", "email_text_input", "url_text_input",
            "number_input", "rich_text_input", "file_input", "workflow_button",
        ),
        _no_check,
    ),
}  # fmt: skip


def _check_element(element: dict[str, Any], pointer: str) -> list[str]:
    check = _ELEMENT_CHECKS.get(element.get("type", ""))
    if check is None:
        return [_problem(f"unsupported type: {element.get('type')}", f"{pointer}/type")]
    return check(element, pointer)


def _check_section(block: dict[str, Any], pointer: str) -> list[str]:
    if "text" not in block and "fields" not in block:
        return [_problem("must provide either text or fields", pointer)]
    problems = _check_text(block.get("text"), f"{pointer}/text", max_len=3000, required=False)
    fields = block.get("fields")
    if fields is not None:
        field_problems = _check_list(fields, f"{pointer}/fields", max_items=10, min_items=1)
        for i, item in enumerate([] if field_problems else fields):
            field_problems += _check_text(item, f"{pointer}/fields/{i}", max_len=2000)
        problems += field_problems
    if isinstance(block.get("accessory"), dict):
        problems += _check_element(block["accessory"], f"{pointer}/accessory")
    return problems


def _check_header(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_text(block.get("text"), f"{pointer}/text", max_len=150, types=_PLAIN)


def _check_context_element(element: dict[str, Any], pointer: str) -> list[str]:
    if element.get("type") == "image":
        return _check_image_element(element, pointer)
    if element.get("type") in _ANY_TEXT:
        return _check_text(element, pointer, max_len=3000)
    return [_problem(f"unsupported type: {element.get('type')}", f"{pointer}/type")]


def _check_context(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_each(
        block.get("elements"), f"{pointer}/elements", _check_context_element, max_items=10
    )


def _check_actions(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_each(block.get("elements"), f"{pointer}/elements", _check_element, max_items=25)


def _check_image_block(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_image_element(block, pointer) + _check_text(
        block.get("title"), f"{pointer}/title", max_len=2000, types=_PLAIN, required=False
    )


def _check_markdown(block: dict[str, Any], pointer: str) -> list[str]:
    return _check_string(block.get("text"), f"{pointer}/text", max_len=12_000, min_len=1)


def _check_input(block: dict[str, Any], pointer: str) -> list[str]:
    problems = _check_text(block.get("label"), f"{pointer}/label", max_len=2000, types=_PLAIN)
    element = block.get("element")
    if not isinstance(element, dict):
        return [*problems, _problem("must provide an object", f"{pointer}/element")]
    return problems + _check_element(element, f"{pointer}/element")


_BLOCK_CHECKS: dict[str, Check] = {
    "section": _check_section,
    "header": _check_header,
    "context": _check_context,
    "actions": _check_actions,
    "image": _check_image_block,
    "markdown": _check_markdown,
    "input": _check_input,
    **dict.fromkeys(("divider", "rich_text", "file", "video", "table", "call"), _no_check),
}


def _check_block(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict):
        return [_problem("must provide an object", pointer)]
    check = _BLOCK_CHECKS.get(block.get("type", ""))
    if check is None:
        return [_problem(f"unsupported type: {block.get('type')}", f"{pointer}/type")]
    return check(block, pointer) + _check_string(
        block.get("block_id"), f"{pointer}/block_id", max_len=255, required=False
    )


def validate_blocks(blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Return Slack's ``invalid_blocks`` errors for ``blocks``; empty when Slack accepts them."""
    problems = _check_list(blocks, "/blocks", max_items=max_blocks)
    if problems:
        return problems
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        problems += _check_block(block, f"/blocks/{i}")
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if isinstance(block_id, str):
            if block_id in seen_ids:
                problems.append(_problem("duplicate block_id", f"/blocks/{i}/block_id"))
            seen_ids.add(block_id)
    return problems


def validate_view(view: Any) -> list[str]:
    """Return Slack's ``invalid_arguments`` errors for a modal or home tab view."""
    if not isinstance(view, dict):
        return [_problem("must provide an object", "/view")]
    problems = []
    if view.get("type") not in ("modal", "home"):
        problems.append(_problem("must be a valid enum value", "/view/type"))
    if view.get("type") == "modal":
        problems += _check_text(view.get("title"), "/view/title", max_len=24, types=_PLAIN)
        for key in ("submit", "close"):
            problems += _check_text(
                view.get(key), f"/view/{key}", max_len=24, types=_PLAIN, required=False
            )
    problems += _check_string(
        view.get("private_metadata"), "/view/private_metadata", max_len=3000, required=False
    )
    problems += _check_string(
        view.get("callback_id"), "/view/callback_id", max_len=255, required=False
    )
    return problems + validate_blocks(view.get("blocks"), max_blocks=MAX_VIEW_BLOCKS)
