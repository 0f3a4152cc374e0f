"""Queries over a trace store: run search with filters and paging, aggregates, router scores.

The viewer's ``/api/runs`` and ``/api/stats``, ``tandem traces list`` and
``tandem router calibrate --from-traces`` read through here. Three small tables are derived
from the ``spans`` table and kept up to date by :func:`sync` before each query (it reads
only spans stored since the last sync, so writers never pay for them and stores written
by older versions are indexed on first use):

- ``run_text``: per run, the captured question (``tandem.run.input``, recorded only with
  content capture on, after redaction);
- ``decisions``: one row per routing decision (flow, route, router, score, threshold,
  choice, time);
- ``calls``: one row per ``chat`` span (flow, node, model, tokens, cost, duration, status).
"""

from __future__ import annotations

import bisect
import json
import math
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tandemlm._sqlite import connect, retry_locked, transaction
from tandemlm.models.prices import EnergyPrices, energy_prices, wh
from tandemlm.telemetry import attributes as A
from tandemlm.telemetry.store import CHUNK_ROWS, TraceStore

__all__ = [
    "Calibration",
    "RunFilter",
    "calibrate",
    "facets",
    "parse_when",
    "run_detail_json",
    "search_runs",
    "stats",
    "sync",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_text (trace_id TEXT PRIMARY KEY, question TEXT);
CREATE TABLE IF NOT EXISTS decisions (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, flow TEXT, route TEXT, router TEXT,
    score REAL, threshold REAL, choice TEXT, start_ns INTEGER,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS decisions_route ON decisions (flow, route, start_ns);
CREATE TABLE IF NOT EXISTS calls (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, flow TEXT, node TEXT, model TEXT,
    start_ns INTEGER, duration_ns INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    cost REAL, status TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS calls_start ON calls (start_ns);
CREATE INDEX IF NOT EXISTS calls_model ON calls (model, start_ns);
CREATE TABLE IF NOT EXISTS derived_state (name TEXT PRIMARY KEY, value INTEGER);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, start_ns DESC);
CREATE INDEX IF NOT EXISTS runs_run_id ON runs (run_id);
"""


def _attr(name: str) -> str:
    return f"json_extract(attributes, '$.\"{name}\"')"


_SYNC = [
    f"""INSERT OR REPLACE INTO run_text (trace_id, question)
    SELECT trace_id, {_attr(A.RUN_INPUT)} FROM {{rows}}
    WHERE parent_id IS NULL AND instr(attributes, '"{A.RUN_INPUT}"')""",
    f"""INSERT OR REPLACE INTO decisions
    SELECT trace_id, span_id, {_attr(A.FLOW)}, COALESCE({_attr(A.ROUTE)}, substr(name, 6)),
           {_attr(A.ROUTER_TYPE)}, {_attr(A.ROUTER_SCORE)}, {_attr(A.ROUTER_THRESHOLD)},
           {_attr(A.ROUTER_CHOICE)}, start_ns
    FROM {{rows}} WHERE instr(attributes, '"{A.ROUTER_SCORE}"')
      AND {_attr(A.ROUTER_SCORE)} IS NOT NULL""",
    f"""INSERT OR REPLACE INTO calls
    SELECT trace_id, span_id, {_attr(A.FLOW)}, {_attr(A.NODE)},
           COALESCE({_attr(A.MODEL)}, {_attr(A.GEN_AI_REQUEST_MODEL)}, substr(name, 6)),
           start_ns, end_ns - start_ns, {_attr(A.GEN_AI_INPUT_TOKENS)},
           {_attr(A.GEN_AI_OUTPUT_TOKENS)}, {_attr(A.COST)}, status
    FROM {{rows}} WHERE name LIKE 'chat %'
      AND {_attr(A.GEN_AI_OPERATION)} = 'chat'""",
]


def _connect(store: TraceStore) -> sqlite3.Connection:
    return connect(store.path, rows=True)


_READY: set[str] = set()  # stores whose derived tables exist (per process)


# where sync reads new spans from: table -> the span rows of its rows ?1 < rowid <= ?2
_SOURCES = {
    "spans": "(SELECT * FROM spans WHERE rowid > ?1 AND rowid <= ?2)",
    "span_chunks": f"({CHUNK_ROWS.format(where='WHERE c.rowid > ?1 AND c.rowid <= ?2')})",
}


def sync(store: TraceStore) -> int:
    """Index spans stored since the last sync into the derived tables; returns how many
    rows (spans, or chunks of spans) were scanned (0 when up to date).

    Rows are read by ``rowid``, per table (:data:`_SOURCES`): SQLite gives each new row a
    larger one and writers commit one at a time, so every sync sees a complete prefix of
    what was written.
    """
    db = _connect(store)
    try:
        key = f"{store.path.resolve()}:{store.path.stat().st_ino}"
        if key not in _READY:
            retry_locked(lambda: db.executescript(_SCHEMA))
            _READY.add(key)
        if all(high <= low for low, high in (_marks(db, table) for table in _SOURCES)):
            return 0
        scanned = 0
        with transaction(db):  # one reader indexes at a time; the others find it done
            for table, rows in _SOURCES.items():
                low, high = _marks(db, table)
                if high > low:
                    for sql in _SYNC:
                        db.execute(sql.format(rows=rows), (low, high))
                    db.execute("INSERT OR REPLACE INTO derived_state VALUES (?, ?)", (table, high))
                    scanned += high - low
        return scanned
    finally:
        db.close()


def _marks(db: sqlite3.Connection, table: str) -> tuple[int, int]:
    """(last rowid of ``table`` already indexed, last rowid in it)."""
    done = db.execute("SELECT value FROM derived_state WHERE name = ?", (table,)).fetchone()
    last = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    return (done[0] if done else 0), last


# -- time ----------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str | float | None, now: float | None = None) -> int | None:
    """A point in time as Unix nanoseconds, from what a person or a page would write.

    Accepts ``None``/``""`` (no bound), a duration back from now (``30m``, ``24h``, ``7d``),
    an ISO 8601 date or time (``2026-11-30``, ``2026-11-30T14:00``; local time unless it
    names a zone) or Unix seconds (``1764500000``).

    Raises:
        ValueError: the text is none of those.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    now = time.time() if now is None else now
    if isinstance(text, int | float):
        return int(float(text) * 1e9)
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        return int((now - float(match.group(1)) * _UNIT_S[match.group(2).lower()]) * 1e9)
    try:
        return int(float(value) * 1e9)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1e9)
    except ValueError:
        raise ValueError(
            f"cannot read {value!r} as a time: use 24h, 7d, 2026-11-30T14:00 or Unix seconds"
        ) from None


# -- run search ----------------------------------------------------------------------------


@dataclass
class RunFilter:
    """What :func:`search_runs` looks for; every field is optional.

    Args:
        q: words that must each match a run: a whole run id, trace id or request id, a
            prefix of one, or a part of its flow name or captured question (case-insensitive).
        flow: exact flow name.
        status: ``ok`` or ``error``.
        model: a model name (from the spec) the run called.
        escalated: ``True``: runs that called a large model; ``False``: runs that did not.
        min_ms: runs that took at least this many milliseconds.
        since, until: start-time bounds in Unix nanoseconds (``until`` excluded).
    """

    q: str | None = None
    flow: str | None = None
    status: str | None = None
    model: str | None = None
    escalated: bool | None = None
    min_ms: float | None = None
    since: int | None = None
    until: int | None = None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_EXACT_ID = ("SELECT trace_id FROM runs WHERE trace_id = ?1 UNION SELECT trace_id FROM runs WHERE run_id = ?1 "
             "UNION SELECT trace_id FROM runs WHERE request_id = ?1")


def _where(f: RunFilter, db: sqlite3.Connection) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for word in (f.q or "").split()[:8]:
        exact = [r[0] for r in db.execute(_EXACT_ID, (word,))]  # a whole id: found by index
        if exact:
            where.append(f"runs.trace_id IN ({','.join('?' * len(exact))})")
            args += exact
            continue
        prefix, part = _like(word.lower()) + "%", "%" + _like(word.lower()) + "%"
        # ids match from their start, names and question text anywhere (LIKE ignores case)
        where.append(
            "(runs.trace_id LIKE ? ESCAPE '\\' OR runs.run_id LIKE ? ESCAPE '\\' "
            "OR runs.request_id LIKE ? ESCAPE '\\' OR runs.flow LIKE ? ESCAPE '\\' "
            "OR run_text.question LIKE ? ESCAPE '\\')"
        )
        args += [prefix, prefix, prefix, part, part]
    if f.flow:
        where.append("runs.flow = ?")
        args.append(f.flow)
    if f.status:
        where.append("runs.status = ?")
        args.append(f.status)
    if f.model:
        where.append("EXISTS (SELECT 1 FROM json_each(runs.models) WHERE value = ?)")
        args.append(f.model)
    if f.escalated is not None:
        where.append("runs.llm_called = ?")
        args.append(int(f.escalated))
    if f.min_ms is not None:
        where.append("runs.end_ns - runs.start_ns >= ?")
        args.append(int(f.min_ms * 1e6))
    if f.since is not None:
        where.append("runs.start_ns >= ?")
        args.append(int(f.since))
    if f.until is not None:
        where.append("runs.start_ns < ?")
        args.append(int(f.until))
    return (" WHERE " + " AND ".join(where)) if where else "", args


def search_runs(
    store: TraceStore, query: RunFilter | None = None, *, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """Runs matching ``query``, newest first, one page at a time.

    Returns:
        ``{"runs": [...], "total": n, "limit": ..., "offset": ...}``; each run is the store's
        run row (as :meth:`TraceStore.list_runs` gives it) plus the captured ``question``
        (``None`` unless recorded, cut at 300 characters).
    """
    sync(store)
    limit = max(1, min(int(limit), 1000))
    offset = max(0, int(offset))
    db = _connect(store)
    try:
        where, args = _where(query or RunFilter(), db)
        base = " FROM runs LEFT JOIN run_text ON run_text.trace_id = runs.trace_id" + where
        counted = base if query and query.q else " FROM runs" + where  # the join only matters to q
        total = db.execute("SELECT count(*)" + counted, args).fetchone()[0]
        rows = db.execute(
            "SELECT runs.*, run_text.question AS question"
            + base + " ORDER BY runs.start_ns DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
    finally:
        db.close()
    return {"runs": [_run(r) for r in rows], "total": total, "limit": limit, "offset": offset}


def _run(row: sqlite3.Row) -> dict[str, Any]:
    item = TraceStore._run_dict(row)
    question = item.get("question")
    if isinstance(question, str) and len(question) > 300:
        item["question"] = question[:300] + "…"
    return item


_SPANS_JSON = """
SELECT json_group_array(json_object(
    'trace_id', trace_id, 'span_id', span_id, 'parent_id', parent_id, 'name', name, 'kind', kind,
    'start_ns', start_ns, 'end_ns', end_ns, 'status', status, 'status_message', status_message,
    'attributes', json(COALESCE(attributes, '{}')), 'events', json(COALESCE(events, '[]')),
    'resource', json(COALESCE(resource, '{}'))))
FROM (SELECT * FROM span_rows WHERE trace_id = ? ORDER BY start_ns, end_ns DESC)
"""


def run_detail_json(store: TraceStore, ref: str) -> bytes | None:
    """:meth:`TraceStore.run_detail` as JSON bytes, built by SQLite from the stored JSON
    (a 5,000-span run in tens of milliseconds instead of decoding and encoding every span)."""
    run = store.find_run(ref)
    if run is None:
        return None
    db = _connect(store)
    try:
        spans = db.execute(_SPANS_JSON, (run["trace_id"],)).fetchone()[0] or "[]"
    finally:
        db.close()
    head = json.dumps({"run": run}, ensure_ascii=False, default=str)[:-1]
    return f'{head}, "spans": {spans}}}'.encode()


def facets(store: TraceStore) -> dict[str, list[str]]:
    """Flow and model names in the store (the viewer's filter choices)."""
    sync(store)
    db = _connect(store)
    try:
        flows = [r[0] for r in db.execute("SELECT DISTINCT flow FROM runs WHERE flow IS NOT NULL ORDER BY flow")]
        models = [r[0] for r in db.execute("SELECT DISTINCT model FROM calls WHERE model IS NOT NULL ORDER BY model")]
    finally:
        db.close()
    return {"flows": flows, "models": models}


# -- aggregates ----------------------------------------------------------------------------

_BUCKETS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def _percentile(ordered: Sequence[float], p: float) -> float | None:
    if not ordered:
        return None
    k = (len(ordered) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo))


def _bucket_s(first_ns: int, last_ns: int, target: int = 40) -> int:
    span_s = max(1.0, (last_ns - first_ns) / 1e9)
    return next((b for b in _BUCKETS_S if span_s / b <= target), _BUCKETS_S[-1])


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value / 1e6, 3)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _clause(since: int | None, until: int | None, **equal: Any) -> tuple[str, list[Any]]:
    """``WHERE`` text and arguments: a start-time window and column values (``None`` skips one)."""
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("start_ns >= ?")
        args.append(int(since))
    if until is not None:
        where.append("start_ns < ?")
        args.append(int(until))
    for column, value in equal.items():
        if value is not None:
            where.append(f"{column} IS ?")
            args.append(value)
    return " AND ".join(where) or "1", args


def _grouped(rows: Sequence[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    """``{key: sorted values}`` from ``(key, value)`` rows (sorting here beats SQLite's sorter)."""
    out: dict[Any, list[Any]] = defaultdict(list)
    for key, value in rows:
        out[key].append(value)
    for values in out.values():
        values.sort()
    return out


_STATS_CACHE: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
_STATS_TTL_S = 30.0


def stats(
    store: TraceStore, *, flow: str | None = None, route: str | None = None,
    since: int | None = None, until: int | None = None, bins: int = 20,
    prices: EnergyPrices | None = None,
) -> dict[str, Any]:
    """Aggregates over runs, routing decisions and model calls in a time window.

    Args:
        store: the trace store.
        flow: only this flow (runs, decisions and calls).
        route: only this route (decisions).
        since, until: start-time bounds in Unix nanoseconds.
        bins: histogram bins of router scores over [0, 1].
        prices: grid intensity for the CO2 figures (default: :func:`energy_prices`, i.e.
            ``tandem.toml``'s ``[energy]``).

    Returns:
        ``{"window", "energy", "flows", "routes", "models", "timeline"}``: the energy prices
        used (``grid_g_per_kwh``, ``price_kwh``); per flow (runs, errors, error and
        escalation rate, p50/p95 latency, tokens, total and mean cost per run, local-compute
        energy in joules and Wh and its CO2 in grams, ``None`` when no run of the flow
        recorded energy); per route (decisions,
        large-model share, current threshold, a score histogram and the share of decisions
        that would have escalated at other thresholds); per model (calls, errors, tokens,
        cost, p50/p95 latency); and per time bucket (runs, escalations, errors, tokens and
        cost, tokens and cost per model). Escalation rates count runs that recorded the
        flag (failed runs may not). The same question over the same spans is answered from
        a cache for 30 s.
    """
    sync(store)
    prices = prices or energy_prices()
    where, args = _clause(since, until, flow=flow)
    db = _connect(store)
    db.row_factory = None  # plain tuples: aggregates over 100,000 runs stay fast
    try:
        written = tuple(db.execute("SELECT name, value FROM derived_state ORDER BY name"))
        # windows like "last 24 h" move with the clock: 10 s steps share a cache entry
        key = (str(store.path), flow, route, since and since // 10**10, until and until // 10**10, bins, written,
               prices)
        cached = _STATS_CACHE.get(key)
        if cached and time.monotonic() - cached[0] < _STATS_TTL_S:
            return cached[1]
        first, last = db.execute(f"SELECT min(start_ns), max(start_ns) FROM runs WHERE {where}", args).fetchone()
        bucket = _bucket_s(since or first or 0, until or last or first or 0)
        width = bucket * 1_000_000_000
        flows, timeline = _runs_by_flow_and_time(db, where, args, width, prices)
        result = {
            "window": {"since": since, "until": until, "first_ns": first, "last_ns": last,
                       "bucket_s": bucket, "flow": flow, "route": route},
            "energy": {"grid_g_per_kwh": prices.grid_g_per_kwh, "price_kwh": prices.price_kwh},
            "flows": flows,
            "routes": _route_rows(db, since, until, flow, route, bins),
            "models": _calls_by_model_and_time(db, where, args, width, timeline),
            "timeline": [timeline[k] for k in sorted(timeline)],
        }
    finally:
        db.close()
    if len(_STATS_CACHE) > 32:
        _STATS_CACHE.clear()
    _STATS_CACHE[key] = (time.monotonic(), result)
    return result


def _bucket(timeline: dict[int, dict[str, Any]], key: int, width: int) -> dict[str, Any]:
    if key not in timeline:
        timeline[key] = {"t": key * width, "runs": 0, "escalated": 0, "known": 0, "errors": 0,
                         "tokens": 0, "cost": 0.0, "models": {}}
    return timeline[key]


def _energy(joules: float | None, prices: EnergyPrices) -> dict[str, float | None]:
    """``energy_joules``, ``energy_wh`` and ``co2_g`` (grams CO2e at the grid intensity)."""
    if joules is None:
        return {"energy_joules": None, "energy_wh": None, "co2_g": None}
    return {"energy_joules": joules, "energy_wh": wh(joules), "co2_g": prices.co2_g(joules)}


def _runs_by_flow_and_time(
    db: sqlite3.Connection, where: str, args: list[Any], width: int, prices: EnergyPrices
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    flows: dict[Any, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0.0, 0.0, 0])
    timeline: dict[int, dict[str, Any]] = {}
    for name, key, runs, errors, escalated, known, tokens, cost, joules, measured in db.execute(
        f"SELECT flow, start_ns / {width} AS b, count(*), total(status = 'error'), total(llm_called = 1), "
        "count(llm_called), total(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)), "
        "total(COALESCE(cost, 0)), total(COALESCE(energy_joules, 0)), count(energy_joules) "
        f"FROM runs WHERE {where} GROUP BY flow, b", args,
    ):
        for i, value in enumerate((runs, errors, escalated, known, tokens, cost, joules, measured)):
            flows[name][i] += value
        b = _bucket(timeline, key, width)
        b["runs"] += runs
        b["errors"] += int(errors)
        b["escalated"] += int(escalated)
        b["known"] += known
        b["tokens"] += int(tokens)
        b["cost"] += float(cost)
    for b in timeline.values():
        b["escalation_rate"] = _rate(b["escalated"], b.pop("known"))
        b["error_rate"] = _rate(b["errors"], b["runs"])
    durations = _grouped(db.execute(f"SELECT flow, end_ns - start_ns FROM runs WHERE {where}", args).fetchall())
    rows = []
    for name in sorted(flows, key=lambda n: n or ""):
        runs, errors, escalated, known, tokens, cost, joules, measured = flows[name]
        ordered = durations.get(name, [])
        rows.append({
            "flow": name or "?", "runs": int(runs), "errors": int(errors), "error_rate": _rate(int(errors), int(runs)),
            "escalated": int(escalated), "escalation_rate": _rate(int(escalated), int(known)),
            "p50_ms": _ms(_percentile(ordered, 0.5)), "p95_ms": _ms(_percentile(ordered, 0.95)),
            "tokens": int(tokens), "cost": float(cost), "mean_cost": float(cost) / runs if runs else None,
            **_energy(float(joules) if measured else None, prices),
        })
    return rows, timeline


_FINE = 1000  # score bins of 0.001: scores are recorded with 6 decimals


def _route_rows(db: sqlite3.Connection, since: int | None, until: int | None, flow: str | None,
                route: str | None, bins: int) -> list[dict[str, Any]]:
    where, args = _clause(since, until, flow=flow, route=route)
    # per route, how many scores fall in each 0.001 bin: exact shares at 0.05 steps and the
    # histogram, without fetching or sorting every score
    groups: dict[tuple[Any, Any], dict[str, Any]] = {}
    for f, r, cell, n, large, first, last in db.execute(
        f"SELECT flow, route, min({_FINE}, max(0, CAST(round(score * 1000000) AS INTEGER) / 1000)) AS cell, "
        "count(*), total(choice = 'large'), min(start_ns), max(start_ns) "
        f"FROM decisions WHERE {where} GROUP BY flow, route, cell", args,
    ):
        g = groups.setdefault((f, r), {"cells": [0] * (_FINE + 1), "n": 0, "large": 0, "first": first, "last": last})
        g["cells"][cell] = n
        g["n"] += n
        g["large"] += int(large)
        g["first"], g["last"] = min(g["first"], first), max(g["last"], last)
    out = []
    for (f, r) in sorted(groups, key=lambda k: (k[0] or "", k[1] or "")):
        g = groups[(f, r)]
        cells, n = g["cells"], g["n"]
        above = [0] * (_FINE + 2)  # above[i]: scores >= i / 1000
        for i in range(_FINE, -1, -1):
            above[i] = above[i + 1] + cells[i]
        edges = [round(i * _FINE / bins) for i in range(bins + 1)]
        counts = [above[edges[i]] - above[edges[i + 1]] for i in range(bins)]
        counts[-1] += cells[_FINE]  # a score of exactly 1.0 belongs to the last bin
        latest_where, latest_args = _clause(since, until, flow=f, route=r)
        router, threshold = db.execute(
            f"SELECT router, threshold FROM decisions WHERE {latest_where} ORDER BY start_ns DESC LIMIT 1",
            latest_args).fetchone()
        out.append({
            "flow": f or "?", "route": r or "?", "router": router, "decisions": n, "large": g["large"],
            "escalation_rate": _rate(g["large"], n), "threshold": threshold, "first_ns": g["first"],
            "last_ns": g["last"], "histogram": {"bins": bins, "counts": counts},
            # score >= threshold goes to the large model
            "would_escalate": [{"threshold": t, "share": round(above[round(t * _FINE)] / n, 4)} for t in THRESHOLDS],
        })
    return out


def _calls_by_model_and_time(
    db: sqlite3.Connection, where: str, args: list[Any], width: int, timeline: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    models: dict[Any, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0.0])
    for name, key, calls, errors, tokens_in, tokens_out, cost in db.execute(
        f"SELECT model, start_ns / {width} AS b, count(*), total(status = 'error'), "
        "total(COALESCE(input_tokens, 0)), total(COALESCE(output_tokens, 0)), total(COALESCE(cost, 0)) "
        f"FROM calls WHERE {where} GROUP BY model, b", args,
    ):
        for i, value in enumerate((calls, errors, tokens_in, tokens_out, cost)):
            models[name][i] += value
        b = _bucket(timeline, key, width)
        if b.pop("known", None) is not None:  # a bucket with calls but no run span
            b["escalation_rate"] = b["error_rate"] = None
        b["models"][name or "?"] = {"calls": calls, "tokens": int(tokens_in + tokens_out), "cost": float(cost)}
    durations = _grouped(db.execute(f"SELECT model, duration_ns FROM calls WHERE {where}", args).fetchall())
    rows = []
    for name in sorted(models, key=lambda n: n or ""):
        calls, errors, tokens_in, tokens_out, cost = models[name]
        rows.append({
            "model": name or "?", "calls": int(calls), "errors": int(errors), "input_tokens": int(tokens_in),
            "output_tokens": int(tokens_out), "cost": float(cost),
            "p50_ms": _ms(_percentile(durations.get(name, []), 0.5)),
            "p95_ms": _ms(_percentile(durations.get(name, []), 0.95)),
        })
    return rows


# -- calibration ---------------------------------------------------------------------------


@dataclass
class Calibration:
    """A router threshold computed from recorded scores (see :func:`calibrate`)."""

    flow: str
    route: str
    router: str | None
    threshold: float
    target_rate: float
    rate: float  # share of the recorded scores at or above the threshold
    scores: int
    first_ns: int
    last_ns: int
    current_threshold: float | None
    current_rate: float  # share of the recorded decisions that chose the large model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(
    store: TraceStore, rate: float, *, flow: str | None = None, route: str | None = None,
    since: int | None = None, until: int | None = None,
) -> Calibration:
    """The threshold that would have sent ``rate`` of the recorded decisions of one route
    to the large model (``score >= threshold``), from the router scores in the traces.

    Args:
        store: the trace store.
        rate: target share of large-model calls, 0..1.
        flow, route: which route; may be left out when the store (or the window) holds
            decisions of only one route, or one route of that name.
        since, until: use only decisions in this window (Unix nanoseconds).

    Raises:
        ValueError: the rate is out of range, no decisions match, or several routes do.
    """
    from tandemlm.evaluation.metrics import threshold_for_rate

    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be between 0 and 1, got {rate}")
    sync(store)
    where, args = _clause(since, until, flow=flow, route=route)
    db = _connect(store)
    db.row_factory = None
    try:
        groups = db.execute(f"SELECT flow, route, count(*) FROM decisions WHERE {where} "
                            "GROUP BY flow, route ORDER BY flow, route", args).fetchall()
        if not groups:
            what = " ".join(f"{k} {v!r}" for k, v in (("flow", flow), ("route", route)) if v) or "any route"
            raise ValueError(f"no recorded router scores for {what} in {store.path}"
                             + (" in that time window" if since or until else ""))
        if len(groups) > 1:
            names = ", ".join(f"{f}/{r} ({n})" for f, r, n in groups)
            raise ValueError(f"scores of several routes match: {names}; pick one with --flow and --route")
        (group_flow, group_route, count), = groups
        where, args = _clause(since, until, flow=group_flow, route=group_route)
        scores = [s for (s,) in db.execute(f"SELECT score FROM decisions WHERE {where} ORDER BY score", args)]
        first, last, large = db.execute(
            f"SELECT min(start_ns), max(start_ns), total(choice = 'large') FROM decisions WHERE {where}", args
        ).fetchone()
        router, current = db.execute(
            f"SELECT router, threshold FROM decisions WHERE {where} ORDER BY start_ns DESC LIMIT 1", args
        ).fetchone()
    finally:
        db.close()
    threshold = threshold_for_rate(scores, rate)
    return Calibration(
        flow=group_flow or "?", route=group_route or "?", router=router, threshold=threshold,
        target_rate=rate, rate=round((count - bisect.bisect_left(scores, threshold)) / count, 4),
        scores=count, first_ns=first, last_ns=last, current_threshold=current,
        current_rate=round(large / count, 4),
    )
