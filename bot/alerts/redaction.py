"""Redaction of personal data and secrets before any user text leaves for Slack.

Choices worth knowing:
- Secrets run first (so a token's digits are never read as a phone or card), then e-mail,
  international phone, card, US phone. Extra patterns from the config run before all of them.
- Cards are 13-19 digits (spaces or dashes allowed) starting with 2-6 (Visa, Mastercard, Amex,
  Discover, JCB, Diners, UnionPay, Maestro) and must pass Luhn, so epoch-millisecond timestamps and
  random digit runs are kept.
- Phones need a shape: `+` and 8-15 digits, or a US `(555) 123-4567` / `555-123-4567` /
  `555.123.4567` (one separator kind), so latencies, years and bare digit runs are kept.
- Hex runs of 32+ characters with both letters and digits are secrets: a git SHA is redacted, a
  UUID (dash-separated, at most 12 hex in a row) is kept, a long pure number is kept.
- Other secrets need 40+ characters of base64 alphabet with upper case, lower case and digits, and
  frequent changes between them, the way random data looks and identifiers or paths do not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial
from itertools import pairwise
from typing import Any

Rule = Callable[[str], str]

EMAIL = "[redacted email]"
PHONE = "[redacted phone]"
CARD = "[redacted card]"
SECRET = "[redacted secret]"  # noqa: S105 - a placeholder, not a credential

_PEM_BEGIN_RE = re.compile(r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----")
_PEM_END_RE = re.compile(r"-----END [A-Z ]{0,40}PRIVATE KEY-----")
# Keys and tokens with a known shape, each replaced by a placeholder that says what it was, so
# the engineer triaging knows the user pasted (say) their Anthropic key.
_TOKENS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "JWT"),
    (re.compile(r"\bsk-ant-[a-z]+\d*-[A-Za-z0-9_-]{16,}"), "Anthropic key"),
    # OpenAI sk-proj-…/sk-svcacct-…/sk-admin-…, legacy sk-<alnum>; not `sk-learn-…`
    (re.compile(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{16,}"), "OpenAI key"),
    (re.compile(r"\bsk-[A-Za-z0-9]{20,}"), "OpenAI key"),
    (re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"), "Stripe key"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "Slack token"),  # bot, user, …
    (re.compile(r"\bxapp-[A-Za-z0-9-]{10,}"), "Slack token"),  # app-level
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), "GitHub token"),  # classic
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), "GitHub token"),  # fine-grained
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "AWS key"),  # access key ids
    (re.compile(r"\bAIza[A-Za-z0-9_-]{35}"), "Google API key"),
]
# `password: hunter2x`, `"api_key": "abc123…"`: the value after a secret-ish name.
_ASSIGNED_RE = re.compile(
    r"(?i)((?<![a-z])(?:(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)"
    r"[\"']?\s*[:=]\s*[\"']?|bearer\s+))([A-Za-z0-9+/_.~=-]{7,}[A-Za-z0-9+/_~=-])"
)
_HEX_RE = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
# A blob may follow "=" (`key=…`); padding "=" only ends one.
_BLOB_RE = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{40,}={0,2}(?![A-Za-z0-9+/_=-])")
_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)
_CARD_RE = re.compile(r"(?<![\d+-])[2-6](?:[ -]?\d){12,18}(?![\d])")
_INTL_PHONE_RE = re.compile(r"(?<![A-Za-z_+])\+\d[\d .()-]{5,22}\d(?!\w)")
# The "(555) 123-4567" form starts with a bracket, so a digit before it is no part of it: that
# lets back-to-back numbers all go in one pass.
_US_PHONE_RE = re.compile(
    r"(?:(?<![A-Za-z_+.-])\(\d{3}\)[ ]?\d{3}-\d{4}"
    r"|(?<![\w+.-])(?:\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4}))(?![\w-]|\.\d)"
)
_MIN_BLOB_SWITCH_RATE = 0.4
_MAX_PASSES = 8


def luhn_valid(digits: str) -> bool:
    """Check the Luhn checksum that every payment card number carries."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return CARD if luhn_valid(digits) else match.group()


def _intl_phone(match: re.Match[str]) -> str:
    text = match.group()
    digit_count = sum(char.isdigit() for char in text)
    return PHONE if 8 <= digit_count <= 15 and "  " not in text else text


def _hex(match: re.Match[str]) -> str:
    text = match.group()
    has_letter = any(char.isalpha() for char in text)
    has_digit = any(char.isdigit() for char in text)
    return SECRET if has_letter and has_digit else text


def _looks_random(text: str) -> bool:
    """Tell random base64 from identifiers and paths: all classes present, changing often."""
    kinds = [_char_kind(char) for char in text if char.isalnum()]
    if not {"upper", "lower", "digit"} <= set(kinds):
        return False
    switches = sum(a != b for a, b in pairwise(kinds))
    return switches / max(1, len(kinds) - 1) >= _MIN_BLOB_SWITCH_RATE


def _char_kind(char: str) -> str:
    if char.isdigit():
        return "digit"
    return "upper" if char.isupper() else "lower"


def _blob(match: re.Match[str]) -> str:
    return SECRET if _looks_random(match.group()) else match.group()


def _assigned(match: re.Match[str]) -> str:
    value = match.group(2)
    if re.search(r"\d", value) and re.search(r"[A-Za-z]", value):
        return match.group(1) + SECRET
    return match.group()


def _private_keys(text: str) -> str:
    """Replace PEM private keys; found with two linear searches (a lazy `.*?` is quadratic)."""
    pieces: list[str] = []
    position = 0
    while (begin := _PEM_BEGIN_RE.search(text, position)) and (
        end := _PEM_END_RE.search(text, begin.end())
    ):
        pieces += [text[position : begin.start()], SECRET]
        position = end.end()
    return "".join([*pieces, text[position:]])


def _rule(pattern: re.Pattern[str], replacement: str | Callable[[re.Match[str]], str]) -> Rule:
    return partial(pattern.sub, replacement)


# Every pattern the built-in rules search with, for checks of their shape.
BUILTIN_PATTERNS: tuple[re.Pattern[str], ...] = (
    _PEM_BEGIN_RE, _PEM_END_RE, *(pattern for pattern, _ in _TOKENS), _ASSIGNED_RE, _HEX_RE,
    _BLOB_RE, _EMAIL_RE, _INTL_PHONE_RE, _CARD_RE, _US_PHONE_RE,
)  # fmt: skip

_BUILTIN_RULES: list[Rule] = [
    _private_keys,
    *[_rule(pattern, f"[redacted {kind}]") for pattern, kind in _TOKENS],
    _rule(_ASSIGNED_RE, _assigned),
    _rule(_HEX_RE, _hex),
    _rule(_BLOB_RE, _blob),
    _rule(_EMAIL_RE, EMAIL),
    _rule(_INTL_PHONE_RE, _intl_phone),
    _rule(_CARD_RE, _card),
    _rule(_US_PHONE_RE, PHONE),
]


class Redactor:
    """Replace personal data and secrets in user text with labelled placeholders."""

    def __init__(
        self, enabled: bool = True, extra_patterns: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.enabled = enabled
        self._rules = [*map(_compile_extra, extra_patterns), *_BUILTIN_RULES]

    def redact(self, text: str) -> str:
        """Return text with every match replaced; identity when disabled."""
        # Repeat until nothing changes (a few passes at most): a placeholder can create the word
        # boundary a later token needs (`4111…1111sk-…`), and redacting twice must change nothing.
        if not self.enabled:
            return text
        for _ in range(_MAX_PASSES):
            redacted = self._pass(text)
            if redacted == text:
                break
            text = redacted
        return text

    def _pass(self, text: str) -> str:
        for rule in self._rules:
            text = rule(text)
        return text

    def redact_value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value (dict keys are kept: they are structure)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self.redact_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(item) for item in value]
        return value

    def redact_prompt(self, prompt: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        """Redact a prompt given as text or as chat messages (roles and contents alike)."""
        if isinstance(prompt, str):
            return self.redact(prompt)
        return [self.redact_value(message) for message in prompt]


def _compile_extra(rule: tuple[str, str]) -> Rule:
    """Compile a configured (name, regex) rule, failing at start-up rather than per message."""
    name, regex = rule
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"redaction pattern {name!r} is not a valid regex: {exc}") from exc
    placeholder = f"[redacted {name}]"
    return _rule(pattern, lambda _match: placeholder)
