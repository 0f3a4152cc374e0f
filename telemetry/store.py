"""The local trace store: spans in SQLite (WAL), one row per run for fast listing.

Spans are stored in two tables, read as one (the ``span_rows`` view):

- ``span_chunks``: the spans tandemlm records, one row per run (a JSON array of spans,
  :func:`encode_chunk`): one insert per run instead of one per span, which is most of what
  storing a trace cost (``tandemlm.telemetry.writer`` writes them);
- ``spans``: one row per span, for spans other processes send (the OTLP receiver) and
  stores written by earlier versions.

:class:`SQLiteSpanExporter` is an OpenTelemetry ``SpanExporter`` for use behind a
``BatchSpanProcessor``. It never raises: a failing export is logged and dropped.
:class:`TraceStore` reads and writes the database (the CLI and the viewer read it).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from tandemlm._json import dumps
from tandemlm._sqlite import connect, transaction
from tandemlm.models.prices import wh
from tandemlm.telemetry import attributes as A

log = logging.getLogger("tandemlm.telemetry")

SpanRow = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL,
    kind TEXT, start_ns INTEGER, end_ns INTEGER, status TEXT, status_message TEXT,
    attributes TEXT, events TEXT, resource TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE TABLE IF NOT EXISTS runs (
    trace_id TEXT PRIMARY KEY, run_id TEXT, flow TEXT, name TEXT, service TEXT,
    start_ns INTEGER, end_ns INTEGER, status TEXT, models TEXT, model_calls INTEGER,
    llm_calls INTEGER, input_tokens INTEGER, output_tokens INTEGER, cost REAL,
    answered_by TEXT, error_node TEXT, llm_called INTEGER, request_id TEXT, energy_joules REAL
);
CREATE INDEX IF NOT EXISTS runs_start ON runs (start_ns DESC);
CREATE INDEX IF NOT EXISTS runs_flow ON runs (flow, start_ns DESC);
CREATE TABLE IF NOT EXISTS span_chunks (trace_id TEXT NOT NULL, spans TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS span_chunks_trace ON span_chunks (trace_id);
"""
# A chunk's spans as rows with the columns of the spans table: each span is the JSON array
# [span_id, parent_id, name, kind, start_ns, end_ns, status, status_message, attributes,
# events, resource] (see encode_chunk); ``{where}`` restricts the chunks read.
CHUNK_ROWS = """
SELECT c.trace_id AS trace_id, json_extract(s.value, '$[0]') AS span_id,
    json_extract(s.value, '$[1]') AS parent_id, json_extract(s.value, '$[2]') AS name,
    json_extract(s.value, '$[3]') AS kind, json_extract(s.value, '$[4]') AS start_ns,
    json_extract(s.value, '$[5]') AS end_ns, json_extract(s.value, '$[6]') AS status,
    json_extract(s.value, '$[7]') AS status_message,
    COALESCE(json_extract(s.value, '$[8]'), '{{}}') AS attributes,
    COALESCE(json_extract(s.value, '$[9]'), '[]') AS events,
    COALESCE(json_extract(s.value, '$[10]'), '{{}}') AS resource
FROM span_chunks c, json_each(c.spans) s {where}"""
_SPAN_COLUMNS = ("trace_id, span_id, parent_id, name, kind, start_ns, end_ns, status, "
                 "status_message, attributes, events, resource")
# every span of the store, whichever table holds it
_VIEW = (f"CREATE VIEW IF NOT EXISTS span_rows AS SELECT {_SPAN_COLUMNS} FROM spans "
         f"UNION ALL {CHUNK_ROWS.format(where='')}")
_REQUEST_INDEX = "CREATE INDEX IF NOT EXISTS runs_request ON runs (request_id)"
# columns added after the first release: (name, type, how to fill them in an older store)
_ADDED_COLUMNS = (
    ("llm_called", "INTEGER",
     "UPDATE runs SET llm_called = llm_calls > 0 WHERE llm_called IS NULL AND llm_calls IS NOT NULL"),
    ("request_id", "TEXT",
     ("UPDATE runs SET request_id = (SELECT json_extract(s.attributes, '$.\"tandem.request_id\"') "
     "FROM spans s WHERE s.trace_id = runs.trace_id AND s.parent_id IS NULL) WHERE request_id IS NULL")),
    # the run span's total, else the sum of the run's chat spans (NULL when none recorded energy)
    ("energy_joules", "REAL",
     (f"UPDATE runs SET energy_joules = COALESCE("
      f"(SELECT json_extract(s.attributes, '$.\"{A.RUN_ENERGY_JOULES}\"') FROM spans s "
      "WHERE s.trace_id = runs.trace_id AND s.parent_id IS NULL), "
      f"(SELECT sum(json_extract(s.attributes, '$.\"{A.ENERGY_JOULES}\"')) FROM spans s "
      "WHERE s.trace_id = runs.trace_id AND s.parent_id IS NOT NULL AND s.name LIKE 'chat %')) "
      "WHERE energy_joules IS NULL")),
)


_json = dumps  # tuples (OTel array attributes) encode as JSON lists


def _plain(attributes: Any) -> Mapping[str, Any]:
    """Attributes as a mapping JSON can encode, without a copy where possible: a plain dict
    as it is, the SDK's ``BoundedAttributes`` by its inner dict (``ReadableSpan.attributes``
    wraps them in a read-only proxy that iterates key by key)."""
    if not attributes:
        return {}
    if type(attributes) is dict:
        return attributes
    inner = getattr(attributes, "_dict", None)
    return inner if isinstance(inner, dict) else dict(attributes)


def _attributes_of(item: Any) -> Mapping[str, Any]:
    """A finished span's attributes, light spans' deferred parts included, without a copy."""
    settle = getattr(item, "settle", None)
    if settle is not None:  # a light span (tandemlm.telemetry.light): deferred parts first
        settle()
    return _plain(getattr(item, "_attributes", None) or item.attributes)


_KINDS = {kind: kind.name.lower() for kind in SpanKind}
_STATUSES = {code: code.name.lower() for code in StatusCode}
# the store rows of one trace's spans: (trace id, span_chunks JSON, runs rows of its roots)
Chunk = tuple[str, str, list[tuple[Any, ...]]]


def encode_chunk(spans: Sequence[ReadableSpan]) -> Chunk:
    """The store rows of finished spans of one trace (light spans' deferred parts built).

    Each span becomes the JSON array ``[span_id, parent_id, name, kind, start_ns, end_ns,
    status, status_message, attributes, events, resource]`` (events and resource ``null``
    when empty; the resource is kept on root spans only), all in one JSON document.
    """
    items = []
    runs = []
    for span in spans:
        parent = span.parent
        start = span.start_time or 0
        end = span.end_time or start
        status = span.status
        status_name = _STATUSES.get(status.status_code) or str(status.status_code)
        attributes = _attributes_of(span)
        events = span.events
        resource = _plain(span.resource.attributes) if parent is None and span.resource else None
        items.append((
            f"{span.context.span_id:016x}", f"{parent.span_id:016x}" if parent else None, span.name,
            _KINDS.get(span.kind) or str(span.kind), start, end, status_name,
            status.description or "", attributes,
            [{"name": e.name, "time_ns": e.timestamp, "attributes": _plain(e.attributes)}
             for e in events] if events else None,
            resource,
        ))
        if parent is None:
            runs.append({"name": span.name, "start_ns": start, "end_ns": end,
                         "status": status_name, "attributes": attributes, "resource": resource})
    trace_id = f"{spans[0].context.trace_id:032x}"
    return trace_id, _json(items), [_run_row({"trace_id": trace_id, **run}) for run in runs]


def _llm_called(attrs: Mapping[str, Any]) -> bool | None:
    """The run span's escalation flag (``tandem.run.llm_called``, from the run's ledger).

    Spans from older versions or other processes without the flag fall back on
    ``tandem.run.llm_calls``; ``None`` when neither is there (e.g. a failed run).
    """
    flag = attrs.get(A.RUN_LLM_CALLED)
    if flag is not None:
        return bool(flag)
    calls = attrs.get(A.RUN_LLM_CALLS)
    return None if calls is None else bool(calls)


def _run_row(row: SpanRow) -> tuple[Any, ...]:
    attrs = row["attributes"]
    llm_called = _llm_called(attrs)
    status = attrs.get(A.RUN_STATUS) or ("error" if row["status"] == "error" else "ok")
    input_tokens = attrs.get(A.RUN_INPUT_TOKENS, attrs.get(A.GEN_AI_INPUT_TOKENS))
    output_tokens = attrs.get(A.RUN_OUTPUT_TOKENS, attrs.get(A.GEN_AI_OUTPUT_TOKENS))
    return (
        row["trace_id"], attrs.get(A.RUN_ID), attrs.get(A.FLOW) or row["name"], row["name"],
        (row.get("resource") or {}).get("service.name"), row["start_ns"], row["end_ns"], status,
        _json(attrs.get(A.RUN_MODELS) or []), attrs.get(A.RUN_MODEL_CALLS),
        attrs.get(A.RUN_LLM_CALLS), input_tokens, output_tokens,
        attrs.get(A.RUN_COST, attrs.get(A.COST)), attrs.get(A.RUN_ANSWERED_BY),
        attrs.get(A.RUN_ERROR_NODE), None if llm_called is None else int(llm_called),
        attrs.get(A.REQUEST_ID), attrs.get(A.RUN_ENERGY_JOULES, attrs.get(A.ENERGY_JOULES)),
    )


_RUN_COLUMNS = (
    "trace_id", "run_id", "flow", "name", "service", "start_ns", "end_ns", "status", "models",
    "model_calls", "llm_calls", "input_tokens", "output_tokens", "cost", "answered_by",
    "error_node", "llm_called", "request_id", "energy_joules",
)
_INSERT_CHUNK = "INSERT INTO span_chunks (trace_id, spans) VALUES (?, ?)"
_INSERT_SPAN = f"INSERT OR REPLACE INTO spans VALUES ({','.join('?' * 12)})"
_INSERT_RUN = (
    f"INSERT OR REPLACE INTO runs ({', '.join(_RUN_COLUMNS)}) "
    f"VALUES ({','.join('?' * len(_RUN_COLUMNS))})"
)


class TraceStore:
    """Spans and runs in one SQLite file (WAL mode, safe across threads and processes).

    Args:
        path: database file; its directory is created on demand.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()
        db = self._connect()
        try:
            with transaction(db):  # one process creates or upgrades the schema at a time
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
                for name, kind, fill in _ADDED_COLUMNS:
                    if name not in columns:  # a store written by an older version
                        db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                        db.execute(fill)
                db.execute(_REQUEST_INDEX)
                db.execute(_VIEW)
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path, rows=True)

    def close(self) -> None:
        """Close the connection kept for writes (reads open their own)."""
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def add_spans(self, spans: Sequence[ReadableSpan]) -> int:
        """Insert finished spans (one chunk per trace); root spans also update the runs table."""
        by_trace: dict[int, list[ReadableSpan]] = {}
        for item in spans:
            by_trace.setdefault(item.context.trace_id, []).append(item)
        self.add_chunks([encode_chunk(group) for group in by_trace.values()])
        return len(spans)

    def add_chunks(self, chunks: Sequence[Chunk]) -> int:
        """Insert chunks made by :func:`encode_chunk` in one transaction, over one
        connection kept for this store's writes; returns how many were written."""
        with self._write_lock:
            if self._writer is None:
                self._writer = self._connect()
            with transaction(self._writer):
                self._writer.executemany(_INSERT_CHUNK, [chunk[:2] for chunk in chunks])
                self._writer.executemany(_INSERT_RUN, [run for chunk in chunks for run in chunk[2]])
        return len(chunks)

    def add(self, rows: Iterable[SpanRow]) -> int:
        """Insert spans (replacing same ids); root spans also update the runs table."""
        rows = list(rows)
        spans = [
            (
                r["trace_id"], r["span_id"], r.get("parent_id"), r["name"], r.get("kind"),
                r["start_ns"], r["end_ns"], r.get("status"), r.get("status_message"),
                _json(r.get("attributes") or {}), _json(r["events"]) if r.get("events") else "[]",
                _json(r["resource"]) if r.get("resource") else "{}",
            )
            for r in rows
        ]
        roots = [_run_row(r) for r in rows if not r.get("parent_id")]
        db = self._connect()
        try:
            with transaction(db):
                db.executemany(_INSERT_SPAN, spans)
                db.executemany(_INSERT_RUN, roots)
        finally:
            db.close()
        return len(spans)

    def list_runs(
        self, *, flow: str | None = None, status: str | None = None, limit: int = 100,
        offset: int = 0, request_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, newest first, optionally filtered by flow, status and request id."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("flow", flow), ("status", status), ("request_id", request_id)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY start_ns DESC LIMIT ? OFFSET ?"
        args += [max(1, min(int(limit), 10_000)), max(0, int(offset))]
        db = self._connect()
        try:
            return [self._run_dict(r) for r in db.execute(sql, args)]
        finally:
            db.close()

    def flows(self) -> list[str]:
        """Distinct flow names in the store."""
        db = self._connect()
        try:
            return [r[0] for r in db.execute("SELECT DISTINCT flow FROM runs ORDER BY flow")]
        finally:
            db.close()

    def find_run(self, ref: str) -> dict[str, Any] | None:
        """The run a reference names, newest first: a trace id or run id (or a unique-enough
        prefix of one), else a request id (``X-Request-ID`` of a service request)."""
        given = ref.strip()
        ref = given.lower()
        if not ref:
            return None
        db = self._connect()
        try:
            row = None
            if all(c in "0123456789abcdef" for c in ref):
                row = db.execute(
                    "SELECT * FROM runs WHERE trace_id LIKE ? OR run_id LIKE ? "
                    "ORDER BY (trace_id = ? OR run_id = ?) DESC, start_ns DESC LIMIT 1",
                    (ref + "%", ref + "%", ref, ref),
                ).fetchone()
                if row is not None and ref not in (row["trace_id"], row["run_id"]):
                    exact = self._by_request_id(db, given)  # an exact request id beats a prefix
                    row = exact or row
            return self._run_dict(row) if row else self._run_dict_or_none(self._by_request_id(db, given))
        finally:
            db.close()

    @staticmethod
    def _by_request_id(db: sqlite3.Connection, request_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute(
            "SELECT * FROM runs WHERE request_id = ? ORDER BY start_ns DESC LIMIT 1", (request_id,)
        ).fetchone()
        return row

    @classmethod
    def _run_dict_or_none(cls, row: sqlite3.Row | None) -> dict[str, Any] | None:
        return cls._run_dict(row) if row is not None else None

    def spans(self, trace_id: str) -> list[SpanRow]:
        """All spans of a trace, in start order."""
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT * FROM span_rows WHERE trace_id = ? ORDER BY start_ns, end_ns DESC", (trace_id,)
            ).fetchall()
        finally:
            db.close()
        out = []
        for r in rows:
            item = dict(r)
            for key in ("attributes", "events", "resource"):
                item[key] = json.loads(item[key] or "null") or ({} if key != "events" else [])
            out.append(item)
        return out

    def run_detail(self, ref: str) -> dict[str, Any] | None:
        """``{"run": ..., "spans": [...]}`` for a run reference, or ``None``."""
        run = self.find_run(ref)
        if run is None:
            return None
        return {"run": run, "spans": self.spans(run["trace_id"])}

    @staticmethod
    def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
        item = dict(row)
        item["models"] = json.loads(item.get("models") or "[]")
        called = item.get("llm_called")
        item["llm_called"] = None if called is None else bool(called)
        start, end = item.get("start_ns") or 0, item.get("end_ns") or 0
        item["duration_ms"] = round((end - start) / 1e6, 3)
        joules = item.get("energy_joules")
        item["energy_wh"] = None if joules is None else wh(joules)
        return item


class SQLiteSpanExporter(SpanExporter):
    """Exports finished spans to a :class:`TraceStore`; never raises into the caller.

    Args:
        path: database file (e.g. ``.tandem/traces.db``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._store: TraceStore | None = None
        self._lock = threading.Lock()
        self._last_warning = 0.0
        self.failures = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            with self._lock:
                if self._store is None:
                    self._store = TraceStore(self.path)
                self._store.add_spans(spans)
            return SpanExportResult.SUCCESS
        except Exception as exc:  # noqa: BLE001  tracing must never fail a flow
            self.failures += 1
            now = time.monotonic()
            if now - self._last_warning > 30:
                self._last_warning = now
                log.warning("trace store %s: export of %d spans failed: %s", self.path, len(spans), exc)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
