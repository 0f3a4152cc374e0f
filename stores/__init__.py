"""Stores: the Retriever/DocumentStore protocols, Chroma and in-memory stores, embeddings,
ingestion. Heavy libraries (chromadb, sentence-transformers) load only when first used."""

from tandemlm.stores.base import Document, DocumentStore, Hit, Retriever, StoreError
from tandemlm.stores.embeddings import Embedder, HashEmbedder, embed, get_embedder
from tandemlm.stores.factory import build_store, build_stores, example_data, example_kb
from tandemlm.stores.ingest import IngestReport, chunk_text, ingest
from tandemlm.stores.memory import MemoryStore


def __getattr__(name: str) -> object:
    if name == "ChromaStore":  # keeps `import tandemlm.stores` free of chromadb
        from tandemlm.stores.chroma import ChromaStore

        return ChromaStore
    raise AttributeError(name)


__all__ = [
    "ChromaStore", "Document", "DocumentStore", "Embedder", "HashEmbedder", "Hit",
    "IngestReport", "MemoryStore", "Retriever", "StoreError", "build_store", "build_stores",
    "chunk_text", "embed", "example_data", "example_kb", "get_embedder", "ingest",
]
