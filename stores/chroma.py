"""A Chroma collection as a :class:`~tandemlm.stores.DocumentStore`.

Embedded by default (``chromadb.PersistentClient`` under the project's state directory,
``.tandem/chroma``); give ``host``/``port`` to use a server started with
``chroma run --path DIR --host 127.0.0.1 --port 8000``. Vectors always come from a
tandemlm embedder (Chroma's default embedding function downloads a model at run time);
the embedder's name is stored on the collection so that a mismatch is reported instead of
returning nonsense.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tandemlm.stores._where import check_where
from tandemlm.stores.base import Document, Hit, StoreError, Where
from tandemlm.stores.embeddings import Embedder, get_embedder

EMBEDDING_KEY = "tandem_embedding"
_BATCH = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")


def default_path() -> Path:
    """``<project state dir>/chroma`` (``.tandem/chroma`` unless ``TANDEM_HOME`` says else)."""
    from tandemlm.config import load_config

    return load_config().home_dir() / "chroma"


def to_chroma_where(where: Where | None) -> Where | None:
    """Chroma wants one key per filter dict: wrap several keys in ``$and``."""
    if not where:
        return None
    parts: list[Where] = []
    for key, value in where.items():
        if key in ("$and", "$or"):
            parts.append({key: [to_chroma_where(item) for item in value]})
        else:
            parts.append({key: value})
    return parts[0] if len(parts) == 1 else {"$and": parts}


def make_client(path: str | Path | None = None, host: str | None = None, port: int = 8000) -> Any:
    """A Chroma client: a server's when ``host`` is given, else the embedded database at
    ``path`` (default :func:`default_path`). Telemetry is off.

    Raises:
        StoreError: the server cannot be reached.
    """
    from tandemlm._extras import needs_extra

    with needs_extra("rag", "a Chroma store"):
        import chromadb
        from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if host:
        try:
            return chromadb.HttpClient(host=host, port=port, settings=settings)
        except Exception as exc:  # chromadb raises plain ValueError/ConnectionError here
            raise StoreError(
                f"cannot reach the Chroma server at http://{host}:{port}: {exc}; "
                "start one with `chroma run --path DIR --host HOST --port PORT`"
            ) from exc
    folder = Path(path) if path is not None else default_path()
    folder.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(folder), settings=settings)


def collection_metadata(client: Any, name: str) -> dict[str, Any] | None:
    """The metadata of collection ``name`` (``{}`` if it has none), or ``None`` if absent."""
    try:
        names = [c if isinstance(c, str) else c.name for c in client.list_collections()]
    except Exception as exc:
        raise StoreError(f"Chroma failed: {type(exc).__name__}: {exc}") from exc
    if name not in names:
        return None
    return dict(client.get_collection(name, embedding_function=None).metadata or {})


def stored_embedding(client: Any, name: str) -> str | None:
    """The embedding name a tandemlm-built collection was indexed with."""
    meta = collection_metadata(client, name)
    return None if meta is None else meta.get(EMBEDDING_KEY)


class ChromaStore:
    """A Chroma collection holding documents embedded by ``embedding``.

    Args:
        collection: collection name (3-512 characters: letters, digits, ``.``, ``_``, ``-``;
            starting and ending with a letter or digit).
        path: directory of the embedded database (default :func:`default_path`).
        host: a Chroma server's host; when given, ``path`` is not used.
        port: the server's port.
        embedding: embedder or name (``minilm``, ``ollama:NAME``, ``hash``).
        client: an existing ``chromadb`` client (overrides path/host).
        create: create the collection when it does not exist; ``False`` makes a missing
            collection a :class:`StoreError` at first use (a misspelled name must not turn
            into an empty store that answers "no evidence").

    The client and the embedding model are created on first use, so building a store is
    cheap (flows build the stores of their spec at compile time).
    """

    def __init__(
        self,
        collection: str = "docs",
        *,
        path: str | Path | None = None,
        host: str | None = None,
        port: int = 8000,
        embedding: str | Embedder = "minilm",
        client: Any = None,
        create: bool = True,
    ) -> None:
        if not _NAME.match(collection):
            raise StoreError(
                f"invalid collection name {collection!r}: use 3-512 letters, digits, '.', '_' "
                "or '-', starting and ending with a letter or digit"
            )
        self.collection_name = collection
        self.path = Path(path) if path is not None else None
        self.host = host
        self.port = port
        self.embedder = get_embedder(embedding)
        self._client = client
        self.create = create
        self._collection: Any = None
        self._lock = threading.Lock()

    @property
    def embedding(self) -> str:
        return self.embedder.name

    def where_is(self) -> str:
        """Where the data lives, for messages: ``http://h:p`` or the directory."""
        if self.host:
            return f"http://{self.host}:{self.port}"
        return str(self.path or default_path())

    def _make_client(self) -> Any:
        return make_client(self.path, self.host, self.port)

    def exists(self) -> bool:
        """Whether the collection exists already (without creating it)."""
        if self._collection is not None:
            return True
        if self._client is None:
            self._client = self._make_client()
        return collection_metadata(self._client, self.collection_name) is not None

    def _coll(self) -> Any:
        if self._collection is not None:
            return self._collection
        with self._lock:
            if self._collection is None:
                if self._client is None:
                    self._client = self._make_client()
                if not self.create and collection_metadata(self._client, self.collection_name) is None:
                    raise StoreError(self._missing())
                try:
                    coll = self._client.get_or_create_collection(
                        self.collection_name,
                        embedding_function=None,
                        configuration={"hnsw": {"space": "cosine"}},
                        metadata={EMBEDDING_KEY: self.embedder.name},
                    )
                except ValueError as exc:
                    raise StoreError(f"collection {self.collection_name!r}: {exc}") from exc
                except Exception as exc:
                    raise StoreError(
                        f"Chroma at {self.where_is()} failed: {type(exc).__name__}: {exc}"
                    ) from exc
                stored = (coll.metadata or {}).get(EMBEDDING_KEY)
                if stored and stored != self.embedder.name:
                    raise StoreError(
                        f"collection {self.collection_name!r} was indexed with embedding "
                        f"{stored!r}, not {self.embedder.name!r}; use embedding: {stored} "
                        "or index into another collection"
                    )
                self._collection = coll
        return self._collection

    def _missing(self) -> str:
        try:
            names = sorted(str(getattr(c, "name", c)) for c in self._client.list_collections())
        except Exception:  # noqa: BLE001 - the listing only helps the message
            names = []
        known = f" (collections there: {', '.join(names[:20])})" if names else " (it has no collections)"
        return (f"no collection {self.collection_name!r} at {self.where_is()}{known}; index documents "
                f"first (tandem index add PATH --collection {self.collection_name}), fix the name, "
                "or set create: true to start an empty one")

    def upsert(self, documents: Sequence[Document]) -> int:
        if not documents:
            return 0
        coll = self._coll()
        new = 0
        for start in range(0, len(documents), _BATCH):
            batch = list(documents[start : start + _BATCH])
            ids = [d.id for d in batch]
            existing = set(coll.get(ids=ids, include=[])["ids"])
            new += sum(1 for i in ids if i not in existing)
            coll.upsert(
                ids=ids,
                documents=[d.text for d in batch],
                metadatas=[dict(d.metadata) or None for d in batch],
                embeddings=self.embedder.embed([d.text for d in batch]),
            )
        return new

    def get(self, ids: Sequence[str]) -> list[Document]:
        if not ids:
            return []
        got = self._coll().get(ids=list(ids), include=["documents", "metadatas"])
        by_id = {
            i: Document(i, text or "", dict(meta or {}))
            for i, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        }
        return [by_id[i] for i in ids if i in by_id]

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._coll().delete(ids=list(ids))

    def ids(self, where: Where | None = None) -> list[str]:
        if where is not None:
            check_where(where)
        return list(self._coll().get(where=to_chroma_where(where), include=[])["ids"])

    def metadatas(self) -> list[dict[str, Any]]:
        """Metadata of every stored chunk (for statistics)."""
        return [dict(m or {}) for m in self._coll().get(include=["metadatas"])["metadatas"]]

    def count(self) -> int:
        return int(self._coll().count())

    def search(self, query: str, k: int = 4, where: Where | None = None) -> list[Hit]:
        if where is not None:
            check_where(where)
        coll = self._coll()
        if k < 1 or coll.count() == 0:
            return []
        [qvec] = self.embedder.embed([query])
        got = coll.query(
            query_embeddings=[qvec],
            n_results=k,
            where=to_chroma_where(where),
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(i, text or "", dict(meta or {}), round(1.0 - float(dist), 6))
            for i, text, meta, dist in zip(
                got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0],
                strict=True,
            )
        ]
