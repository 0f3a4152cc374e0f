"""tandemlm's own recognizers for structured personal data, run on normalised text.

Cards and IBANs are found as runs of digit (or letter-digit) groups with any separator a
person writes (spaces, double spaces, dots, dashes, slashes, a line break) and kept only
when a checksum passes (Luhn, ISO 13616 mod 97) for some run of whole groups. E-mails accept
``[at]``/``(at)``/`` at ... dot ``  spellings; dates of birth need a cue ("born", "DOB",
"date of birth", ``"dob":``); US SSNs come with or without separators; addresses are
matched on their street part and then grown over unit, postcode, city, state and country
(:func:`grow_address`). Every function takes normalised text (:mod:`tandemlm.pii.text`)
and returns ``(type, start, end, score)`` hits in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from tandemlm.pii.text import LOWER, UPPER, WORD_RE, case_style, title_copy

Hit = tuple[str, int, int, float]
"""A detection in normalised text: ``(type, start, end, score)``."""


# --- checksums ------------------------------------------------------------------------------

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
    """ISO 13616 mod-97 check of an IBAN (separators and lower case allowed)."""
    s = re.sub(r"[^A-Za-z0-9]", "", text).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _dni_ok(text: str) -> bool:
    s = text.upper().replace("-", "").replace(" ", "")
    prefix = {"X": "0", "Y": "1", "Z": "2"}
    body = prefix.get(s[0], s[0]) + s[1:-1] if s[0] in "XYZ" else s[:-1]
    return body.isdigit() and "TRWAGMYFPDXBNJZSQVHLCKE"[int(body) % 23] == s[-1]


def _ssn_ok(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone_ok(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if re.fullmatch(r"\d{3}[-.]\d{4}", text):  # local US number, 555-0199
        return True
    return 7 <= len(digits) <= 15 and (text.startswith(("+", "(", "0")) or len(digits) >= 10)


# --- cards and IBANs: groups with any separator --------------------------------------------------

_SEP = r"(?:[ \t./-]{1,3}|[ \t]*\r?\n[ \t]*)"
_DIGIT_RUN = re.compile(rf"(?<![\w.-])\d+(?:{_SEP}\d+)*(?!\w)")
_IBAN_RUN = re.compile(rf"(?<![\w.-])[A-Za-z]{{2}}\d{{2}}[A-Za-z0-9]*(?:{_SEP}[A-Za-z0-9]+){{0,12}}")


def _groups(match: re.Match[str], pattern: str) -> list[tuple[int, int]]:
    return [(m.start() + match.start(), m.end() + match.start()) for m in re.finditer(pattern, match.group(0))]


def cards(text: str) -> Iterator[Hit]:
    """Card numbers: 13-19 digits in groups of 3-6 (or one run), passing Luhn."""
    for run in _DIGIT_RUN.finditer(text):
        groups = _groups(run, r"\d+")
        i = 0
        while i < len(groups):
            best = None
            for j in range(i, len(groups)):
                digits = "".join(text[a:b] for a, b in groups[i:j + 1])
                if len(digits) > 19:
                    break
                sizes = [b - a for a, b in groups[i:j + 1]]
                shaped = len(sizes) == 1 or all(3 <= s <= 6 for s in sizes)
                if 13 <= len(digits) and shaped and luhn_ok(digits):
                    best = j
            if best is None:
                i += 1
                continue
            yield ("CARD", groups[i][0], groups[best][1], 1.0)
            i = best + 1


def ibans(text: str) -> Iterator[Hit]:
    """IBANs in any case and with any separator, passing mod 97 (the longest valid prefix)."""
    for run in _IBAN_RUN.finditer(text):
        groups = _groups(run, r"[A-Za-z0-9]+")
        for j in range(len(groups) - 1, -1, -1):
            value = text[groups[0][0]:groups[j][1]]
            if iban_ok(value):
                yield ("IBAN", groups[0][0], groups[j][1], 1.0)
                break


# --- e-mail, phone, ids, IPs ----------------------------------------------------------------

_OPEN, _CLOSE = r"[\[({<]", r"[\])}>]"
_AT = rf"(?:\s?@\s?|\s*{_OPEN}\s*at\s*{_CLOSE}\s*|\s+at\s+(?=[\w-]+(?:\s+dot\s+|\s*{_OPEN}\s*dot\s*{_CLOSE})))"
_DOT = rf"(?:\.|\s*{_OPEN}\s*dot\s*{_CLOSE}\s*|\s+dot\s+)"
_EMAIL = re.compile(
    rf"(?<![\w.+-])[\w.+-]*\w{_AT}[A-Za-z0-9-]+(?:{_DOT}[A-Za-z0-9-]+)*{_DOT}[A-Za-z]{{2,24}}\b", re.IGNORECASE
)
_PHONE = re.compile(
    r"(?<![\w+])(?<![A-Za-z]-)(?:\+\d{1,3}[\s.-]?)?(?:\(0?\d{1,4}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,6}){1,4}(?![\w-])"
)
_ID_CUE = (
    r"\b(?:passport|id card|identity card|national id|id|ssn|social security|tax id|tin|"
    r"driver'?s licen[cs]e|licen[cs]e|personalausweis|steuer-id|bsn|dni|nie|nino|insurance)"
    r"(?:\s+(?:no\.?|number|nr\.?|#))?(?:\s+(?:is|was))?\s*[:#]?\s*"
)
_PATTERNS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None, int]] = [
    ("ID", re.compile(r"(?<![\d.-])(\d{3})([-. ])(\d{2})\2(\d{4})(?![\d-])"), lambda t: _ssn_ok(re.sub(r"\D", "", t)), 0),
    ("ID", re.compile(r"(?i:\b(?:ssn|social security(?: number| no\.?)?|social)\b(?:\s+(?:is|was|number|no\.?))*\s*[:#]?\s*)(\d{9})\b"),
     _ssn_ok, 1),
    ("ID", re.compile(r"\b[A-Za-z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-Da-d]\b"),
     lambda t: not t[:2].upper().startswith(("D", "F", "I", "Q", "U", "V")) or t[:2].upper() == "QQ", 0),  # UK NINO
    ("ID", re.compile(r"\b[XYZxyz]?-?\d{7,8}-?[A-Za-z]\b"), _dni_ok, 0),  # Spanish DNI/NIE
    ("ID", re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b"), None, 0),  # Italian codice fiscale
    ("ID", re.compile(rf"(?i:{_ID_CUE})((?=[A-Za-z-]*\d)[A-Za-z0-9][A-Za-z0-9-]{{5,19}})\b"), None, 1),
    ("IP", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"), None, 0),
    ("IP", re.compile(r"(?<![:\w])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![:\w])"), None, 0),
    ("IP", re.compile(r"(?<![:\w])(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?(?![:\w])"),
     lambda t: t.count(":") >= 2 and any(c.isdigit() for c in t), 0),
    ("EMAIL", _EMAIL, None, 0),
    ("PHONE", _PHONE, _phone_ok, 0),
]


# --- dates of birth -----------------------------------------------------------------------------

_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|"
    "januar|februar|märz|maerz|mai|juni|juli|oktober|dezember|"
    "janvier|février|fevrier|mars|avril|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre|"
    "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre|"
    "gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|"
    "januari|februari|maart|mei|augustus"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th|er|o|\.)?"
_DATE = (
    rf"(?:\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}|\d{{1,2}}[-/.]\d{{1,2}}[-/.](?:\d{{4}}|\d{{2}})"
    rf"|{_DAY}\s*(?:of\s+|de\s+)?(?:{_MONTHS})\.?,?\s+(?:de\s+)?\d{{4}}"
    rf"|(?:{_MONTHS})\.?\s+{_DAY},?\s+\d{{4}})"
)
_DOB_CUE = (
    r"(?:date[\s_-]*of[\s_-]*birth|birth[\s_-]*date|birthday|b-?day|\bd\.?\s?o\.?\s?b\b\.?|\bborn\b|"
    r"\bgeb\.|\bgeboren\b|geburtsdatum|geburtstag|\bn[ée]e?\s+le\b|date\s+de\s+naissance|"
    r"fecha\s+de\s+nacimiento|nacid[oa]\s+el|data\s+di\s+nascita|\bnat[oa]\s+il\b|geboortedatum)"
)
_DOB = re.compile(rf"(?i:{_DOB_CUE}[^\n;!?]{{0,30}}?)\b({_DATE})(?!\d)", re.IGNORECASE)


def dates_of_birth(text: str) -> Iterator[Hit]:
    """Dates after a birth cue (``born on 3 March 1979``, ``DOB 1992-11-05``, ``"dob": ...``)."""
    for m in _DOB.finditer(text):
        yield ("DOB", m.start(1), m.end(1), 1.0)


# --- addresses --------------------------------------------------------------------------------

_U, _L = f"[{UPPER}]", f"[{LOWER}]"
_CAP = rf"(?:O['’]|D['’]|Mc|Mac)?{_U}{_L}+(?:{_U}{_L}+)?(?:[-'’]{_U}?{_L}+)*"
_STOP = (
    r"(?i:the|on|in|at|of|to|a|an|and|or|for|from|with|my|your|our|his|her|their|by|via|per|is|are|"
    r"was|were|this|that|these|those|more|some|any|all|no|not|off|into|onto|over|out|up|down)\b"
)
_STREET_SUFFIX = (
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Lane|Ln\.?|Boulevard|Blvd\.?|Drive|Dr\.?|Way|"
    r"Court|Ct\.?|Place|Pl\.?|Terrace|Parkway|Pkwy\.?|Square|Sq\.?|Close|Crescent|Highway|"
    r"Hwy\.?|Row|Walk|Gardens|Grove|Hill|Circle|Cir\.?|Trail|Mews)"
)
_DIRECTION = r"(?:\s+(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\b)?"
_EU_STREET = (
    rf"{_U}{_L}+(?:-{_U}?{_L}+)*"
    r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|laan|straat|gracht|plein|vej|veien|"
    r"vegen|gade|gata|gatan|väg|vägen|tie|katu|kuja|utca|ulice)"
)
_NUM_TAIL = r"\s+\d{1,4}[a-zA-Z]?(?:\s*[-/]\s*\d{1,4}[a-zA-Z]?)?(?:\s+[A-Z]\s+\d{1,3})?(?![\d\w])"
_PARTICLES = r"(?:(?:de|del|della|di|la|le|les|des|du|l'|da|do|dos|van|von|der|den|het)\s+|l'|d')"
_ADDRESS_CORES = [
    re.compile(rf"\b\d{{1,5}}[A-Za-z]?(?:-\d{{1,5}})?\s+(?:(?!{_STOP}){_CAP}\s+){{0,3}}{_STREET_SUFFIX}\b{_DIRECTION}"),
    re.compile(
        rf"\b(?:rue|avenue|boulevard|place|via|viale|piazza|corso|calle|avenida|plaza|paseo|rua|"
        rf"ulitsa|ul\.|ulica|prospekt|chemin|allée|quai)\s+{_PARTICLES}{{0,2}}(?:{_CAP}[ -]?){{1,3}},?{_NUM_TAIL}",
        re.IGNORECASE),
    re.compile(
        rf"\b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|boulevard|place|via|calle|chemin|allée|quai|impasse)\s+"
        rf"{_PARTICLES}{{0,2}}(?:{_CAP}[ -]?){{1,3}}", re.IGNORECASE),
    re.compile(rf"\b{_EU_STREET}{_NUM_TAIL}"),
    re.compile(
        rf"\b(?:(?!{_STOP}){_CAP}\s+){{1,2}}(?:Straße|Strasse|Weg|Gasse|Platz|Allee|{_STREET_SUFFIX})\b{_NUM_TAIL}"),
]
_W = r"[^\W\d_]+(?:['’.-][^\W\d_]+)*\.?"
_CITY_PARTICLE = r"(?:am|an der|an|upon|on|sur|le|la|de|del|di|im|in|ob|bei|-)"
_CITY_TITLE = rf"{_U}{_L}+(?:['’-]{_U}?{_L}+)*"
_CITY_UPPER = rf"{_U}{{2,}}(?:['’-]{_U}+)*"
_CITY = (
    rf"(?!{_STOP})(?:{_CITY_TITLE}(?:(?:[ -]|\s{_CITY_PARTICLE}\s){_CITY_TITLE}){{0,2}}"
    rf"|{_CITY_UPPER}(?:[ -]{_CITY_UPPER}){{0,2}}"
    rf"|[{LOWER}]{{2,}}(?:-[{LOWER}]+)*)"
)
_UK_PC = r"[A-Za-z]{1,2}\d[A-Za-z\d]?\s*\d[A-Za-z]{2}"
_IE_PC = r"[AC-FHKNPRTV-Ya-fhknprtv-y]\d{2}\s?[AC-FHKNPRTV-Ya-fhknprtv-y0-9]{4}"
_CA_PC = r"[A-Za-z]\d[A-Za-z]\s?\d[A-Za-z]\d"
_POSTCODE = r"(?:[A-Z]{1,2}-)?(?:\d{2}-\d{3}|\d{4}-\d{3}|\d{3}\s\d{2}|\d{4}\s?[A-Z]{2}\b|\d{4,6})"
_STATE_ZIP = r"[A-Za-z]{2}\.?\s+(?:\d{5}(?:-\d{4})?|" + _CA_PC + r")"
_COUNTRY = (
    r"(?:United Kingdom|UK|U\.K\.|Great Britain|England|Scotland|Wales|Northern Ireland|Ireland|"
    r"USA|U\.S\.A\.|US|United States|Canada|Australia|New Zealand|Germany|Deutschland|France|Spain|"
    r"España|Italy|Italia|Netherlands|Nederland|Belgium|Belgique|België|Switzerland|Schweiz|Suisse|"
    r"Austria|Österreich|Poland|Polska|Sweden|Sverige|Norway|Norge|Denmark|Danmark|Finland|Suomi|"
    r"Portugal|Czech Republic|Czechia|Hungary|Greece|Romania|Bulgaria|Croatia|Slovenia|Slovakia)\b"
)
_BREAK = r"(?:\s*,\s*|\s*\r?\n\s*|\s+)"
_TAILS = [
    # unit, floor, door
    re.compile(
        r"(?i:,?\s*(?:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|#|app\.?|wohnung|whg\.?|"
        r"piso|puerta|pta\.?|bus|bte\.?|étage|etage|kv\.?|lgh\.?|stiege|stg\.?|top)\s*[A-Za-z0-9-]+\.?)"),
    re.compile(r"(?i:,\s*\d{1,2}\s?[ºªo°a]?\.?\s*(?:izq(?:da|uierda)?|dcha|der(?:echa)?|centro|ctro|dr|th|tv|mf|st)\.?)"),
    # postcode then city (10115 Berlin, 1016 GV Amsterdam, 00-017 Warszawa, 111 51 Stockholm)
    re.compile(rf"{_BREAK}{_POSTCODE}\s+{_CITY}"),
    # city then postcode, state + zip, province + postal code (Cheltenham GL52 2LP, Evanston, IL 60201)
    re.compile(rf"{_BREAK}{_CITY},?\s+(?:{_STATE_ZIP}|{_UK_PC}|{_IE_PC}|{_CA_PC}|\d{{4,6}})\b"),
    re.compile(rf"{_BREAK}(?:{_STATE_ZIP}|{_UK_PC}|{_IE_PC}|{_CA_PC})\b"),
    re.compile(rf"\s*,\s*{_COUNTRY}"),
]
_CITY_ALONE = re.compile(rf"(?:\s*,\s*|\s*\r?\n\s*)({_U}{_L}+(?:[ -]{_U}{_L}+){{0,2}})(?=\s*(?:$|[\n.;!?)]))")


def _recased(text: str) -> str:
    """``text`` with all-caps and all-lower-case words title-cased (same length)."""
    words = [(m.start(), m.end()) for m in WORD_RE.finditer(text) if case_style(m.group(0)) in ("upper", "lower")]
    return title_copy(text, words) if words else text


def grow_address(text: str, end: int, places: Iterable[tuple[int, int]] = ()) -> int:
    """The end of an address starting before ``end`` once unit, postcode, city, state and
    country after it are included. ``places``: spans the NER model labelled as places (a
    city after a comma counts then)."""
    place_starts = {s: e for s, e in places}
    for _ in range(6):
        for tail in _TAILS:
            m = tail.match(text, end)
            if m and m.end() > end:
                end = m.end()
                break
        else:
            m = _CITY_ALONE.match(text, end)
            if m:
                end = m.end()
                continue
            m = re.compile(r"\s*,\s*|\s*\r?\n\s*").match(text, end)
            if m and m.end() in place_starts:
                end = place_starts[m.end()]
                continue
            break
    return end


def addresses(text: str, places: Iterable[tuple[int, int]] = ()) -> Iterator[Hit]:
    """Street addresses, grown over what follows them (:func:`grow_address`); also found in
    all-caps and lower-case text."""
    places = list(places)
    seen: set[tuple[int, int]] = set()
    recased = _recased(text)
    for source in (text, recased) if recased != text else (text,):
        for pattern in _ADDRESS_CORES:
            for m in pattern.finditer(source):
                start, end = m.start(), m.end()
                while end > start and text[end - 1] in " ,;":
                    end -= 1
                end = grow_address(text, end, places)
                if (start, end) not in seen:
                    seen.add((start, end))
                    yield ("ADDRESS", start, end, 0.9)


def patterns(text: str, places: Iterable[tuple[int, int]] = ()) -> Iterator[Hit]:
    """Every structured-data hit (all types but ``PERSON``) in normalised ``text``."""
    yield from cards(text)
    yield from ibans(text)
    yield from dates_of_birth(text)
    yield from addresses(text, places)
    for kind, pattern, check, group in _PATTERNS:
        for m in pattern.finditer(text):
            value = m.group(group)
            if check is not None and not check(value):
                continue
            stripped = value.rstrip(" ,.;")
            yield (kind, m.start(group), m.start(group) + len(stripped), 1.0)
