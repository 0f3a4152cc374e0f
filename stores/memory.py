"""An in-process store: exact cosine search over a dict. For tests and small corpora."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from tandemlm.stores._where import check_where, matches
from tandemlm.stores.base import Document, Hit, Where
from tandemlm.stores.embeddings import Embedder, Vector, get_embedder


def _cosine(a: Vector, b: Vector) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class MemoryStore:
    """A :class:`~tandemlm.stores.DocumentStore` kept in memory (lost when the process ends).

    Args:
        embedding: an embedder or its name (``minilm``, ``ollama:NAME``, ``hash``);
            default ``hash`` so tests need no model.
        documents: documents to add at once.

    Example:
        >>> store = MemoryStore(documents=[Document("a", "Returns within 30 days")])
        >>> store.search("return window", k=1)[0].id
        'a'
    """

    def __init__(
        self, embedding: str | Embedder = "hash", documents: Sequence[Document] = ()
    ) -> None:
        self.embedder = get_embedder(embedding)
        self._docs: dict[str, tuple[Document, Vector]] = {}
        self._lock = threading.Lock()
        if documents:
            self.upsert(documents)

    @property
    def embedding(self) -> str:
        return self.embedder.name

    def upsert(self, documents: Sequence[Document]) -> int:
        vectors = self.embedder.embed([d.text for d in documents])
        with self._lock:
            new = sum(1 for d in documents if d.id not in self._docs)
            for doc, vec in zip(documents, vectors, strict=True):
                self._docs[doc.id] = (doc, vec)
        return new

    def get(self, ids: Sequence[str]) -> list[Document]:
        with self._lock:
            return [self._docs[i][0] for i in ids if i in self._docs]

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            for i in ids:
                self._docs.pop(i, None)

    def ids(self, where: Where | None = None) -> list[str]:
        if where is not None:
            check_where(where)
        with self._lock:
            return [i for i, (d, _) in self._docs.items() if matches(dict(d.metadata), where)]

    def count(self) -> int:
        return len(self._docs)

    def search(self, query: str, k: int = 4, where: Where | None = None) -> list[Hit]:
        if where is not None:
            check_where(where)
        if k < 1:
            return []
        [qvec] = self.embedder.embed([query])
        with self._lock:
            scored = [
                (_cosine(qvec, vec), doc)
                for doc, vec in self._docs.values()
                if matches(dict(doc.metadata), where)
            ]
        scored.sort(key=lambda pair: (-pair[0], pair[1].id))
        return [Hit(d.id, d.text, dict(d.metadata), round(s, 6)) for s, d in scored[:k]]
