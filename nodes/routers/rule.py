"""``rule`` router: keywords, regular expressions and length decide."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState, lookup
from tandemlm.nodes.routers.base import Router, RouteScore


class RuleRouter(Router):
    """Score 1 (large model) when any rule matches the ``field`` text, else 0.

    Args:
        field: state field to inspect (default: the input).
        keywords: case-insensitive words or phrases that need the large model.
        patterns: regular expressions that need the large model.
        min_chars: texts at least this long need the large model.
    """

    type_name = "rule"

    field: str = "input"
    keywords: list[str] = Field(default_factory=list, max_length=1000)
    patterns: list[str] = Field(default_factory=list, max_length=200)
    min_chars: int | None = Field(None, ge=1)

    @field_validator("patterns")
    @classmethod
    def _compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if len(pattern) > 1000:
                raise ValueError("patterns are limited to 1000 characters")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value

    def reads(self) -> set[str]:
        return {self.field}

    def evaluate(self, text: str) -> RouteScore:
        """Score a text directly (no state needed)."""
        lowered = text.lower()
        for word in self.keywords:
            if word.lower() in lowered:
                return RouteScore(1.0, f"keyword {word!r}")
        for pattern in self.patterns:
            if re.search(pattern, text, flags=re.IGNORECASE):
                return RouteScore(1.0, f"pattern {pattern!r}")
        if self.min_chars is not None and len(text) >= self.min_chars:
            return RouteScore(1.0, f"{len(text)} chars >= {self.min_chars}")
        return RouteScore(0.0, "no rule matched")

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        value: Any = lookup(state, self.field)
        return self.evaluate("" if value is None else str(value))
