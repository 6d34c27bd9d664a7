"""Which regular expressions can backtrack for seconds, told by their shape, not by timing them.

A repeat that may match without bound, nested inside another such repeat (`(a+)+`, `(\\w+\\s?)*`),
gives the regex engine exponentially many ways to fail on a long enough line: the shape behind
catastrophic backtracking. Redaction runs on every prompt, so neither the built-in patterns nor
the ones a team adds in downvote.toml may have it.
"""

from __future__ import annotations

import re._constants as sre_constants
import re._parser as sre_parser
from typing import Any

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
_UNBOUNDED = sre_constants.MAXREPEAT


def nests_unbounded_repeats(pattern: str) -> bool:
    """True if the pattern repeats, without bound, something that itself repeats without bound."""
    return _nested(sre_parser.parse(pattern), inside_unbounded=False)


def _nested(items: Any, *, inside_unbounded: bool) -> bool:
    for op, value in items:
        unbounded = op in _REPEATS and value[1] is _UNBOUNDED
        if unbounded and inside_unbounded:
            return True
        inside = inside_unbounded or unbounded
        if any(_nested(child, inside_unbounded=inside) for child in _children(op, value)):
            return True
    return False


def _children(op: Any, value: Any) -> list[Any]:
    """Sub-patterns of a parsed item: repeat body, group, branches, lookaround."""
    if op in _REPEATS:
        return [value[2]]
    if op == sre_constants.SUBPATTERN:
        return [value[-1]]
    if op == sre_constants.BRANCH:
        return list(value[1])
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [value[1]]
    return []
