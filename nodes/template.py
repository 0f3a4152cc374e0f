"""Prompt templates over state fields: ``{input}``, ``{draft}``, ``{brief.intent}``.

``{{`` and ``}}`` are literal braces. A missing field renders as an empty string at run
time; :func:`fields` lets ``compile()`` reject unknown names before anything runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from tandemlm.core.state import lookup

_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+)*)\}")


def fields(template: str) -> set[str]:
    """Top-level state fields a template refers to."""
    return {m.group(1) for m in _FIELD.finditer(template) if m.group(1)}


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return "; ".join(str(v) for v in value)
    return json.dumps(value, ensure_ascii=False, default=str)


@lru_cache(maxsize=1024)
def _parts(template: str) -> tuple[str | tuple[str, tuple[str, ...]], ...]:
    """A template split once into literal text and ``(field, path)`` references."""
    parts: list[str | tuple[str, tuple[str, ...]]] = []
    text: list[str] = []
    last = 0
    for match in _FIELD.finditer(template):
        text.append(template[last:match.start()])
        last = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            text.append(token[0])
            continue
        parts.append("".join(text))
        text = []
        parts.append((match.group(1), tuple(filter(None, match.group(2).split(".")))))
    text.append(template[last:])
    parts.append("".join(text))
    return tuple(p for p in parts if p != "")


def render(template: str, state: Mapping[str, Any]) -> str:
    """Fill a template from the state (top-level fields or ``vars``)."""
    out: list[str] = []
    for part in _parts(template):
        if isinstance(part, str):
            out.append(part)
            continue
        name, path = part
        value: Any = lookup(state, name)
        for key in path:
            if isinstance(value, dict):
                value = value.get(key)
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                value = None
        out.append(_format(value))
    return "".join(out)
