"""Personal-data detection: Presidio's pattern recognizers, our own patterns and name finders.

Everything here runs on the device and offline. Presidio (``presidio-analyzer``) is used
through its recognizers directly, never through ``AnalyzerEngine``, which would try to load
(and download) a spaCy model; its e-mail recognizer is given the bundled public-suffix
snapshot so it never fetches one. Person names come from cue phrases and a first-name list
(``heuristic``), from a spaCy model when one is installed (``spacy``; never downloaded), or
from the local SLM (the ``privacy_filter`` node's ``model``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

PERSON, EMAIL, PHONE, CARD, IBAN, ADDRESS, ID, IP = (
    "PERSON", "EMAIL", "PHONE", "CARD", "IBAN", "ADDRESS", "ID", "IP",
)
ALL_TYPES: tuple[str, ...] = (PERSON, EMAIL, PHONE, CARD, IBAN, ADDRESS, ID, IP)
PATTERN_TYPES: tuple[str, ...] = (EMAIL, PHONE, CARD, IBAN, ADDRESS, ID, IP)
# Higher wins when two detections overlap with the same length.
_PRIORITY = {CARD: 8, IBAN: 8, EMAIL: 7, ID: 6, IP: 5, PHONE: 4, ADDRESS: 3, PERSON: 2}
_PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": EMAIL, "CREDIT_CARD": CARD, "IBAN_CODE": IBAN, "IP_ADDRESS": IP,
    "PHONE_NUMBER": PHONE, "US_SSN": ID, "UK_NINO": ID,
}
PLACEHOLDER_RE = re.compile(r"<(PERSON|EMAIL|PHONE|CARD|IBAN|ADDRESS|ID|IP)_(\d+)>")


@dataclass(frozen=True)
class Entity:
    """One detected span of personal data."""

    type: str
    start: int
    end: int
    text: str
    source: str
    score: float = 1.0


# --- checksums --------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces allowed)."""
    s = re.sub(r"\s", "", text).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _dni_ok(text: str) -> bool:
    s = text.upper().replace("-", "").replace(" ", "")
    prefix = {"X": "0", "Y": "1", "Z": "2"}
    body = prefix.get(s[0], s[0]) + s[1:-1] if s[0] in "XYZ" else s[:-1]
    return body.isdigit() and "TRWAGMYFPDXBNJZSQVHLCKE"[int(body) % 23] == s[-1]


def _phone_ok(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if re.fullmatch(r"\d{3}[-.]\d{4}", text):  # local US number, 555-0199
        return True
    return 7 <= len(digits) <= 15 and (text.startswith(("+", "(", "0")) or len(digits) >= 10)


# --- patterns ---------------------------------------------------------------------------

_CAP = (
    r"(?:O['’]|D['’])?[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]+(?:[A-Z][a-zà-öø-ÿ]+)?"
    r"(?:[-'’][A-ZÀ-ÖØ-Þa-zà-öø-ÿ][a-zà-öø-ÿ]+)?"
)
_STREET_SUFFIX = (
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Lane|Ln\.?|Boulevard|Blvd\.?|Drive|Dr\.?|Way|"
    r"Court|Ct\.?|Place|Pl\.?|Terrace|Parkway|Pkwy\.?|Square|Sq\.?|Close|Crescent|Highway|"
    r"Hwy\.?|Row|Walk|Gardens|Grove|Hill|Circle|Cir\.?|Trail|Mews)"
)
_UNIT = r"(?:,?\s*(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Floor|#)\s*[A-Za-z0-9-]+)?"
_CITY_TAIL = (
    r"(?:,\s*(?:[A-Z][a-zà-ÿ][A-Za-zà-ÿ.'-]*\s?){1,3}"  # , City
    r"(?:,?\s*(?:[A-Z]{2}\s+)?\d{5}(?:-\d{4})?|,\s*[A-Z]{2}\b|,?\s*[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})?)?"
)
_EU_STREET = (
    r"[A-ZÄÖÜÅÆØ][a-zäöüßåæøé]+(?:-[A-ZÄÖÜ]?[a-zäöüß]+)*"
    r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|laan|straat|gracht|plein|vej|veien|"
    r"vegen|gade|gata|gatan|väg|vägen|tie|katu|kuja|utca|ulice)"
)
_NUM_TAIL = (
    r"\s+\d{1,4}[a-zA-Z]?(?:\s+[A-Z]\s+\d{1,3})?"
    r"(?:,?\s*(?:kv\.?|apt\.?|flat|unit|suite|app\.?|wohnung)\s*[A-Za-z0-9-]+)?"
)
_POSTCODE_CITY = (
    rf"(?:,?\s*(?:\d{{4,6}}(?:\s?[A-Z]{{2}})?\s+{_CAP}(?:[ -]{_CAP})?|"
    rf"{_CAP}(?:\s+{_CAP})?\s+\d{{4,6}}))?"
)

PATTERNS: list[tuple[str, re.Pattern[str], Any]] = [
    (EMAIL, re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"), None),
    (IBAN, re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b"), iban_ok),
    (CARD, re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"),
     lambda t: luhn_ok(re.sub(r"\D", "", t))),
    (ID, re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"), None),  # US SSN
    (ID, re.compile(r"\b[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"), None),  # UK NINO
    (ID, re.compile(r"\b[XYZ]?-?\d{7,8}-?[A-Z]\b"), _dni_ok),  # Spanish DNI/NIE
    (ID, re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b"), None),  # Italian codice fiscale
    (ID, re.compile(
        r"(?i:\b(?:passport|id card|identity card|national id|id|ssn|social security|tax id|tin|"
        r"driver'?s licen[cs]e|licen[cs]e|personalausweis|steuer-id|bsn|dni|nie|nino|insurance)"
        r"(?:\s+(?:no\.?|number|nr\.?|#))?(?:\s+is)?\s*[:#]?\s*)([A-Z0-9][A-Z0-9-]{5,19})"), "group1"),
    (IP, re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"), None),
    (IP, re.compile(r"(?<![:\w])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![:\w])"), None),
    (IP, re.compile(r"(?<![:\w])(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?(?![:\w])"),
     lambda t: t.count(":") >= 2 and any(c.isdigit() for c in t)),
    (PHONE, re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(0?\d{1,4}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,6}){1,4}(?![\w-])"),
     lambda t: _phone_ok(t)),
    (ADDRESS, re.compile(
        rf"\b\d{{1,5}}[A-Za-z]?(?:-\d{{1,5}})?\s+(?:{_CAP}\s+){{0,3}}{_STREET_SUFFIX}\b(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?{_UNIT}{_CITY_TAIL}"), None),
    (ADDRESS, re.compile(
        rf"\b(?:rue|avenue|boulevard|place|via|viale|piazza|calle|avenida|plaza|rua|ulitsa|ul\.|ulica|"
        rf"prospekt)\s+(?:(?:de|del|della|di|la|le|des|du|da|do|dos)\s+|l')?"
        rf"(?:{_CAP}\s?){{1,3}},?{_NUM_TAIL}{_POSTCODE_CITY}", re.IGNORECASE), None),
    (ADDRESS, re.compile(
        rf"\b\d{{1,4}}(?:\s?bis)?,?\s+(?:rue|avenue|boulevard|place|via|calle|chemin|allée)\s+"
        rf"(?:(?:de|del|della|di|la|le|des|du)\s+|l')?(?:{_CAP}\s?){{1,3}}{_POSTCODE_CITY}", re.IGNORECASE), None),
    (ADDRESS, re.compile(rf"\b{_EU_STREET}{_NUM_TAIL}{_POSTCODE_CITY}"), None),
    (ADDRESS, re.compile(
        rf"\b(?:{_CAP}\s+){{1,2}}(?:Straße|Strasse|Weg|Gasse|Platz|Allee|{_STREET_SUFFIX})"
        rf"{_NUM_TAIL}{_POSTCODE_CITY}"), None),
]


def pattern_entities(text: str, types: Iterable[str] = PATTERN_TYPES) -> list[Entity]:
    """Entities found by tandemlm's own regular expressions (with checksums where they exist)."""
    wanted = set(types)
    out: list[Entity] = []
    for kind, pattern, check in PATTERNS:
        if kind not in wanted:
            continue
        for m in pattern.finditer(text):
            group = 1 if check == "group1" else 0
            value = m.group(group)
            if callable(check) and not check(value):
                continue
            value_stripped = value.rstrip(" ,.;")
            out.append(Entity(kind, m.start(group), m.start(group) + len(value_stripped), value_stripped, "pattern"))
    return out


# --- Presidio ---------------------------------------------------------------------------

_presidio_lock = threading.Lock()


@lru_cache(maxsize=1)
def _presidio_recognizers() -> list[tuple[Any, list[str]]]:
    """Presidio pattern recognizers, built once (importing presidio takes a few seconds)."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UkNinoRecognizer,
        UsSsnRecognizer,
    )

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    regions = ("US", "UK", "GB", "DE", "FR", "ES", "IT", "NL", "IE", "IN", "CA", "AU", "BR", "CH", "AT")
    return [
        (OfflineEmailRecognizer(), ["EMAIL_ADDRESS"]),
        (CreditCardRecognizer(), ["CREDIT_CARD"]),
        (IbanRecognizer(), ["IBAN_CODE"]),
        (IpRecognizer(), ["IP_ADDRESS"]),
        (PhoneRecognizer(supported_regions=regions), ["PHONE_NUMBER"]),
        (UsSsnRecognizer(), ["US_SSN"]),
        (UkNinoRecognizer(), ["UK_NINO"]),
    ]


def presidio_entities(text: str, types: Iterable[str] = PATTERN_TYPES, min_score: float = 0.3) -> list[Entity]:
    """Entities found by Presidio's pattern recognizers (no NLP engine, fully offline)."""
    wanted = set(types)
    out: list[Entity] = []
    with _presidio_lock:
        recognizers = _presidio_recognizers()
    for recognizer, entities in recognizers:
        if not any(_PRESIDIO_TYPES[e] in wanted for e in entities):
            continue
        for r in recognizer.analyze(text, entities, None) or []:
            kind = _PRESIDIO_TYPES.get(r.entity_type)
            if kind == PHONE and len(re.sub(r"\D", "", text[r.start:r.end])) < 7:
                continue  # prices such as 169.00
            if kind in wanted and r.score >= min_score:
                out.append(Entity(kind, r.start, r.end, text[r.start:r.end], "presidio", float(r.score)))
    return out


# --- names ------------------------------------------------------------------------------

FIRST_NAMES = frozenset(["aaron", "abdul", "abigail", "adam", "adebayo", "adrian", "agnieszka", "ahmed", "aiko", "aisha", "akira", "alan", "albert", "alejandro", "alessandro", "alex", "alexander", "alexandra", "alice", "alicia", "alina", "amanda", "amelia", "amir", "amy", "ana", "anders", "andrea", "andreas", "andrew", "andrzej", "angela", "anita", "anna", "anne", "annika", "anthony", "antoine", "antonio", "arjun", "arthur", "astrid", "barbara", "beatriz", "ben", "benjamin", "bernard", "bianca", "bogdan", "brandon", "brian", "bruno", "camille", "carla", "carlos", "carmen", "caroline", "catherine", "charles", "charlotte", "chen", "chiara", "chloe", "chris", "christian", "christina", "christopher", "claire", "claudia", "colin", "connor", "cristina", "daniel", "daniela", "david", "deborah", "deepak", "diana", "diego", "dmitri", "dominik", "donald", "dorothy", "douglas", "edward", "elena", "elif", "elizabeth", "ella", "emily", "emma", "eric", "erik", "esther", "ethan", "eva", "fatima", "felipe", "felix", "fernando", "fiona", "francesca", "francesco", "francisco", "frank", "franziska", "gabriel", "gabriela", "george", "georg", "giulia", "giuseppe", "grace", "greta", "hannah", "hans", "harry", "hassan", "heinrich", "helen", "helena", "henrik", "henry", "hiroshi", "hugo", "ian", "ibrahim", "igor", "ingrid", "irene", "isabel", "isabella", "ivan", "jack", "jacob", "james", "jan", "jane", "janet", "jason", "javier", "jennifer", "jessica", "jin", "joanna", "joao", "johan", "johannes", "john", "jonas", "jorge", "jose", "joseph", "joshua", "juan", "julia", "julian", "julien", "justin", "kai", "karen", "karl", "katarzyna", "kate", "katharina", "kathleen", "kenji", "kevin", "kim", "klaus", "kofi", "krzysztof", "laura", "lars", "lea", "leon", "lena", "leonardo", "liam", "lily", "linda", "lisa", "lorenzo", "louis", "lucas", "lucia", "luis", "luisa", "luka", "lukas", "magdalena", "manuel", "marco", "margaret", "maria", "marie", "marina", "mario", "mark", "marta", "martin", "mary", "mateo", "matteo", "matthew", "maximilian", "mehmet", "mei", "mia", "michael", "michelle", "miguel", "mikhail", "ming", "mohammed", "muhammad", "nadia", "nancy", "naomi", "natalia", "nathan", "nicholas", "nicolas", "nikolai", "nina", "noah", "nora", "olga", "oliver", "olivia", "omar", "oscar", "pablo", "pamela", "patricia", "patrick", "paul", "paula", "pedro", "peter", "philipp", "pierre", "pietro", "priya", "rachel", "rafael", "rahul", "raj", "ramon", "rebecca", "ricardo", "richard", "robert", "roberto", "rosa", "ruth", "ryan", "sakura", "samantha", "samuel", "sandra", "sara", "sarah", "sebastian", "sergei", "sergio", "simon", "sofia", "sophia", "sophie", "stefan", "stephanie", "steven", "susan", "svetlana", "takeshi", "tanaka", "tatiana", "thomas", "timothy", "tobias", "tom", "tomas", "ursula", "valentina", "valeria", "vanessa", "victor", "victoria", "vincent", "walter", "wei", "william", "xavier", "yasmin", "yuki", "yusuf", "zainab", "zoe"])
# Capitalised words that look like names but usually are not.
_NOT_NAMES = frozenset(["the", "a", "an", "i", "we", "you", "he", "she", "they", "it", "my", "our", "your", "his", "her", "their", "this", "that", "these", "those", "hello", "hi", "dear", "thanks", "thank", "please", "regards", "best", "kind", "yes", "no", "ok", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december", "street", "road", "avenue", "lane", "customer", "support", "team", "order", "account", "card", "bank", "iban", "email", "phone", "address", "sir", "madam", "mr", "mrs", "ms", "dr", "prof", "can", "could", "would", "will", "shall", "also", "and", "or", "but", "if", "when", "where", "what", "who"])
_HONORIFIC = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Herr|Frau|Mme|Mlle|Sr|Sra|Señor|Señora)\.?"
_PARTICLE = r"(?:(?:van|von|de|da|del|der|den|di|la|le|ten|ter|bin|al|dos|du)\s+){0,2}"
_NAME = rf"{_CAP}(?:\s+{_PARTICLE}{_CAP}){{0,2}}"
# Cues before a name: strong ones accept any capitalised word; medium ones a full name
# (two or more words); weak ones only a known first name.
_STRONG_CUE = (
    r"(?:[Mm]y name is|[Nn]ame\s*:|[Dd]ear|[Rr]egards,|[Ss]incerely,|[Cc]heers,|[Ss]igned|"
    r"[Nn]amed|[Cc]alled|[Cc]ustomer\s*:|[Cc]ontact\s*:|[Aa]ccount holder|[Hh]older\s*:)"
)
_MEDIUM_CUE = (
    r"(?:I am|I'm|[Tt]his is|[Hh]i|[Hh]ello|[Tt]hanks,|[Cc]ontact|[Cc]ustomer|[Pp]atient|[Cc]lient|"
    r"[Ee]mployee|[Cc]olleague|[Aa]sk for|[Aa]ccount of|[Ii]nvoice for|[Oo]n behalf of|[Mm]r|[Mm]rs)"
)
_WEAK_CUE = r"(?:[Ff]rom|[Bb]y|[Ww]ith|[Ff]or|[Tt]o|[Aa]nd|[Oo]f)"
_CUE = rf"(?:{_STRONG_CUE}|{_MEDIUM_CUE}|{_WEAK_CUE})"
_HONORIFIC_RE = re.compile(rf"\b{_HONORIFIC}\s+({_NAME})")
_CUE_RE = re.compile(rf"(?:^|(?<=\W)){_CUE}[\s,:]+({_NAME})")
_FULL_RE = re.compile(rf"\b({_NAME})\b")
_STRONG_CUE_RE = re.compile(rf"^{_STRONG_CUE}", re.IGNORECASE)
_MEDIUM_CUE_RE = re.compile(rf"^{_MEDIUM_CUE}", re.IGNORECASE)


def _clean_name(words: list[str]) -> list[str]:
    while words and words[-1].lower() in _NOT_NAMES:
        words.pop()
    while words and words[0].lower() in _NOT_NAMES:
        words.pop(0)
    return words


def heuristic_names(text: str) -> list[Entity]:
    """Person names from honorifics, cue phrases ("my name is", "Dear") and a first-name list."""
    out: list[Entity] = []

    def add(start: int, value: str, score: float) -> None:
        words = _clean_name(value.split())
        if not words:
            return
        name = " ".join(words)
        offset = text.find(name, start)
        if offset >= 0:
            out.append(Entity(PERSON, offset, offset + len(name), name, "heuristic", score))

    for m in _HONORIFIC_RE.finditer(text):
        add(m.start(1), m.group(1), 0.9)
    for m in _CUE_RE.finditer(text):
        cue = text[m.start():m.start(1)].strip()
        words = _clean_name(m.group(1).split())
        if not words:
            continue
        strong = _STRONG_CUE_RE.match(cue) is not None
        medium = _MEDIUM_CUE_RE.match(cue) is not None and len(words) >= 2
        if strong or medium or words[0].lower() in FIRST_NAMES:
            add(m.start(1), m.group(1), 0.8 if strong else 0.6)
    for m in _FULL_RE.finditer(text):
        words = m.group(1).split()
        for i, word in enumerate(words):
            if word.lower() in FIRST_NAMES:
                rest = words[i:]
                if len(rest) > 1 or word.lower() not in {"will", "grace", "may", "mark", "rosa", "kim"}:
                    add(m.start(1) + m.group(1).find(word), " ".join(rest), 0.6)
                break
    return out


_SPACY_MODELS = ("en_core_web_sm", "en_core_web_md", "en_core_web_lg", "en_core_web_trf")


@lru_cache(maxsize=1)
def spacy_pipeline() -> Any | None:
    """An installed spaCy English pipeline, or None. Never downloads anything."""
    import importlib.util

    for name in _SPACY_MODELS:
        if importlib.util.find_spec(name) is None:
            continue
        import spacy

        try:
            return spacy.load(name, disable=["lemmatizer", "textcat"])
        except OSError:
            continue
    return None


_spacy_lock = threading.Lock()


def spacy_names(text: str) -> list[Entity]:
    """PERSON entities from an installed spaCy model ([] when none is installed)."""
    nlp = spacy_pipeline()
    if nlp is None:
        return []
    with _spacy_lock:
        doc = nlp(text)
    return [
        Entity(PERSON, e.start_char, e.end_char, e.text, "spacy", 0.85)
        for e in doc.ents
        if e.label_ == "PERSON" and any(c.isupper() for c in e.text)
    ]


def names_in(text: str, candidates: Iterable[str], source: str) -> list[Entity]:
    """Entities for each candidate name that occurs verbatim in ``text`` (e.g. from an SLM)."""
    out: list[Entity] = []
    for raw in candidates:
        name = raw.strip().strip("-*•.,;:\"'` ").strip()
        if len(name) < 2 or len(name) > 60 or not name[0].isupper() or PLACEHOLDER_RE.search(name):
            continue
        if name.lower() in _NOT_NAMES or any(ch.isdigit() for ch in name):
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", text):
            out.append(Entity(PERSON, m.start(), m.end(), name, source, 0.7))
    return out


# --- putting it together ------------------------------------------------------------------

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


def detect(
    text: str,
    types: Iterable[str] = ALL_TYPES,
    *,
    presidio: bool = True,
    names: Iterable[str] = ("heuristic", "spacy"),
    extra: Iterable[Entity] = (),
    allow: Iterable[str] = (),
) -> list[Entity]:
    """All personal data in ``text`` as non-overlapping entities, in text order.

    Args:
        text: the text to scan.
        types: entity types to look for (``PERSON``, ``EMAIL``, ``PHONE``, ``CARD``, ``IBAN``,
            ``ADDRESS``, ``ID``, ``IP``).
        presidio: also use Presidio's pattern recognizers.
        names: name finders: ``heuristic`` and/or ``spacy`` (skipped when no model is installed).
        extra: entities found elsewhere (e.g. names the local SLM listed).
        allow: strings that are never redacted (e.g. the company's own name or e-mail).
    """
    wanted = set(types)
    found: list[Entity] = pattern_entities(text, wanted & set(PATTERN_TYPES))
    if presidio and wanted & set(PATTERN_TYPES):
        found += presidio_entities(text, wanted & set(PATTERN_TYPES))
    if PERSON in wanted:
        if "heuristic" in names:
            found += heuristic_names(text)
        if "spacy" in names:
            found += spacy_names(text)
        found += [e for e in extra if e.type == PERSON]
    allowed = {a.lower() for a in allow}
    found = [e for e in found if e.text.lower() not in allowed and not PLACEHOLDER_RE.fullmatch(e.text)]
    return resolve_overlaps(found)
