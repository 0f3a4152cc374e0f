"""``type: flow``: a preset or spec file run as one node (answer, path, roll-up, spans, checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tandemlm.core.node import Node, Port
from tandemlm.errors import BudgetExceededError, NodeExecutionError, SpecError
from tandemlm.flows import compile_flow, dump_yaml, load_flow, register_node
from tandemlm.flows.stream import Message
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel
from tandemlm.stores import MemoryStore, example_kb, ingest
from tandemlm.telemetry import attributes as A

UNSURE = {"content": "maybe 5", "confidence": 0.3}  # cascade gate: score 0.7 >= 0.2 -> large
SURE = {"content": "4", "confidence": 0.95}  # score 0.05 -> small


def outer(**answer: Any) -> dict[str, Any]:
    """clarify (SLM) -> answer (a flow node, the cascade preset by default)."""
    return {
        "name": "outer",
        "models": {"slm": {"role": "slm"}, "llm": {"role": "llm"}},
        "nodes": {
            "clarify": {"type": "generate", "model": "slm", "prompt": "Clarify: {input}", "output": "question"},
            "answer": {"type": "flow", "flow": "cascade", "input": "{question}", **answer},
        },
        "entry": "clarify",
        "edges": [["clarify", "answer"], ["answer", "end"]],
    }


def write(path: Path, spec: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(spec), "utf-8")
    return str(path)


# -- running --------------------------------------------------------------------------------
async def test_child_escalation_rolls_up_answer_path_usage_and_llm_called() -> None:
    slm = ScriptedChatModel(replies=["What is 2+2?", UNSURE])
    llm = ScriptedChatModel(replies=["4"])
    result = await compile_flow(outer(), models={"slm": slm, "llm": llm}).arun("2+2, quick")

    assert result.answer == "4" and result.path == ["clarify", "answer"]
    assert result.answered_by == "llm"
    assert result.llm_called is True and result.large_models == ["llm"]
    step = result.steps[-1]
    assert step["type"] == "flow" and step["subflow"] == "cascade"
    assert step["child_path"] == ["draft", "gate", "escalate"]
    [decision] = step["child_decisions"]
    assert decision["node"] == "gate" and decision["choice"] == "large"
    assert decision["router"] == "confidence" and decision["score"] == pytest.approx(0.7)
    assert step["usage"]["slm"]["calls"] == 1 and step["usage"]["llm"]["calls"] == 1
    assert step["large"] == ["llm"] and step["meta"]["answer"]["model"] == "llm"
    # the child's question is the rendered input template; its models are the parent's fakes
    assert slm.calls[1][-1].content == "What is 2+2?" and llm.calls[0][-1].content == "What is 2+2?"
    assert result.usage["slm"]["calls"] == 2 and result.usage["llm"]["calls"] == 1
    assert result.usage["llm"]["output_tokens"] == 1
    assert result.to_dict()["llm_called"] is True
    slm.assert_all_used()
    llm.assert_all_used()


async def test_child_that_stays_small_does_not_call_the_llm() -> None:
    slm = ScriptedChatModel(replies=["What is 2+2?", SURE])
    llm = ScriptedChatModel(replies=[])
    result = await compile_flow(outer(), models={"slm": slm, "llm": llm}).arun("2+2")
    assert result.answer == "4" and result.answered_by == "slm"
    assert result.steps[-1]["child_path"] == ["draft", "gate", "accept"]
    assert result.llm_called is False and result.large_models == []
    assert set(result.usage) == {"slm"}


async def test_output_field_and_model_mapping_report_parent_names() -> None:
    spec = outer(output="reply", models={"slm": "small", "llm": "big"})
    spec["models"] = {"small": {"role": "slm"}, "big": {"role": "llm"}}
    spec["nodes"]["clarify"]["model"] = "small"
    spec["nodes"]["final"] = {"type": "accept", "field": "reply"}
    spec["edges"] = [["clarify", "answer"], ["answer", "final"], ["final", "end"]]
    small = ScriptedChatModel(replies=["q?", UNSURE])
    big = ScriptedChatModel(replies=["42"])
    flow = compile_flow(spec, models={"small": small, "big": big})
    assert flow.checked.nodes["answer"].model_refs() == {"models.slm": "small", "models.llm": "big"}
    result = await flow.arun("q")
    assert result.vars["reply"] == "42" and result.answer == "42"
    assert result.answered_by == "big" and result.large_models == ["big"]
    assert set(result.usage) == {"small", "big"}


async def test_child_models_without_a_parent_match_are_built_from_the_child_spec(tmp_path: Path) -> None:
    child = write(tmp_path / "judge.yaml", {
        "name": "judge",
        "models": {"judge": {"provider": "scripted", "replies": ["fine"], "role": "llm"}},
        "nodes": {"say": {"type": "generate", "model": "judge", "prompt": "{input}"}},
        "entry": "say",
    })
    spec = outer(flow=child)
    slm = ScriptedChatModel(replies=["q?"])
    result = await compile_flow(spec, models={"slm": slm}).arun("q")
    assert result.answer == "fine" and result.answered_by == "judge"
    assert result.large_models == ["judge"] and result.usage["judge"]["calls"] == 1


async def test_a_child_only_model_can_be_given_to_compile_flow(tmp_path: Path) -> None:
    child = write(tmp_path / "remote.yaml", {
        "name": "remote",
        "models": {"cloud": {"role": "llm", "local": False}},
        "nodes": {"say": {"type": "generate", "model": "cloud", "prompt": "{input}"}},
        "entry": "say",
    })
    cloud = ScriptedChatModel(replies=["from the cloud"])
    flow = compile_flow(outer(flow=child), models={"slm": ScriptedChatModel(replies=["q?"]), "cloud": cloud})
    result = await flow.arun("q")
    assert result.answer == "from the cloud" and cloud.calls[0][-1].content == "q?"
    assert result.large_models == ["cloud"]


async def test_variables_are_passed_and_rendered(tmp_path: Path) -> None:
    child = write(tmp_path / "tone.yaml", {
        "name": "tone",
        "models": {"slm": {"role": "slm"}},
        "nodes": {"say": {"type": "generate", "model": "slm",
                          "prompt": "[{variables.tone}|{variables.user}] {input}"}},
        "entry": "say",
    })
    slm = ScriptedChatModel(replies=["q?", "ok"])
    flow = compile_flow(outer(flow=child, variables={"tone": "tone of {question}"}), models={"slm": slm})
    result = await flow.arun("hi", variables={"user": "ada"})
    assert result.answer == "ok"
    assert slm.calls[1][-1].content == "[tone of q?|ada] q?"


async def test_child_graph_is_compiled_once_and_runs_again() -> None:
    slm = ScriptedChatModel(replies=["a?", SURE, "b?", SURE])
    flow = compile_flow(outer(), models={"slm": slm, "llm": ScriptedChatModel(replies=[])})
    first = await flow.arun("a")
    graph = flow.checked.nodes["answer"]._child.graph
    second = await flow.arun("b")
    assert first.answer == second.answer == "4"
    assert flow.checked.nodes["answer"]._child.graph is graph
    assert second.usage["slm"]["calls"] == 2  # per run, not accumulated


# -- budget: the child counts against the parent's caps ------------------------------------
async def test_parent_max_escalations_caps_the_child_route() -> None:
    spec = outer()
    spec["settings"] = {"budget": {"max_escalations": 0, "on_exceed": "stop"}}
    slm = ScriptedChatModel(replies=["q?", UNSURE])
    result = await compile_flow(spec, models={"slm": slm, "llm": ScriptedChatModel(replies=[])}).arun("q")
    assert result.answer == "maybe 5" and result.llm_called is False
    assert result.steps[-1]["child_path"] == ["draft", "gate", "accept"]
    assert "max_escalations reached" in result.steps[-1]["child_decisions"][0]["reason"]


async def test_parent_token_budget_stops_the_child_gracefully() -> None:
    spec = outer()
    spec["settings"] = {"budget": {"max_tokens": 8, "on_exceed": "stop"}}
    slm = ScriptedChatModel(replies=["one two three four", UNSURE])  # clarify + draft >= 8 tokens
    result = await compile_flow(spec, models={"slm": slm, "llm": ScriptedChatModel(replies=[])}).arun("q")
    assert result.answer == "maybe 5" and result.answered_by == "slm"
    assert result.degraded is True and result.llm_called is False
    assert result.steps[-1]["child_path"] == ["draft", "gate", "escalate"]
    [error] = result.errors
    assert error["node"] == "answer/escalate" and error["subflow"] == "cascade"
    assert error["error"].startswith("budget: run used")


async def test_parent_token_budget_error_raises_from_the_child() -> None:
    spec = outer()
    spec["settings"] = {"budget": {"max_tokens": 3, "on_exceed": "error"}}
    slm = ScriptedChatModel(replies=["one two three four"])
    with pytest.raises(BudgetExceededError, match="budget max_tokens=3"):
        await compile_flow(spec, models={"slm": slm, "llm": ScriptedChatModel(replies=[])}).arun("q")


class Explode(Node):
    type_name = "test_explode"

    def outputs(self) -> dict[str, Port]:
        return {"answer": Port(str)}

    async def run(self, state: Any, call: Any) -> dict[str, Any]:
        raise ValueError("boom")


async def test_a_failing_child_node_names_the_flow_node(tmp_path: Path) -> None:
    register_node("test_explode", Explode)
    child = write(tmp_path / "boom.yaml", {"name": "boom", "nodes": {"x": {"type": "test_explode"}}, "entry": "x"})
    with pytest.raises(NodeExecutionError) as info:
        await compile_flow(outer(flow=child), models={"slm": ScriptedChatModel(replies=["q"])}).arun("q")
    assert info.value.node == "answer"
    assert "in sub-flow 'boom'" in str(info.value) and "node 'x' failed: ValueError: boom" in str(info.value)


# -- traces and streams ----------------------------------------------------------------------
async def test_child_spans_nest_under_the_flow_node(spans) -> None:
    slm = ScriptedChatModel(replies=["q?", UNSURE])
    llm = ScriptedChatModel(replies=["4"])
    result = await compile_flow(outer(), models={"slm": slm, "llm": llm}).arun("q")
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    parent = {s.name: by_id[s.parent.span_id].name if s.parent else None for s in finished
              if not s.name.startswith("chat ")}
    assert [s.name for s in finished if s.parent is None] == ["invoke_workflow outer"]
    assert parent["node clarify"] == parent["node answer"] == "invoke_workflow outer"
    assert parent["invoke_workflow cascade"] == "node answer"
    for node in ("draft", "gate", "escalate"):
        assert parent[f"node {node}"] == "invoke_workflow cascade"
    chats = {s.attributes[A.NODE]: by_id[s.parent.span_id].name for s in finished if s.name.startswith("chat ")}
    assert chats == {"clarify": "node clarify", "draft": "node draft", "escalate": "node escalate"}

    child = next(s for s in finished if s.name == "invoke_workflow cascade").attributes
    assert child[A.FLOW] == "cascade" and child[A.RUN_ID] == result.run_id
    assert child["tandem.run.path"] == ("draft", "gate", "escalate")
    assert child["tandem.run.escalations"] == 1 and child["tandem.run.llm_called"] is True
    run = next(s for s in finished if s.name == "invoke_workflow outer").attributes
    assert run["tandem.run.path"] == ("clarify", "answer")
    assert run["tandem.run.model_calls"] == 3 and run["tandem.run.llm_calls"] == 1
    assert run["tandem.run.escalations"] == 1 and run["tandem.run.answered_by"] == "llm"


async def test_child_model_replies_reach_the_parent_stream() -> None:
    slm = ScriptedChatModel(replies=["q?", UNSURE])
    llm = ScriptedChatModel(replies=["4"])
    events = [e async for e in compile_flow(outer(), models={"slm": slm, "llm": llm}).astream("q")]
    messages = [(e.node, e.text) for e in events if isinstance(e, Message)]
    assert ("answer/escalate", "4") in messages and ("clarify", "q?") in messages
    assert events[-1].answer == "4"


# -- compile-time checks ---------------------------------------------------------------------
def test_unknown_preset_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as info:
        compile_flow(outer(flow="cascdae"))
    assert info.value.path == "nodes.answer.flow"
    assert "cannot load sub-flow 'cascdae': unknown preset 'cascdae' (known: " in info.value.message


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^nodes\.answer\.flow: cannot load sub-flow .*no such file"):
        compile_flow(outer(flow=str(tmp_path / "nope.yaml")))


def test_errors_inside_the_child_name_their_path(tmp_path: Path) -> None:
    child = write(tmp_path / "bad.yaml", {
        "name": "bad", "models": {"slm": {"role": "slm"}},
        "nodes": {"say": {"type": "generate", "model": "smal"}}, "entry": "say",
    })
    with pytest.raises(SpecError) as info:
        compile_flow(outer(flow=child))
    assert info.value.path == "nodes.answer.flow"
    assert "nodes.say.model: unknown model 'smal' (known: slm)" in info.value.message


def test_self_inclusion_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    write(path, {"name": "loop", "nodes": {"again": {"type": "flow", "flow": str(path)}}, "entry": "again"})
    with pytest.raises(SpecError) as info:
        compile_flow(str(path))
    assert info.value.path == "nodes.again.flow"
    assert "includes itself (loop -> loop)" in info.value.message


def test_mutual_inclusion_is_rejected(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write(a, {"name": "a", "nodes": {"to_b": {"type": "flow", "flow": str(b)}}, "entry": "to_b"})
    write(b, {"name": "b", "nodes": {"to_a": {"type": "flow", "flow": str(a)}}, "entry": "to_a"})
    with pytest.raises(SpecError) as info:
        compile_flow(str(a))
    assert info.value.path == "nodes.to_b.flow"
    assert "nodes.to_a.flow: sub-flow" in info.value.message and "(a -> b -> a)" in info.value.message


def test_model_mapping_names_are_checked() -> None:
    with pytest.raises(SpecError, match=r"^nodes\.answer\.models\.big: sub-flow 'cascade' has no model 'big' "
                                        r"\(known: llm, slm\)"):
        compile_flow(outer(models={"big": "llm"}))
    with pytest.raises(SpecError, match=r"^nodes\.answer\.models\.llm: unknown model 'huge'"):
        compile_flow(outer(models={"llm": "huge"}))


def test_unknown_input_fields_are_caught() -> None:
    with pytest.raises(SpecError, match=r"^nodes\.answer: reads unknown field\(s\) questoin"):
        compile_flow(outer(input="{questoin}"))


# -- privacy: strict -------------------------------------------------------------------------
class Mask(Node):
    """Test stand-in for a privacy filter: its output is declared clean."""

    type_name = "test_mask"

    def inputs(self) -> dict[str, Any]:
        return {"input": str}

    def outputs(self) -> dict[str, Port]:
        return {"masked": Port(str, private=False)}

    async def run(self, state: Any, call: Any) -> dict[str, Any]:
        return {"masked": "<masked>"}


class Secret(Node):
    """Test stand-in for local_context: private data whatever it reads."""

    type_name = "test_secret"

    def outputs(self) -> dict[str, Port]:
        return {"secret": Port(str, private=True, doc="local data")}

    async def run(self, state: Any, call: Any) -> dict[str, Any]:
        return {"secret": "s3cret"}


def strict(spec: dict[str, Any]) -> dict[str, Any]:
    spec["settings"] = {"privacy": "strict"}
    spec["models"]["llm"]["local"] = False
    return spec


def test_strict_catches_raw_input_reaching_a_mapped_remote_child_model() -> None:
    spec = strict(outer(input="{input}"))
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path == "nodes.answer.models.llm"
    assert "raw 'input' reaches non-local model 'llm' via answer" in info.value.message


def test_strict_accepts_a_masked_input() -> None:
    register_node("test_mask", Mask)
    spec = strict(outer(input="{masked}"))
    spec["nodes"]["clarify"] = {"type": "test_mask"}
    flow = compile_flow(spec)
    assert flow.checked.nodes["answer"].model_inputs("models.llm") == {"masked"}


def test_strict_rejects_an_undeclared_remote_child_model(tmp_path: Path) -> None:
    child = write(tmp_path / "remote.yaml", {
        "name": "remote",
        "models": {"cloud": {"provider": "scripted", "replies": [], "role": "llm", "local": False}},
        "nodes": {"say": {"type": "generate", "model": "cloud", "prompt": "{input}"}},
        "entry": "say",
    })
    spec = outer(flow=child)
    spec["settings"] = {"privacy": "strict"}
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path == "nodes.answer.flow"
    assert "sends its input to non-local model 'cloud', which this flow does not declare" in info.value.message
    spec["settings"] = {}
    assert compile_flow(spec).name == "outer"  # without strict it is fine


def test_strict_catches_private_data_inside_the_child(tmp_path: Path) -> None:
    register_node("test_secret", Secret)
    child = write(tmp_path / "leak.yaml", {
        "name": "leak",
        "models": {"llm": {"role": "llm"}},
        "nodes": {"secret": {"type": "test_secret"},
                  "say": {"type": "generate", "model": "llm", "prompt": "{secret}"}},
        "entry": "secret",
        "edges": [["secret", "say"]],
    })
    register_node("test_mask", Mask)
    spec = strict(outer(flow=child, input="{masked}"))
    spec["nodes"]["clarify"] = {"type": "test_mask"}
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path == "nodes.answer.flow"
    assert "local data 'secret' of node 'secret' reaches non-local model 'llm' at node 'say'" in info.value.message


def test_strict_treats_a_child_answer_with_private_data_as_private(tmp_path: Path) -> None:
    register_node("test_secret", Secret)
    child = write(tmp_path / "local.yaml", {
        "name": "local",
        "models": {"slm": {"role": "slm"}},
        "nodes": {"secret": {"type": "test_secret"},
                  "say": {"type": "generate", "model": "slm", "prompt": "{secret}"}},
        "entry": "secret",
        "edges": [["secret", "say"]],
    })
    register_node("test_mask", Mask)
    spec = strict(outer(flow=child, input="{masked}", output="local_answer"))
    spec["nodes"]["clarify"] = {"type": "test_mask"}
    spec["nodes"]["polish"] = {"type": "generate", "model": "llm", "prompt": "{local_answer}"}
    spec["edges"] = [["clarify", "answer"], ["answer", "polish"], ["polish", "end"]]
    with pytest.raises(SpecError) as info:
        compile_flow(spec)
    assert info.value.path == "nodes.polish.model"
    assert "'local_answer' reaches non-local model 'llm' via answer -> polish" in info.value.message


# -- the rag_cascade preset --------------------------------------------------------------------
@pytest.fixture(scope="module")
def kb() -> MemoryStore:
    store = MemoryStore("hash")
    ingest(store, [example_kb()], chunk_size=600, overlap=100)
    return store


def test_rag_cascade_round_trips() -> None:
    spec = load_flow("rag_cascade")
    assert load_flow(yaml.safe_load(dump_yaml(spec))) == spec
    assert compile_flow(spec).checked.node_types["answer"] == "flow"


@pytest.mark.parametrize("confidence, answered_by", [(0.95, "slm"), (0.3, "llm")])
async def test_rag_cascade_answers_from_evidence(kb: MemoryStore, confidence: float, answered_by: str) -> None:
    slm = KeyedChatModel(replies={
        r"sub-?questions": '{"subquestions": ["How long is the return window?"]}',
        r"Evidence:": {"content": "30 days [policies/returns.md].", "confidence": confidence},
    })
    llm = ScriptedChatModel(replies=["Within 30 days [policies/returns.md]."] if answered_by == "llm" else [])
    flow = compile_flow("rag_cascade", models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun("Can I return my tent after five weeks?")
    assert result.path == ["decompose", "retrieve_each", "merge", "answer", "cite"]
    assert result.answered_by == answered_by and result.llm_called is (answered_by == "llm")
    assert result.vars["citations"] == ["policies/returns.md"]
    assert "[policies/returns.md]" in result.answer
    prompt = (llm.calls or slm.calls)[-1][-1].content
    assert "Question: Can I return my tent after five weeks?" in prompt and "[policies/" in prompt
    llm.assert_all_used()


async def test_a_checkpointed_multi_turn_parent_runs_the_child_each_turn(tmp_path: Path) -> None:
    slm = ScriptedChatModel(replies=["a?", SURE, "b?", UNSURE])
    llm = ScriptedChatModel(replies=["5"])
    flow = compile_flow(outer(), models={"slm": slm, "llm": llm}, checkpointer=tmp_path / "threads.sqlite")
    first = await flow.arun("a", thread_id="t1")
    second = await flow.arun("b", thread_id="t1")
    assert (first.answer, second.answer) == ("4", "5")
    assert second.path == ["clarify", "answer"] and second.steps[-1]["child_path"][-1] == "escalate"
    assert first.llm_called is False and second.llm_called is True
    assert second.usage["slm"]["calls"] == 2  # this turn only


async def test_resuming_a_failed_run_resumes_inside_the_child(tmp_path: Path) -> None:
    from tandemlm.errors import ModelUnavailableError

    slm = ScriptedChatModel(replies=["q?", UNSURE])  # each reply once: no child node repeats
    llm = ScriptedChatModel(replies=[{"error": "llm down"}, "4"])
    flow = compile_flow(outer(), models={"slm": slm, "llm": llm}, checkpointer=tmp_path / "runs.sqlite")
    with pytest.raises(ModelUnavailableError):
        await flow.arun("q", thread_id="t1")
    result = await flow.aresume("t1")
    assert result.answer == "4" and result.answered_by == "llm"
    assert result.steps[-1]["child_path"] == ["draft", "gate", "escalate"]
    slm.assert_all_used()
    llm.assert_all_used()
