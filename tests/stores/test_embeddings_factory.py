"""Embedders (hash, packaged MiniLM, Ollama protocol) and building stores from specs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from tandemlm.errors import ConfigError, ModelUnavailableError, SpecError
from tandemlm.stores import HashEmbedder, MemoryStore, build_store, build_stores, example_data
from tandemlm.stores.chroma import ChromaStore
from tandemlm.stores.embeddings import MiniLMEmbedder, OllamaEmbedder, get_embedder
from tandemlm.stores.factory import IndexedOnFirstUse


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_hash_embedding_is_deterministic_and_normalised() -> None:
    emb = HashEmbedder(64)
    a, b, c = emb.embed(["refund my order", "refund my order", "tent poles"])
    assert a == b and len(a) == 64
    assert math.isclose(math.sqrt(sum(x * x for x in a)), 1.0)
    assert _cos(a, b) > _cos(a, c)


def test_get_embedder_names() -> None:
    assert get_embedder("hash:32").name == "hash:32"
    assert get_embedder("ollama:nomic-embed-text").name == "ollama:nomic-embed-text"
    assert get_embedder(None).name == "minilm"
    with pytest.raises(ConfigError, match="unknown embedding 'bert'"):
        get_embedder("bert")
    with pytest.raises(ConfigError, match="hash:DIM"):
        get_embedder("hash:big")


@pytest.mark.real
def test_packaged_minilm_embeds_offline_by_meaning() -> None:
    emb = MiniLMEmbedder()
    refund, money, tent = emb.embed(
        ["How long until I get my refund?", "When is my money returned?", "Tent pole length"]
    )
    assert len(refund) == 384
    assert _cos(refund, money) > _cos(refund, tent) + 0.2
    assert "sentence_transformers" in sys.modules


def test_ollama_embedder_speaks_the_embed_endpoint(ollama_test_server) -> None:
    emb = OllamaEmbedder("tiny", host=ollama_test_server.url)
    vectors = emb.embed(["a", "b"])
    assert len(vectors) == 2 and len(vectors[0]) == ollama_test_server.embed_dim
    store = MemoryStore(emb)
    store.upsert([])
    assert store.embedding == "ollama:tiny"


def test_ollama_embedder_reports_an_unreachable_server() -> None:
    with pytest.raises(ModelUnavailableError, match="ollama serve"):
        OllamaEmbedder("x", host="http://127.0.0.1:1", timeout=2).embed(["a"])


def test_build_store_from_spec_settings(tmp_path: Path) -> None:
    memory = build_store("kb", {"type": "memory", "embedding": "hash"})
    assert isinstance(memory, MemoryStore)
    chroma = build_store("kb", {"collection": "docs", "path": str(tmp_path), "embedding": "hash"})
    assert isinstance(chroma, ChromaStore) and chroma.collection_name == "docs"
    assert not (tmp_path / "chroma.sqlite3").exists()  # nothing is opened before first use
    server = build_store("docs", {"host": "127.0.0.1", "port": 9999, "embedding": "hash"})
    assert server.where_is() == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("settings", "path", "message"),
    [
        ({"type": "faiss"}, "stores.kb.type", "chroma"),
        ({"colection": "x"}, "stores.kb.colection", "unknown setting"),
        ({"embedding": "bert"}, "stores.kb", "unknown embedding"),
        ({"collection": "x"}, "stores.kb", "invalid collection name"),
        ({}, "stores.kb", "set stores.kb.collection"),
        ({"documents": ["/no/such/dir"]}, "stores.kb.documents", "no such file"),
        ({"chunk_size": 100, "overlap": 80}, "stores.kb.overlap", "half"),
    ],
)
def test_build_store_errors_name_the_setting(settings: dict, path: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        build_store("kb", settings)
    assert info.value.path == path and message in info.value.message


def test_documents_are_indexed_on_first_use_once() -> None:
    store = build_store("kb", {"type": "memory", "embedding": "hash", "documents": ["example:kb"]})
    assert isinstance(store, IndexedOnFirstUse) and store.report is None
    hits = store.search("warranty for trekking poles", k=3)
    assert store.report.added == store.count() > 20
    assert any(h.source == "policies/warranty.md" for h in hits)
    store.search("again", k=1)
    assert store.report.added == store.count()  # not re-run
    assert store.embedding == "hash:256"  # other attributes come from the wrapped store


def test_example_data_and_given_stores_win() -> None:
    assert (example_data("kb") / "policies" / "returns.md").is_file()
    lines = example_data("customers.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 24
    mine = MemoryStore("hash")
    # a given store is used as it is: its spec entry is not even built
    stores = build_stores({"kb": {"type": "faiss"}, "other": {"type": "memory", "embedding": "hash"}}, {"kb": mine})
    assert stores["kb"] is mine and isinstance(stores["other"], MemoryStore)
