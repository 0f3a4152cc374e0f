"""The store protocols and the records they exchange.

A :class:`Retriever` answers ``search(query, k, where)`` with scored :class:`Hit` s; a
:class:`DocumentStore` also takes documents (``upsert``) and reports what it holds.
Both are synchronous: nodes call them in a worker thread. Filters use Chroma's ``where``
language (``{"source": "a.md"}``, ``{"kind": {"$in": ["faq", "policy"]}}``, ``$and``,
``$or``, ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$nin``), which every
store in :mod:`tandemlm.stores` accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from tandemlm.errors import TandemError

Metadata = dict[str, str | int | float | bool]
Where = dict[str, Any]


class StoreError(TandemError):
    """A store cannot be reached or used (server down, wrong embedding, bad collection name)."""


@dataclass(frozen=True)
class Document:
    """A piece of text to store.

    Attributes:
        id: stable identifier (ingestion uses a content hash, so re-ingesting adds nothing).
        text: the text that is embedded and returned.
        metadata: flat scalar values, e.g. ``{"source": "policies/returns.md", "position": 0}``.
    """

    id: str
    text: str
    metadata: Metadata = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A search result: the document plus its similarity ``score`` (higher is closer, <= 1).

    ``source`` is the citation label: ``metadata["source"]`` when present, else ``id``.
    """

    id: str
    text: str
    metadata: Metadata = field(default_factory=dict)
    score: float = 0.0

    @property
    def source(self) -> str:
        return str(self.metadata.get("source") or self.id)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what nodes put into flow state)."""
        return {**asdict(self), "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        return cls(
            id=str(data["id"]),
            text=str(data.get("text", "")),
            metadata=dict(data.get("metadata") or {}),
            score=float(data.get("score", 0.0)),
        )


@runtime_checkable
class Retriever(Protocol):
    """Anything that can answer a query with scored hits."""

    def search(self, query: str, k: int = 4, where: Where | None = None) -> list[Hit]:
        """The ``k`` closest documents to ``query`` that match the metadata filter ``where``."""
        ...


@runtime_checkable
class DocumentStore(Retriever, Protocol):
    """A retriever that also stores documents."""

    def upsert(self, documents: Sequence[Document]) -> int:
        """Insert or replace documents by id; returns how many ids were new."""
        ...

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents among ``ids`` (missing ids are skipped)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id (missing ids are ignored)."""
        ...

    def ids(self, where: Where | None = None) -> list[str]:
        """Ids of the stored documents matching ``where`` (all when ``None``)."""
        ...

    def count(self) -> int:
        """Number of stored documents."""
        ...
