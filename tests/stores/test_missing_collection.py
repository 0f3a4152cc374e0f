"""A misspelled Chroma collection is an error, not an empty store that answers "no evidence"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tandemlm.errors import TandemError
from tandemlm.flows import compile_flow
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.stores import Document, StoreError
from tandemlm.stores.chroma import ChromaStore
from tandemlm.stores.factory import build_store

DOCS = [Document("r1", "Returns are accepted within 30 days.", {"source": "returns.md"})]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    ChromaStore("brightpeak-kb", path=tmp_path / "db", embedding="hash").upsert(DOCS)
    return tmp_path / "db"


def test_missing_collection_without_create_is_an_error_naming_the_known_ones(db: Path) -> None:
    store = ChromaStore("brightpeak-kv", path=db, embedding="hash", create=False)
    with pytest.raises(StoreError) as caught:
        store.search("returns")
    message = str(caught.value)
    assert "no collection 'brightpeak-kv'" in message and "collections there: brightpeak-kb" in message
    assert "create: true" in message
    assert not ChromaStore("brightpeak-kv", path=db, embedding="hash").exists()  # nothing was created
    found = ChromaStore("brightpeak-kb", path=db, embedding="hash", create=False).search("returns")
    assert [h.id for h in found] == ["r1"]


def test_spec_stores_need_create_true_for_a_new_empty_collection(db: Path) -> None:
    settings: dict[str, Any] = {"collection": "fresh", "path": str(db), "embedding": "hash"}
    with pytest.raises(StoreError, match="no collection 'fresh'"):
        build_store("kb", settings).count()
    assert build_store("kb", {**settings, "create": True}).count() == 0
    documents = db.parent / "docs"
    documents.mkdir()
    (documents / "a.md").write_text("Shipping takes 3 days.", "utf-8")
    indexed = build_store("kb2", {"collection": "indexed", "path": str(db), "embedding": "hash",
                                  "documents": [str(documents)]})
    assert indexed.count() == 1  # a store with documents creates its collection to index them


def test_a_flow_on_a_misspelled_collection_fails_instead_of_answering(db: Path) -> None:
    spec = {
        "name": "rag",
        "models": {"slm": {"provider": "keyed", "replies": {".": "x"}}},
        "stores": {"kb": {"collection": "brightpeak-kv", "path": str(db), "embedding": "hash"}},
        "nodes": {"find": {"type": "retrieve", "store": "kb"},
                  "answer": {"type": "generate", "model": "slm", "prompt": "{input} {evidence}"}},
        "entry": "find",
        "edges": [["find", "answer"], ["answer", "end"]],
    }
    model = KeyedChatModel(replies={".": "an answer"})
    with pytest.raises(TandemError, match="no collection 'brightpeak-kv'"):
        compile_flow(spec, models={"slm": model}).run("what is the return window?")
    assert model.calls == []
