"""Span trees of real flows run with scripted fakes: names, nesting and exact attributes."""

from __future__ import annotations

import json

import pytest

from tandemlm.errors import ModelUnavailableError
from tandemlm.flows import compile_flow, load_flow
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel
from tandemlm.telemetry import attributes as A


def tree(exporter):
    """(spans by name, parent name of each span name, run span)."""
    finished = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    parents = {s.name: (by_id[s.parent.span_id].name if s.parent else None) for s in finished}
    return {s.name: s for s in finished}, parents, [s for s in finished if s.parent is None]


def ordered_nodes(exporter):
    nodes = [s for s in exporter.get_finished_spans() if s.name.startswith("node ")]
    return [s.name.removeprefix("node ") for s in sorted(nodes, key=lambda s: s.start_time)]


async def test_cascade_escalates_span_tree(spans):
    slm = ScriptedChatModel(replies=[{"content": "maybe 5", "confidence": 0.3}])
    llm = ScriptedChatModel(replies=["4"])
    flow = compile_flow("cascade", models={"slm": slm, "llm": llm})
    result = await flow.arun("What is 2+2?")
    assert result.answer == "4" and result.path == ["draft", "gate", "escalate"]
    by_name, parents, roots = tree(spans)
    assert [r.name for r in roots] == ["invoke_workflow cascade"]
    assert ordered_nodes(spans) == ["draft", "gate", "escalate"]
    for node in ("draft", "gate", "escalate"):
        assert parents[f"node {node}"] == "invoke_workflow cascade"
    chats = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert len(chats) == 2
    parent_of = {s.context.span_id: s for s in spans.get_finished_spans()}
    assert sorted(parent_of[c.parent.span_id].name for c in chats) == ["node draft", "node escalate"]

    draft_chat = next(c for c in chats if c.attributes[A.NODE] == "draft")
    attrs = draft_chat.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "scripted"
    assert attrs["gen_ai.request.model"] == "scripted"  # the override's model_name
    assert attrs["gen_ai.request.temperature"] == 0.0
    assert attrs["gen_ai.request.max_tokens"] == 512
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["tandem.model"] == "slm" and attrs["tandem.model.local"] is True
    assert attrs["tandem.confidence.mean_prob"] == pytest.approx(0.3)
    assert "tandem.cost" in attrs

    gate = by_name["node gate"].attributes
    assert gate["tandem.route"] == "gate"
    assert gate["tandem.router.type"] == "confidence"
    assert gate["tandem.router.score"] == pytest.approx(0.7)
    assert gate["tandem.router.threshold"] == pytest.approx(0.2)
    assert gate["tandem.router.choice"] == "large"
    assert gate["tandem.router.reason"]
    assert gate["tandem.router.latency_ms"] >= 0

    run = by_name["invoke_workflow cascade"].attributes
    assert run["gen_ai.operation.name"] == "invoke_workflow"
    assert run["tandem.flow"] == "cascade" and run["tandem.run_id"] == result.run_id
    assert run["tandem.run.path"] == ("draft", "gate", "escalate")
    assert run["tandem.run.status"] == "ok"
    assert run["tandem.run.models"] == ("llm", "slm")
    assert run["tandem.run.model_calls"] == 2 and run["tandem.run.llm_calls"] == 1
    assert run["tandem.run.escalations"] == 1
    assert run["tandem.run.answered_by"] == "llm"
    assert run["tandem.run.input_tokens"] == sum(c.attributes[A.GEN_AI_INPUT_TOKENS] for c in chats)
    graph = json.loads(run["tandem.flow.graph"])
    assert {"from": "gate", "to": "escalate", "label": "large"} in graph["edges"]
    assert {n["id"] for n in graph["nodes"]} >= {"draft", "gate", "accept", "escalate"}


async def test_cascade_accepts_without_llm(spans):
    slm = ScriptedChatModel(replies=[{"content": "4", "confidence": 0.95}])
    flow = compile_flow("cascade", models={"slm": slm, "llm": ScriptedChatModel(replies=[])})
    result = await flow.arun("What is 2+2?")
    assert result.path == ["draft", "gate", "accept"]
    assert ordered_nodes(spans) == ["draft", "gate", "accept"]
    by_name, _, _ = tree(spans)
    assert by_name["node gate"].attributes["tandem.router.choice"] == "small"
    run = by_name["invoke_workflow cascade"].attributes
    assert run["tandem.run.llm_calls"] == 0 and run["tandem.run.escalations"] == 0
    assert run["tandem.run.answered_by"] == "slm"


async def test_pipeline_records_hop_from_slm_to_llm(spans):
    slm = ScriptedChatModel(replies=['{"intent": "add", "facts": ["2", "2"]}'])
    llm = ScriptedChatModel(replies=["4"])
    spec = load_flow("pipeline")  # the LLM is remote: the hop crosses local -> remote
    spec.models["llm"] = spec.models["llm"].model_copy(update={"local": False})
    flow = compile_flow(spec, models={"slm": slm, "llm": llm})
    result = await flow.arun("What is 2+2?")
    assert result.answer == "4" and result.path == ["extract", "answer"]
    assert ordered_nodes(spans) == ["extract", "answer"]
    answer_chat = next(
        s for s in spans.get_finished_spans() if s.name.startswith("chat ") and s.attributes[A.NODE] == "answer"
    )
    hops = [e for e in answer_chat.events if e.name == "tandem.hop"]
    assert len(hops) == 1 and answer_chat.attributes["tandem.hop.count"] == 1
    hop = hops[0].attributes
    assert hop["tandem.hop.field"] == "brief"
    assert hop["tandem.hop.from_node"] == "extract" and hop["tandem.hop.to_node"] == "answer"
    assert hop["tandem.hop.from_model"] == "slm" and hop["tandem.hop.to_model"] == "llm"
    assert hop["tandem.hop.chars"] == len(json.dumps({"intent": "add", "facts": ["2", "2"]}, ensure_ascii=False))
    assert hop["tandem.hop.tokens"] == 5  # the SLM's output tokens (fakes count words)
    assert hop["tandem.hop.from_local"] is True and hop["tandem.hop.to_local"] is False
    assert hop["tandem.hop.local_to_remote"] is True
    assert "tandem.hop.redactions" not in hop
    extract_chat = next(
        s for s in spans.get_finished_spans() if s.name.startswith("chat ") and s.attributes[A.NODE] == "extract"
    )
    assert not [e for e in extract_chat.events if e.name == "tandem.hop"]  # user input is no hop


def _parallel_flow():
    return {
        "name": "fan",
        "models": {"slm": {"provider": "keyed", "replies": {".": "x"}}, "llm": {"provider": "keyed", "replies": {".": "y"}}},
        "nodes": {
            "left": {"type": "generate", "model": "slm", "prompt": "L {input}", "output": "l"},
            "right": {"type": "generate", "model": "slm", "prompt": "R {input}", "output": "r"},
            "join": {"type": "generate", "model": "llm", "prompt": "{l} {r}", "output": "answer"},
        },
        "entry": ["left", "right"],
        "edges": [{"from": ["left", "right"], "to": "join"}, {"from": "join", "to": "end"}],
    }


async def test_parallel_branches_nest_and_join_records_two_hops(spans):
    slm = KeyedChatModel(replies={"^L": {"content": "left out", "delay": 0.01}, "^R": "right out"})
    llm = KeyedChatModel(replies={".": "joined"})
    flow = compile_flow(_parallel_flow(), models={"slm": slm, "llm": llm})
    result = await flow.arun("go")
    assert result.answer == "joined"
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    run = next(s for s in finished if s.parent is None)
    for node in ("left", "right", "join"):
        node_span = next(s for s in finished if s.name == f"node {node}")
        assert node_span.parent.span_id == run.context.span_id
        chat = next(s for s in finished if s.name.startswith("chat ") and s.attributes[A.NODE] == node)
        assert by_id[chat.parent.span_id] is node_span
    join_chat = next(s for s in finished if s.name.startswith("chat ") and s.attributes[A.NODE] == "join")
    hops = sorted((e.attributes["tandem.hop.from_node"], e.attributes["tandem.hop.field"]) for e in join_chat.events)
    assert hops == [("left", "l"), ("right", "r")]
    assert ordered_nodes(spans)[-1] == "join"


async def test_content_absent_by_default_and_redacted_when_captured(spans):
    question = "Mail alice@example.com about 2+2"
    flow = compile_flow("pipeline", models={
        "slm": ScriptedChatModel(replies=['{"intent": "mail bob@example.org", "facts": []}']),
        "llm": ScriptedChatModel(replies=["done"]),
    })
    await flow.arun(question)
    for s in spans.get_finished_spans():
        blob = json.dumps(dict(s.attributes)) + json.dumps([dict(e.attributes) for e in s.events])
        assert "alice@" not in blob and "example.com" not in blob
        assert A.GEN_AI_INPUT_MESSAGES not in s.attributes and A.GEN_AI_OUTPUT_MESSAGES not in s.attributes
    spans.clear()
    flow = compile_flow("pipeline", models={
        "slm": ScriptedChatModel(replies=['{"intent": "mail bob@example.org", "facts": []}']),
        "llm": ScriptedChatModel(replies=["sent to carol@example.net"]),
    })
    await flow.arun(question, capture_content=True)
    chats = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert len(chats) == 2
    for chat in chats:
        sent = json.loads(chat.attributes[A.GEN_AI_INPUT_MESSAGES])
        assert sent[-1]["role"] == "user" and "<EMAIL>" in sent[-1]["parts"][0]["content"]
        assert "2+2" in sent[-1]["parts"][0]["content"]
        assert chat.attributes["tandem.content.redactions"] >= 1
        blob = json.dumps(dict(chat.attributes))
        assert "alice@example.com" not in blob and "bob@example.org" not in blob
        assert "carol@example.net" not in blob
    answer_chat = next(c for c in chats if c.attributes[A.NODE] == "answer")
    assert json.loads(answer_chat.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["role"] == "assistant"


async def test_hop_reports_redactions_from_meta(spans):
    """A privacy node's ``meta[field]["redactions"]`` flows into the hop record."""
    from tandemlm.telemetry.hops import hop_inputs

    state = {
        "safe": "hello <EMAIL>",
        "ledger": [{"node": "scrub", "model": None, "output": "safe", "outputs": ["safe"],
                    "meta": {"safe": {"redactions": 2}}}],
    }
    (hop,) = hop_inputs(state, {"safe", "input"})
    assert (hop.node, hop.model, hop.redactions, hop.chars) == ("scrub", None, 2, 13)


async def test_failing_node_marks_run_error(spans):
    slm = ScriptedChatModel(replies=[{"error": "server down"}])
    flow = compile_flow("pipeline", models={"slm": slm, "llm": ScriptedChatModel(replies=[])})
    with pytest.raises(ModelUnavailableError):
        await flow.arun("hi")
    by_name, _, _ = tree(spans)
    run = by_name["invoke_workflow pipeline"]
    assert run.status.status_code.name == "ERROR"
    assert run.attributes["tandem.run.status"] == "error"
    assert run.attributes["tandem.run.error_node"] == "extract"
    assert by_name["node extract"].status.status_code.name == "ERROR"
    assert by_name["node extract"].attributes["error.type"] == "ModelUnavailableError"
