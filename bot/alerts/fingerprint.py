"""What makes two downvotes "the same problem": their prompts, after what varies is set aside.

A prompt (for a chat, its last user message) is lower-cased; URLs, e-mail addresses, UUIDs,
quoted values and any word holding a digit (numbers, order ids, versions) become placeholders;
punctuation and spacing are dropped. Its word pairs are summarised by a MinHash (datasketch), whose
matching share estimates the Jaccard similarity of two prompts. The signature is cut into LSH
bands: two prompts at least ~0.5 alike share a band with near certainty, so the database finds
the candidates by band, and the signatures decide.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from datasketch import MinHash

from storage.events import prompt_text

NUM_PERM = 64
BANDS, ROWS = 16, 4  # (1/16)^(1/4) = 0.5: the similarity above which candidates are found
_SEED = 20261128
_SCHEME = "affine32"  # pinned: stored signatures must compare with new ones across upgrades
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=_SEED, scheme=_SCHEME).permutations  # made once

_MASKS = [
    (re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I), " zurlz "),
    (re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+"), " zemailz "),
    (re.compile(r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b", re.I), " zuuidz "),
    # "double", “curly”, `back` and 'single' quoted values (a lone apostrophe is not a quote)
    (re.compile(r"\"[^\"\n]{0,200}\"|“[^”\n]{0,200}”|`[^`\n]{0,200}`|(?<!\w)'[^'\n]{1,200}'(?!\w)"),
     " zquotedz "),
    # numbers and ids: any run of word characters, dots and dashes holding a digit (ORD-123, 4.5)
    (re.compile(r"[\w.-]*\d[\w.-]*"), " znumz "),
]  # fmt: skip
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Fingerprint:
    signature: bytes  # NUM_PERM little-endian uint32 hash values
    bands: tuple[int, ...]  # BANDS signed 64-bit keys, each naming its band


def normalized_words(text: str) -> list[str]:
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    words = _WORD.findall(text.lower())
    return ["znumz" if any(char.isdigit() for char in word) else word for word in words]


def shingles(words: list[str]) -> list[bytes]:
    """Word pairs (single words for a one-word prompt): the units similarity is counted in."""
    if len(words) < 2:
        return [word.encode() for word in words] or [b""]
    return [f"{a} {b}".encode() for a, b in pairwise(words)]


def fingerprint(prompt: str | list[dict[str, Any]]) -> Fingerprint:
    minhash = MinHash(num_perm=NUM_PERM, seed=_SEED, permutations=_PERMUTATIONS, scheme=_SCHEME)
    minhash.update_batch(shingles(normalized_words(prompt_text(prompt))))
    values = np.asarray(minhash.hashvalues, dtype="<u4")
    return Fingerprint(values.tobytes(), band_keys(values))


def band_keys(values: np.ndarray[Any, Any]) -> tuple[int, ...]:
    keys = []
    for band in range(BANDS):
        rows = values[band * ROWS : (band + 1) * ROWS].tobytes()
        digest = hashlib.blake2b(bytes([band]) + rows, digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return tuple(keys)


def similarity(a: bytes, b: bytes) -> float:
    """The estimated Jaccard similarity of the two prompts behind these signatures."""
    left, right = np.frombuffer(a, dtype="<u4"), np.frombuffer(b, dtype="<u4")
    return float(np.mean(left == right))
