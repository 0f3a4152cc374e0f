"""Prompt templates over state fields: ``{input}``, ``{draft}``, ``{brief.intent}``.

``{{`` and ``}}`` are literal braces. A missing field renders as an empty string at run
time; :func:`fields` lets ``compile()`` reject unknown names before anything runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
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


def render(template: str, state: Mapping[str, Any]) -> str:
    """Fill a template from the state (top-level fields or ``vars``)."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value: Any = lookup(state, match.group(1))
        for key in filter(None, match.group(2).split(".")):
            if isinstance(value, dict):
                value = value.get(key)
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                value = None
        return _format(value)

    return _FIELD.sub(substitute, template)
