"""Prompts that no grouping takes for the same problem: for tests about one downvote each."""

from __future__ import annotations

import random
from itertools import product

# Made-up words without digits (a digit would be masked, making prompts alike).
_WORDS = ["".join(letters) for letters in product("bdfgklmnprstvz", "aeiou", "bdfgklmnprstvz")]


def distinct_prompt(n: int, words: int = 12) -> str:
    """The n-th of a series of prompts sharing (almost) no word pair with one another."""
    return " ".join(random.Random(n).sample(_WORDS, words)) + "?"
