"""Every store honours the DocumentStore protocol: in memory, embedded Chroma, Chroma server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tandemlm.errors import SpecError
from tandemlm.stores import Document, DocumentStore, MemoryStore, StoreError
from tandemlm.stores.chroma import ChromaStore, to_chroma_where

DOCS = [
    Document("r1", "Returns are accepted within 30 days of delivery.", {"source": "returns.md", "kind": "policy", "position": 0}),
    Document("r2", "Refunds reach your card within 5 business days.", {"source": "returns.md", "kind": "policy", "position": 1}),
    Document("s1", "Standard shipping takes 3 to 5 business days.", {"source": "shipping.md", "kind": "policy", "position": 0}),
    Document("t1", "The Ridgeline tent weighs 1.9 kg and sleeps two.", {"source": "tent.md", "kind": "product", "position": 0}),
    Document("h1", "The Aurora headlamp gives 400 lumens for 4 hours.", {"source": "lamp.md", "kind": "product", "position": 0}),
]


@pytest.fixture(params=["memory", "chroma-embedded", "chroma-server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        yield MemoryStore("hash")
    elif request.param == "chroma-embedded":
        yield ChromaStore(name, path=tmp_path / "db", embedding="hash")
    else:
        host, port = request.getfixturevalue("chroma_server")
        yield ChromaStore(name, host=host, port=port, embedding="hash")


def test_store_satisfies_the_protocol(store: Any) -> None:
    assert isinstance(store, DocumentStore)


def test_upsert_counts_new_ids_only_and_search_ranks_by_meaning(store: Any) -> None:
    assert store.upsert(DOCS) == 5
    assert store.upsert(DOCS) == 0
    assert store.count() == 5
    hits = store.search("are returns accepted after delivery", k=2)
    assert hits[0].id == "r1"
    assert hits[0].score >= hits[1].score
    assert hits[0].source == "returns.md"
    assert hits[0].metadata["position"] == 0


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"kind": "product"}, {"t1", "h1"}),
        ({"kind": {"$eq": "policy"}, "source": "returns.md"}, {"r1", "r2"}),
        ({"source": {"$in": ["tent.md", "lamp.md"]}}, {"t1", "h1"}),
        ({"source": {"$nin": ["returns.md", "tent.md", "lamp.md"]}}, {"s1"}),
        ({"$or": [{"source": "lamp.md"}, {"position": {"$gt": 0}}]}, {"h1", "r2"}),
        ({"$and": [{"kind": "policy"}, {"source": {"$ne": "returns.md"}}]}, {"s1"}),
    ],
)
def test_metadata_filters(store: Any, where: dict[str, Any], expected: set[str]) -> None:
    store.upsert(DOCS)
    assert set(store.ids(where)) == expected
    hits = store.search("days lumens tent refunds shipping", k=5, where=where)
    assert {h.id for h in hits} == expected


def test_get_delete_and_replace(store: Any) -> None:
    store.upsert(DOCS)
    assert [d.id for d in store.get(["t1", "missing", "r1"])] == ["t1", "r1"]
    store.delete(["t1", "missing"])
    assert store.count() == 4 and store.get(["t1"]) == []
    assert store.upsert([Document("r1", "Returns within 60 days for members.", {"source": "returns.md"})]) == 0
    assert store.get(["r1"])[0].text == "Returns within 60 days for members."


def test_empty_store_and_k(store: Any) -> None:
    assert store.search("anything", k=3) == []
    store.upsert(DOCS[:2])
    assert len(store.search("returns", k=10)) == 2


def test_invalid_filters_are_rejected_with_a_path(store: Any) -> None:
    with pytest.raises(SpecError, match=r"where\.kind"):
        store.search("x", where={"kind": {"$like": "p%"}})
    with pytest.raises(SpecError, match=r"\$and"):
        store.ids({"$and": []})


def test_chroma_where_translation() -> None:
    assert to_chroma_where({"a": 1}) == {"a": 1}
    assert to_chroma_where({"a": 1, "b": {"$ne": 2}}) == {"$and": [{"a": 1}, {"b": {"$ne": 2}}]}
    assert to_chroma_where({"$or": [{"a": 1, "b": 2}, {"c": 3}]}) == {
        "$or": [{"$and": [{"a": 1}, {"b": 2}]}, {"c": 3}]
    }


def test_chroma_persists_across_clients_and_guards_the_embedding(tmp_path: Path) -> None:
    ChromaStore("persist", path=tmp_path, embedding="hash").upsert(DOCS)
    again = ChromaStore("persist", path=tmp_path, embedding="hash")
    assert again.count() == 5 and again.exists()
    with pytest.raises(StoreError, match="indexed with embedding 'hash:256'"):
        ChromaStore("persist", path=tmp_path, embedding="hash:64").count()
    assert not ChromaStore("other", path=tmp_path, embedding="hash").exists()


def test_chroma_default_path_is_under_the_project_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path / "state"))
    store = ChromaStore("homed", embedding="hash")
    store.upsert(DOCS[:1])
    assert store.where_is() == str(tmp_path / "state" / "chroma")
    assert (tmp_path / "state" / "chroma").is_dir()


def test_bad_collection_name_and_unreachable_server() -> None:
    with pytest.raises(StoreError, match="invalid collection name 'x'"):
        ChromaStore("x", embedding="hash")
    with pytest.raises(StoreError, match="cannot reach the Chroma server"):
        ChromaStore("docs", host="127.0.0.1", port=1, embedding="hash").count()
