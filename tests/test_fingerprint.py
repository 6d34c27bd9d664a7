"""What counts as "the same prompt": normalisation, the similarity estimate, and the LSH bands."""

from __future__ import annotations

from itertools import pairwise, product

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.alerts.fingerprint import fingerprint, similarity

VOCABULARY = ["".join(w) for w in product("bcdfghjklmnpqrstvwxz", "aeiou", "bcdfghjklmnp")]
words = st.lists(st.sampled_from(VOCABULARY), min_size=3, max_size=40)


def exact_jaccard(a: list[str], b: list[str]) -> float:
    """Jaccard similarity of the word pairs, counted here without the product's code."""
    left, right = set(pairwise(a)), set(pairwise(b))
    return len(left & right) / len(left | right)


def shared_bands(a: str, b: str) -> int:
    return len(set(fingerprint(a).bands) & set(fingerprint(b).bands))


# What varies between two copies of one problem, by kind (two values of one kind are alike).
KINDS = [
    st.one_of(st.integers(0, 10**9).map(str), st.integers(0, 10**6).map(lambda n: f"#{n}"),
              st.from_regex(r"ord-[0-9]{3,8}", fullmatch=True)),
    st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|io|de)", fullmatch=True),
    st.from_regex(r"https://[a-z]{1,10}\.com/[a-z0-9/?=&]{0,20}", fullmatch=True),
    st.uuids().map(str),
    st.from_regex(r"\"[a-z ]{1,20}\"", fullmatch=True),
]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    template=st.lists(st.sampled_from(VOCABULARY), min_size=4, max_size=20),
    slot=st.integers(0, 20),
    kind=st.sampled_from(KINDS),
    data=st.data(),
    case=st.sampled_from([str.lower, str.upper, str.title, str]),
    space=st.sampled_from([" ", "  ", "\t", " \n "]),
    punctuation=st.sampled_from(["", "?", "!!", " ...", ",", ";"]),
)
def test_prompts_differing_only_in_what_varies_have_one_fingerprint(
    template: list[str], slot: int, kind: st.SearchStrategy[str], data: st.DataObject,
    case: object, space: str, punctuation: str,
) -> None:  # fmt: skip
    """Case, spacing, punctuation, and a number, id, e-mail, URL, UUID or quoted value."""
    first, second = data.draw(kind), data.draw(kind)
    at = slot % (len(template) + 1)
    one = " ".join([*template[:at], first, *template[at:]]) + "?"
    two = space.join([*template[:at], second, *template[at:]]) + punctuation
    two = case(two)  # type: ignore[operator]
    assert fingerprint(one).signature == fingerprint(two).signature


@settings(max_examples=80, deadline=None)
@given(a=words, b=words, shared=st.lists(st.sampled_from(VOCABULARY), min_size=0, max_size=40))
def test_the_similarity_estimate_is_close_to_the_true_jaccard(
    a: list[str], b: list[str], shared: list[str]
) -> None:
    """64 permutations: the estimate's standard error is at most 1/16; allow four of them."""
    left, right = [*shared, *a], [*shared, *b]
    estimate = similarity(fingerprint(" ".join(left)).signature,
                          fingerprint(" ".join(right)).signature)  # fmt: skip
    assert abs(estimate - exact_jaccard(left, right)) <= 0.25


@settings(max_examples=80, deadline=None)
@given(base=st.lists(st.sampled_from(VOCABULARY), min_size=10, max_size=60), data=st.data())
def test_prompts_alike_enough_to_group_always_share_a_band(
    base: list[str], data: st.DataObject
) -> None:
    """A group is found by its bands: any pair the signatures call >= 0.8 alike must meet."""
    changed = list(base)
    for _ in range(data.draw(st.integers(0, 3))):
        changed[data.draw(st.integers(0, len(base) - 1))] = data.draw(st.sampled_from(VOCABULARY))
    one, two = " ".join(base), " ".join(changed)
    if similarity(fingerprint(one).signature, fingerprint(two).signature) >= 0.8:
        assert shared_bands(one, two) >= 1


def test_unrelated_prompts_are_not_alike() -> None:
    one = "Which paper introduced the transformer architecture and who wrote it?"
    two = "Summarise the attached contract in three bullet points for a non-lawyer."
    assert similarity(fingerprint(one).signature, fingerprint(two).signature) < 0.2


def test_a_chat_prompt_is_judged_by_its_last_user_message() -> None:
    question = "Where is my order 123? The tracking page is empty."
    chat = [
        {"role": "system", "content": "You are a support agent for a large online shop."},
        {"role": "user", "content": [{"type": "text", "text": question}]},
        {"role": "assistant", "content": "Let me check."},
    ]
    assert fingerprint(chat).signature == fingerprint(question.replace("123", "9")).signature
    other_system = [{**chat[0], "content": "You are a pirate."}, *chat[1:]]
    assert fingerprint(other_system).signature == fingerprint(chat).signature


def test_signatures_stay_comparable_across_upgrades() -> None:
    """Stored signatures are compared with new ones: the hashing must not drift with a new
    datasketch or numpy. Known value of one prompt (64 little-endian uint32)."""
    signature = fingerprint("where is my order").signature
    assert len(signature) == 64 * 4
    assert signature[:16].hex() == KNOWN_PREFIX


KNOWN_PREFIX = "5aae6aab992da7243ab2345956c01e1e"  # recorded with datasketch 2.0, numpy 2.4
