"""One small evaluation on a real embedded model (SmolLM2-135M, 2 items)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tandemlm.evaluation.datasets import load_dataset
from tandemlm.evaluation.report import load_results, write_report
from tandemlm.evaluation.runner import EvalFlow, run_eval
from tandemlm.flows import load_flow

pytestmark = pytest.mark.real


def test_real_model_eval_records_and_replays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tandemlm.models.llamacpp import get_llama

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    get_llama("smollm2-135m", 1024, n_threads=1)  # one thread on shared cores (first load wins)
    spec = load_flow({
        "name": "smol",
        "models": {"llm": {"provider": "llamacpp", "model": "smollm2-135m", "role": "llm",
                           "params": {"max_tokens": 24}, "context_window": 1024}},
        "nodes": {"a": {"type": "generate", "model": "llm", "prompt": "Answer briefly: {input}"}},
        "entry": "a",
        "edges": [{"from": "a", "to": "end"}],
    })
    items = load_dataset("kb-qa", limit=2)
    db = tmp_path / "c.db"
    run = run_eval([EvalFlow("smol", spec)], items, scorer="contains", cache=db)
    for item in items:
        record = run.records["smol"][item.id]
        assert record["answer"] and record["score"] in (0.0, 1.0)
        assert record["llm_called"] is True and record["models"] == ["llm"]
        assert 0 < record["tokens"]["llm"]["output"] <= 24 and record["latency"] > 0
        assert record["replayed_calls"] == 0
    # same model and prompt under another flow name: every call is replayed from the cache
    twin = EvalFlow("twin", spec.model_copy(update={"name": "twin"}))
    again = run_eval([twin], items, scorer="contains", cache=db)
    for item in items:
        replayed = again.records["twin"][item.id]
        assert replayed["answer"] == run.records["smol"][item.id]["answer"]
        assert replayed["replayed_calls"] == 1
    paths = write_report(again, tmp_path / "out", plots=False)
    assert load_results(paths["results"])["items"][0]["flows"]["twin"]["answer"]
