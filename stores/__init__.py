"""Stores: the Retriever/DocumentStore protocols, Chroma and in-memory stores, embeddings,
ingestion. Heavy libraries (chromadb, sentence-transformers) load only when first used."""

from tandemlm.stores.base import Document, DocumentStore, Hit, Retriever

__all__ = ["Document", "DocumentStore", "Hit", "Retriever"]
