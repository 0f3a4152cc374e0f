"""TraceWriter: one stored chunk per run, open traces swept, a full queue drops, nothing raises."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from tandemlm.telemetry import queries
from tandemlm.telemetry.store import TraceStore
from tandemlm.telemetry.writer import TraceWriter


def writer_and_tracer(path: Path, **options: Any) -> tuple[TraceWriter, Any]:
    """A TraceWriter for ``path`` and a tracer whose (SDK) provider feeds it."""
    writer = TraceWriter(path, **options)
    provider = TracerProvider()
    provider.add_span_processor(writer)
    return writer, provider.get_tracer("t")


def wait_for_chunks(path: Path, what: str) -> None:
    deadline = time.monotonic() + 10
    while not chunks(path):
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def chunks(path: Path) -> list[tuple[str, int]]:
    """(trace id, spans in it) of every stored chunk, in write order (none yet: [])."""
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        try:
            return [(t, n) for t, n in db.execute(
                "SELECT trace_id, json_array_length(spans) FROM span_chunks ORDER BY rowid")]
        except sqlite3.OperationalError:  # the writer is creating the store
            return []


def test_a_run_is_one_chunk_written_when_its_root_ends(tmp_path):
    path = tmp_path / "t.db"
    writer, tracer = writer_and_tracer(path, delay=60)  # only the flush writes
    with tracer.start_as_current_span("invoke_workflow f", attributes={"tandem.flow": "f"}) as root:
        with tracer.start_as_current_span("node a", attributes={"tandem.node": "a"}) as node:
            node.add_event("tandem.hop", {"tandem.hop.field": "x", "tandem.hop.chars": 3})
            with tracer.start_as_current_span("chat m", attributes={"gen_ai.usage.input_tokens": 7}):
                pass
        assert writer._ready == []  # nothing encoded before the root ends
    writer.force_flush()
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert chunks(path) == [(trace_id, 3)]
    store = TraceStore(path)
    spans = store.spans(trace_id)
    assert [s["name"] for s in spans] == ["invoke_workflow f", "node a", "chat m"]
    assert spans[1]["events"][0]["attributes"] == {"tandem.hop.field": "x", "tandem.hop.chars": 3}
    assert spans[2]["attributes"] == {"gen_ai.usage.input_tokens": 7}
    assert spans[2]["parent_id"] == spans[1]["span_id"] and spans[0]["parent_id"] is None
    assert spans[0]["resource"]["service.name"] and spans[1]["resource"] == {}
    assert store.find_run(trace_id)["flow"] == "f"
    writer.shutdown()


def test_the_thread_writes_without_a_flush(tmp_path):
    path = tmp_path / "t.db"
    writer, tracer = writer_and_tracer(path, delay=0.05)
    with tracer.start_as_current_span("invoke_workflow f"):
        pass
    wait_for_chunks(path, "the writer thread never wrote")
    writer.shutdown()


def test_a_trace_whose_root_stays_open_is_swept_and_its_root_written_later(tmp_path):
    path = tmp_path / "t.db"
    writer, tracer = writer_and_tracer(path, delay=0.05)
    with tracer.start_as_current_span("app request") as root:  # e.g. an application's own span
        with tracer.start_as_current_span("node a"):
            pass
        trace_id = f"{root.get_span_context().trace_id:032x}"
        wait_for_chunks(path, "the open trace was never swept")
        assert chunks(path) == [(trace_id, 1)]
    writer.shutdown()
    assert chunks(path) == [(trace_id, 1), (trace_id, 1)]
    assert [s["name"] for s in TraceStore(path).spans(trace_id)] == ["app request", "node a"]


def test_a_long_open_trace_is_written_in_chunks(tmp_path):
    path = tmp_path / "t.db"
    writer, tracer = writer_and_tracer(path, delay=60, chunk_spans=4)
    with tracer.start_as_current_span("invoke_workflow f"):
        for i in range(9):
            with tracer.start_as_current_span(f"node {i}"):
                pass
    writer.force_flush()
    assert [n for _, n in chunks(path)] == [4, 4, 2]
    writer.shutdown()


def test_a_span_under_a_remote_parent_ends_its_local_trace(tmp_path):
    path = tmp_path / "t.db"
    writer, tracer = writer_and_tracer(path, delay=60)
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    with tracer.start_as_current_span("service request", context=parent), \
            tracer.start_as_current_span("node a"):
        pass
    assert len(writer._ready) == 1  # encoded when the local root ended, not at the flush
    writer.force_flush()
    assert chunks(path) == [(f"{0xABC:032x}", 2)]
    writer.shutdown()


def test_a_full_queue_drops_and_logs(tmp_path, caplog):
    writer, tracer = writer_and_tracer(tmp_path / "t.db", delay=60, max_queued=3, wake_chunks=10**6)
    with caplog.at_level(logging.WARNING, logger="tandemlm.telemetry"):
        for _ in range(3):
            with tracer.start_as_current_span("invoke_workflow f"), tracer.start_as_current_span("node a"):
                pass
    assert writer.dropped == 4 and "spans dropped" in caplog.text  # 2 + 2 of the 6 did not fit
    writer.force_flush()
    assert chunks(tmp_path / "t.db") == [(chunks(tmp_path / "t.db")[0][0], 2)]
    writer.shutdown()


def test_a_broken_store_is_logged_not_raised(tmp_path, caplog):
    (tmp_path / "file").write_text("x")
    writer, tracer = writer_and_tracer(tmp_path / "file" / "t.db", delay=60)
    with caplog.at_level(logging.WARNING, logger="tandemlm.telemetry"):
        with tracer.start_as_current_span("invoke_workflow f"):
            pass
        assert writer.force_flush()
    assert writer.failures == 1 and "spans failed" in caplog.text
    writer.shutdown()


def test_spans_after_shutdown_are_ignored(tmp_path):
    path = tmp_path / "t.db"
    writer, tracer = writer_and_tracer(path, delay=60)
    with tracer.start_as_current_span("invoke_workflow f"):
        pass
    writer.shutdown()
    with tracer.start_as_current_span("invoke_workflow g"):
        pass
    assert len(chunks(path)) == 1 and not writer._ready


def test_chunks_and_span_rows_are_read_together(tmp_path):
    """A store with spans in both tables (an older version's rows, the OTLP receiver's
    rows, tandemlm's chunks): details, derived tables and distill see all of them."""
    path = tmp_path / "t.db"
    store = TraceStore(path)
    store.add([{"trace_id": "aa" * 16, "span_id": "01" * 8, "name": "chat old", "start_ns": 1, "end_ns": 3,
                "status": "ok", "attributes": {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5,
                                               "tandem.model": "m"}}])
    writer, tracer = writer_and_tracer(path, delay=60)
    chat = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7, "tandem.model": "m"}
    with tracer.start_as_current_span("invoke_workflow f") as root, \
            tracer.start_as_current_span("chat m", attributes=chat):
        pass
    writer.shutdown()
    assert queries.sync(store) == 2  # one span row, one chunk
    assert queries.sync(store) == 0
    with sqlite3.connect(path) as db:
        tokens = sorted(r[0] for r in db.execute("SELECT input_tokens FROM calls"))
    assert tokens == [5, 7]
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert [s["name"] for s in store.spans(trace_id)] == ["invoke_workflow f", "chat m"]
    assert [s["name"] for s in store.spans("aa" * 16)] == ["chat old"]


def test_a_forked_child_writes_its_own_spans(tmp_path):
    import os

    path = tmp_path / "t.db"
    writer, tracer = writer_and_tracer(path, delay=60)
    with tracer.start_as_current_span("invoke_workflow parent"):
        pass
    pid = os.fork()
    if pid == 0:  # the child: a span of its own, flushed by its own writer
        code = 1
        try:
            with tracer.start_as_current_span("invoke_workflow child"):
                pass
            writer.shutdown()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.shutdown()
    assert sorted(r["name"] for r in TraceStore(path).list_runs()) == ["invoke_workflow child",
                                                                      "invoke_workflow parent"]


def test_stats_follow_new_chunks_not_the_cached_answer(tmp_path):
    path = tmp_path / "t.db"
    store = TraceStore(path)
    writer, tracer = writer_and_tracer(path, delay=60)
    chat = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7, "tandem.model": "m",
            "tandem.flow": "f"}
    for expected in (1, 2):
        with tracer.start_as_current_span("invoke_workflow f", attributes={"tandem.flow": "f"}), \
                tracer.start_as_current_span("chat m", attributes=chat):
            pass
        writer.force_flush()
        stats = queries.stats(store)
        assert stats["flows"][0]["runs"] == expected and stats["models"][0]["calls"] == expected
    writer.shutdown()
