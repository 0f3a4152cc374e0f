"""Store searches as flows make them: off the event loop, inside a ``retrieval`` span."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from tandemlm.telemetry import attributes as A
from tandemlm.telemetry.guard import safely
from tandemlm.telemetry.spans import retrieval_span

SNIPPET_CHARS = 300


async def traced_search(
    name: str, store: Any, query: str, k: int, where: dict[str, Any] | None = None, *,
    capture: bool = False, redactor: Any = None,
) -> list[Any]:
    """Run ``store.search(query, k, where)`` in a thread, traced as ``retrieval <name>``.

    The span lists the hits' document ids and scores; with ``capture`` (content capture on)
    also a snippet of each hit, passed through ``redactor`` (or the built-in one) first.
    """
    with retrieval_span(name, query, k) as current:
        hits = await asyncio.to_thread(store.search, query, k, where)
        if current.is_recording():
            safely(_record_hits, current, hits, capture, redactor)
    return list(hits)


def _record_hits(current: Any, hits: Sequence[Any], capture: bool, redactor: Any) -> None:
    current.set_attribute(A.RETRIEVAL_RESULTS, len(hits))
    if not hits:
        return
    current.set_attribute(A.RETRIEVAL_DOCUMENT_IDS, [str(h.id) for h in hits])
    current.set_attribute(A.RETRIEVAL_SCORES, [round(float(h.score), 6) for h in hits])
    if capture:
        from tandemlm.telemetry import content

        try:
            documents = [
                {"id": str(h.id), "score": round(float(h.score), 6),
                 "text": content.apply(redactor, str(h.text)[:SNIPPET_CHARS])[0]}
                for h in hits
            ]
        except Exception:  # noqa: BLE001  a failing redactor must not leak content
            current.set_attribute(A.RETRIEVAL_DOCUMENTS, "[redaction failed: content not recorded]")
            return
        current.set_attribute(A.RETRIEVAL_DOCUMENTS, json.dumps(documents, ensure_ascii=False))
