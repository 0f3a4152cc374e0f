"""Content capture for spans: off by default; when on, text is redacted before recording.

The built-in redactor masks e-mail addresses, phone numbers, card-like digit runs and IP
addresses. A flow can supply its own (e.g. the privacy nodes' Presidio filter) as
``context.extras["redact"]``: a callable ``str -> str`` or ``str -> (str, count)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

MAX_CAPTURE_CHARS = 16_000

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    ("CARD", re.compile(r"\b(?:\d[ -]?){13,19}\b")),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    ("PHONE", re.compile(r"(?<!\w)\+?\d[\d ().-]{7,}\d\b")),
]

Redactor = Callable[[str], Any]


def redact(text: str) -> tuple[str, int]:
    """Mask common personal data; returns the text and how many entities were masked."""
    count = 0
    for label, pattern in _PATTERNS:
        text, n = pattern.subn(f"<{label}>", text)
        count += n
    return text, count


def apply(redactor: Redactor | None, text: str) -> tuple[str, int]:
    """Run ``redactor`` (or the built-in one) and normalise its result."""
    if redactor is None:
        return redact(text)
    result = redactor(text)
    if isinstance(result, tuple):
        return str(result[0]), int(result[1])
    return str(result), 0


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant"}.get(message.type, message.type)


def _content(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content)


def messages_json(
    messages: Sequence[BaseMessage], redactor: Redactor | None = None
) -> tuple[str, int]:
    """GenAI-convention JSON of chat messages, redacted and truncated; plus redaction count."""
    total = 0
    out = []
    for message in messages:
        text, n = apply(redactor, _content(message)[:MAX_CAPTURE_CHARS])
        total += n
        out.append({"role": _role(message), "parts": [{"type": "text", "content": text}]})
    return json.dumps(out, ensure_ascii=False), total


def run_content(redactor: Redactor | None, question: Any, answer: Any) -> dict[str, str]:
    """The run span's captured question and answer (``tandem.run.input`` / ``.output``),
    redacted and truncated; a failing redactor records a marker instead of the text."""
    from tandemlm.telemetry import attributes as A

    out = {}
    for key, value in ((A.RUN_INPUT, question), (A.RUN_OUTPUT, answer)):
        if not isinstance(value, str) or not value:
            continue
        try:
            out[key] = apply(redactor, value[:MAX_CAPTURE_CHARS])[0]
        except Exception:  # noqa: BLE001  a failing redactor must not leak content
            out[key] = "[redaction failed: content not recorded]"
    return out
