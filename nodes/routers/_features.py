"""Query features shared by the trained routers: an embedding plus a few text statistics.

Routers store the embedding name and feature list in their saved file, so a router always
embeds queries the way it was trained.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
STATS = ("chars", "numbers", "sentences", "percent")


def text_stats(texts: Sequence[str]) -> np.ndarray:
    """Cheap, scale-free statistics that track how hard a request is (one row per text)."""
    rows = []
    for text in texts:
        rows.append(
            [
                len(text) / 500.0,
                len(_NUMBER.findall(text)) / 10.0,
                max(1, text.count(". ") + text.count("? ") + 1) / 10.0,
                1.0 if "%" in text or "percent" in text.lower() else 0.0,
            ]
        )
    return np.asarray(rows, dtype=float).reshape(len(texts), len(STATS))


def featurize(texts: Sequence[str], embedding: str, stats: bool) -> np.ndarray:
    """``[embedding | text stats]`` for ``texts``.

    Args:
        texts: queries.
        embedding: embedder name (``minilm``, ``hash:DIM``, ``ollama:NAME``) or ``none``.
        stats: append :func:`text_stats`.
    """
    parts = []
    if embedding != "none":
        from tandemlm.stores.embeddings import get_embedder

        parts.append(np.asarray(get_embedder(embedding).embed(list(texts)), dtype=float))
    if stats:
        parts.append(text_stats(texts))
    if not parts:
        raise ValueError("no features: give an embedding or enable stats")
    return np.hstack(parts)
