"""Ingestion: chunking, file types, idempotent re-ingestion, stale chunks, errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandemlm.stores import MemoryStore, example_kb, ingest
from tandemlm.stores.chroma import ChromaStore
from tandemlm.stores.ingest import IngestError, chunk_id, chunk_text, documents_for, html_to_text

PARAGRAPH = "Returns are accepted within 30 days. Refunds take 5 business days. " * 3


@given(
    text=st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]) | st.just("\n"), max_size=3000),
    size=st.integers(60, 600),
)
@settings(max_examples=60, deadline=None)
def test_chunks_are_bounded_and_cover_every_word(text: str, size: int) -> None:
    overlap = size // 5
    chunks = chunk_text(text, size, overlap)
    assert all(len(c) <= size for c in chunks)
    joined = " ".join(chunks)
    for word in text.split():
        assert word in joined


def test_chunks_overlap_and_follow_paragraphs() -> None:
    text = "\n\n".join(f"Paragraph {i}. " + PARAGRAPH for i in range(6))
    chunks = chunk_text(text, size=500, overlap=80)
    assert len(chunks) > 2
    for before, after in itertools.pairwise(chunks):
        tail = before[-60:].split(" ", 1)[-1]
        assert tail in after  # the next chunk starts with the end of this one
    assert chunk_text("", 500, 80) == []
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", 100, 80)


def test_html_text_drops_scripts_and_keeps_title() -> None:
    text, title = html_to_text(
        "<html><head><title>Returns</title><style>p{}</style></head><body>"
        "<script>var x = 1;</script><h1>Policy</h1><p>30 days &amp; free.</p></body></html>"
    )
    assert title == "Returns"
    assert "var x" not in text and "p{}" not in text
    assert "Policy" in text and "30 days & free." in text


def test_documents_carry_source_position_title(tmp_path: Path) -> None:
    page = tmp_path / "returns.md"
    page.write_text("# Returns policy\n\n" + "\n\n".join([PARAGRAPH] * 8))
    docs = documents_for(page, "policies/returns.md", size=300, overlap=50)
    assert [d.metadata["position"] for d in docs] == list(range(len(docs)))
    assert {d.metadata["source"] for d in docs} == {"policies/returns.md"}
    assert docs[0].metadata["title"] == "Returns policy"
    assert docs[0].metadata["folder"] == "policies"
    assert docs[0].id == chunk_id("policies/returns.md", docs[0].text)


@pytest.mark.parametrize("kind", ["memory", "chroma"])
def test_reingesting_the_same_files_adds_nothing(kind: str, tmp_path: Path) -> None:
    store = MemoryStore("hash") if kind == "memory" else ChromaStore("kb-test", path=tmp_path / "db", embedding="hash")
    first = ingest(store, [example_kb()])
    assert first.files == 22 and first.added == first.chunks == store.count()
    second = ingest(store, [example_kb()])
    assert (second.added, second.updated, second.removed) == (0, 0, 0)
    assert second.unchanged == first.chunks and store.count() == first.chunks
    # the example KB is tagged by folder, so filters can pick policies only
    assert {h.metadata["folder"] for h in store.search("refund", k=5, where={"folder": "policies"})} == {"policies"}


def test_changed_file_replaces_its_stale_chunks(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nOld text about returns.")
    (docs / "b.txt").write_text("Shipping takes 3 days.")
    (docs / "image.png").write_bytes(b"\x89PNG")
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "x.md").write_text("secret")
    store = MemoryStore("hash")
    report = ingest(store, [docs])
    assert (report.files, report.added) == (2, 2)
    assert report.skipped == [str(docs / "image.png")]
    (docs / "a.md").write_text("# A\n\nNew text about refunds.")
    again = ingest(store, [docs])
    assert (again.added, again.removed, again.unchanged) == (1, 1, 1)
    assert [d.text for d in store.get(store.ids({"source": "a.md"}))] == ["# A\n\nNew text about refunds."]


def test_single_files_are_named_by_file_name_and_html_is_read(tmp_path: Path) -> None:
    page = tmp_path / "faq.html"
    page.write_text("<title>FAQ</title><p>Gift cards last 3 years.</p>")
    store = MemoryStore("hash")
    ingest(store, [page], metadata={"lang": "en"})
    [doc] = store.get(store.ids())
    assert doc.metadata["source"] == "faq.html" and doc.metadata["lang"] == "en"
    assert doc.metadata["title"] == "FAQ" and "Gift cards last 3 years." in doc.text


def test_errors_name_the_path(tmp_path: Path) -> None:
    store = MemoryStore("hash")
    with pytest.raises(IngestError, match="nope.md: no such file or directory"):
        ingest(store, [tmp_path / "nope.md"])
    with pytest.raises(IngestError, match="unsupported file type"):
        documents_for(tmp_path / "x.docx", "x.docx")
