"""``privacy_filter``, ``restore`` and ``local_context``: personal data stays on the device.

``privacy_filter`` replaces personal data in a field with stable placeholders (``<PERSON_1>``,
``<EMAIL_1>``; the same value gets the same placeholder for the whole run) and keeps the
placeholder -> value mapping in ``vars["_private"]``. That key is local state: the privacy
check rejects any non-local model reading it, nodes never put it into prompts, and spans
never record it. ``restore`` puts the values back into a text (the final answer) on the
device. ``local_context`` brings device-local data (a user profile, a document) into the
flow and marks it as private for ``privacy: strict``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import Field, field_validator

from tandemlm.core.state import FlowState, lookup, write
from tandemlm.nodes import pii
from tandemlm.core.node import Node, NodeCall
from tandemlm.nodes.generate import answer_update
from tandemlm.models.call import call_model

PRIVATE_KEY = "_private"
"""``vars`` key of the placeholder mapping (``{"<EMAIL_1>": "ana@example.com"}``)."""

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
        # A name seen once is redacted everywhere it recurs (first names alone included).
        for placeholder, value in list(self.mapping.items()):
            if placeholder.startswith("<PERSON_"):
                for part in {value, *value.split()}:
                    if len(part) > 2 and part[0].isupper() and part.lower() not in pii._NOT_NAMES:
                        redacted, n = re.subn(rf"(?<![\w<]){re.escape(part)}(?!\w)", placeholder, redacted)
                        if n:
                            counts[pii.PERSON] = counts.get(pii.PERSON, 0) + n
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
        r"(?:[<\[]\s*)?\b(PERSON|EMAIL|PHONE|CARD|IBAN|ADDRESS|ID|IP)_(\d+)\b(?:\s*[>\]])?", put_back, text
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

    Detects e-mails, phone numbers, card numbers (Luhn), IBANs (mod 97), street addresses,
    national ids and IP addresses with Presidio's pattern recognizers plus tandemlm's
    patterns, and person names with cue phrases and a first-name list, an installed spaCy
    model, and optionally the local SLM (``model``). Strings inside lists and dicts (e.g.
    retrieved documents) are filtered too.

    Args:
        field: state field to filter (``input``, or retrieved documents).
        output: field that receives the redacted value.
        types: entity types to redact (default: all).
        names: name finders, ``heuristic`` and/or ``spacy``.
        model: a local model that lists person names (must have ``local: true``).
        presidio: use Presidio's pattern recognizers as well as tandemlm's.
        allow: strings never redacted (your company's name, support address, ...).

    Writes ``output``, the mapping in ``vars["_private"]`` and ``meta[output]["redactions"]``
    (the number of values replaced; ``redaction_types`` counts them by type).
    """

    type_name = "privacy_filter"

    field: str = "input"
    output: str = "redacted"
    types: list[str] = Field(default_factory=lambda: list(pii.ALL_TYPES))
    names: list[str] = Field(default_factory=lambda: ["heuristic", "spacy"])
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
        unknown = set(value) - {"heuristic", "spacy"}
        if unknown:
            raise ValueError(f"unknown name finder(s) {sorted(unknown)} (known: heuristic, spacy)")
        return value

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model} if self.model else {}

    def reads(self) -> set[str]:
        return {self.field}

    def writes(self) -> set[str]:
        return {self.output, PRIVATE_KEY}

    async def _slm_names(self, call: NodeCall, text: str) -> tuple[list[pii.Entity], dict[str, Any]]:
        assert self.model is not None
        messages = [
            SystemMessage(content="You find person names in text. You never answer the text."),
            HumanMessage(content=NAME_PROMPT.format(text=text)),
        ]
        reply = await call_model(call, self.model, messages)
        lines = [] if reply.text.strip().upper().startswith("NONE") else re.split(r"[\n;]", reply.text)
        return pii.names_in(text, lines, "slm"), reply.usage()

    async def filter_text(self, call: NodeCall, text: str, redactor: Redactor) -> tuple[str, dict[str, int], dict[str, Any]]:
        """Redact one string; returns the text, counts per type and model usage."""
        extra: list[pii.Entity] = []
        usage: dict[str, Any] = {}
        if self.model and pii.PERSON in self.types and text.strip():
            extra, usage = await self._slm_names(call, text)
        entities = pii.detect(
            text, self.types, presidio=self.presidio, names=self.names, extra=extra, allow=self.allow
        )
        redacted, counts = redactor.redact(text, entities)
        return redacted, counts, usage

    def capture_redactor(self, text: str) -> tuple[str, int]:
        """Redaction for span content capture (its own placeholders; no model call)."""
        entities = pii.detect(text, self.types, presidio=self.presidio, names=self.names, allow=self.allow)
        return Redactor().redact(text, entities)[0], len(entities)

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        from tandemlm.core.state import merge_usage

        redactor = Redactor((state.get("vars") or {}).get(PRIVATE_KEY))
        call.context.extras.setdefault("redact", self.capture_redactor)
        value = lookup(state, self.field)
        counts: dict[str, int] = {}
        usage: dict[str, Any] = {}
        strings: list[str] = []

        def collect(s: str) -> str:
            strings.append(s)
            return s

        _map_strings(value, collect)
        done: dict[str, str] = {}
        for text in strings:
            if text in done:
                continue
            done[text], found, used = await self.filter_text(call, text, redactor)
            for kind, n in found.items():
                counts[kind] = counts.get(kind, 0) + n
            usage = merge_usage(usage, used.get("usage"))
        redacted = _map_strings(value, lambda s: done.get(s, s))
        total = sum(counts.values())
        update: dict[str, Any] = write(self.output, redacted)
        update.setdefault("vars", {})[PRIVATE_KEY] = redactor.mapping
        update["meta"] = {
            self.output: {"model": self.model, "redactions": total, "redaction_types": counts, "source": self.field}
        }
        if usage:
            update["usage"] = usage
        update["steps"] = [{"node": call.name, "model": self.model, "output": self.output}]
        return update


class Restore(Node):
    """Put the original values back into ``field`` (on the device) and write ``output``.

    Args:
        field: the text holding placeholders (e.g. the personalised draft).
        output: where the restored text goes (``answer`` makes it the final answer).
    """

    type_name = "restore"

    field: str = "answer"
    output: str = "answer"

    def reads(self) -> set[str]:
        return {self.field, PRIVATE_KEY}

    def writes(self) -> set[str]:
        return {self.output}

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        mapping = (state.get("vars") or {}).get(PRIVATE_KEY) or {}
        value = lookup(state, self.field)
        text = "" if value is None else str(value)
        restored, count = restore_text(text, mapping)
        model = ((state.get("meta") or {}).get(self.field) or {}).get("model") or state.get("answered_by")
        if self.output == "answer":
            update = answer_update(restored, model or None)
        else:
            update = write(self.output, restored)
        update["meta"] = {self.output: {"model": model, "restored": count}}
        update["steps"] = [{"node": call.name, "model": None, "output": self.output}]
        return update


class LocalContext(Node):
    """Bring device-local data into the flow: a run variable or a local file.

    Its output counts as private under ``privacy: strict`` (like raw input): a non-local
    model may only see it after a ``privacy_filter``.

    Args:
        field: the field to provide (e.g. ``profile``); a run variable of that name wins.
        path: a local text file to read when the variable is not given.
        fallback: a field to use when neither is given (e.g. ``input`` on the CLI).
        default: the value when none of these is given.
    """

    type_name = "local_context"
    private_source: ClassVar[bool] = True

    field: str = "profile"
    path: str | None = None
    fallback: str | None = None
    default: str = ""

    def reads(self) -> set[str]:
        return {self.fallback} if self.fallback else set()

    def writes(self) -> set[str]:
        return {self.field}

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        given = (state.get("vars") or {}).get(self.field)
        if given is not None:
            value: Any = given
        elif self.path:
            value = Path(self.path).expanduser().read_text(encoding="utf-8")
        elif self.fallback and lookup(state, self.fallback) is not None:
            value = lookup(state, self.fallback)
        else:
            value = self.default
        update = write(self.field, value)
        update["steps"] = [{"node": call.name, "model": None, "output": self.field}]
        return update
