"""OpenTelemetry metrics: calls, tokens and latency per model; runs and escalations per flow."""

from __future__ import annotations

from metric_helpers import metric_points as _points

from tandemlm.flows import compile_flow
from tandemlm.models.fakes import ScriptedChatModel


async def test_calls_tokens_latency_and_escalations(reader):
    flow_name = "cascade"
    before = _points(reader)
    esc_before = sum(p.value for p in before.get("tandem.flow.escalations", []))
    for confidence in (0.3, 0.9):
        flow = compile_flow(flow_name, models={
            "slm": ScriptedChatModel(replies=[{"content": "x y", "confidence": confidence}]),
            "llm": ScriptedChatModel(replies=["z"]) if confidence < 0.5 else ScriptedChatModel(replies=[]),
        })
        await flow.arun("q")
    points = _points(reader)
    calls = {p.attributes["tandem.model"]: p.value for p in points["tandem.model.calls"]
             if p.attributes["tandem.flow"] == flow_name}
    assert calls["slm"] >= 2 and calls["llm"] >= 1
    tokens = [p for p in points["gen_ai.client.token.usage"] if p.attributes["tandem.model"] == "slm"]
    assert {p.attributes["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    durations = [p for p in points["gen_ai.client.operation.duration"] if p.attributes["tandem.model"] == "llm"]
    assert durations and durations[0].count >= 1
    runs = sum(p.value for p in points["tandem.flow.runs"] if p.attributes["tandem.flow"] == flow_name)
    escalations = sum(p.value for p in points["tandem.flow.escalations"] if p.attributes["tandem.flow"] == flow_name)
    assert runs >= 2 and escalations - esc_before == 1
