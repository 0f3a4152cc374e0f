"""Queries over the trace store: derived tables kept in step with the spans, time parsing,
run detail JSON built by SQLite, calibration from recorded scores."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tandemlm.telemetry import queries
from tandemlm.telemetry.store import TraceStore

NOW = 1_800_000_000.0


def run_rows(trace: str, flow: str, start_ns: int, score: float | None = None, question: str | None = None,
             choice: str = "small") -> list[dict]:
    root = {"trace_id": trace, "span_id": "01" * 8, "name": f"invoke_workflow {flow}", "start_ns": start_ns,
            "end_ns": start_ns + 5_000_000, "status": "ok",
            "attributes": {"tandem.flow": flow, "tandem.run.llm_called": choice == "large",
                           **({"tandem.run.input": question} if question else {})}}
    rows = [root]
    if score is not None:
        rows.append({"trace_id": trace, "span_id": "02" * 8, "parent_id": "01" * 8, "name": "node gate",
                     "start_ns": start_ns + 1, "end_ns": start_ns + 2, "status": "ok",
                     "attributes": {"tandem.flow": flow, "tandem.route": "gate", "tandem.router.type": "logistic",
                                    "tandem.router.score": score, "tandem.router.threshold": 0.5,
                                    "tandem.router.choice": choice}})
    rows.append({"trace_id": trace, "span_id": "03" * 8, "parent_id": "01" * 8, "name": "chat qwen",
                 "start_ns": start_ns + 3, "end_ns": start_ns + 4_000_003, "status": "ok",
                 "attributes": {"gen_ai.operation.name": "chat", "tandem.flow": flow, "tandem.model": "slm",
                                "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}})
    return rows


def test_derived_tables_follow_new_spans(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    store.add(run_rows("a" * 32, "f", 1_000, score=0.7, question="Where is my parcel?", choice="large"))
    assert queries.sync(store) == 3 and queries.sync(store) == 0  # nothing new: nothing scanned
    assert queries.search_runs(store, queries.RunFilter(q="parcel"))["total"] == 1
    assert queries.stats(store)["flows"][0]["runs"] == 1
    store.add(run_rows("b" * 32, "f", 2_000, score=0.2, question="Refund of 100% please"))
    found = queries.search_runs(store, queries.RunFilter(q="100%"))  # synced on read
    assert [r["trace_id"] for r in found["runs"]] == ["b" * 32]
    assert queries.search_runs(store, queries.RunFilter(q="10_%"))["total"] == 0
    assert queries.stats(store)["flows"][0]["runs"] == 2  # new spans: not the cached answer
    (gate,) = queries.stats(store)["routes"]
    assert gate["decisions"] == 2 and gate["large"] == 1 and gate["histogram"]["counts"][14] == 1  # 0.7
    assert queries.calibrate(store, 0.5).threshold == 0.7
    stats = queries.stats(store)
    assert stats["models"][0]["calls"] == 2 and stats["models"][0]["p50_ms"] == 4.0


def test_a_store_written_before_the_derived_tables_is_indexed_on_first_read(tmp_path):
    path = tmp_path / "t.db"
    TraceStore(path).add(run_rows("c" * 32, "old", 1_000, score=0.9, choice="large"))  # no sync yet
    calibration = queries.calibrate(TraceStore(path), 1.0)
    assert (calibration.flow, calibration.route, calibration.scores, calibration.threshold) == ("old", "gate", 1, 0.9)


def test_calibration_needs_one_route(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    for i, score in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]):
        store.add(run_rows(f"{i + 1:032x}", "f" if i % 2 else "g", 1_000 + i, score=score))
    with pytest.raises(ValueError, match="several routes match: f/gate \\(5\\), g/gate \\(5\\)"):
        queries.calibrate(store, 0.2)
    result = queries.calibrate(store, 0.4, flow="f")
    assert result.threshold == 0.8 and result.scores == 5 and result.rate == 0.4  # 0.8 and 1.0 of .2 .4 .6 .8 1
    assert result.first_ns == 1_002 and result.last_ns == 1_010  # the decision spans start 1 ns in
    late = queries.calibrate(store, 0.5, flow="f", since=1_005)
    assert late.scores == 3 and late.threshold == 0.8
    with pytest.raises(ValueError, match="no recorded router scores for flow 'f' route 'nope'"):
        queries.calibrate(store, 0.5, flow="f", route="nope")


def test_run_detail_json_matches_the_store(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    store.add(run_rows("d" * 32, "f", 1_000, score=0.5, question="Größe? 中文"))
    built = json.loads(queries.run_detail_json(store, "d" * 8))
    assert built == json.loads(json.dumps(store.run_detail("d" * 8)))
    assert [s["name"] for s in built["spans"]] == ["invoke_workflow f", "node gate", "chat qwen"]
    assert queries.run_detail_json(store, "ffff") is None


@pytest.mark.parametrize(("text", "expected"), [
    (None, None), ("", None), ("24h", int((NOW - 86_400) * 1e9)), ("30m", int((NOW - 1_800) * 1e9)),
    ("1764500000", 1_764_500_000 * 10**9), ("2026-11-30T14:00", int(datetime(2026, 11, 30, 14).timestamp() * 1e9)),
])
def test_parse_when(text, expected):
    assert queries.parse_when(text, now=NOW) == expected


def test_parse_when_says_what_it_accepts():
    with pytest.raises(ValueError, match="use 24h, 7d, 2026-11-30T14:00 or Unix seconds"):
        queries.parse_when("last tuesday")
