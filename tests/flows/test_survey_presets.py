"""The multihop, conflict and rerank presets end to end on fakes (and from the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tandemlm.flows.compiler import compile_flow
from tandemlm.flows.loader import dump_yaml, load_flow
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.stores import MemoryStore, example_kb, ingest


@pytest.fixture(scope="module")
def kb() -> MemoryStore:
    store = MemoryStore("hash")
    ingest(store, [example_kb()], chunk_size=600, overlap=100)
    return store


async def test_multihop_preset_loops_answers_and_checks_citations(kb: MemoryStore) -> None:
    slm = KeyedChatModel(replies={r"Searches done: [^;]*$": "SEARCH: Standard shipping price free over 75"},
                         default="DONE")
    llm = KeyedChatModel(replies={"Evidence": "The tent costs 349.00 [policies/shipping.md]; Standard "
                                              "shipping is free over 75 [policies/shipping.md]."})
    flow = compile_flow("multihop", models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun("How much is Standard shipping for the tent with two doors and two porches?")
    assert result.path == ["search", "merge", "answer", "check"]
    assert [h["query"] for h in result.vars["hops"]][1:] == ["Standard shipping price free over 75"]
    assert len(slm.calls) == 2  # SEARCH, then DONE
    sources = {h["source"] for h in result.vars["evidence"]}
    assert {"policies/shipping.md", "products/ridgeline-tent-2p.md"} <= sources
    # the price was cited to the shipping page: the check moves it to the tent's page
    assert result.answer == ("The tent costs 349.00 [products/ridgeline-tent-2p.md]; Standard shipping "
                             "is free over 75 [policies/shipping.md].")
    assert result.vars["citations"] == ["products/ridgeline-tent-2p.md", "policies/shipping.md"]
    assert result.decisions[-1]["details"]["unsupported"][0]["moved_to"] == "products/ridgeline-tent-2p.md"
    assert result.answered_by == "llm"


async def test_conflict_preset_runs_both_answers_in_parallel_and_arbitrates(kb: MemoryStore) -> None:
    slm = KeyedChatModel(replies={"Evidence": "You have 14 days [policies/returns.md]."})
    llm = KeyedChatModel(replies={"Answer A: You have 30": "A [policies/returns.md]",
                                  "Answer B: You have 30": "B [policies/returns.md]", ".": "You have 30 days."})
    flow = compile_flow("conflict", models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun("How many days do I have to return an item?")
    assert set(result.path) == {"retrieve", "merge", "local", "remote", "arbitrate"}
    assert result.path[-1] == "arbitrate" and result.path.index("local") > result.path.index("merge")
    assert result.answer == "You have 30 days. [policies/returns.md]"
    decision = result.decisions[0]
    assert decision["choice"] == "remote_answer"
    assert decision["details"]["answers"]["local_answer"] == "You have 14 days."
    assert "You have 14 days" not in llm.calls[0][-1].content  # the remote answer is independent


async def test_rerank_preset_proposes_four_and_the_llm_picks() -> None:
    slm = KeyedChatModel(replies={".": "Half of 84 is 42.\nAnswer: 42"})
    llm = KeyedChatModel(replies={".": {"content": "Yes", "confidence": 0.7}})
    result = await compile_flow("rerank", models={"slm": slm, "llm": llm}).arun("What is half of 84?")
    assert result.path == ["propose", "pick"]
    assert len(result.vars["candidates"]) == 4 and result.answer.endswith("Answer: 42")
    assert len(llm.calls) == 1  # four identical candidates: one verdict
    assert result.decisions[0]["router"] == "rerank:pointwise"


KEYED: dict[str, dict[str, Any]] = {
    "rerank": {"slm": {".": "Answer: 42"}, "llm": {".": "Yes"}},
    "multihop": {"slm": {".": "DONE"}, "llm": {".": "Within 30 days [policies/returns.md]."}},
    "conflict": {"slm": {".": "You have 30 days [policies/returns.md]."}, "llm": {".": "30 days."}},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KEYED))
def test_tandem_run_preset_from_the_cli(name: str, tmp_path: Path) -> None:
    data = load_flow(name).to_dict()
    for model, replies in KEYED[name].items():
        data["models"][model].update(provider="keyed", replies=replies)
    if "kb" in data.get("stores", {}):
        data["stores"]["kb"].update(type="memory", embedding="hash")
    (tmp_path / f"{name}.yaml").write_text(dump_yaml(load_flow(data)))
    proc = subprocess.run(
        [sys.executable, "-m", "tandemlm.cli", "run", f"{name}.yaml", "How long can I return items?", "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_TRACING": "off"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["answer"] and result["llm_called"] is True
    assert result["decisions"], result
