"""Load-aware routing: when the large model has no free slot, requests stay on the small one.

A service that limits concurrent runs per model (``tandem serve --limit llm=1``) can let a
request go ahead *without* a slot of a large model once it has waited ``overflow_wait``
seconds for one (``tandem serve --overflow-wait 2``). The run then carries the overflow
(:func:`overflowing`, a context variable: every task the run starts sees it):

- a route that would choose ``large`` chooses ``small`` instead; its decision's reason says
  which model was busy, its limit and how long the request waited, its details carry
  ``load``, and the run is marked degraded (:meth:`~tandemlm.core.node.NodeCall.degrade`);
- a call to a busy model raises :class:`~tandemlm.errors.ModelUnavailableError` at once
  (so the model's limit holds even in a flow that calls it without asking a router; the
  service answers 503 as it did after the queue timeout, only sooner, and ``fallback``
  nodes can catch it).

Example:
    >>> with overflowing({"llm": Overflow("llm", limit=1, waited=2.0)}):
    ...     sorted(busy_models())
    ['llm']
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Overflow", "busy_models", "overflowing", "reason"]


@dataclass(frozen=True)
class Overflow:
    """A model the request went ahead without: its concurrency limit and the wait."""

    model: str
    limit: int
    waited: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BUSY: ContextVar[Mapping[str, Overflow] | None] = ContextVar("tandem_busy_models", default=None)


def busy_models() -> Mapping[str, Overflow]:
    """The models the current run may not call (empty outside an overflowing request)."""
    return _BUSY.get() or {}


@contextlib.contextmanager
def overflowing(busy: Mapping[str, Overflow] | None) -> Iterator[None]:
    """Mark runs started inside the block as having gone ahead without ``busy`` models.

    The block may span an async generator's ``yield``s (a streaming response); if the event
    loop closes such a generator after it was abandoned, the block ends in another context,
    which has nothing to restore.
    """
    token = _BUSY.set(dict(busy) if busy else None)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # "created in a different Context"
            _BUSY.reset(token)


def reason(busy: Mapping[str, Overflow]) -> str:
    """One sentence for a decision record."""
    parts = [f"model '{o.model}' busy (all {o.limit} slots taken after {o.waited:.1f} s)"
             for o in busy.values()]
    return "load: " + "; ".join(parts) + ": stayed on the small model"
