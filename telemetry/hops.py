"""Cross-model hops: which earlier outputs feed a model call, and who produced them.

A *hop* is text produced by one node (usually with a model) that becomes input to another
model. The hops of a model call are computed from the calling node's declared inputs and
the ledger (who wrote each input, with which model); the model layer records one
``tandem.hop`` event per source on the receiving ``chat`` span.

A node that rewrites a field may report how many entities it masked as output metadata
``redactions`` (an int); hops from that field report it as ``tandem.hop.redactions``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from tandemlm.core.ledger import writers

SKIP_FIELDS = frozenset({"messages"})


class HopInput(NamedTuple):
    """One earlier output that feeds a model call."""

    field: str
    node: str
    model: str | None
    chars: int
    tokens: int
    redactions: int | None = None


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 4 characters per token)."""
    return (len(text) + 3) // 4


def hop_inputs(state: Mapping[str, Any], fields: Iterable[str]) -> list[HopInput]:
    """Sources among ``fields`` that a node (not the user) produced earlier in the run.

    Args:
        state: the current flow state (its ``ledger`` names each output's producer).
        fields: state fields the calling node reads (its declared inputs).

    Returns:
        One :class:`HopInput` per produced field, in field-name order. ``tokens`` is the
        producing model's output token count when known, else an estimate.
    """
    if not state.get("ledger"):
        return []
    wanted = sorted(f for f in fields if f not in SKIP_FIELDS)
    if not wanted:
        return []
    producers = writers(state, wanted)
    out = []
    for name in wanted:
        step = producers.get(name)
        value = state.get(name)
        if step is None or value is None:
            continue
        text = _text_of(value)
        meta = (step.get("meta") or {}).get(name) or {}
        model = step.get("model") or meta.get("model")
        tokens = meta.get("output_tokens") if model and meta.get("model") == model else None
        redactions = meta.get("redactions")
        out.append(HopInput(  # field, node, model, chars, tokens, redactions (positional: faster)
            name, str(step.get("node", "?")), model, len(text),
            int(tokens) if isinstance(tokens, (int, float)) else estimate_tokens(text),
            int(redactions) if isinstance(redactions, (int, float)) else None,
        ))
    return out
