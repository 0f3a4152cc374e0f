"""``tandem index add|query|stats``: build and inspect Chroma collections of documents."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from tandemlm.commands._common import esc, out, print_json
from tandemlm.errors import SpecError

Collection = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
DbPath = Annotated[
    str | None, typer.Option("--path", help="Embedded database directory (default .tandem/chroma).")
]
Host = Annotated[str | None, typer.Option("--host", help="Chroma server host (`chroma run`).")]
Port = Annotated[int, typer.Option("--port", help="Chroma server port.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    index_app = typer.Typer(
        help="Index documents into Chroma and search them.", no_args_is_help=True
    )
    index_app.command("add")(index_add)
    index_app.command("query")(index_query)
    index_app.command("stats")(index_stats)
    app.add_typer(index_app, name="index")


def _open(collection: str, path: str | None, host: str | None, port: int, embedding: str | None,
          *, must_exist: bool) -> Any:
    from tandemlm.stores.chroma import EMBEDDING_KEY, ChromaStore, collection_metadata, make_client

    client = make_client(path, host, port)
    location = f"http://{host}:{port}" if host else (path or ".tandem/chroma")
    meta = collection_metadata(client, collection)
    stored = (meta or {}).get(EMBEDDING_KEY)
    if must_exist and meta is None:
        raise SpecError(
            "--collection",
            f"no collection {collection!r} at {location}; index files first: "
            f"tandem index add PATH --collection {collection}",
        )
    return ChromaStore(
        collection, path=path, host=host, port=port,
        embedding=embedding or stored or "minilm", client=client,
    )


def index_add(
    paths: Annotated[list[str], typer.Argument(help="Files or directories (.txt .md .html .pdf).")],
    collection: Collection = "docs",
    path: DbPath = None,
    host: Host = None,
    port: Port = 8000,
    embedding: Annotated[
        str | None,
        typer.Option(help="minilm (default), ollama:MODEL or hash; default: the collection's."),
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="Chunk length in characters.")] = 800,
    overlap: Annotated[int, typer.Option(help="Characters repeated between chunks.")] = 120,
    as_json: AsJson = False,
) -> None:
    """Chunk files and upsert them; running it again on unchanged files adds nothing."""
    from tandemlm.stores.ingest import collect_files, ingest

    collect_files(paths)  # a missing path fails before any database is opened
    if chunk_size < 50 or not 0 <= overlap <= chunk_size // 2:
        raise SpecError("--chunk-size/--overlap", "need chunk size >= 50 and 0 <= overlap <= chunk size / 2")
    store = _open(collection, path, host, port, embedding, must_exist=False)
    report = ingest(store, paths, chunk_size=chunk_size, overlap=overlap, progress=not as_json)
    data = {**report.to_dict(), "collection": collection, "total": store.count(),
            "embedding": store.embedding}
    if as_json:
        print_json(data)
        return
    out.print(
        f"{collection}: {report.files} files, {report.chunks} chunks: {report.added} added, "
        f"{report.updated} updated, {report.unchanged} unchanged, {report.removed} removed; "
        f"{data['total']} chunks in the collection", markup=False
    )
    for skipped in report.skipped:
        out.print(f"skipped (unsupported type): {skipped}", markup=False)


def index_query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    collection: Collection = "docs",
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 4,
    where: Annotated[
        str | None, typer.Option(help='Metadata filter as JSON, e.g. \'{"folder": "policies"}\'.')
    ] = None,
    path: DbPath = None,
    host: Host = None,
    port: Port = 8000,
    as_json: AsJson = False,
) -> None:
    """Search a collection and print the best hits with their sources and scores."""
    if not text.strip():
        raise SpecError("text", "the query is empty")
    if not 1 <= k <= 100:
        raise SpecError("-k", "must be between 1 and 100")
    filters = _parse_where(where)
    store = _open(collection, path, host, port, None, must_exist=True)
    hits = store.search(text, k=k, where=filters)
    if as_json:
        print_json([h.to_dict() for h in hits])
        return
    if not hits:
        out.print("no hits")
    for hit in hits:
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
        position = hit.metadata.get("position", "")
        out.print(f"[bold]{hit.score:.3f}[/]  {esc(f'{hit.source}#{position}  {snippet}')}")


def _parse_where(where: str | None) -> dict[str, Any] | None:
    if where is None:
        return None
    try:
        data = json.loads(where)
    except json.JSONDecodeError as exc:
        raise SpecError("--where", f"not valid JSON: {exc.msg}") from None
    from tandemlm.stores._where import check_where

    check_where(data, "--where")
    return data  # type: ignore[no-any-return]


def index_stats(
    collection: Collection = "docs",
    path: DbPath = None,
    host: Host = None,
    port: Port = 8000,
    as_json: AsJson = False,
) -> None:
    """Chunks, sources and embedding of a collection."""
    store = _open(collection, path, host, port, None, must_exist=True)
    metas = store.metadatas()
    sources: dict[str, int] = {}
    for meta in metas:
        key = str(meta.get("source", "?"))
        sources[key] = sources.get(key, 0) + 1
    data = {
        "collection": collection,
        "location": store.where_is(),
        "embedding": store.embedding,
        "chunks": len(metas),
        "sources": len(sources),
        "chunks_per_source": dict(sorted(sources.items())),
    }
    if as_json:
        print_json(data)
        return
    out.print(
        f"{collection} at {data['location']}: {data['chunks']} chunks from {data['sources']} "
        f"sources, embedding {data['embedding']}", markup=False
    )
    for source, count in data["chunks_per_source"].items():
        out.print(f"  {source}: {count}", markup=False)
