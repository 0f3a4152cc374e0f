"""One definition of escalation: for every preset, the run result, the eval record, the stored
trace summary and distill's reading of the trace agree on whether the large model was called.

"Large model" is :func:`tandemlm.core.ledger.is_large_model` (role other than ``slm``, or
``local: false``); every consumer reads it from the run's ledger or from the spans the
model layer wrote with the same role/local attributes. Models are fakes, except for the
token-level presets (``speculate``, ``token_route``), which need real embedded models: they
run SmolLM2-135M as both models and are marked ``real``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tandemlm import compile_flow, load_flow
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.distill import distill_traces, trace_escalations
from tandemlm.evaluation.runner import EvalFlow, run_eval
from tandemlm.flows.loader import presets
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel
from tandemlm.telemetry import attributes as A
from tandemlm.telemetry.store import TraceStore

Models = Callable[[], dict[str, Any]]


@dataclass
class Scenario:
    """One run of a preset: the spec tweaks, fresh fake models, the question, the expectation."""

    preset: str
    label: str
    question: str
    models: Models | None  # None: the spec's own (embedded) models
    expected: bool | None  # None: only agreement is checked
    edit: Callable[[dict[str, Any], Path], None] | None = None
    variables: dict[str, Any] | None = None


def keyed(default: Any, **replies: Any) -> KeyedChatModel:
    return KeyedChatModel(replies=replies, default=default)


def confident(text: str, confidence: float) -> dict[str, Any]:
    return {"content": text, "confidence": confidence}


def _collab_rag_store(spec: dict[str, Any], _tmp: Path) -> None:
    spec["stores"]["kb"].update({"type": "memory", "embedding": "hash"})


def _resilient_queue(spec: dict[str, Any], tmp: Path) -> None:
    from tandemlm.nodes.fallback import reset_breakers

    reset_breakers()
    spec["nodes"]["answer"]["queue"] = str(tmp / "escalations.sqlite")


def _smollm2(spec: dict[str, Any], _tmp: Path) -> None:
    for name in ("slm", "llm"):
        spec["models"][name].update(model="smollm2-135m", params={"max_tokens": 12}, context_window=1024)


SUBQ = '{"subquestions": ["How long is the return window?", "How long do refunds take?"]}'
VERIFIED = '{"consistent": true, "score": 0.9, "critique": "the steps add up"}'
DOCUMENT = " ".join(f"Section {i}: orders ship on weekdays." for i in range(6)) + " Returns: 30 days."

SCENARIOS = [
    Scenario("cascade", "slm-sure", "What is 2+2?", lambda: {
        "slm": keyed(confident("4", 0.99)), "llm": keyed("4")}, False),
    Scenario("cascade", "escalated", "What is 2+2?", lambda: {
        "slm": keyed(confident("maybe 5", 0.1)), "llm": keyed("4")}, True),
    # the LLM is remote (provider openai); here a fake with the preset's local: false
    Scenario("cascade_consistency", "slm-agrees", "What is 2+2?", lambda: {
        "slm": keyed("Answer: 4"), "llm": keyed("4")}, False),
    Scenario("cascade_consistency", "escalated", "What is 2+2?", lambda: {
        "slm": ScriptedChatModel(replies=["Answer: 3", "Answer: 5", "Answer: 4"]), "llm": keyed("4")}, True),
    Scenario("edge_cloud", "slm-sure", "What is 2+2?", lambda: {
        "slm": keyed(confident("4", 0.99)), "llm": keyed("4")}, False),
    Scenario("edge_cloud", "escalated", "What is 2+2?", lambda: {
        "slm": keyed(confident("maybe 5", 0.1)), "llm": keyed("4")}, True),
    Scenario("cascade3", "slm-sure", "What is 2+2?", lambda: {
        "slm": keyed(confident("4", 0.99)), "mid": keyed("4"), "llm": keyed("4")}, False),
    Scenario("cascade3", "mid-sure", "What is 2+2?", lambda: {  # mid is role slm: not large
        "slm": keyed(confident("5", 0.1)), "mid": keyed(confident("4", 0.99)), "llm": keyed("4")}, False),
    Scenario("cascade3", "escalated", "What is 2+2?", lambda: {
        "slm": keyed(confident("5", 0.1)), "mid": keyed(confident("3", 0.1)), "llm": keyed("4")}, True),
    Scenario("route", "small", "Capital of France?", lambda: {
        "slm": keyed("Paris."), "llm": keyed("Paris.")}, False),
    Scenario("route", "large", "How many eggs are 17 + 25 eggs?", lambda: {
        "slm": keyed("40"), "llm": keyed("42")}, True),
    Scenario("pipeline", "answer", "Mail alice@example.com about 2+2", lambda: {
        "slm": keyed('{"intent": "mail bob about 2+2", "facts": []}'), "llm": keyed("done")}, True),
    Scenario("private_sketch", "remote-sketch", "I am Jonas Wehrli, where is my refund?", lambda: {
        "slm": keyed("Sure, <PERSON_1>."), "llm": keyed("Refunds take 5 days.")}, True,
        variables={"profile": "Gold member"}),
    Scenario("cover", "verified", "What is 17 + 25?", lambda: {
        "slm": keyed(VERIFIED), "llm": keyed("17 + 25 = 42.\nAnswer: 42")}, True),
    Scenario("fusion", "vote", "Eggs?", lambda: {
        "slm": keyed(confident("18", 0.6)), "llm": keyed(confident("17", 0.9))}, True),
    Scenario("minions", "plan-and-answer", "How long is the return window?", lambda: {
        "slm": keyed("NONE", **{"Returns: 30 days": "30 days."}),
        "llm": keyed("The return window is 30 days.", subtasks='{"subtasks": ["Find the return window"]}'),
    }, True, variables={"document": DOCUMENT}),
    Scenario("resilient", "llm-up", "What is 2+2?", lambda: {
        "slm": keyed("4"), "llm": keyed("4")}, True, edit=_resilient_queue),
    # a failed call to the large model is not a call that happened: the ledger, the run span
    # and distill (which skips error spans) all say "not called"
    Scenario("resilient", "llm-down", "What is 2+2?", lambda: {
        "slm": keyed("4"), "llm": ScriptedChatModel(replies=[{"error": "server down"}] * 2)}, False,
        edit=_resilient_queue),
    Scenario("collab_rag", "answer", "Can I return my tent after five weeks?", lambda: {
        "slm": keyed(SUBQ), "llm": keyed("Within 30 days only [policies/returns.md].")}, True,
        edit=_collab_rag_store),
    # a flow inside a flow: the inner cascade's escalation is the outer run's
    Scenario("rag_cascade", "inner-slm-sure", "Can I return my tent after five weeks?", lambda: {
        "slm": keyed(confident("Within 30 days [policies/returns.md].", 0.99), **{"sub-questions": SUBQ}),
        "llm": keyed("Within 30 days only [policies/returns.md].")}, False, edit=_collab_rag_store),
    Scenario("rag_cascade", "inner-escalated", "Can I return my tent after five weeks?", lambda: {
        "slm": keyed(confident("maybe", 0.1), **{"sub-questions": SUBQ}),
        "llm": keyed("Within 30 days only [policies/returns.md].")}, True, edit=_collab_rag_store),
    Scenario("multihop", "planner-done", "Can I return my tent after five weeks?", lambda: {
        "slm": keyed("DONE"), "llm": keyed("Within 30 days only [policies/returns.md].")}, True,
        edit=_collab_rag_store),
    Scenario("conflict", "agree", "How many days do I have to return an item?", lambda: {
        "slm": keyed("You have 30 days [policies/returns.md]."), "llm": keyed("30 days.")}, True,
        edit=_collab_rag_store),
    Scenario("conflict", "arbitrated", "How many days do I have to return an item?", lambda: {
        "slm": keyed("You have 14 days [policies/returns.md]."),
        "llm": keyed("30 days.", **{"Answer A: 30": "A [policies/returns.md]",
                                    "Answer B: 30": "B [policies/returns.md]"})}, True, edit=_collab_rag_store),
    Scenario("rerank", "pointwise", "What is 17 + 25?", lambda: {
        "slm": keyed("17 + 25 = 42.\nAnswer: 42"), "llm": keyed(confident("Yes", 0.9))}, True),
    Scenario("speculate", "smollm2", "Name three colors.", None, True, edit=_smollm2),
    Scenario("token_route", "smollm2", "Name three colors.", None, None, edit=_smollm2),
]

TOKEN_LEVEL = {"speculate", "token_route"}


def _param(s: Scenario) -> Any:
    marks = [pytest.mark.real] if s.preset in TOKEN_LEVEL else []
    return pytest.param(s, id=f"{s.preset}-{s.label}", marks=marks)


def test_every_preset_has_a_scenario() -> None:
    assert set(presets()) == {s.preset for s in SCENARIOS}


def _spec(scenario: Scenario, tmp: Path) -> Any:
    data = load_flow(scenario.preset).to_dict()
    data.setdefault("settings", {})["capture_content"] = True  # distill needs the content
    if scenario.edit:
        scenario.edit(data, tmp)
    return load_flow(data)


def _traced(store: Path, work: Callable[[], Any]) -> Any:
    from tandemlm.telemetry import enable_tracing

    handle = enable_tracing(store=store)
    try:
        return work()
    finally:
        handle.close()  # flushes the batch processor into the store


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
def test_run_eval_traces_and_distill_agree(scenario: Scenario, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # anything a node writes by default (queues) lands here
    spec = _spec(scenario, tmp_path)
    models = scenario.models
    store = tmp_path / "traces.db"

    # 1. a direct run: the run result
    def direct() -> Any:
        flow = compile_flow(spec, models=models() if models else None)
        return asyncio.run(flow.arun(scenario.question, variables=scenario.variables))

    result = _traced(store, direct)
    if scenario.expected is not None:
        assert result.llm_called is scenario.expected, (result.path, result.usage)
    assert result.to_dict()["llm_called"] is result.llm_called
    assert result.llm_called == bool(result.large_models)

    # 2. the same question through the eval runner: the item record (its own run and trace)
    if scenario.variables:  # the runner passes no run variables: those runs differ by design
        record = None
    else:
        def evaluate() -> Any:
            flow = EvalFlow(scenario.preset, spec, models=models() if models else None)
            return run_eval([flow], [EvalItem("q", scenario.question, "")], cache=tmp_path / "eval.db",
                            replay=False)

        record = _traced(store, evaluate).records[scenario.preset]["q"]
        assert not record["errors"] or record["answer"], record["errors"]
        assert record["llm_called"] is result.llm_called
        assert (record["llm_calls"] > 0) is result.llm_called
        assert record["large_models"] == result.large_models

    # 3. the stored trace summaries (tandem traces list, the viewer's /api/runs)
    traces = TraceStore(store)
    runs = [r for r in (result.run_id, record and record["run_id"]) if r]
    rows = {ref: traces.find_run(ref) for ref in runs}
    for ref, row in rows.items():
        assert row is not None and row["run_id"] == ref and row["status"] == "ok"
        assert row["llm_called"] is result.llm_called
        assert (row["llm_calls"] > 0) is result.llm_called
        root = next(s for s in traces.spans(row["trace_id"]) if not s["parent_id"])
        assert root["attributes"][A.RUN_LLM_CALLED] is result.llm_called

    # 4. distill's reading of the same traces: the run flag and the large-model chat spans
    views = trace_escalations(store)
    for row in rows.values():
        view = views[row["trace_id"]]
        assert view.llm_called is result.llm_called and view.escalated is result.llm_called
        assert (view.large_calls > 0) is result.llm_called
    records, stats = distill_traces(store)
    if result.llm_called:
        assert "no escalation" not in stats.skipped
        if scenario.preset not in TOKEN_LEVEL:  # token-level work records no content
            assert records, stats.skipped
    else:
        assert records == [] and stats.skipped.get("no escalation") == len(rows)


PIPELINE_MODELS = {
    "slm": {"provider": "keyed", "role": "slm", "replies": {".": '{"intent": "sum", "facts": []}'}},
    "llm": {"provider": "keyed", "role": "llm", "replies": {".": "4"}},
}


def tandem(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", *args], check=False, capture_output=True, text=True,
        cwd=cwd, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.slow
def test_tandem_run_pipeline_json_reports_the_llm_call(tmp_path: Path) -> None:
    """`tandem run pipeline ... --json` says the LLM was called (it writes the answer), and
    `tandem traces list --json` says the same of that run."""
    from tandemlm.flows.loader import dump_yaml

    data = load_flow("pipeline").to_dict()
    data["models"] = {name: {**data["models"][name], **PIPELINE_MODELS[name]} for name in data["models"]}
    (tmp_path / "pipeline.yaml").write_text(dump_yaml(load_flow(data)))
    run = tandem(tmp_path, "run", "pipeline.yaml", "What is 2+2?", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["answer"] == "4" and result["answered_by"] == "llm"
    assert result["llm_called"] is True and result["large_models"] == ["llm"]
    listed = tandem(tmp_path, "traces", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["run_id"] == result["run_id"] and row["llm_called"] is True
