"""Ingestion: read files, chunk them with overlap, upsert idempotently into a store.

Chunk ids are content hashes (of the source name and the chunk text), so ingesting the same
files again adds nothing and re-embeds nothing; chunks of a changed file that no longer
exist are removed. Supported: ``.txt``, ``.md``, ``.markdown``, ``.html``/``.htm``, and
``.pdf`` when ``pypdf`` is installed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from tandemlm.errors import TandemError
from tandemlm.stores.base import Document, DocumentStore

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf"}
MAX_FILE_BYTES = 20_000_000


class IngestError(TandemError):
    """A path cannot be ingested (missing, unreadable, unsupported)."""


@dataclass
class IngestReport:
    """What an ingestion did.

    Attributes:
        files: files read.
        chunks: chunks those files produced.
        added: chunks that were new to the store.
        updated: chunks whose metadata changed (e.g. a new position).
        unchanged: chunks already stored as they are.
        removed: stale chunks of re-ingested files that were deleted.
        skipped: files passed over (unsupported type), as paths.
    """

    files: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- reading -----------------------------------------------------------------------------


class _TextOfHTML(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
         "footer", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "title"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data.strip()
        self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """Visible text of an HTML page (scripts and styles dropped) and its ``<title>``."""
    parser = _TextOfHTML()
    parser.feed(html)
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r"\s*\n\s*\n\s*", "\n\n", text)
    return text.strip(), parser.title


def _pdf_text(path: Path) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise IngestError(f"{path}: reading PDF needs pypdf: pip install 'tandemlm[rag]'") from None
    try:
        reader = PdfReader(str(path))
        return "\n\n".join((page.extract_text() or "") for page in reader.pages)
    except Exception as exc:  # pypdf raises many types on broken files
        raise IngestError(f"{path}: cannot read PDF: {exc}") from exc


def read_file(path: Path) -> tuple[str, str]:
    """``(text, title)`` of a supported file.

    Raises:
        IngestError: unsupported type, too large or unreadable.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise IngestError(f"{path}: unsupported file type (supported: {', '.join(sorted(SUFFIXES))})")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise IngestError(f"{path}: larger than {MAX_FILE_BYTES // 1_000_000} MB; split it first")
        if suffix == ".pdf":
            return _pdf_text(path), path.stem
        raw = path.read_text("utf-8", errors="replace")
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {exc.strerror}") from None
    if suffix in HTML_SUFFIXES:
        text, title = html_to_text(raw)
        return text, title or path.stem
    heading = re.search(r"^#\s+(.+)$", raw, re.MULTILINE) if suffix != ".txt" else None
    return raw.strip(), heading.group(1).strip() if heading else path.stem


# -- chunking ----------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _pieces(text: str, size: int) -> Iterable[str]:
    """Paragraphs, with paragraphs longer than ``size`` split at sentences, then hard."""
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= size:
            yield para
            continue
        for sentence in _SENTENCE.split(para):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                yield sentence[:cut].strip()
                sentence = sentence[cut:].strip()
            if sentence:
                yield sentence


def _tail(text: str, overlap: int) -> str:
    if overlap <= 0 or len(text) <= overlap:
        return text if overlap > 0 else ""
    start = text.find(" ", len(text) - overlap)
    return text[start + 1 :] if start != -1 else text[-overlap:]


def chunk_text(text: str, size: int = 800, overlap: int = 120) -> list[str]:
    """Split ``text`` into chunks of at most about ``size`` characters.

    Chunks follow paragraph (then sentence) boundaries; each chunk after the first starts
    with the last ``overlap`` characters (whole words) of the previous one, so a fact cut
    at a boundary still appears whole in one chunk.

    Raises:
        ValueError: ``size`` < 50 or ``overlap`` not in ``[0, size / 2]``.
    """
    if size < 50:
        raise ValueError("chunk size must be at least 50 characters")
    if not 0 <= overlap <= size // 2:
        raise ValueError("overlap must be between 0 and half the chunk size")
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, size - overlap):
        candidate = f"{current}\n\n{piece}" if current else piece
        if len(candidate) <= size:
            current = candidate
            continue
        if current:
            chunks.append(current)
            carry = _tail(current, overlap)
            current = f"{carry}\n\n{piece}" if carry else piece
        else:
            current = piece
    if current and (not chunks or current != _tail(chunks[-1], overlap)):
        chunks.append(current)
    return chunks


def chunk_id(source: str, text: str) -> str:
    """The id of a chunk: a hash of its source name and text."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:32]


def documents_for(
    path: Path, source: str, size: int = 800, overlap: int = 120, extra: dict[str, Any] | None = None
) -> list[Document]:
    """The chunks of one file as documents with ``source``, ``position``, ``title`` metadata."""
    text, title = read_file(path)
    folder = source.rsplit("/", 1)[0] if "/" in source else ""
    docs = []
    for position, chunk in enumerate(chunk_text(text, size, overlap)):
        meta: dict[str, Any] = {
            "source": source,
            "position": position,
            "title": title[:200],
            "folder": folder,
            **(extra or {}),
        }
        docs.append(Document(chunk_id(source, chunk), chunk, meta))
    return docs


# -- ingestion ---------------------------------------------------------------------------


def collect_files(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """``(file, source name)`` pairs: files as given (named by file name), directories
    walked recursively (named by their path relative to the directory), sorted.

    Raises:
        IngestError: a path does not exist.
    """
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise IngestError(f"{raw}: no such file or directory")
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file() and not any(p.startswith(".") for p in item.relative_to(path).parts):
                    found.append((item, item.relative_to(path).as_posix()))
        else:
            found.append((path, path.name))
    return found


def ingest(
    store: DocumentStore,
    paths: Sequence[str | Path],
    *,
    chunk_size: int = 800,
    overlap: int = 120,
    metadata: dict[str, Any] | None = None,
    on_file: Callable[[str], None] | None = None,
    progress: bool = False,
) -> IngestReport:
    """Chunk and upsert every supported file under ``paths`` into ``store``.

    Args:
        store: the target store.
        paths: files and/or directories.
        chunk_size: maximum chunk length in characters.
        overlap: characters repeated from the previous chunk.
        metadata: extra metadata for every chunk (e.g. ``{"lang": "en"}``).
        on_file: called with each source name after it is stored.
        progress: show a rich progress bar on stderr.

    Returns:
        An :class:`IngestReport`; ingesting unchanged files again reports ``added == 0``.

    Raises:
        IngestError: a path is missing or a file cannot be read.
    """
    files = collect_files(paths)
    report = IngestReport()
    supported = []
    for path, source in files:
        if path.suffix.lower() in SUFFIXES:
            supported.append((path, source))
        else:
            report.skipped.append(str(path))

    def work(advance: Callable[[], None]) -> None:
        for path, source in supported:
            _ingest_one(store, path, source, chunk_size, overlap, metadata, report)
            report.files += 1
            advance()
            if on_file:
                on_file(source)

    if progress and supported:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("indexing", total=len(supported))
            work(lambda: bar.advance(task))
    else:
        work(lambda: None)
    return report


def _ingest_one(
    store: DocumentStore,
    path: Path,
    source: str,
    chunk_size: int,
    overlap: int,
    metadata: dict[str, Any] | None,
    report: IngestReport,
) -> None:
    docs = list({d.id: d for d in documents_for(path, source, chunk_size, overlap, metadata)}.values())
    report.chunks += len(docs)
    existing = {d.id: d for d in store.get([d.id for d in docs])}
    to_write = [d for d in docs if d.id not in existing or existing[d.id].metadata != d.metadata]
    if to_write:  # only new or moved chunks are embedded again
        store.upsert(to_write)
    added = sum(1 for d in to_write if d.id not in existing)
    report.added += added
    report.updated += len(to_write) - added
    report.unchanged += len(docs) - len(to_write)
    keep = {d.id for d in docs}
    stale = [i for i in store.ids({"source": source}) if i not in keep]
    if stale:
        store.delete(stale)
        report.removed += len(stale)
