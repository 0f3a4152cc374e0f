"""route, fusion, cascade3 and resilient presets on scripted models: answers and paths."""

from __future__ import annotations

import socket

import pytest

from tandemlm import BudgetExceededError, ModelUnavailableError, ScriptedChatModel, compile_flow
from tandemlm.escalations import EscalationQueue, replay
from tandemlm.flows.loader import load_flow
from tandemlm.nodes.fallback import reset_breakers
from tandemlm.nodes.fuse import normalise


def fakes(**replies: list) -> dict[str, ScriptedChatModel]:
    return {name: ScriptedChatModel(replies=r, model_name=name) for name, r in replies.items()}


async def test_route_sends_simple_request_to_slm() -> None:
    models = fakes(slm=["Paris."], llm=[])
    result = await compile_flow("route", models=models).arun("Capital of France?")
    assert (result.answer, result.answered_by, result.path) == ("Paris.", "slm", ["inspect", "pick", "small"])
    assert result.decisions[0]["reason"] == "no rule matched"


async def test_route_sends_math_to_llm_without_calling_slm() -> None:
    models = fakes(slm=[], llm=["42"])
    result = await compile_flow("route", models=models).arun("How many eggs are 17 + 25 eggs?")
    assert (result.answered_by, result.path) == ("llm", ["inspect", "pick", "large"])
    assert set(result.usage) == {"llm"}


def test_normalise_compares_final_numbers_and_words() -> None:
    assert normalise("so 9 * 2 = 18.\nAnswer: $1,018") == "1018"
    assert normalise("The answer is 18.0") == "18"
    assert normalise("Paris!") == normalise("  paris ") == "paris"


async def test_fusion_weighted_vote_prefers_agreeing_confident_answers() -> None:
    models = fakes(
        slm=[{"content": "It is 18", "confidence": 0.6}, {"content": "9*2 = 18. Answer: 18", "confidence": 0.7}],
        llm=[{"content": "17", "confidence": 0.9}],
    )
    # KeyedChatModel would be order-free; parallel branches may call slm in either order,
    # and both slm answers normalise to 18, so the outcome does not depend on it.
    result = await compile_flow("fusion", models=models).arun("Eggs?")
    assert normalise(result.answer) == "18" and result.answered_by == "slm"
    assert sorted(result.path[:3]) == ["direct", "stepwise", "strong"] and result.path[-1] == "fuse"
    fuse = result.decisions[-1]
    assert fuse["router"] == "fuse:weighted" and fuse["details"]["votes"]["18"] == pytest.approx(1.3)


def fusion_spec(method: str, model: str | None = "llm") -> dict:
    spec = load_flow("fusion").to_dict()
    spec["nodes"]["fuse"].update({"method": method, **({"model": model} if model else {})})
    return spec


async def test_fusion_aggregate_and_best_of() -> None:
    models = fakes(slm=["A", "B"], llm=["C", "Combined answer"])
    result = await compile_flow(fusion_spec("aggregate"), models=models).arun("Q?")
    assert (result.answer, result.answered_by) == ("Combined answer", "llm")
    assert "1. " in models["llm"].calls[-1][-1].content
    models = fakes(
        slm=["x", "y"],
        llm=["z", {"content": "No", "confidence": 0.9}, {"content": "Yes", "confidence": 0.8},
             {"content": "Yes", "confidence": 0.6}],
    )
    result = await compile_flow(fusion_spec("best_of"), models=models).arun("Q?")
    assert result.decisions[-1]["router"] == "fuse:best_of"
    assert result.decisions[-1]["details"]["p_yes"] == pytest.approx({"direct": 0.1, "stepwise": 0.8, "strong": 0.6})
    assert result.answered_by == "slm" and "rated stepwise best" in result.decisions[-1]["reason"]
    with pytest.raises(Exception, match="needs 'model'"):
        compile_flow(fusion_spec("aggregate", model=None))


def cascade3(slm: list, mid: list, llm: list, **budget: object):
    spec = load_flow("cascade3").to_dict()
    if budget:
        spec["settings"]["budget"] = budget
    return compile_flow(spec, models=fakes(slm=slm, mid=mid, llm=llm))


async def test_cascade3_paths() -> None:
    sure, unsure = {"content": "4", "confidence": 0.95}, {"content": "5", "confidence": 0.3}
    result = await cascade3([sure], [], []).arun("2+2?")
    assert result.path == ["draft", "gate1", "accept"] and result.answered_by == "slm"
    result = await cascade3([unsure], [sure], []).arun("2+2?")
    assert result.path == ["draft", "gate1", "second", "gate2", "accept_second"] and result.answered_by == "mid"
    result = await cascade3([unsure], [unsure], ["4"]).arun("2+2?")
    assert result.path[-1] == "escalate" and result.answered_by == "llm"


async def test_cascade3_budget_stop_and_error() -> None:
    unsure = {"content": "5", "confidence": 0.3}
    flow = cascade3([unsure], [unsure], [], max_escalations=1, on_exceed="stop")
    result = await flow.arun("2+2?")
    assert result.path[-1] == "accept_second" and result.answered_by == "mid"
    assert "budget max_escalations reached" in result.decisions[-1]["reason"]
    flow = cascade3([unsure], [unsure], [], max_escalations=1, on_exceed="error")
    with pytest.raises(BudgetExceededError, match="max_escalations=1"):
        await flow.arun("2+2?")
    flow = cascade3([unsure], [], [], max_tokens=3, on_exceed="error")
    with pytest.raises(BudgetExceededError, match="max_tokens=3"):
        await flow.arun("what is two plus two, exactly?")


# --- resilient -------------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resilient(tmp_path, llm_spec: dict | None = None, **params: object) -> dict:
    reset_breakers()
    spec = load_flow("resilient").to_dict()
    spec["nodes"]["answer"].update({"queue": str(tmp_path / "esc.sqlite"), **params})
    if llm_spec:
        spec["models"]["llm"] = llm_spec
    return spec


async def test_resilient_uses_llm_when_up(tmp_path) -> None:
    models = fakes(slm=[], llm=["42"])
    result = await compile_flow(resilient(tmp_path), models=models).arun("Q?")
    assert (result.answer, result.answered_by, result.degraded) == ("42", "llm", False)
    assert EscalationQueue(tmp_path / "esc.sqlite").list() == []


async def test_resilient_server_down_degrades_and_queues(tmp_path) -> None:
    llm = {"provider": "ollama", "model": "tiny", "host": f"http://127.0.0.1:{closed_port()}", "timeout": 2}
    models = fakes(slm=["local answer"])
    result = await compile_flow(resilient(tmp_path, llm), models=models).arun("What is 2+2?")
    assert (result.answer, result.answered_by, result.degraded) == ("local answer", "slm", True)
    assert result.errors[0]["recovered"] and "unavailable" in result.errors[0]["error"]
    [item] = EscalationQueue(tmp_path / "esc.sqlite").list()
    assert item["question"] == "What is 2+2?" and item["degraded_answer"] == "local answer"
    assert result.vars["escalation_id"] == item["id"]


async def test_resilient_timeout_degrades(tmp_path) -> None:
    models = fakes(slm=["fast"], llm=[{"content": "slow", "delay": 5}])
    result = await compile_flow(resilient(tmp_path, timeout=0.2), models=models).arun("Q?")
    assert result.degraded and result.answered_by == "slm" and "timed out" in result.errors[0]["error"]


async def test_resilient_both_down_is_a_typed_error_and_still_queued(tmp_path) -> None:
    models = fakes(slm=[{"error": "slm gone"}], llm=[{"error": "llm gone"}])
    with pytest.raises(ModelUnavailableError, match="queued as"):
        await compile_flow(resilient(tmp_path), models=models).arun("Q?")
    assert len(EscalationQueue(tmp_path / "esc.sqlite").list()) == 1


async def test_circuit_breaker_stops_calling_dead_llm_and_replay_resolves(tmp_path) -> None:
    models = fakes(slm=["a", "b", "c"], llm=[{"error": "down"}, {"error": "down"}])
    flow = compile_flow(resilient(tmp_path, failures=2, cooldown=60), models=models)
    for _ in range(3):
        assert (await flow.arun("Q?")).degraded
    assert len(models["llm"].calls) == 2  # third run skipped the open circuit
    assert "circuit open" in EscalationQueue(tmp_path / "esc.sqlite").list()[-1]["reason"]
    queue = EscalationQueue(tmp_path / "esc.sqlite")
    done = await replay(queue, models=fakes(slm=[], llm=["A1", "A2", "A3"]))
    assert [d["status"] for d in done] == ["done"] * 3
    assert queue.list() == [] and len(queue.list("done")) == 3
    reset_breakers()
