"""Distillation: teacher answers as chat SFT JSONL, from a dataset and from recorded traces."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from test_eval_runner import CASCADE

from tandemlm.errors import TandemError
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.distill import distill_dataset, distill_traces, validate_sft, write_sft
from tandemlm.evaluation.runner import EvalFlow
from tandemlm.flows import compile_flow, load_flow
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel

ITEMS = [EvalItem("a", "What is 2+2?", "4"), EvalItem("b", "What is 3+3?", "6"), EvalItem("c", "What is 5+5?", "10")]


def flow() -> EvalFlow:
    spec = load_flow({**CASCADE, "nodes": {**CASCADE["nodes"], "draft": {**CASCADE["nodes"]["draft"], "system": "Be brief."}}})
    slm = KeyedChatModel(replies={"2\\+2": {"content": "4", "confidence": 0.9}}, default={"content": "7", "confidence": 0.4})
    llm = KeyedChatModel(replies={"2\\+2": "4", "3\\+3": "6"}, default="11")
    return EvalFlow("cascade", spec, models={"slm": slm, "llm": llm})


def test_dataset_distillation_writes_valid_chat_jsonl(tmp_path: Path) -> None:
    records, stats = distill_dataset(flow(), ITEMS, cache=tmp_path / "c.db", with_meta=True)
    out = tmp_path / "sft.jsonl"
    assert write_sft(records, out) == 3 and validate_sft(out) == 3
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: What is 2+2?"},  # the SLM's prompt format
        {"role": "assistant", "content": "4"},
    ]
    assert first["meta"]["id"] == "a" and first["meta"]["source"] == "eval"
    assert stats.written == 3


def test_only_where_the_slm_was_wrong_and_teacher_right(tmp_path: Path) -> None:
    records, stats = distill_dataset(
        flow(), ITEMS, scorer="exact", only_wrong=True, require_correct=True, cache=tmp_path / "c.db"
    )
    assert [r["messages"][-1]["content"] for r in records] == ["6"]  # b: SLM wrong, LLM right
    assert stats.skipped == {"slm already right": 1, "teacher wrong": 1}
    assert "meta" not in records[0]


def test_filters_need_gold(tmp_path: Path) -> None:
    with pytest.raises(TandemError, match="need gold answers"):
        distill_dataset(flow(), [EvalItem("x", "hi", "")], only_wrong=True, cache=tmp_path / "c.db")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("not json", "not JSON"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "at least 2"),
        ('{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}', "needs a role"),
        ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]}', "empty content"),
        ('{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}', "alternate"),
    ],
)
def test_validate_rejects_bad_records(tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(TandemError, match=fragment):
        validate_sft(path)


async def _traced_runs(path: Path, capture: bool) -> None:
    from tandemlm.telemetry import enable_tracing

    handle = enable_tracing(store=path)
    try:
        compiled = compile_flow("cascade", models={
            "slm": ScriptedChatModel(replies=[{"content": "maybe 5", "confidence": 0.3}, {"content": "9", "confidence": 0.99}]),
            "llm": ScriptedChatModel(replies=["4"]),
        })
        await compiled.arun("What is 2+2?", capture_content=capture)  # escalated
        await compiled.arun("What is 4+5?", capture_content=capture)  # the SLM answers
    finally:
        handle.close()


def test_escalations_from_traces(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    asyncio.run(_traced_runs(db, capture=True))
    records, stats = distill_traces(db, with_meta=True)
    assert len(records) == 1 and stats.skipped == {"no escalation": 1}
    messages = records[0]["messages"]
    assert messages[-1] == {"role": "assistant", "content": "4"}
    assert messages[-2]["role"] == "user" and "2+2" in messages[-2]["content"]
    assert records[0]["meta"]["source"] == "traces"
    out = tmp_path / "sft.jsonl"
    write_sft(records, out)
    assert validate_sft(out) == 1
    assert len(distill_traces(db, flow="other")[0]) == 0


def test_traces_without_content_are_skipped_and_bad_stores_rejected(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    asyncio.run(_traced_runs(db, capture=False))
    records, stats = distill_traces(db)
    assert records == [] and stats.skipped.get("no captured content") == 1
    with pytest.raises(TandemError, match="not found"):
        distill_traces(tmp_path / "missing.db")
    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE x (a)").connection.commit()
    with pytest.raises(TandemError, match="not a tandem trace store"):
        distill_traces(tmp_path / "empty.db")
