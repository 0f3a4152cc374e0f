"""The runner: records, resume after interruption (no item twice), errors, call replay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from tandemlm.errors import TandemError
from tandemlm.evaluation.baselines import baseline_flows
from tandemlm.evaluation.cache import EvalCache, ReplayChatModel, call_ledger
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.runner import EvalFlow, arun_eval, run_eval
from tandemlm.flows import load_flow
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel

CASCADE = {
    "name": "cascade",
    "models": {"slm": {"role": "slm"}, "llm": {"role": "llm"}},
    "nodes": {
        "draft": {"type": "generate", "model": "slm", "output": "draft", "logprobs": True, "prompt": "Q: {input}"},
        "accept": {"type": "accept", "field": "draft"},
        "escalate": {"type": "generate", "model": "llm", "prompt": "Q: {input}"},
    },
    "entry": "draft",
    "routes": [
        {"from": "draft", "name": "gate", "router": {"type": "confidence", "field": "draft", "threshold": 0.3},
         "branches": {"small": "accept", "large": "escalate"}}
    ],
    "edges": [{"from": "accept", "to": "end"}, {"from": "escalate", "to": "end"}],
}
ITEMS = [EvalItem(f"q{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(1, 6)]


def cascade(slm: Any, llm: Any) -> EvalFlow:
    return EvalFlow("cascade", load_flow(CASCADE), models={"slm": slm, "llm": llm})


def test_records_answer_score_path_tokens_and_llm_use(tmp_path: Path) -> None:
    slm = ScriptedChatModel(replies=[{"content": "2", "confidence": 0.9}, {"content": "5", "confidence": 0.2}])
    llm = ScriptedChatModel(replies=["4"])
    run = run_eval([cascade(slm, llm)], ITEMS[:2], scorer="exact", cache=tmp_path / "c.db")
    first, second = run.records["cascade"]["q1"], run.records["cascade"]["q2"]
    assert (first["answer"], first["score"], first["llm_called"]) == ("2", 1.0, False)
    assert first["path"] == ["draft", "gate", "accept"] and first["models"] == ["slm"]
    assert (second["answer"], second["score"], second["llm_called"]) == ("4", 1.0, True)
    assert second["path"] == ["draft", "gate", "escalate"] and second["answered_by"] == "llm"
    assert set(second["tokens"]) == {"slm", "llm"} and second["tokens"]["llm"]["output"] == 1
    assert second["route_scores"]["gate"] == pytest.approx(0.8)
    assert second["latency"] > 0 and second["cost"] == 0.0 and second["errors"] == []
    summary = run.summary("cascade")
    assert summary["accuracy"] == 1.0 and summary["llm_share"] == 0.5
    assert summary["answered_by"] == {"llm": 0.5, "slm": 0.5}
    slm.assert_all_used()
    llm.assert_all_used()


def test_resume_after_interruption_runs_no_item_twice(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    slow = ScriptedChatModel(replies=[{"content": "x", "delay": 0.2}] * len(ITEMS))

    async def interrupted() -> None:
        flow = EvalFlow("answer", load_flow(_single()), models={"m": slow})
        task = asyncio.create_task(arun_eval([flow], ITEMS, cache=db))
        cache = EvalCache(db)
        while cache.count_results() < 2:  # stop the run once two items are stored
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cache.close()

    asyncio.run(interrupted())
    done_before = EvalCache(db).count_results()
    assert 2 <= done_before < len(ITEMS)
    first_calls = len(slow.calls)
    # the rest: a script with exactly one reply per missing item fails on any extra call
    rest = ScriptedChatModel(replies=["x"] * (len(ITEMS) - done_before))
    run = run_eval([EvalFlow("answer", load_flow(_single()), models={"m": rest})], ITEMS, cache=db)
    rest.assert_all_used()
    assert run.executed == len(ITEMS) - done_before and run.reused == done_before
    assert all(r["answer"] == "x" and not r["errors"] for r in run.records["answer"].values())
    asked = [c[-1].content for c in slow.calls[:done_before]] + [c[-1].content for c in rest.calls]
    assert sorted(asked) == sorted(i.question for i in ITEMS)  # each item exactly once overall
    assert first_calls <= done_before + 1  # at most the in-flight item was lost
    # a third run executes nothing
    again = run_eval([EvalFlow("answer", load_flow(_single()), models={"m": ScriptedChatModel(replies=[])})], ITEMS, cache=db)
    assert again.executed == 0 and again.reused == len(ITEMS)
    assert all(r["cached"] for r in again.records["answer"].values())


def _single() -> dict[str, Any]:
    return {
        "name": "answer",
        "models": {"m": {"role": "llm"}},
        "nodes": {"a": {"type": "generate", "model": "m"}},
        "entry": "a",
        "edges": [{"from": "a", "to": "end"}],
    }


def test_errors_are_recorded_and_retried(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    failing = ScriptedChatModel(replies=[{"error": "server down"}, "4"])
    run = run_eval([EvalFlow("answer", load_flow(_single()), models={"m": failing})], ITEMS[1:3], cache=db)
    bad, good = run.records["answer"]["q2"], run.records["answer"]["q3"]
    assert bad["score"] == 0.0 and "server down" in bad["errors"][0]["error"]
    assert good["answer"] == "4"
    assert run.summary("answer")["errors"] == 1
    retry = ScriptedChatModel(replies=["4"])
    again = run_eval([EvalFlow("answer", load_flow(_single()), models={"m": retry})], ITEMS[1:3], cache=db)
    retry.assert_all_used()  # only the failed item ran again
    assert again.records["answer"]["q2"]["score"] == 1.0


def test_concurrency_runs_items_in_parallel(tmp_path: Path) -> None:
    model = KeyedChatModel(replies={}, default={"content": "x", "delay": 0.05})
    flow = EvalFlow("answer", load_flow(_single()), models={"m": model})
    run = run_eval([flow], ITEMS, cache=tmp_path / "c.db", concurrency=5)
    assert run.executed == 5 and len(model.calls) == 5


def test_baselines_share_the_flow_prompts(tmp_path: Path) -> None:
    flow = cascade(ScriptedChatModel(replies=[]), ScriptedChatModel(replies=[]))
    slm_only, llm_only = baseline_flows(flow)
    assert (slm_only.label, llm_only.label) == ("slm-only", "llm-only")
    node = slm_only.spec.nodes["answer"].params()
    assert node["prompt"] == "Q: {input}" and node["logprobs"] is True and node["model"] == "slm"
    assert list(llm_only.spec.models) == ["llm"] and llm_only.large_models() == {"llm"}
    assert slm_only.large_models() == set()


def test_duplicate_labels_and_bad_concurrency(tmp_path: Path) -> None:
    flow = EvalFlow("answer", load_flow(_single()), models={"m": ScriptedChatModel(replies=[])})
    with pytest.raises(TandemError, match="duplicate flow labels"):
        run_eval([flow, flow], ITEMS, cache=tmp_path / "c.db")
    with pytest.raises(TandemError, match="concurrency"):
        run_eval([flow], ITEMS, cache=tmp_path / "c.db", concurrency=0)


async def test_replay_answers_identical_calls_once_and_keeps_their_duration(tmp_path: Path) -> None:
    cache = EvalCache(tmp_path / "c.db")
    inner = ScriptedChatModel(replies=[{"content": "42", "delay": 0.05}, "other"])
    model = ReplayChatModel(inner=inner, identity="m|params", store=cache)
    ledger: list[dict[str, Any]] = []
    token = call_ledger.set(ledger)
    try:
        first = await model.ainvoke([HumanMessage(content="q")], max_tokens=5)
        second = await model.ainvoke([HumanMessage(content="q")], max_tokens=5)
        third = await model.ainvoke([HumanMessage(content="q")], max_tokens=6)  # other options
    finally:
        call_ledger.reset(token)
    assert first.content == second.content == "42" and third.content == "other"
    assert len(inner.calls) == 2
    assert [c["replayed"] for c in ledger] == [False, True, False]
    assert ledger[1]["seconds"] == pytest.approx(ledger[0]["seconds"]) and ledger[0]["seconds"] >= 0.05
    assert second.response_metadata["replayed"] is True
    assert second.usage_metadata == first.usage_metadata
    cache.close()
