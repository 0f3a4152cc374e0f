"""Light spans (telemetry/light.py): the same spans as the SDK's, where the SDK allows them.

tandemlm records its own spans and hands them, finished, to the provider's processors when
no processor looks at span starts and the sampler is the default; otherwise the SDK tracer
records them. Either way a processor must see the same tree, names and attributes.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

from tandemlm.flows import compile_flow
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.telemetry import attributes as A
from tandemlm.telemetry import spans as S
from tandemlm.telemetry.light import LightSpan, clean
from tandemlm.telemetry.setup import hub


class WatchesStarts(SpanProcessor):
    """A processor that needs span starts (as some vendors' do): forces the SDK tracer."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span.name)


def _run_pipeline() -> None:
    """The ``pipeline`` preset: the SLM's brief is a hop into the LLM's call."""
    flow = compile_flow("pipeline", models={
        "slm": KeyedChatModel(replies={".": '{"intent": "refund", "facts": ["paid twice"]}'}),
        "llm": KeyedChatModel(replies={".": "Refund issued."}),
    })
    assert flow.run("I want my money back").answer == "Refund issued."


def _shape(finished: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    """What a processor sees, without ids and times: name, parent name, attributes, events."""
    by_id = {s.context.span_id: s.name for s in finished}
    volatile = {A.RUN_ID, A.GEN_AI_INPUT_TOKENS, A.RUN_USAGE, A.RUN_INPUT_TOKENS}
    return sorted(
        (
            s.name,
            by_id.get(s.parent.span_id) if s.parent else None,
            s.status.status_code,
            tuple(sorted((k, v) for k, v in s.attributes.items() if k not in volatile)),
            tuple((e.name, tuple(sorted(e.attributes.items()))) for e in s.events),
        )
        for s in finished
    )


def test_flows_record_light_spans_with_stock_processors(spans: Any) -> None:
    _run_pipeline()
    finished = spans.get_finished_spans()
    assert {type(s) for s in finished} == {LightSpan}
    assert all(isinstance(s, ReadableSpan) for s in finished)
    traces = {s.context.trace_id for s in finished}
    assert len(traces) == 1 and len(finished) == 5  # run, 2 nodes, 2 chats


def test_light_and_sdk_spans_are_the_same(spans: Any) -> None:
    _run_pipeline()
    light = spans.get_finished_spans()
    spans.clear()
    watcher = WatchesStarts()
    hub().add(watcher)
    try:
        _run_pipeline()
    finally:
        hub().remove(watcher)
    sdk = spans.get_finished_spans()
    assert not any(isinstance(s, LightSpan) for s in sdk)
    assert sorted(watcher.started) == sorted(s.name for s in sdk)  # it saw every start
    assert _shape(light) == _shape(sdk)
    hop = next(e for s in light for e in s.events if e.name == A.HOP_EVENT)
    assert hop.attributes[A.HOP_FROM_MODEL] == "slm" and hop.attributes[A.HOP_TO_MODEL] == "llm"
    assert hop.attributes[A.HOP_FIELD] == "brief"


def test_a_light_span_is_the_parent_of_spans_started_inside_it(spans: Any) -> None:
    tracer = trace.get_tracer("another.library")
    with S.span("outer", {"a": 1}) as outer:
        assert isinstance(outer, LightSpan)
        with tracer.start_as_current_span("http request"):
            pass
    by_name = {s.name: s for s in spans.get_finished_spans()}
    inner = by_name["http request"]
    assert inner.parent is not None and inner.parent.span_id == by_name["outer"].context.span_id
    assert inner.context.trace_id == by_name["outer"].context.trace_id


def test_an_unsampled_parent_is_respected(spans: Any) -> None:
    parent = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(0))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        with S.span("child", {"a": 1}) as child:
            assert not child.is_recording()
            assert child.get_span_context().trace_id == 0x1234
    finally:
        otel_context.detach(token)
    assert spans.get_finished_spans() == ()


def test_an_exception_marks_the_span_and_is_recorded(spans: Any) -> None:
    with pytest.raises(ValueError, match="bad input"), S.span("failing", None):
        raise ValueError("bad input")
    (failed,) = spans.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR and "bad input" in failed.status.description
    assert failed.attributes[A.ERROR_TYPE] == "ValueError"
    (event,) = failed.events
    assert event.name == "exception" and event.attributes["exception.type"] == "ValueError"
    assert "raise ValueError" in event.attributes["exception.stacktrace"]


def test_attributes_are_cleaned_like_the_sdk_does() -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing"

    cleaned = clean({"none": None, "n": 1, "s": "x", "words": ["a", "b"], "mixed": [1, 2.5],
                     "obj": Thing(), "flag": False})
    assert cleaned == {"n": 1, "s": "x", "words": ("a", "b"), "mixed": (1, 2.5), "obj": "thing",
                       "flag": False}


def test_a_failing_processor_never_fails_the_run(spans: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("disk on fire")

    broken = Broken()
    hub().add(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="tandemlm.telemetry"):
            _run_pipeline()
    finally:
        hub().remove(broken)
    assert len(spans.get_finished_spans()) == 5  # the other processors still got every span
    assert "disk on fire" in caplog.text


def test_ended_spans_ignore_late_changes(spans: Any) -> None:
    current = S.start_span("short", {"a": 1})
    current.end()
    current.set_attribute("late", 1)
    current.add_event("late")
    current.end()  # a second end is ignored
    (finished,) = spans.get_finished_spans()
    assert dict(finished.attributes) == {"a": 1} and finished.events == ()


def test_deferred_parts_are_added_when_the_span_is_read(spans: Any) -> None:
    calls: list[str] = []

    def build() -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        calls.append("built")
        return {"late.count": 2, "late.none": None}, [("late.event", {"k": "v", "n": None})]

    current = S.start_span("deferred", {"a": 1})
    S.later(current, build)
    current.end()
    assert calls == []  # nothing built on the flow's path
    (finished,) = spans.get_finished_spans()
    assert dict(finished.attributes) == {"a": 1, "late.count": 2}
    assert [(e.name, dict(e.attributes)) for e in finished.events] == [("late.event", {"k": "v"})]
    assert finished.events[0].timestamp <= finished.end_time
    assert calls == ["built"]  # once, however often it is read
    assert '"late.count": 2' in finished.to_json()


def test_several_deferred_parts_with_arguments_are_built_in_order(spans: Any) -> None:
    def part(key: str, value: int) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        return {key: value}, [(f"event.{key}", {"v": value})]

    current = S.start_span("deferred", {"a": 1})
    for i, key in enumerate(("x", "y", "z")):
        S.later(current, part, key, i)
    current.end()
    (finished,) = spans.get_finished_spans()
    assert dict(finished.attributes) == {"a": 1, "x": 0, "y": 1, "z": 2}
    assert [e.name for e in finished.events] == ["event.x", "event.y", "event.z"]


def test_a_failing_deferred_part_is_logged_and_the_span_kept(
    spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Any:
        raise RuntimeError("bad totals")

    current = S.start_span("deferred", {"a": 1})
    S.later(current, broken)
    current.end()
    with caplog.at_level(logging.WARNING, logger="tandemlm.telemetry"):
        (finished,) = spans.get_finished_spans()
        assert dict(finished.attributes) == {"a": 1}
    assert "bad totals" in caplog.text


def test_deferred_parts_are_immediate_on_sdk_spans(spans: Any) -> None:
    watcher = WatchesStarts()
    hub().add(watcher)
    try:
        current = S.start_span("eager", {"a": 1})
        assert not isinstance(current, LightSpan)
        S.later(current, lambda: ({"b": 2}, [("e", {"x": 1})]))
        current.end()
    finally:
        hub().remove(watcher)
    (finished,) = spans.get_finished_spans()
    assert dict(finished.attributes) == {"a": 1, "b": 2} and finished.events[0].name == "e"


def test_the_store_gets_deferred_hops_and_run_totals(tmp_path: Any) -> None:
    from tandemlm.telemetry import enable_tracing
    from tandemlm.telemetry.store import TraceStore

    handle = enable_tracing(store=tmp_path / "traces.db")
    try:
        _run_pipeline()
    finally:
        handle.close()
    store = TraceStore(tmp_path / "traces.db")
    (run,) = store.list_runs()
    assert run["model_calls"] == 2 and run["llm_called"] is True and run["llm_calls"] == 1
    spans = store.spans(run["trace_id"])
    refine = next(s for s in spans if s["name"].startswith("chat ") and s["attributes"][A.NODE] == "answer")
    assert refine["attributes"][A.HOP_COUNT] == 1
    (hop,) = refine["events"]
    assert hop["name"] == A.HOP_EVENT and hop["attributes"][A.HOP_FIELD] == "brief"


def test_deferred_events_keep_their_place_in_time(spans: Any) -> None:
    with pytest.raises(RuntimeError), S.span("chat x", {"a": 1}) as current:
        S.later(current, lambda: (None, [("tandem.hop", {"k": 1})]))
        raise RuntimeError("model failed")
    (finished,) = spans.get_finished_spans()
    assert [e.name for e in finished.events] == ["tandem.hop", "exception"]
