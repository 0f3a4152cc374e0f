"""Text the detectors can read: Unicode normalisation with a map back to the original.

Personal data hides in Unicode variants a reader (or a model) does not notice: a fullwidth
``＠``, a zero-width space inside an e-mail, non-breaking or thin spaces between card digits,
``‑`` instead of ``-``, decomposed accents. :func:`normalize` turns text into NFKC without
invisible characters and with plain dashes and spaces, and keeps, for every character of the
result, the span of the original it came from, so that detections map back exactly
(:meth:`NormalText.span`). :func:`fold` gives a same-length accent- and case-free copy for
comparing names (``José`` = ``Jose`` = ``JOSE``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Characters a reader cannot see: zero-width space/joiners, word joiner, BOM, soft hyphen,
# bidi marks, Mongolian vowel separator, invisible operators.
INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff")
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d")


def _latin_letters(predicate: str) -> str:
    ranges = [(0x41, 0x24F), (0x1E00, 0x1EFF)]  # Latin, Latin-1, Extended-A/B, Vietnamese
    chars = (chr(i) for lo, hi in ranges for i in range(lo, hi + 1))
    return "".join(c for c in chars if getattr(c, predicate)())


UPPER = _latin_letters("isupper")
"""Latin upper-case letters (accented ones included), for regular-expression classes."""
LOWER = _latin_letters("islower")
"""Latin lower-case letters (accented ones included)."""


@dataclass(frozen=True)
class NormalText:
    """Normalised text and, per character, the original span it comes from."""

    original: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the normalised span ``[start, end)``."""
        if end <= start:
            at = self.starts[start] if start < len(self.starts) else len(self.original)
            return at, at
        return self.starts[start], self.ends[end - 1]


def _clusters(text: str) -> list[tuple[int, int]]:
    """Spans of a base character and the combining marks after it."""
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and unicodedata.combining(text[j]):
            j += 1
        out.append((i, j))
        i = j
    return out


def normalize(text: str) -> NormalText:
    """NFKC without invisible characters, with ``-`` for dashes and `` `` for space variants.

    Line breaks stay (``\\r\\n`` too); tabs and every other space character become one
    space each, so the normalised text is never longer than a few characters per original.
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, j in _clusters(text):
        chunk = "".join(c for c in text[i:j] if c not in INVISIBLE)
        if not chunk:
            continue
        first = chunk[0]
        if first in _DASHES:
            piece = "-"
        elif first != "\n" and first != "\r" and first.isspace():
            piece = " "
        else:
            piece = unicodedata.normalize("NFKC", chunk)
            piece = "".join("-" if c in _DASHES else c for c in piece)
        for c in piece:
            out.append(c)
            starts.append(i)
            ends.append(j)
    return NormalText(text, "".join(out), tuple(starts), tuple(ends))


@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    base = unicodedata.normalize("NFD", c)[0]
    low = base.lower()
    return low if len(low) == 1 else base


def fold(text: str) -> str:
    """Same-length copy without accents and case (``José Ñ`` -> ``jose n``; ``ı`` -> ``i``)."""
    return "".join("i" if c == "ı" else _fold_char(c) for c in text)


def fold_word(word: str) -> str:
    """A word without accents and case, for look-ups (may be shorter than ``word``)."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().replace("ı", "i")


_INNER = r"(?:['’](?!(?:s|m|re|ve|ll|d|t)\b)[^\W\d_]+)*"
WORD_RE = re.compile(rf"[^\W\d_]+{_INNER}(?:-[^\W\d_]+{_INNER})*")
"""A word: letters, with inner apostrophes and hyphens (``O'Brien``, ``Müller-Lüdenscheidt``);
a contraction or possessive ending is not part of it (``Ana's`` -> ``Ana``, ``I'm`` -> ``I``)."""


def case_style(word: str) -> str:
    """``upper``, ``lower``, ``title`` or ``mixed`` (letters only)."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return "mixed"
    if all(c.isupper() for c in letters):
        return "upper" if len(letters) > 1 else "title"
    if all(c.islower() for c in letters):
        return "lower"
    if letters[0].isupper():
        return "title"
    return "mixed"


def title_copy(text: str, words: list[tuple[int, int]]) -> str:
    """``text`` with the given word spans title-cased (same length: case changes that
    would change the length are skipped)."""
    chars = list(text)
    for start, end in words:
        first = True
        for k in range(start, end):
            c = chars[k]
            if not c.isalpha():
                first = c not in "'’"
                continue
            new = c.upper() if first else c.lower()
            if len(new) == 1:
                chars[k] = new
            first = False
    return "".join(chars)
