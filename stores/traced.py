"""Store searches as flows make them: off the event loop, inside a ``retrieval`` span."""

from __future__ import annotations

import asyncio
from typing import Any

from tandemlm.telemetry import attributes as A
from tandemlm.telemetry.guard import safely
from tandemlm.telemetry.spans import retrieval_span


async def traced_search(
    name: str, store: Any, query: str, k: int, where: dict[str, Any] | None = None
) -> list[Any]:
    """Run ``store.search(query, k, where)`` in a thread, traced as ``retrieval <name>``."""
    with retrieval_span(name, query, k) as current:
        hits = await asyncio.to_thread(store.search, query, k, where)
        safely(current.set_attribute, A.RETRIEVAL_RESULTS, len(hits))
    return list(hits)
