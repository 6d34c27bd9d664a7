"""Redaction: personal data and secrets go, ordinary text and code stay."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.alerts.backtracking import nests_unbounded_repeats
from bot.alerts.redaction import (
    BUILTIN_PATTERNS,
    CARD,
    EMAIL,
    PHONE,
    SECRET,
    Redactor,
    luhn_valid,
)

redactor = Redactor()

# Realistically shaped keys, with what each is replaced by: one or more for every rule, so a rule
# removed (or a key caught only by the generic ones) fails a test.
KEYS = {
    "sk-abcdefghijklmnopqrstuvwxyz012345": "[redacted OpenAI key]",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z": "[redacted OpenAI key]",
    "sk-svcacct-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe": "[redacted OpenAI key]",
    "sk-ant-api03-R2D2c3poBB8-Xw7YvU6tS5rQ4pO3nM2lK1jI0hG9fE8dC7bA6-zY5xW4vU3tS2rQ1pO0nM9lK8jI7hG6"
    "fE5dC4bA3zY2xW1vU0tS9rQ8pO-AbCdEfGh": "[redacted Anthropic key]",
    "sk_live_51HqLyjWDarjtT1zdp7dcDsZqA2": "[redacted Stripe key]",
    "rk_test_4eC39HqLyjWDarjtT1zdp7dc": "[redacted Stripe key]",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx": "[redacted Slack token]",
    "xoxp-1234-5678-abcdefghij": "[redacted Slack token]",
    "xapp-1-A0123ABCDEF-1234567890123-0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6": (
        "[redacted Slack token]"
    ),
    "ghp_0123456789abcdefghijABCDEFGHIJ012345": "[redacted GitHub token]",
    "gho_0123456789abcdefghijABCDEFGHIJ012345": "[redacted GitHub token]",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz": "[redacted GitHub token]",
    "AKIAIOSFODNN7EXAMPLE": "[redacted AWS key]",
    "ASIAY34FZKBOKMUTVV7A": "[redacted AWS key]",
    "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe": "[redacted Google API key]",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0T"
    "HsR8U": "[redacted JWT]",
}
SECRETS = [
    *KEYS,
    "3f786850e387550fdab836ed7e6dc881de23001b",  # a git SHA (40 hex): redacted by design
    "d41d8cd98f00b204e9800998ecf8427e",  # 32 hex
    "Pl8efs6nmwcu1fRWurEONpqkL9v7jr+jIZLNlL1h",  # random base64
]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(
    "context", ["use {} now", "key={}", 'ANTHROPIC_API_KEY="{}"', "({})", "token:{}.", "{}"]
)
def test_secrets_are_replaced_and_surroundings_kept(secret: str, context: str) -> None:
    placeholder = KEYS.get(secret, SECRET)
    assert redactor.redact(context.format(secret)) == context.format(placeholder)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail john.doe+x@example.co.uk, thanks", f"mail {EMAIL}, thanks"),
        ("Ünïcode.user@mail.example.org!", f"{EMAIL}!"),
        ("call +44 20 7946 0958 today", f"call {PHONE} today"),
        ("call +4915112345678.", f"call {PHONE}."),
        ("call (555) 123-4567 or 555-123-4567", f"call {PHONE} or {PHONE}"),
        ("fax 555.123.4567", f"fax {PHONE}"),
        ("card 4111 1111 1111 1111 ok", f"card {CARD} ok"),
        ("card 4111-1111-1111-1111 ok", f"card {CARD} ok"),
        ("amex 378282246310005", f"amex {CARD}"),
        ("password: hunter2hunter2", f"password: {SECRET}"),
        ('"api_key": "abc123def456"', f'"api_key": "{SECRET}"'),
        ("Authorization: Bearer abc.def123ghi", f"Authorization: Bearer {SECRET}"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", f"aws_secret_access_key = {SECRET}"),
    ],
)
def test_personal_data_is_replaced(text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


# Phone numbers: `+` and 8 to 15 digits (E.164 allows 15), one space at a time.
@pytest.mark.parametrize(
    ("number", "redacted"),
    [
        ("+1234567", False),  # 7 digits
        ("+12345678", True),  # 8
        ("+123456789012345", True),  # 15
        ("+1234567890123456", False),  # 16
        ("+44 20  7946 0958", False),  # a double space is two things, not one number
    ],
)
def test_international_phone_numbers_have_8_to_15_digits(number: str, redacted: bool) -> None:
    assert redactor.redact(f"call {number} ok") == f"call {PHONE if redacted else number} ok"


# A blob is random when at least 40% of the steps between its letters and digits change kind:
# both below have 16 changes, over 40 steps (0.40: redacted) and over 41 (0.39: kept).
@pytest.mark.parametrize(
    ("blob", "redacted"),
    [
        ("Qx7Rz8Tw9Vk3Mp5Nq" + "wertyuioplkjhgfdsazxcvbn", True),
        ("Qx7Rz8Tw9Vk3Mp5Nq" + "wertyuioplkjhgfdsazxcvbnm", False),
    ],
)
def test_a_blob_is_a_secret_from_a_40_percent_switch_rate(blob: str, redacted: bool) -> None:
    assert redactor.redact(f"blob {blob} end") == f"blob {SECRET if redacted else blob} end"


def test_an_assigned_value_in_capitals_and_digits_is_a_secret() -> None:
    assert redactor.redact("password: HUNTER2024") == f"password: {SECRET}"


def test_every_private_key_block_is_replaced_and_the_text_between_kept() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----"
    stray_end = "-----END RSA PRIVATE KEY-----"
    assert redactor.redact(f"{stray_end} a {key} b {key} c") == (
        f"{stray_end} a {SECRET} b {SECRET} c"
    )


def test_private_key_block_is_replaced() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----"
    assert redactor.redact(f"key:\n{key}\ndone") == f"key:\n{SECRET}\ndone"


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn-invalid 16 digits
        "4111111111111112",
        "took 840 ms in 2024, p95 1200ms",
        "epoch 1700000000000 ms",  # 13 digits, Luhn-valid, but no card starts with 1
        "id 5551234567 and 2024-01-15 and 10.0.0.1",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "pi 31415926535897932384626433832795028841971",  # long number: not hex-with-letters
        "path /Users/JohnSmith/Projects/MyApp2/src/components/Header",
        "ThisIsAVeryLongCamelCaseIdentifierName2024Version",
        "test_redaction_keeps_ordinary_identifiers_and_names",
        "max_tokens=4096 token = get_token(user)",
        "import sk-learn-model-training-pipeline-v2; task-abcdefghijklmnopqrstuv",
        "email me at name at example dot com; 1 + 2 = 3",
        "-----BEGIN RSA PRIVATE KEY----- never ends",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redactor.redact(text) == text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("5555555555554444")  # doubled 5s count 1 each (10 - 9)
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


def test_extra_patterns_are_applied_with_their_name() -> None:
    custom = Redactor(extra_patterns=[("employee id", r"EMP-\d{6}"), ("ticket", r"TCK\d+")])
    assert (
        custom.redact("EMP-123456 filed TCK42") == "[redacted employee id] filed [redacted ticket]"
    )


def test_extra_pattern_name_is_not_a_replacement_template() -> None:
    custom = Redactor(extra_patterns=[(r"odd \1 name", r"x+")])
    assert custom.redact("axxb") == r"a[redacted odd \1 name]b"


def test_invalid_extra_pattern_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="'broken'"):
        Redactor(extra_patterns=[("broken", "(")])


def test_redact_prompt_handles_chat_messages_and_nested_content() -> None:
    prompt: list[dict[str, Any]] = [
        {"role": "system", "content": "key sk-abcdefghijklmnopqrstuvwxyz012345"},
        {"role": "user", "content": [{"type": "text", "text": "I am bob@example.com"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "n": 3}]},
    ]
    assert redactor.redact_prompt(prompt) == [
        {"role": "system", "content": "key [redacted OpenAI key]"},
        {"role": "user", "content": [{"type": "text", "text": f"I am {EMAIL}"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "n": 3}]},
    ]
    assert redactor.redact_prompt("bob@example.com") == EMAIL


# A mix of ordinary text and things that should be redacted, in random order.
fragments = st.sampled_from(
    [
        *SECRETS,
        "bob@example.com",
        "+1 415 555 0100",
        "(555) 123-4567",
        "4111 1111 1111 1111",
        "4111 1111 1111 1112",
        "password=abc123xyz",
        "2024",
        "840ms",
        "-",
        "+",
        "@",
        ".",
        "[redacted",
    ]
)
mixed_pieces = st.lists(st.one_of(st.text(max_size=12), fragments), max_size=25)
glued_text = mixed_pieces.map("".join)  # no separators: the hardest case for boundaries
spaced_text = mixed_pieces.map(" ".join)  # tokens as they appear in prose and code


@settings(max_examples=100, deadline=None)
@given(glued_text)
def test_redaction_is_idempotent(text: str) -> None:
    once = redactor.redact(text)
    assert redactor.redact(once) == once


@settings(max_examples=100, deadline=None)
@given(spaced_text)
def test_redacted_text_holds_none_of_the_known_secrets(text: str) -> None:
    redacted = redactor.redact(text)
    for secret in SECRETS:
        assert secret not in redacted


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_disabled_redactor_is_identity(text: str) -> None:
    assert Redactor(enabled=False, extra_patterns=[("x", ".")]).redact(text) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_never_raises_and_returns_text(text: str) -> None:
    assert isinstance(redactor.redact(text), str)


@pytest.mark.parametrize(
    "unit", ["-----BEGIN RSA PRIVATE KEY-----", "a@", "+1 ", "1 ", "sk-", "password: "]
)
def test_long_runs_of_near_misses_are_kept_whole(unit: str) -> None:
    """100 KB of one fragment that almost matches: nothing to redact, and nothing lost.
    (How long it takes is measured by `benchmarks/redaction.py`; its shape is tested below.)"""
    text = unit * (100_000 // len(unit))
    assert redactor.redact(text) == text


def test_a_long_run_of_random_looking_base64_is_one_secret() -> None:
    assert redactor.redact("aB3/" * 25_000) == SECRET


def test_no_built_in_pattern_nests_unbounded_repeats() -> None:
    """The shape of catastrophic backtracking, checked on every pattern redaction runs."""
    assert [p.pattern for p in BUILTIN_PATTERNS if nests_unbounded_repeats(p.pattern)] == []


@pytest.mark.parametrize("pattern", [r"(a+)+b", r"(?:\w+\s?)*$", r"(x*)*y", r"(?=(\d+)+)\d"])
def test_nested_unbounded_repeats_are_recognised(pattern: str) -> None:
    assert nests_unbounded_repeats(pattern)


@pytest.mark.parametrize("pattern", [r"a+b+", r"(?:ab{0,61}c)+", r"[a-z]{3}\d+", r"(?:x{2})+"])
def test_bounded_or_flat_repeats_are_fine(pattern: str) -> None:
    assert not nests_unbounded_repeats(pattern)


def test_back_to_back_phone_numbers_are_all_redacted_at_once() -> None:
    """Found by hypothesis: each number used to hide the next from the pattern until a pass
    removed it, so five in a row outlasted the pass limit and redacting twice changed more."""
    redactor = Redactor()
    once = redactor.redact("(555) 123-4567" * 12)
    assert once == "[redacted phone]" * 12
    assert redactor.redact(once) == once
