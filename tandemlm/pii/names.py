"""Person names by rules, in any case and with any accents.

Finders (each returns spans in normalised text):

- cue phrases (``my name is``, ``the account holder is``, ``Dear``, ``Regards,``, ``c/o``,
  ``signed for by``, ``I'm``, ``for``, ...; strong cues take any name-like word, weaker ones
  need an uncommon word or a known first name) and honorifics;
- form and JSON fields (``"first_name": "Eulalia"``, ``last_name=...``, ``full_name: ...``);
- a signature on the last line;
- a first-name list (accent- and case-insensitive);
- :func:`grow_name`: every found name, from any finder (spaCy's NER and the local SLM too),
  grows over the name-like words next to it, so a surname is never left behind a first name.

Lower- and upper-case text has no capitals to go by: there a word counts as a name when it
is not a common English word (:class:`Vocabulary`: stop words plus the WordNet lemma index
that ships with spaCy's English pipeline) or is a known first name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tandemlm.pii.text import WORD_RE, case_style, fold_word

Span = tuple[int, int, float]
"""A name in normalised text: ``(start, end, score)``."""

FIRST_NAMES = frozenset([
    # the list of the first version (kept as it was)
    "aaron", "abdul", "abigail", "adam", "adebayo", "adrian", "agnieszka", "ahmed", "aiko", "aisha", "akira",
    "alan", "albert", "alejandro", "alessandro", "alex", "alexander", "alexandra", "alice", "alicia", "alina",
    "amanda", "amelia", "amir", "amy", "ana", "anders", "andrea", "andreas", "andrew", "andrzej", "angela",
    "anita", "anna", "anne", "annika", "anthony", "antoine", "antonio", "arjun", "arthur", "astrid", "barbara",
    "beatriz", "ben", "benjamin", "bernard", "bianca", "bogdan", "brandon", "brian", "bruno", "camille", "carla",
    "carlos", "carmen", "caroline", "catherine", "charles", "charlotte", "chen", "chiara", "chloe", "chris",
    "christian", "christina", "christopher", "claire", "claudia", "colin", "connor", "cristina", "daniel",
    "daniela", "david", "deborah", "deepak", "diana", "diego", "dmitri", "dominik", "donald", "dorothy",
    "douglas", "edward", "elena", "elif", "elizabeth", "ella", "emily", "emma", "eric", "erik", "esther",
    "ethan", "eva", "fatima", "felipe", "felix", "fernando", "fiona", "francesca", "francesco", "francisco",
    "frank", "franziska", "gabriel", "gabriela", "george", "georg", "giulia", "giuseppe", "grace", "greta",
    "hannah", "hans", "harry", "hassan", "heinrich", "helen", "helena", "henrik", "henry", "hiroshi", "hugo",
    "ian", "ibrahim", "igor", "ingrid", "irene", "isabel", "isabella", "ivan", "jack", "jacob", "james", "jan",
    "jane", "janet", "jason", "javier", "jennifer", "jessica", "jin", "joanna", "joao", "johan", "johannes",
    "john", "jonas", "jorge", "jose", "joseph", "joshua", "juan", "julia", "julian", "julien", "justin", "kai",
    "karen", "karl", "katarzyna", "kate", "katharina", "kathleen", "kenji", "kevin", "kim", "klaus", "kofi",
    "krzysztof", "laura", "lars", "lea", "leon", "lena", "leonardo", "liam", "lily", "linda", "lisa", "lorenzo",
    "louis", "lucas", "lucia", "luis", "luisa", "luka", "lukas", "magdalena", "manuel", "marco", "margaret",
    "maria", "marie", "marina", "mario", "mark", "marta", "martin", "mary", "mateo", "matteo", "matthew",
    "maximilian", "mehmet", "mei", "mia", "michael", "michelle", "miguel", "mikhail", "ming", "mohammed",
    "muhammad", "nadia", "nancy", "naomi", "natalia", "nathan", "nicholas", "nicolas", "nikolai", "nina",
    "noah", "nora", "olga", "oliver", "olivia", "omar", "oscar", "pablo", "pamela", "patricia", "patrick",
    "paul", "paula", "pedro", "peter", "philipp", "pierre", "pietro", "priya", "rachel", "rafael", "rahul",
    "raj", "ramon", "rebecca", "ricardo", "richard", "robert", "roberto", "rosa", "ruth", "ryan", "sakura",
    "samantha", "samuel", "sandra", "sara", "sarah", "sebastian", "sergei", "sergio", "simon", "sofia",
    "sophia", "sophie", "stefan", "stephanie", "steven", "susan", "svetlana", "takeshi", "tanaka", "tatiana",
    "thomas", "timothy", "tobias", "tom", "tomas", "ursula", "valentina", "valeria", "vanessa", "victor",
    "victoria", "vincent", "walter", "wei", "william", "xavier", "yasmin", "yuki", "yusuf", "zainab", "zoe",
    # common first names across languages (added with the NER rework; none taken from the
    # held-out adversarial corpus)
    "abena", "abimbola", "adaeze", "adriana", "agata", "ahmad", "aidan", "aiden", "ali", "alberto", "alfonso",
    "alicja", "alistair", "amara", "amina", "anastasia", "andrei", "andres", "angelo", "anja", "ann", "annette",
    "anton", "antje", "arnaud", "arne", "ashley", "aylin", "ayumi", "bartosz", "beata", "beatrice", "benedikt",
    "bernd", "birgit", "bjorn", "blessing", "boris", "brigitte", "bronwen", "caitlin", "callum", "carl",
    "carlo", "carolina", "cecilia", "celine", "chidi", "chinedu", "chioma", "christine", "ciaran", "clara",
    "claude", "conor", "constance", "dagmar", "damian", "darius", "declan", "denis", "dennis", "dieter",
    "dimitri", "dominique", "dorota", "dylan", "eamon", "edith", "eduardo", "eilidh", "elisa", "elisabeth",
    "eliza", "ellen", "elsa", "emeka", "emilia", "emilio", "enrique", "eoin", "erin", "ernesto", "esra",
    "ewa", "fabian", "fabio", "farah", "fatma", "federico", "femi", "finn", "florian", "francis", "fredrik",
    "funmi", "gabor", "gemma", "gerhard", "gianluca", "gillian", "giorgio", "giovanni", "gordon", "gregor",
    "gretchen", "gustavo", "gwendolyn", "hakon", "hana", "harald", "harriet", "heidi", "helga", "hendrik",
    "hiroko", "hong", "huong", "ifeoma", "ilse", "imran", "ioana", "isaac", "isabelle", "ivana", "jakob",
    "jamal", "jana", "janina", "jasmine", "jayden", "jean", "jens", "jeremy", "jerome", "jiho", "joachim",
    "joaquin", "joel", "jonathan", "jordi", "josef", "josephine", "judith", "julie", "jun", "jurgita",
    "kamal", "karin", "katarina", "katja", "keith", "kenneth", "kerstin", "khalid", "kirsten", "konstantin",
    "kristina", "kurt", "laila", "laszlo", "layla", "leila", "leopold", "liesbeth", "lin", "lorcan", "lotta",
    "louise", "luc", "lucie", "ludwig", "luigi", "maciej", "madeleine", "mahmoud", "maja", "malgorzata",
    "manon", "marcel", "marek", "margarita", "mariana", "marius", "marko", "markus", "martina", "matilda",
    "mats", "maurice", "maximilian", "mehdi", "melanie", "mercedes", "mika", "milan", "milena", "miriam",
    "mohamed", "monika", "nadine", "natasha", "neil", "nicole", "niamh", "nils", "nkechi", "noor", "norbert",
    "oksana", "ole", "oluwaseun", "padraig", "paolo", "patrik", "pavel", "petra", "philippe", "pia", "pilar",
    "piotr", "rafal", "ralf", "ramona", "raphael", "rashid", "raul", "regina", "renata", "rene", "rhys",
    "rita", "rolf", "roman", "rosalia", "rui", "rukhsana", "sabine", "salma", "sami", "sandro", "sanjay",
    "saoirse", "sean", "selin", "shauna", "silvia", "simone", "sinead", "siobhan", "sonia", "stanislav",
    "stella", "sunita", "susanne", "sven", "sylvia", "tamara", "tariq", "teresa", "theo", "thi", "tiago",
    "tim", "tomasz", "tuomas", "ulrich", "uwe", "vera", "veronika", "viktor", "vladimir", "wojciech",
    "wolfgang", "yara", "yasmine", "yelena", "yiannis", "yosef", "yuri", "zeynep", "zofia", "zsofia",
])

_GREETINGS = (
    "hello", "hi", "hey", "dear", "thanks", "thank", "thx", "please", "pls", "regards", "best", "kind", "warm",
    "sincerely", "cheers", "yours", "greetings", "morning", "afternoon", "evening", "welcome", "sorry", "ok",
    "okay", "yes", "no", "hallo", "hola", "bonjour", "ciao", "danke", "merci", "gracias", "grazie", "bitte",
)
_CALENDAR = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february",
    "march", "april", "may", "june", "july", "august", "september", "october", "november", "december",
    "today", "tomorrow", "yesterday", "christmas", "easter",
)
_DOMAIN = (
    "street", "road", "avenue", "lane", "customer", "customers", "support", "team", "order", "orders",
    "account", "card", "bank", "iban", "email", "mail", "phone", "tel", "fax", "mobile", "address", "sir",
    "madam", "mr", "mrs", "ms", "miss", "dr", "prof", "inc", "ltd", "llc", "gmbh", "co", "corp", "company",
    "department", "dept", "returns", "return", "service", "services", "shop", "store", "refund", "invoice",
    "ticket", "parcel", "package", "delivery", "shipping", "subject", "name", "first", "last", "attn",
    "re", "fw", "fwd", "visa", "mastercard", "amex", "paypal", "express", "ups", "dhl", "fedex", "usps",
    "god", "holder", "owner", "manager", "agent", "colleague", "everyone", "all", "there", "guys", "folks",
    "faq", "usb", "sku", "id", "ssn", "dob", "nino", "passport", "licence", "license", "insurance",
)
NOT_NAMES = frozenset((*_GREETINGS, *_CALENDAR, *_DOMAIN))
"""Words that look like names in some text but are not (greetings, months, shop words)."""

_PARTICLES = frozenset(
    ["van", "von", "de", "der", "den", "da", "di", "del", "della", "le", "la", "du", "dos", "das", "do", "bin",
     "ibn", "al", "el", "ni", "nic", "mac", "mc", "ter", "ten", "st", "y", "zu", "af", "ap", "ua", "ui"]
)
_CONTRACTIONS = frozenset(["m", "s", "re", "ve", "ll", "d", "t"])
_STOP_FALLBACK = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "at", "by", "for", "with", "about", "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "can", "will", "just", "should", "now", "i", "me", "my", "myself", "we", "our", "ours", "you", "your", "he", "him", "his", "she", "her", "it", "its", "they", "them", "their", "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "would", "could", "might", "must", "shall", "may", "also", "still", "yet", "ever", "never"]
)


@dataclass
class Vocabulary:
    """Common words, to tell names from words in text without capitals.

    Args:
        words: dictionary words, folded (the WordNet lemma index of spaCy's pipeline).
        stop: stop words, folded.
    """

    words: frozenset[str] = frozenset()
    stop: frozenset[str] = _STOP_FALLBACK
    _cache: dict[str, bool] = field(default_factory=dict, repr=False)

    def is_stop(self, word: str) -> bool:
        f = fold_word(word).replace("’", "'")
        tail = f.partition("'")[2]
        if tail in _CONTRACTIONS:  # I'm, it's, we're, don't
            return True
        return f in self.stop or f in NOT_NAMES

    def common(self, word: str) -> bool:
        """Whether ``word`` is a stop word or a dictionary word (or an inflection of one)."""
        f = fold_word(word)
        if f in self._cache:
            return self._cache[f]
        found = f in self.stop or f in NOT_NAMES or any(
            form in self.words for form in _lemmas(f)
        )
        if len(self._cache) < 50_000:
            self._cache[f] = found
        return found


def _lemmas(word: str) -> list[str]:
    forms = [word]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
                         ("ing", "e"), ("ly", ""), ("er", ""), ("est", ""), ("'s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.append(word[: len(word) - len(suffix)] + repl)
    if len(forms[-1]) > 3 and forms[-1][-1] == forms[-1][-2]:  # stopped -> stopp -> stop
        forms.append(forms[-1][:-1])
    return forms


def is_first_name(word: str) -> bool:
    """Whether ``word`` (any case, any accents) is on the first-name list."""
    return fold_word(word) in FIRST_NAMES


# --- words and growing ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    text: str
    style: str


def _words(text: str) -> list[_Word]:
    return [_Word(m.start(), m.end(), m.group(0), case_style(m.group(0))) for m in WORD_RE.finditer(text)]


def _adjacent(text: str, left: _Word, right: _Word) -> bool:
    gap = text[left.end:right.start]
    return gap in (" ", ". ") and not (gap == ". " and len(left.text) > 1)


def _name_word(word: _Word, style: str, vocab: Vocabulary) -> bool:
    """Whether ``word`` can continue a name written in ``style``."""
    if vocab.is_stop(word.text) and not is_first_name(word.text):
        return False
    if style == "title" or style == "mixed":
        return word.style in ("title", "mixed") or (word.style == "upper" and len(word.text) <= 3)
    if word.style != style:
        return False
    return is_first_name(word.text) or not vocab.common(word.text)


def grow_name(text: str, start: int, end: int, vocab: Vocabulary, words: list[_Word] | None = None) -> tuple[int, int]:
    """The span of a name once the name-like words right after it (and a known first name or
    particle right before it) are included: ``Anna`` -> ``Anna Wintersteiger``."""
    words = words if words is not None else _words(text)
    inside = [i for i, w in enumerate(words) if w.start >= start and w.end <= end]
    if not inside:
        return start, end
    first, last = inside[0], inside[-1]
    style = words[first].style
    count = last - first + 1
    i = last + 1
    while i < len(words) and count < 5 and _adjacent(text, words[i - 1], words[i]):
        word = words[i]
        if fold_word(word.text) in _PARTICLES and i + 1 < len(words) and _adjacent(text, word, words[i + 1]) \
                and _name_word(words[i + 1], style, vocab):
            i, count = i + 2, count + 2
            end = words[i - 1].end
            continue
        if not _name_word(word, style, vocab):
            break
        end, i, count = word.end, i + 1, count + 1
    j = first - 1
    while j >= 0 and count < 5 and _adjacent(text, words[j], words[j + 1]):
        word, after = words[j], words[j + 1]
        particle = fold_word(word.text) in _PARTICLES and word.style == "lower" and style != "lower"
        known = is_first_name(word.text) and _name_word(word, style, vocab)
        # a surname found alone takes the capitalised uncommon word before it (Cormac O'Sullivan)
        given = (word.style == style == "title" and not is_first_name(after.text)
                 and not vocab.common(word.text) and not vocab.is_stop(word.text))
        if not (particle or known or given):
            break
        start, j, count = word.start, j - 1, count + 1
    return start, end


def trim(text: str, start: int, end: int, vocab: Vocabulary, strict: bool) -> tuple[int, int]:
    """``[start, end)`` without the stop words (``strict``: and common words that are not
    first names) at either end: ``giulia romano again`` -> ``giulia romano``."""
    words = list(WORD_RE.finditer(text, start, end))

    def drop(m: re.Match[str]) -> bool:
        word = m.group(0)
        if is_first_name(word):
            return False
        return vocab.is_stop(word) or (strict and vocab.common(word))

    while words and drop(words[-1]):
        words.pop()
    while words and drop(words[0]):
        words.pop(0)
    if not words:
        return start, start
    return words[0].start(), words[-1].end()


# --- finders ---------------------------------------------------------------------------------

_HONORIFIC = (
    r"(?:mr|mrs|ms|miss|mx|dr|prof|sir|dame|herr|frau|mme|mlle|sr|sra|señor|señora|monsieur|madame|"
    r"signor|signora|signore|dott|dott\.ssa)\.?"
)
_STRONG_CUES = (
    r"my name is|my name's|my name was|name is|name was|name's|names? ?:|name -|full name|"
    r"dear|regards,?|kind regards|best regards|warm regards|sincerely,?|yours,|cheers,|best,|"
    r"signed(?: for)?(?: by)?:?|signature:|c/o|attn:?|attention:|for the attention of|"
    r"account holder(?: is| name:?|:)?|holder:|card ?holder(?: is| name:?|:)?|in the name of|"
    r"on behalf of|customer:|contact:|recipient:|from:|named|known as|called"
)
_MEDIUM_CUES = (
    r"i am|i'm|this is|hi|hello|hey|hallo|hola|bonjour|thanks,?|thank you,?|many thanks,?|"
    r"ask for|ask|tell|let|colleague|agent|husband|wife|son|daughter|mother|father|brother|sister|"
    r"partner|friend|neighbou?r|customer|client|patient|employee|spoke to|spoke with|talked to|mr|mrs|"
    r"invoice for|account of"
)
# weak cues are often followed by a company or product name too: a known first name, or two
# uncommon capitalised words, only
_WEAK_CUES = r"from|by|with|for|to|and|of|or|&|it's|its|im|contact|belongs to"
_CUE_RE = re.compile(
    rf"(?i)(?:^|(?<=[^\w']))(?:(?P<strong>{_STRONG_CUES})|(?P<medium>{_MEDIUM_CUES})|(?P<weak>{_WEAK_CUES})"
    rf"|(?P<honorific>{_HONORIFIC}))(?:[ \t]*[,:\-–][ \t]*|[ \t]+|[ \t]*\n[ \t]*)(?:(?:my|our|your|his|her) "
    rf"(?:\w+ )?)?(?=[^\W\d_])"
)
_FIELD_KEYS = (
    r"first[_ -]?name|last[_ -]?name|given[_ -]?names?|family[_ -]?name|sur[_ -]?name|full[_ -]?name|"
    r"middle[_ -]?names?|customer[_ -]?name|contact[_ -]?name|account[_ -]?holder(?:[_ -]?name)?|"
    r"card[_ -]?holder(?:[_ -]?name)?|holder(?:[_ -]?name)?|recipient(?:[_ -]?name)?|addressee|"
    r"(?:sender|receiver|billing|shipping)[_ -]?name|name|firstname|lastname|vorname|nachname|"
    r"nombre|apellidos?|pr[ée]nom|nom|cognome|voornaam|achternaam|first|last|given|family|surname"
)
_FIELD_RE = re.compile(
    rf"(?i)(?<![\w])[\"']?(?:{_FIELD_KEYS})[\"']?[ \t]*[:=][ \t]*[\"']?(?P<value>[^\"'\n,;&}}\]\[{{<>|=]{{1,80}})"
)


def _surname_after(text: str, words: list[_Word], i: int, style: str, vocab: Vocabulary) -> bool:
    """Whether an uncommon name word (or a particle and one: ``Văn Bình``) follows word ``i``."""
    for k in (i + 1, i + 2):
        if k >= len(words) or not _adjacent(text, words[k - 1], words[k]):
            return False
        word = words[k]
        if _name_word(word, style, vocab) and not vocab.common(word.text):
            return True
        if fold_word(word.text) not in _PARTICLES:
            return False
    return False


def _take(text: str, words: list[_Word], i: int, level: str, vocab: Vocabulary) -> tuple[int, int] | None:
    """The name starting at word ``i`` after a cue of strength ``level``, or None."""
    first = words[i]
    if vocab.is_stop(first.text) and not is_first_name(first.text):
        return None
    known = is_first_name(first.text)
    common = vocab.common(first.text)
    followed = _surname_after(text, words, i, first.style, vocab)
    if level == "weak":
        ok = (known and (not common or followed)) or (first.style in ("title", "upper") and not common and followed)
    elif level == "medium":
        ok = known or not common or (first.style in ("title", "upper") and followed)
    else:  # strong cue or honorific: a capitalised word is taken even when it is a word too
        ok = not common or known or first.style in ("title", "upper", "mixed")
    if not ok:
        return None
    return grow_name(text, first.start, first.end, vocab, words)


def cue_names(text: str, vocab: Vocabulary, words: list[_Word] | None = None) -> list[Span]:
    """Names after cue phrases and honorifics (any case)."""
    words = words if words is not None else _words(text)
    by_start = {w.start: i for i, w in enumerate(words)}
    rank = {"weak": 0, "medium": 1, "strong": 2}
    levels: dict[int, str] = {}
    pos = 0
    while (m := _CUE_RE.search(text, pos)) is not None:
        pos = m.start() + 1  # cues overlap: "to my colleague X" is a weak and a medium cue
        i = by_start.get(m.end())
        if i is None:
            continue
        level = "strong" if m.group("strong") or m.group("honorific") else (
            "medium" if m.group("medium") else "weak")
        if rank[level] > rank[levels.get(i, "weak")] or i not in levels:
            levels[i] = level
    out: list[Span] = []
    for i, level in sorted(levels.items()):
        span = _take(text, words, i, level, vocab)
        if span:
            out.append((*span, 0.8 if level == "strong" else 0.6))
    return out


def field_names(text: str, vocab: Vocabulary) -> list[Span]:
    """Values of name fields in JSON, YAML, forms and query strings."""
    out: list[Span] = []
    for m in _FIELD_RE.finditer(text):
        value = m.group("value")
        words = list(WORD_RE.finditer(value))
        stripped = value.strip()
        if not words or len(words) > 5 or any(ch.isdigit() for ch in stripped):
            continue
        if "".join(w.group(0) for w in words).__len__() < len(re.sub(r"[\s.'’-]", "", stripped)):
            continue  # other characters in the value: not a name
        if all(vocab.is_stop(w.group(0)) for w in words):
            continue
        start = m.start("value") + words[0].start()
        end = m.start("value") + words[-1].end()
        out.append((start, end, 0.8))
    return out


def signature_names(text: str, vocab: Vocabulary, words: list[_Word] | None = None) -> list[Span]:
    """A name alone on the last line of a message of several lines."""
    stripped = text.rstrip(" .!\n\r\t")
    cut = stripped.rfind("\n")
    if cut < 0:
        return []
    line = stripped[cut + 1:]
    line_words = list(WORD_RE.finditer(line))
    if not 1 <= len(line_words) <= 4 or re.sub(r"[\W_]", "", line) != "".join(w.group(0).replace("-", "").replace(
            "'", "").replace("’", "") for w in line_words):
        return []
    parts = [_Word(0, 0, w.group(0), case_style(w.group(0))) for w in line_words]
    if any(vocab.is_stop(w.text) and fold_word(w.text) not in _PARTICLES for w in parts):
        return []
    if not any(is_first_name(w.text) or not vocab.common(w.text) for w in parts):
        return []
    if parts[0].style not in ("title", "upper", "lower", "mixed"):
        return []
    start = cut + 1 + line_words[0].start()
    return [(start, cut + 1 + line_words[-1].end(), 0.6)]


def first_names(text: str, vocab: Vocabulary, words: list[_Word] | None = None) -> list[Span]:
    """Known first names (and the surnames after them); a first name that is also a common
    word (``Mark``, ``Grace``, ``will``) counts only with a surname after it."""
    words = words if words is not None else _words(text)
    out: list[Span] = []
    for i, word in enumerate(words):
        if not is_first_name(word.text):
            continue
        if vocab.common(word.text) and not _surname_after(text, words, i, word.style, vocab):
            nxt = words[i + 1] if i + 1 < len(words) and _adjacent(text, word, words[i + 1]) else None
            if not (word.style == "title" and nxt is not None and nxt.style == "title"
                    and _name_word(nxt, "title", vocab)):
                continue
        start, end = grow_name(text, word.start, word.end, vocab, words)
        out.append((start, end, 0.6))
    return out


def uncommon_runs(text: str, vocab: Vocabulary, words: list[_Word] | None = None) -> list[Span]:
    """Two to four adjacent capitalised words none of which is a common word or a known
    non-name (``Wanjiru Kamau``; not ``Harrowgate Falls``, ``Trail Club``)."""
    words = words if words is not None else _words(text)
    out: list[Span] = []
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and words[j].style == "title" and (j == i or _adjacent(text, words[j - 1], words[j])):
            if vocab.common(words[j].text) and not (j > i and fold_word(words[j].text) in _PARTICLES
                                                    and _surname_after(text, words, j - 1, "title", vocab)):
                break
            j += 1
        if 2 <= j - i <= 4:
            out.append((words[i].start, words[j - 1].end, 0.5))
        i = max(j, i + 1)
    return out


def rule_names(text: str, vocab: Vocabulary) -> list[Span]:
    """Every name the rules find in normalised ``text``."""
    words = _words(text)
    return [
        *cue_names(text, vocab, words),
        *field_names(text, vocab),
        *signature_names(text, vocab, words),
        *first_names(text, vocab, words),
        *uncommon_runs(text, vocab, words),
    ]


def grow_all(text: str, spans: Iterable[tuple[int, int]], vocab: Vocabulary) -> list[tuple[int, int]]:
    """:func:`grow_name` for several spans (one word split)."""
    words = _words(text)
    return [grow_name(text, s, e, vocab, words) for s, e in spans]


_SURNAME_SHAPE = re.compile(
    r"(?i)^(?:o['’]|d['’]|mc|mac|fitz|van|von|de)\w+$|\w(?:ski|ska|sky|son|sen|sson|ez|es|ov|ova|ev|eva|enko|escu|"
    r"opoulos|idis|ian|yan|oglu|oğlu|ini|elli|etti|ucci|ez|aux|eau|ier|mann|berg|stein|feld|hoff)$"
)


def ner_person(text: str, start: int, end: int, label: str, vocab: Vocabulary, recased: bool = False
               ) -> tuple[int, int] | None:
    """The name in a span an NER model labelled ``label`` (``PERSON``, ``ORGANIZATION``,
    ``NRP``), or None when it does not look like a person's name.

    The span loses stop words at its ends (``recased``: common words too). A
    PERSON of several words needs one uncommon word or known first name; of one word, a
    known first name, a surname shape (``O'Sullivan``, ``Kowalczyk``: no, ``Nowakowski``:
    yes) or a capitalised uncommon word right before it. An organisation or nationality
    span counts when it holds a known first name, or is two to four capitalised words
    ending in an uncommon one (``Marguerite Dufresne``; not ``Harrowgate Falls``).
    """
    strict = recased
    start, end = trim(text, start, end, vocab, strict)
    if end <= start:
        return None
    run = list(WORD_RE.finditer(text, start, end))
    keep = 1
    while keep < len(run) and text[run[keep - 1].end():run[keep].start()] in (" ", ". "):
        keep += 1  # a name is words with single spaces between them: "Ana Lima (ana@..." stops
    start, end = trim(text, start, run[keep - 1].end(), vocab, strict)
    if end <= start:
        return None
    span = text[start:end]
    if any(ch.isdigit() for ch in span):
        return None
    words = [w.group(0) for w in WORD_RE.finditer(span)]
    if not words or all(vocab.is_stop(w) for w in words):
        return None
    known = [w for w in words if is_first_name(w) and not (recased and vocab.common(w))]
    uncommon = [w for w in words if not vocab.common(w)]
    if label == "PERSON":
        if len(words) > 1:
            return (start, end) if known or uncommon else None
        if known or (uncommon and _SURNAME_SHAPE.search(words[0])):
            return start, end
        before = list(WORD_RE.finditer(text, max(0, start - 40), start))
        if uncommon and before and text[before[-1].end():start] == " ":
            prev = before[-1].group(0)
            if case_style(prev) == case_style(words[0]) == "title" and not vocab.common(prev):
                return before[-1].start(), end
        return None
    if known and (len(words) > 1 or not vocab.common(words[0])):
        return start, end
    styles_ok = all(case_style(w) == "title" or fold_word(w) in _PARTICLES for w in words)
    if 2 <= len(words) <= 4 and styles_ok and not vocab.common(words[-1]) \
            and not any(fold_word(w) in NOT_NAMES for w in words):
        return start, end
    return None
