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

from tandemlm.telemetry import attributes as A
from tandemlm.telemetry.store import TraceStore

__all__ = [
    "Calibration",
    "RunFilter",
    "calibrate",
    "facets",
    "parse_when",
    "route_scores",
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
CREATE TABLE IF NOT EXISTS derived_state (name TEXT PRIMARY KEY, value INTEGER);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, start_ns DESC);
"""


def _attr(name: str) -> str:
    return f"json_extract(attributes, '$.\"{name}\"')"


_SYNC = [
    f"""INSERT OR REPLACE INTO run_text (trace_id, question)
    SELECT trace_id, {_attr(A.RUN_INPUT)} FROM spans
    WHERE rowid > ?1 AND rowid <= ?2 AND parent_id IS NULL AND instr(attributes, '"{A.RUN_INPUT}"')""",
    f"""INSERT OR REPLACE INTO decisions
    SELECT trace_id, span_id, {_attr(A.FLOW)}, COALESCE({_attr(A.ROUTE)}, substr(name, 6)),
           {_attr(A.ROUTER_TYPE)}, {_attr(A.ROUTER_SCORE)}, {_attr(A.ROUTER_THRESHOLD)},
           {_attr(A.ROUTER_CHOICE)}, start_ns
    FROM spans WHERE rowid > ?1 AND rowid <= ?2 AND instr(attributes, '"{A.ROUTER_SCORE}"')
      AND {_attr(A.ROUTER_SCORE)} IS NOT NULL""",
    f"""INSERT OR REPLACE INTO calls
    SELECT trace_id, span_id, {_attr(A.FLOW)}, {_attr(A.NODE)},
           COALESCE({_attr(A.MODEL)}, {_attr(A.GEN_AI_REQUEST_MODEL)}, substr(name, 6)),
           start_ns, end_ns - start_ns, {_attr(A.GEN_AI_INPUT_TOKENS)},
           {_attr(A.GEN_AI_OUTPUT_TOKENS)}, {_attr(A.COST)}, status
    FROM spans WHERE rowid > ?1 AND rowid <= ?2 AND name LIKE 'chat %'
      AND {_attr(A.GEN_AI_OPERATION)} = 'chat'""",
]


def _connect(store: TraceStore) -> sqlite3.Connection:
    db = sqlite3.connect(store.path, timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    return db


_READY: set[str] = set()  # stores whose derived tables exist (per process)


def sync(store: TraceStore) -> int:
    """Index spans stored since the last sync into the derived tables; returns how many
    span rows were scanned (0 when up to date).

    Span rows are read by ``rowid``: SQLite gives each new row a larger one and writers
    commit one at a time, so every sync sees a complete prefix of what was written.
    """
    db = _connect(store)
    try:
        key = f"{store.path.resolve()}:{store.path.stat().st_ino}"
        if key not in _READY:
            db.executescript(_SCHEMA)
            _READY.add(key)
        done = db.execute("SELECT value FROM derived_state WHERE name = 'spans'").fetchone()
        last = db.execute("SELECT max(rowid) FROM spans").fetchone()[0] or 0
        if done is not None and done[0] >= last:
            return 0
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM derived_state WHERE name = 'spans'").fetchone()
            low = row[0] if row else 0
            high = db.execute("SELECT max(rowid) FROM spans").fetchone()[0] or 0
            if high > low:
                for sql in _SYNC:
                    db.execute(sql, (low, high))
                db.execute("INSERT OR REPLACE INTO derived_state VALUES ('spans', ?)", (high,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return max(0, high - low)
    finally:
        db.close()


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
        q: words that must each match a run: a prefix of its run id, trace id or request id,
            or a part of its flow name or captured question (case-insensitive).
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


def _where(f: RunFilter) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for word in (f.q or "").split()[:8]:
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
    where, args = _where(query or RunFilter())
    limit = max(1, min(int(limit), 1000))
    offset = max(0, int(offset))
    base = " FROM runs LEFT JOIN run_text ON run_text.trace_id = runs.trace_id" + where
    db = _connect(store)
    try:
        total = db.execute("SELECT count(*)" + base, args).fetchone()[0]
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
FROM (SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, end_ns DESC)
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
    db = _connect(store)
    try:
        flows = [r[0] for r in db.execute("SELECT DISTINCT flow FROM runs WHERE flow IS NOT NULL ORDER BY flow")]
        models = [r[0] for r in db.execute(
            "SELECT DISTINCT value FROM runs, json_each(runs.models) ORDER BY value")]
    finally:
        db.close()
    return {"flows": flows, "models": models}


# -- aggregates ----------------------------------------------------------------------------

_BUCKETS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


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


THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def stats(
    store: TraceStore, *, flow: str | None = None, route: str | None = None,
    since: int | None = None, until: int | None = None, bins: int = 20,
) -> dict[str, Any]:
    """Aggregates over runs, routing decisions and model calls in a time window.

    Args:
        store: the trace store.
        flow: only this flow (runs, decisions and calls).
        route: only this route (decisions).
        since, until: start-time bounds in Unix nanoseconds.
        bins: histogram bins of router scores over [0, 1].

    Returns:
        ``{"window", "flows", "routes", "models", "timeline"}``: per flow (runs, errors,
        error and escalation rate, p50/p95 latency, tokens, cost); per route (decisions,
        large-model share, current threshold, a score histogram and the share of decisions
        that would have escalated at other thresholds); per model (calls, errors, tokens,
        cost, p50/p95 latency); and per time bucket (runs, escalations, errors, tokens and
        cost, tokens and cost per model).
    """
    sync(store)
    bound: list[str] = []
    bound_args: list[Any] = []
    if since is not None:
        bound.append("start_ns >= ?")
        bound_args.append(int(since))
    if until is not None:
        bound.append("start_ns < ?")
        bound_args.append(int(until))
    flow_clause = ["flow = ?"] if flow else []
    flow_args: list[Any] = [flow] if flow else []
    db = _connect(store)
    try:
        where = " AND ".join(bound + flow_clause) or "1"
        runs = db.execute(
            "SELECT flow, status, llm_called, start_ns, end_ns - start_ns AS dur, "
            "COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) AS tokens, COALESCE(cost, 0) AS cost "
            f"FROM runs WHERE {where} ORDER BY start_ns", bound_args + flow_args,
        ).fetchall()
        route_where = " AND ".join(bound + flow_clause + (["route = ?"] if route else [])) or "1"
        decisions = db.execute(
            "SELECT flow, route, router, score, threshold, choice, start_ns FROM decisions "
            f"WHERE {route_where} ORDER BY start_ns",
            bound_args + flow_args + ([route] if route else []),
        ).fetchall()
        calls = db.execute(
            "SELECT model, start_ns, duration_ns, COALESCE(input_tokens, 0) AS input_tokens, "
            "COALESCE(output_tokens, 0) AS output_tokens, COALESCE(cost, 0) AS cost, status "
            f"FROM calls WHERE {where} ORDER BY start_ns", bound_args + flow_args,
        ).fetchall()
    finally:
        db.close()

    first = min((r["start_ns"] for r in runs), default=since or 0)
    last = max((r["start_ns"] for r in runs), default=until or first)
    bucket = _bucket_s(since or first, until or last)
    return {
        "window": {"since": since, "until": until, "first_ns": first if runs else None,
                   "last_ns": last if runs else None, "bucket_s": bucket, "flow": flow, "route": route},
        "flows": _flow_rows(runs),
        "routes": _route_rows(decisions, bins),
        "models": _model_rows(calls),
        "timeline": _timeline(runs, calls, bucket),
    }


def _flow_rows(runs: Sequence[sqlite3.Row]) -> list[dict[str, Any]]:
    groups: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for r in runs:
        groups[r["flow"] or "?"].append(r)
    out = []
    for name in sorted(groups):
        rows = groups[name]
        known = [r for r in rows if r["llm_called"] is not None]
        errors = sum(r["status"] == "error" for r in rows)
        durations = sorted(r["dur"] for r in rows)
        escalated = sum(bool(r["llm_called"]) for r in known)
        out.append({
            "flow": name, "runs": len(rows), "errors": errors, "error_rate": _rate(errors, len(rows)),
            "escalated": escalated, "escalation_rate": _rate(escalated, len(known)),
            "p50_ms": _ms(_percentile(durations, 0.5)), "p95_ms": _ms(_percentile(durations, 0.95)),
            "tokens": int(sum(r["tokens"] for r in rows)), "cost": float(sum(r["cost"] for r in rows)),
        })
    return out


def _histogram(scores: Sequence[float], bins: int) -> list[int]:
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, max(0, int(s * bins)))] += 1
    return counts


def _route_rows(decisions: Sequence[sqlite3.Row], bins: int) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[sqlite3.Row]] = defaultdict(list)
    for d in decisions:
        groups[(d["flow"] or "?", d["route"] or "?")].append(d)
    out = []
    for (flow, name), rows in sorted(groups.items()):
        scores = sorted(float(d["score"]) for d in rows)
        large = sum(d["choice"] == "large" for d in rows)
        latest = rows[-1]
        n = len(scores)
        out.append({
            "flow": flow, "route": name, "router": latest["router"], "decisions": n,
            "large": large, "escalation_rate": _rate(large, n), "threshold": latest["threshold"],
            "first_ns": rows[0]["start_ns"], "last_ns": latest["start_ns"],
            "histogram": {"bins": bins, "counts": _histogram(scores, bins)},
            # score >= threshold goes to the large model
            "would_escalate": [{"threshold": t, "share": round((n - bisect.bisect_left(scores, t)) / n, 4)}
                               for t in THRESHOLDS],
        })
    return out


def _model_rows(calls: Sequence[sqlite3.Row]) -> list[dict[str, Any]]:
    groups: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for c in calls:
        groups[c["model"] or "?"].append(c)
    out = []
    for name in sorted(groups):
        rows = groups[name]
        durations = sorted(r["duration_ns"] for r in rows)
        out.append({
            "model": name, "calls": len(rows), "errors": sum(r["status"] == "error" for r in rows),
            "input_tokens": int(sum(r["input_tokens"] for r in rows)),
            "output_tokens": int(sum(r["output_tokens"] for r in rows)),
            "cost": float(sum(r["cost"] for r in rows)),
            "p50_ms": _ms(_percentile(durations, 0.5)), "p95_ms": _ms(_percentile(durations, 0.95)),
        })
    return out


def _timeline(runs: Sequence[sqlite3.Row], calls: Sequence[sqlite3.Row], bucket_s: int) -> list[dict[str, Any]]:
    width = bucket_s * 1_000_000_000
    buckets: dict[int, dict[str, Any]] = {}

    def at(ns: int) -> dict[str, Any]:
        key = ns // width * width
        if key not in buckets:
            buckets[key] = {"t": key, "runs": 0, "escalated": 0, "known": 0, "errors": 0,
                            "tokens": 0, "cost": 0.0, "models": {}}
        return buckets[key]

    for r in runs:
        b = at(r["start_ns"])
        b["runs"] += 1
        b["errors"] += r["status"] == "error"
        if r["llm_called"] is not None:
            b["known"] += 1
            b["escalated"] += bool(r["llm_called"])
        b["tokens"] += int(r["tokens"])
        b["cost"] += float(r["cost"])
    for c in calls:
        per = at(c["start_ns"])["models"].setdefault(c["model"] or "?", {"calls": 0, "tokens": 0, "cost": 0.0})
        per["calls"] += 1
        per["tokens"] += int(c["input_tokens"]) + int(c["output_tokens"])
        per["cost"] += float(c["cost"])
    out = []
    for key in sorted(buckets):
        b = buckets.pop(key)
        b["escalation_rate"] = _rate(b["escalated"], b.pop("known"))
        b["error_rate"] = _rate(b["errors"], b["runs"])
        out.append(b)
    return out


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


def route_scores(
    store: TraceStore, *, flow: str | None = None, route: str | None = None,
    since: int | None = None, until: int | None = None,
) -> dict[tuple[str, str], list[sqlite3.Row]]:
    """Recorded routing decisions by ``(flow, route)``, oldest first."""
    sync(store)
    where, args = [], []
    for clause, value in (("flow = ?", flow), ("route = ?", route), ("start_ns >= ?", since),
                          ("start_ns < ?", until)):
        if value is not None:
            where.append(clause)
            args.append(value)
    db = _connect(store)
    try:
        rows = db.execute(
            "SELECT flow, route, router, score, threshold, choice, start_ns FROM decisions"
            + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY start_ns", args,
        ).fetchall()
    finally:
        db.close()
    groups: dict[tuple[str, str], list[sqlite3.Row]] = defaultdict(list)
    for r in rows:
        groups[(r["flow"] or "?", r["route"] or "?")].append(r)
    return dict(groups)


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
    groups = route_scores(store, flow=flow, route=route, since=since, until=until)
    if not groups:
        what = " ".join(f"{k} {v!r}" for k, v in (("flow", flow), ("route", route)) if v) or "any route"
        raise ValueError(f"no recorded router scores for {what} in {store.path}"
                         + (" in that time window" if since or until else ""))
    if len(groups) > 1:
        names = ", ".join(f"{f}/{r} ({len(v)})" for (f, r), v in sorted(groups.items()))
        raise ValueError(f"scores of several routes match: {names}; pick one with --flow and --route")
    (key, rows), = groups.items()
    scores = [float(r["score"]) for r in rows]
    threshold = threshold_for_rate(scores, rate)
    return Calibration(
        flow=key[0], route=key[1], router=rows[-1]["router"], threshold=threshold,
        target_rate=rate, rate=round(sum(s >= threshold for s in scores) / len(scores), 4),
        scores=len(scores), first_ns=rows[0]["start_ns"], last_ns=rows[-1]["start_ns"],
        current_threshold=rows[-1]["threshold"],
        current_rate=round(sum(r["choice"] == "large" for r in rows) / len(rows), 4),
    )
