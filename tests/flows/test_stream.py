"""CompiledFlow.astream: typed run events from LangGraph stream modes, keyed fake models."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langgraph.config import get_stream_writer
from opentelemetry import trace

from tandemlm.core.node import Node, NodeCall, Port
from tandemlm.errors import ModelUnavailableError
from tandemlm.flows import RunResult, compile_flow, register_node
from tandemlm.flows.stream import Custom, Message, NodeFailed, NodeFinished, NodeStarted, Token
from tandemlm.models import KeyedChatModel


def cascade(slm: Any = "small answer", llm: Any = "large answer") -> dict[str, Any]:
    """'hard' questions go to the llm; keyed replies (one pattern or a dict of patterns)."""
    slm_replies = slm if isinstance(slm, dict) else {".": slm}
    llm_replies = llm if isinstance(llm, dict) else {".": llm}
    return {
        "name": "streamed",
        "models": {
            "slm": {"provider": "keyed", "replies": slm_replies},
            "llm": {"provider": "keyed", "replies": llm_replies},
        },
        "nodes": {
            "draft": {"type": "generate", "model": "slm", "prompt": "{input}", "output": "draft"},
            "accept": {"type": "accept", "field": "draft"},
            "escalate": {"type": "generate", "model": "llm", "prompt": "{input}"},
        },
        "entry": "draft",
        "routes": [{"from": "draft", "name": "gate", "router": {"type": "rule", "keywords": ["hard"]},
                    "branches": {"small": "accept", "large": "escalate"}}],
        "edges": [["accept", "end"], ["escalate", "end"]],
    }


async def collect(stream: AsyncIterator[Any]) -> tuple[list[Any], RunResult]:
    items = [item async for item in stream]
    *events, result = items
    assert isinstance(result, RunResult)
    assert not any(isinstance(e, RunResult) for e in events)
    return events, result


def node_events(events: list[Any]) -> list[tuple[str, str]]:
    kinds = {NodeStarted: "start", NodeFinished: "end", NodeFailed: "error"}
    return [(e.node, kinds[type(e)]) for e in events if type(e) in kinds]


@pytest.mark.parametrize(("question", "path", "answer"), [
    ("a hard one", ["draft", "gate", "escalate"], "large answer"),
    ("an easy one", ["draft", "gate", "accept"], "small answer"),
])
async def test_astream_node_events_follow_the_path_and_end_with_arun_result(
    question: str, path: list[str], answer: str,
) -> None:
    flow = compile_flow(cascade())
    events, result = await collect(flow.astream(question))
    expected = await flow.arun(question)
    assert result.answer == expected.answer == answer
    assert result.path == expected.path == path
    assert result.answered_by == expected.answered_by
    assert result.llm_called == expected.llm_called
    assert node_events(events) == [(n, s) for n in path for s in ("start", "end")]
    finished = [e for e in events if isinstance(e, NodeFinished)]
    assert [e.step for e in finished] == result.steps  # each node's own ledger entry
    model_nodes = [n for n in path if n in ("draft", "escalate")]
    assert [(m.node, m.text) for m in events if isinstance(m, Message)] == [
        (n, "small answer" if n == "draft" else "large answer") for n in model_nodes
    ]
    # a model reply comes between its node's start and end
    draft = [type(e).__name__ for e in events if getattr(e, "node", None) == "draft"]
    assert draft == ["NodeStarted", "Message", "NodeFinished"]


class StreamingKeyed(KeyedChatModel):
    """A keyed fake that streams its reply word by word (usage on the last chunk)."""

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: Any = None, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        whole = self._result(self._take(messages), messages).generations[0].message
        assert isinstance(whole, AIMessage)
        for word in re.findall(r"\S+\s*", str(whole.content)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager is not None:
                await run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=whole.usage_metadata,
            response_metadata=whole.response_metadata, chunk_position="last"))


async def test_streaming_provider_sends_tokens_not_a_message() -> None:
    models = {"slm": KeyedChatModel(replies={".": "draft text"}),
              "llm": StreamingKeyed(replies={".": "the large model answers slowly"})}
    flow = compile_flow(cascade(), models=models)
    events, result = await collect(flow.astream("hard"))
    tokens = [e for e in events if isinstance(e, Token)]
    assert {t.node for t in tokens} == {"escalate"} and len(tokens) == 5
    assert "".join(t.text for t in tokens) == result.answer == "the large model answers slowly"
    assert [(m.node, m.text) for m in events if isinstance(m, Message)] == [("draft", "draft text")]
    plain = await flow.arun("hard")  # arun does not stream: same answer and token usage
    assert plain.answer == result.answer
    assert plain.usage["llm"]["output_tokens"] == result.usage["llm"]["output_tokens"] > 0


async def test_concurrent_streams_do_not_mix_events() -> None:
    n = 8
    # later questions answer sooner, so the runs interleave
    slm = {rf"\bitem {i}\b": {"content": f"small {i}", "delay": 0.005 * (n - i)} for i in range(n)}
    llm = {rf"\bitem {i}\b": {"content": f"large {i}", "delay": 0.005 * (n - i)} for i in range(n)}
    flow = compile_flow(cascade(slm, llm))
    questions = [f"{'hard ' if i % 2 else ''}item {i}" for i in range(n)]
    runs = await asyncio.gather(*(collect(flow.astream(q)) for q in questions))
    for i, (events, result) in enumerate(runs):
        hard = i % 2 == 1
        assert result.answer == (f"large {i}" if hard else f"small {i}")
        assert result.path == ["draft", "gate", "escalate" if hard else "accept"]
        assert node_events(events) == [(node, s) for node in result.path for s in ("start", "end")]
        texts = [m.text for m in events if isinstance(m, Message)]
        assert texts == ([f"small {i}", f"large {i}"] if hard else [f"small {i}"])
        assert [e.step for e in events if isinstance(e, NodeFinished)] == result.steps


async def test_failed_node_event_then_the_typed_error() -> None:
    flow = compile_flow(cascade(llm={".": {"error": "provider down"}}))
    seen: list[Any] = []
    with pytest.raises(ModelUnavailableError, match="provider down"):
        async for event in flow.astream("hard"):
            seen.append(event)
    assert node_events(seen)[-2:] == [("escalate", "start"), ("escalate", "error")]
    assert seen[-1] == NodeFailed("escalate", "ModelUnavailableError", "provider down")


async def test_closing_the_stream_early_cancels_the_run() -> None:
    flow = compile_flow(cascade(slm={".": {"content": "slow", "delay": 30}}))
    before = asyncio.all_tasks()
    async with contextlib.aclosing(flow.astream("question")) as stream:
        async for event in stream:
            assert event == NodeStarted("draft")
            break
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()  # the run's task is gone, not waiting 30 s


async def test_caller_context_is_untouched_between_events(spans: Any) -> None:
    flow = compile_flow(cascade())
    outside = trace.get_current_span()
    async for _ in flow.astream("hard"):
        assert trace.get_current_span() is outside  # the run span lives in the run's task
    [root] = [s for s in spans.get_finished_spans() if s.name == "invoke_workflow streamed"]
    assert {s.name for s in spans.get_finished_spans()} >= {"node draft", "node gate", "node escalate"}
    assert root.attributes is not None and root.attributes.get("tandem.run.status") != "error"


async def test_astream_rejects_an_empty_question() -> None:
    flow = compile_flow(cascade())
    with pytest.raises(Exception, match="empty"):
        async for _ in flow.astream("  "):
            pass


class Progress(Node):
    """Writes two custom stream events, then the answer (a node from outside the package)."""

    type_name = "stream_progress"

    def outputs(self) -> dict[str, Port]:
        return {"answer": Port(str)}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        write = get_stream_writer()
        write({"stage": "reading"})
        write({"stage": "writing"})
        return {"answer": "done"}


async def test_custom_events_from_a_node() -> None:
    register_node(Progress.type_name, Progress)
    flow = compile_flow({"name": "progress", "models": {}, "entry": "work",
                         "nodes": {"work": {"type": Progress.type_name}}, "edges": [["work", "end"]]})
    events, result = await collect(flow.astream("go"))
    assert result.answer == "done"
    assert events == [NodeStarted("work"), Custom({"stage": "reading"}), Custom({"stage": "writing"}),
                      NodeFinished("work", result.steps[0])]
    assert (await flow.arun("go")).answer == "done"  # no listener: the writer is a no-op


async def test_tokens_of_a_flow_run_as_a_node_reach_the_stream(tmp_path: Path) -> None:
    pytest.importorskip("tandemlm.flows.subflow")
    child = tmp_path / "child.json"
    child.write_text(json.dumps({**cascade(), "name": "streamed_child"}), "utf-8")
    spec = {"name": "outer", "models": {"slm": {"provider": "keyed", "replies": {".": "x"}},
                                        "llm": {"provider": "keyed", "replies": {".": "y"}}},
            "nodes": {"inner": {"type": "flow", "flow": str(child), "input": "{input}"}},
            "entry": "inner", "edges": [["inner", "end"]]}
    models = {"slm": KeyedChatModel(replies={".": "draft text"}),
              "llm": StreamingKeyed(replies={".": "streamed from inside"})}
    flow = compile_flow(spec, models=models)
    events, result = await collect(flow.astream("hard"))
    assert result.answer == "streamed from inside" and result.path == ["inner"]
    assert node_events(events) == [("inner", "start"), ("inner", "end")]  # this flow's nodes only
    assert [(m.node, m.text) for m in events if isinstance(m, Message)] == [("inner/draft", "draft text")]
    tokens = [t for t in events if isinstance(t, Token)]
    assert {t.node for t in tokens} == {"inner/escalate"}
    assert "".join(t.text for t in tokens) == result.answer
