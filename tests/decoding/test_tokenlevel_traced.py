"""Token-level nodes report every model's work: one ``chat`` span per model, and they run
under ``tandem eval`` (call replay wraps the models) and ``tandem run`` + ``tandem traces``.

SmolLM2-135M plays both models (one file, two contexts): fast, and the same vocabulary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tandemlm import compile_flow, load_flow
from tandemlm.evaluation.datasets import load_dataset
from tandemlm.evaluation.runner import EvalFlow, run_eval
from tandemlm.telemetry import attributes as A

pytestmark = pytest.mark.real

SMOL = "smollm2-135m"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def smol_spec(node_type: str, max_tokens: int = 16, **params: Any) -> Any:
    """The preset with SmolLM2 as both models (role slm and llm, as in the preset)."""
    data = load_flow(node_type).to_dict()
    for name in ("slm", "llm"):
        data["models"][name].update(model=SMOL, params={"max_tokens": max_tokens},
                                    context_window=1024)
    data["nodes"]["answer"].update(params)
    return load_flow(data)


def chat_spans(spans: Any) -> dict[str, Any]:
    """The ``chat`` spans by flow model name (exactly one per model)."""
    chats = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    by_model = {s.attributes[A.MODEL]: s for s in chats}
    assert len(by_model) == len(chats), [s.attributes[A.MODEL] for s in chats]
    return by_model


def assert_usage_span(span: Any, node_span: Any, usage: dict[str, float]) -> None:
    attrs = span.attributes
    assert span.parent.span_id == node_span.context.span_id
    assert attrs[A.GEN_AI_OPERATION] == "chat" and attrs[A.NODE] == "answer"
    assert attrs[A.GEN_AI_INPUT_TOKENS] == usage["input_tokens"] > 0
    assert attrs[A.GEN_AI_OUTPUT_TOKENS] == usage["output_tokens"]
    assert attrs[A.GEN_AI_PROVIDER] == "llamacpp" and A.COST in attrs


async def test_speculate_records_a_chat_span_per_model(spans: Any) -> None:
    result = await compile_flow(smol_spec("speculate")).arun("Name three colors.")
    step = result.steps[0]
    by_model = chat_spans(spans)
    assert set(by_model) == {"slm", "llm"}
    [node] = [s for s in spans.get_finished_spans() if s.name == "node answer"]
    for name in ("slm", "llm"):
        assert_usage_span(by_model[name], node, result.usage[name])
    draft, target = by_model["slm"].attributes, by_model["llm"].attributes
    assert draft[A.TOKENS_ROLE] == "draft" and target[A.TOKENS_ROLE] == "target"
    assert draft[A.GEN_AI_OUTPUT_TOKENS] == step["tokens_drafted"] > 0
    assert target[A.GEN_AI_OUTPUT_TOKENS] == step["output_tokens"] > 0
    for attrs in (draft, target):
        assert attrs[A.TOKENS_DRAFTED] == step["tokens_drafted"]
        assert attrs[A.TOKENS_ACCEPTED] == step["tokens_accepted"]
    assert target[A.TOKENS_ROUNDS] == step["rounds"]
    assert target[A.GEN_AI_FINISH_REASONS] == (result.steps[0]["meta"]["answer"]["finish_reason"],)
    assert result.large_models == ["llm"] and result.llm_called


async def test_token_route_records_a_chat_span_per_model(spans: Any) -> None:
    result = await compile_flow(smol_spec("token_route", min_prob=0.9)).arun("Name a fruit.")
    step = result.steps[0]
    by_model = chat_spans(spans)
    assert set(by_model) == {"slm", "llm"}
    [node] = [s for s in spans.get_finished_spans() if s.name == "node answer"]
    for name in ("slm", "llm"):
        assert_usage_span(by_model[name], node, result.usage[name])
    writer, takeover = by_model["slm"].attributes, by_model["llm"].attributes
    assert writer[A.TOKENS_ROLE] == "writer" and takeover[A.TOKENS_ROLE] == "takeover"
    assert writer[A.GEN_AI_OUTPUT_TOKENS] == writer[A.TOKENS_WRITTEN] == step["slm_tokens"]
    assert takeover[A.GEN_AI_OUTPUT_TOKENS] == takeover[A.TOKENS_WRITTEN] == step["llm_tokens"]
    assert writer[A.TOKENS_HANDOFFS] == takeover[A.TOKENS_HANDOFFS] == step["handoffs"]
    assert takeover[A.TOKENS_LLM_SHARE] == step["llm_token_share"]


def test_eval_runs_speculate_and_token_route(tmp_path: Path) -> None:
    """Call replay wraps the models; token-level nodes run on the wrapped embedded model."""
    items = load_dataset("gsm8k", limit=2)
    flows = [EvalFlow(name, smol_spec(name)) for name in ("speculate", "token_route")]
    run = run_eval(flows, items, scorer="numeric", cache=tmp_path / "c.db")
    for flow in flows:
        for item in items:
            record = run.records[flow.label][item.id]
            assert not record["errors"] and record["answer"], record
            assert sorted(record["models"]) == ["llm", "slm"]
            assert record["tokens"]["slm"]["input"] > 0 and record["tokens"]["llm"]["input"] > 0
            assert record["replayed_calls"] == 0  # token-level work is never replayed
    assert run.summary("speculate")["errors"] == run.summary("token_route")["errors"] == 0


@pytest.mark.parametrize("flow", ["speculate", "token_route"])
def test_cli_run_then_traces_show_has_both_chat_spans(tmp_path: Path, flow: str) -> None:
    env = {**os.environ, "TANDEM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "TANDEM_THREADS": "1"}
    env.pop("TANDEM_TRACING", None)

    def tandem(*args: str) -> Any:
        proc = subprocess.run([sys.executable, "-m", "tandemlm.cli", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    run = tandem("run", flow, "Name a color.", "--model", f"slm={SMOL}", "--model",
                 f"llm={SMOL}", "--json")
    detail = tandem("traces", "show", run["run_id"], "--json")
    chats = {s["attributes"][A.MODEL]: s["attributes"] for s in detail["spans"]
             if s["name"].startswith("chat ")}
    assert set(chats) == {"slm", "llm"}
    for name, attrs in chats.items():
        assert attrs[A.GEN_AI_INPUT_TOKENS] == run["usage"][name]["input_tokens"] > 0
        assert attrs[A.GEN_AI_OUTPUT_TOKENS] == run["usage"][name]["output_tokens"]
        assert A.TOKENS_ROLE in attrs
    assert detail["run"]["llm_calls"] == 1 and detail["run"]["model_calls"] == 2


async def test_token_level_work_is_priced_by_energy(spans: Any) -> None:
    """The pair's process CPU time is shared by each model's seconds (tandemlm.models.prices)."""
    result = await compile_flow(smol_spec("token_route", min_prob=0.9)).arun("Name a fruit.")
    for name in ("slm", "llm"):
        usage = result.usage[name]
        assert usage["joules"] > 0 and usage["cost"] == pytest.approx(usage["joules"] / 3.6e6 * 0.17)
