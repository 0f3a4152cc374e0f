"""Build stores from a flow spec's ``stores:`` section.

``stores: {kb: {type: chroma, collection: acme, embedding: minilm, documents: [docs/]}}``

Settings (all optional):
    type: ``chroma`` (default) or ``memory``.
    collection: Chroma collection name (default: the store's name; Chroma needs 3+ chars).
    path: directory of an embedded Chroma database (default ``.tandem/chroma``).
    host, port: a Chroma server (``chroma run``) instead of the embedded database.
    embedding: ``minilm`` (default), ``ollama:NAME`` or ``hash`` (tests).
    documents: files/directories (or ``example:kb``, the packaged example knowledge base)
        to index on first use; indexing is idempotent, so only new chunks are embedded.
    create: start an empty Chroma collection when it does not exist (default ``false``: a
        missing collection is an error at first use, so a misspelled name cannot answer from
        an empty store; a store with ``documents`` creates its collection to index them).
    chunk_size, overlap: chunking for ``documents``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tandemlm.errors import SpecError
from tandemlm.stores.base import Document, DocumentStore, Hit, Where

EXAMPLE_PREFIX = "example:"


def example_data(name: str = "") -> Path:
    """Path of the packaged example data (``kb``, ``customers.jsonl``) or its folder."""
    try:
        folder = Path(str(resources.files("tandemlm.data")))
    except ModuleNotFoundError:  # a source checkout that was not reinstalled yet
        folder = Path(__file__).resolve().parents[1] / "examples" / "data"
    path = folder / name if name else folder
    if not path.exists():
        raise SpecError("", f"example data {name!r} not found under {folder}")
    return path


def example_kb() -> Path:
    """The Brightpeak Outfitters knowledge base (22 Markdown files) shipped with tandemlm."""
    return example_data("kb")


class StoreSettings(BaseModel):
    """The settings of one entry of a spec's ``stores:``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["chroma", "memory"] = "chroma"
    collection: str | None = Field(None, max_length=512)
    path: str | None = None
    host: str | None = None
    port: int = Field(8000, ge=1, le=65535)
    embedding: str = "minilm"
    documents: list[str] = Field(default_factory=list, max_length=1000)
    chunk_size: int = Field(800, ge=50, le=20_000)
    overlap: int = Field(120, ge=0, le=10_000)
    create: bool = False


def resolve_documents(entries: Sequence[str]) -> list[Path]:
    """Paths for ``documents`` entries (``example:NAME`` means packaged example data)."""
    return [
        example_data(e.removeprefix(EXAMPLE_PREFIX)) if e.startswith(EXAMPLE_PREFIX) else Path(e)
        for e in entries
    ]


class IndexedOnFirstUse:
    """A store that ingests ``documents`` the first time it is used (once per process).

    Every other attribute is the wrapped store's.
    """

    def __init__(
        self, store: DocumentStore, documents: Sequence[str], chunk_size: int = 800, overlap: int = 120
    ) -> None:
        self.store = store
        self.documents = list(documents)
        self.chunk_size = chunk_size
        self.overlap = overlap
        self.report: Any = None
        self._lock = threading.Lock()

    def ensure_indexed(self) -> None:
        """Ingest the documents now unless done already (idempotent)."""
        if self.report is not None:
            return
        with self._lock:
            if self.report is None:
                from tandemlm.stores.ingest import ingest

                self.report = ingest(
                    self.store,
                    resolve_documents(self.documents),
                    chunk_size=self.chunk_size,
                    overlap=self.overlap,
                )

    def search(self, query: str, k: int = 4, where: Where | None = None) -> list[Hit]:
        self.ensure_indexed()
        return self.store.search(query, k, where)

    def upsert(self, documents: Sequence[Document]) -> int:
        return self.store.upsert(documents)

    def get(self, ids: Sequence[str]) -> list[Document]:
        self.ensure_indexed()
        return self.store.get(ids)

    def delete(self, ids: Sequence[str]) -> None:
        self.store.delete(ids)

    def ids(self, where: Where | None = None) -> list[str]:
        self.ensure_indexed()
        return self.store.ids(where)

    def count(self) -> int:
        self.ensure_indexed()
        return self.store.count()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def build_store(name: str, settings: dict[str, Any] | StoreSettings) -> DocumentStore:
    """A store from its spec entry. Cheap: clients and models load on first use.

    Raises:
        SpecError: the settings are invalid (the path names ``stores.<name>.<setting>``).
    """
    from tandemlm.flows.loader import validation_error

    try:
        config = (
            settings if isinstance(settings, StoreSettings) else StoreSettings.model_validate(settings)
        )
    except ValidationError as exc:
        raise validation_error(exc, prefix=f"stores.{name}") from None
    if config.overlap > config.chunk_size // 2:
        raise SpecError(f"stores.{name}.overlap", "must be at most half of chunk_size")
    for entry in config.documents:
        if entry.startswith(EXAMPLE_PREFIX):
            continue
        if not Path(entry).exists():
            raise SpecError(f"stores.{name}.documents", f"{entry}: no such file or directory")
    from tandemlm.errors import TandemError
    from tandemlm.stores.embeddings import get_embedder

    try:
        embedder = get_embedder(config.embedding)
        store: DocumentStore
        if config.type == "memory":
            from tandemlm.stores.memory import MemoryStore

            store = MemoryStore(embedder)
        else:
            from tandemlm.stores.chroma import ChromaStore

            store = ChromaStore(
                config.collection or name,
                path=config.path,
                host=config.host,
                port=config.port,
                embedding=embedder,
                create=config.create or bool(config.documents),
            )
    except TandemError as exc:
        hint = "" if config.collection else f"; set stores.{name}.collection"
        raise SpecError(f"stores.{name}", f"{exc}{hint}") from None
    if config.documents:
        return IndexedOnFirstUse(store, config.documents, config.chunk_size, config.overlap)
    return store


def build_stores(
    specs: dict[str, dict[str, Any]], given: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The stores of a flow: the ``given`` objects by name, the rest built from ``specs``."""
    given = dict(given or {})
    built = {name: build_store(name, s) for name, s in specs.items() if name not in given}
    return {**built, **given}
