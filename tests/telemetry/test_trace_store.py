"""The SQLite trace store and its exporter: runs rows, details, and failures that never raise."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tandemlm.telemetry.store import SQLiteSpanExporter, TraceStore


async def test_runs_are_listed_with_totals(filled_store):
    store = TraceStore(filled_store.path)
    runs = store.list_runs()
    assert [r["flow"] for r in runs] == ["pipeline", "pipeline", "cascade"]  # newest first
    cascade = store.find_run(filled_store.cascade_run)
    assert cascade["status"] == "ok" and cascade["models"] == ["llm", "slm"]
    assert cascade["llm_calls"] == 1 and cascade["input_tokens"] > 0 and cascade["duration_ms"] > 0
    pipeline = store.find_run(filled_store.pipeline_run[:10])  # a prefix is enough
    assert pipeline["run_id"] == filled_store.pipeline_run
    assert pipeline["cost"] > 0  # the remote LLM has prices
    failed = store.find_run(filled_store.failed_run)
    assert failed["status"] == "error" and failed["error_node"] == "extract"
    assert [r["run_id"] for r in store.list_runs(status="error")] == [filled_store.failed_run]
    assert {r["flow"] for r in store.list_runs(flow="cascade")} == {"cascade"}
    assert store.flows() == ["cascade", "pipeline"]


async def test_run_detail_has_spans_events_and_graph(filled_store):
    detail = TraceStore(filled_store.path).run_detail(filled_store.pipeline_run)
    names = [s["name"] for s in detail["spans"]]
    assert names[0] == "invoke_workflow pipeline"
    assert {"node extract", "node answer"} <= set(names)
    hops = [e for s in detail["spans"] for e in s["events"] if e["name"] == "tandem.hop"]
    assert len(hops) == 1 and hops[0]["attributes"]["tandem.hop.local_to_remote"] is True
    root = detail["spans"][0]["attributes"]
    assert root["tandem.run.path"] == ["extract", "answer"] and "tandem.flow.graph" in root


async def test_runs_carry_the_run_spans_escalation_flag(filled_store):
    store = TraceStore(filled_store.path)
    assert store.find_run(filled_store.cascade_run)["llm_called"] is True
    assert store.find_run(filled_store.pipeline_run)["llm_called"] is True  # its LLM answers
    # a failed run keeps the totals of what ran (issue 14): extract failed before the LLM
    failed = store.find_run(filled_store.failed_run)
    assert failed["llm_called"] is False and failed["llm_calls"] == 0


def test_a_store_from_an_older_version_gains_the_flag(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE runs (trace_id TEXT PRIMARY KEY, run_id TEXT, flow TEXT, name TEXT, "
        "service TEXT, start_ns INTEGER, end_ns INTEGER, status TEXT, models TEXT, "
        "model_calls INTEGER, llm_calls INTEGER, input_tokens INTEGER, output_tokens INTEGER, "
        "cost REAL, answered_by TEXT, error_node TEXT)"
    )
    db.execute("INSERT INTO runs (trace_id, run_id, flow, name, status, models, llm_calls, start_ns, end_ns) "
               "VALUES ('aa', 'bb', 'cascade', 'x', 'ok', '[]', 2, 1, 2)")
    db.commit()
    db.close()
    store = TraceStore(path)
    assert store.find_run("aa")["llm_called"] is True
    store.add([{"trace_id": "cc", "span_id": "01", "name": "invoke_workflow f", "start_ns": 3, "end_ns": 4,
                "status": "ok", "attributes": {"tandem.run.llm_called": False, "tandem.run.llm_calls": 0}}])
    assert store.find_run("cc")["llm_called"] is False
    assert TraceStore(path).find_run("aa")["llm_called"] is True  # opening again changes nothing


def test_unknown_or_bad_refs_find_nothing(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    assert store.find_run("abc") is None
    assert store.find_run("'; DROP TABLE runs; --") is None
    assert store.run_detail("") is None


def test_exporter_failure_is_logged_not_raised(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    exporter = SQLiteSpanExporter(blocker / "traces.db")  # cannot create a dir under a file
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with caplog.at_level(logging.WARNING, logger="tandemlm.telemetry"):
        with provider.get_tracer("t").start_as_current_span("x"):
            pass
        assert provider.force_flush()
    provider.shutdown()
    assert exporter.failures == 1
    assert "export of 1 spans failed" in caplog.text


async def test_flow_runs_when_the_store_is_broken(tmp_path):
    from tandemlm.flows import compile_flow
    from tandemlm.models.fakes import ScriptedChatModel
    from tandemlm.telemetry import enable_tracing

    (tmp_path / "file").write_text("x")
    handle = enable_tracing(store=tmp_path / "file" / "traces.db")
    try:
        flow = compile_flow("cascade", models={
            "slm": ScriptedChatModel(replies=[{"content": "4", "confidence": 0.99}]),
            "llm": ScriptedChatModel(replies=[]),
        })
        assert (await flow.arun("2+2?")).answer == "4"
    finally:
        handle.close()  # flushing the failing exporter does not raise either
