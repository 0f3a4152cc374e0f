"""``tandem escalations replay`` goes through the recorder: a traced, counted model call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from metric_helpers import metric_points

from tandemlm.escalations import REPLAY_NODE, EscalationQueue, replay
from tandemlm.models.fakes import ScriptedChatModel
from tandemlm.telemetry import attributes as A


def queued(tmp_path: Path) -> tuple[EscalationQueue, str]:
    queue = EscalationQueue(tmp_path / "esc.sqlite")
    item = queue.add(flow="cascade", source="cascade", model="llm", question="What is 2+2?",
                     messages=[{"type": "human", "content": "What is 2+2?"}], reason="down")
    return queue, item


def _llm_calls(reader: Any) -> float:
    return sum(p.value for p in metric_points(reader).get("tandem.model.calls", [])
               if p.attributes["tandem.flow"] == "cascade" and p.attributes["tandem.model"] == "llm")


async def test_replay_records_a_chat_span_usage_and_metrics(tmp_path: Path, spans: Any, reader: Any) -> None:
    calls_before = _llm_calls(reader)
    queue, item = queued(tmp_path)
    models = {"slm": ScriptedChatModel(replies=[]), "llm": ScriptedChatModel(replies=["four"])}
    [done] = await replay(queue, models=models)
    assert (done["status"], done["answer"], done["model"]) == ("done", "four", "llm")
    assert done["usage"]["llm"]["calls"] == 1 and done["usage"]["llm"]["output_tokens"] > 0

    finished = spans.get_finished_spans()
    [root] = [s for s in finished if s.parent is None]
    [chat] = [s for s in finished if s.name.startswith("chat ")]
    assert root.name == "escalation_replay cascade" and chat.parent.span_id == root.context.span_id
    assert root.attributes[A.ESCALATION_ID] == item
    assert root.attributes[A.RUN_ID] == done["run_id"]
    assert root.attributes[A.RUN_STATUS] == "ok" and root.attributes[A.RUN_LLM_CALLED] is True
    assert root.attributes[A.RUN_ANSWERED_BY] == "llm"
    assert root.attributes[A.RUN_OUTPUT_TOKENS] == done["usage"]["llm"]["output_tokens"]
    attrs = chat.attributes
    assert attrs[A.GEN_AI_OPERATION] == "chat" and attrs[A.NODE] == REPLAY_NODE
    assert attrs[A.MODEL] == "llm" and attrs[A.FLOW] == "cascade"
    assert attrs[A.GEN_AI_INPUT_TOKENS] > 0 and attrs[A.GEN_AI_OUTPUT_TOKENS] > 0
    assert _llm_calls(reader) - calls_before == 1  # the real meter provider counted the call
    assert queue.list("done")[0]["answer"] == "four"


async def test_replay_failure_stays_pending_with_an_error_span(tmp_path: Path, spans: Any) -> None:
    queue, item = queued(tmp_path)
    models = {"slm": ScriptedChatModel(replies=[]),
              "llm": ScriptedChatModel(replies=[{"error": "still down"}])}
    [left] = await replay(queue, models=models)
    assert left["status"] == "pending" and "still down" in left["error"]
    [root] = [s for s in spans.get_finished_spans() if s.parent is None]
    assert root.attributes[A.RUN_STATUS] == "error"
    assert root.attributes[A.RUN_ERROR_NODE] == REPLAY_NODE
    assert [i["id"] for i in queue.list("pending")] == [item]


@pytest.mark.slow
def test_cli_replay_is_in_the_trace_store(tmp_path: Path, ollama_test_server: Any) -> None:
    """``tandem escalations replay`` against an Ollama-protocol server, then
    ``tandem traces show RUN --json``: the replayed call's ``chat`` span with its usage."""
    import json
    import os
    import subprocess
    import sys

    import yaml

    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({
        "name": "remote",
        "models": {"llm": {"provider": "ollama", "model": "tiny", "host": ollama_test_server.url,
                           "role": "llm"}},
        "nodes": {"a": {"type": "generate", "model": "llm"}},
        "entry": "a",
        "edges": [{"from": "a", "to": "end"}],
    }))
    queue = EscalationQueue(tmp_path / "esc.sqlite")
    queue.add(flow="remote", source=str(flow), model="llm", question="Hi?",
              messages=[{"type": "human", "content": "Hi?"}], reason="down")
    env = {**os.environ, "TANDEM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("TANDEM_TRACING", None)

    def tandem(*args: str) -> Any:
        proc = subprocess.run([sys.executable, "-m", "tandemlm.cli", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    [done] = tandem("escalations", "replay", "--queue", str(tmp_path / "esc.sqlite"), "--json")
    assert done["status"] == "done" and done["answer"] == "Hello from the test server."
    detail = tandem("traces", "show", done["run_id"], "--json")
    assert detail["run"]["flow"] == "remote" and detail["run"]["status"] == "ok"
    [chat] = [s for s in detail["spans"] if s["name"].startswith("chat ")]
    attrs = chat["attributes"]
    assert attrs[A.NODE] == REPLAY_NODE and attrs[A.MODEL] == "llm"
    assert attrs[A.GEN_AI_INPUT_TOKENS] > 0 and attrs[A.GEN_AI_OUTPUT_TOKENS] > 0
