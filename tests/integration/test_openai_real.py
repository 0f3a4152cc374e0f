"""The OpenAI-compatible API with a real embedded model (SmolLM2-135M): token streaming
through ``tandem serve``, and ``tandem run edge_cloud`` with its remote LLM on a second
service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from tandemlm.flows import compile_flow
from tandemlm.service import ServerThread, create_app

pytestmark = pytest.mark.real

REMOTE_ANSWER = "Tungsten boils at about 5828 K."


def smol_flow() -> dict[str, object]:
    return {
        "name": "smol",
        "models": {"slm": {"provider": "llamacpp", "model": "smollm2-135m", "role": "slm",
                           "context_window": 1024, "params": {"max_tokens": 24}}},
        "nodes": {"answer": {"type": "generate", "model": "slm", "prompt": "{input}"}},
        "entry": "answer",
        "edges": [["answer", "end"]],
    }


def test_embedded_model_tokens_stream_through_the_openai_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_THREADS", "1")
    question = [{"role": "user", "content": "Name three colors."}]
    with ServerThread(create_app(compile_flow(smol_flow()))) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0, timeout=120)
        chunks = list(client.chat.completions.create(
            model="tandem/smol", messages=question, stream=True, stream_options={"include_usage": True}))
        whole = client.chat.completions.create(model="tandem/smol", messages=question)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # tokens arrived one by one, while the model generated them
    assert "".join(pieces) == whole.choices[0].message.content  # greedy: the same answer
    assert whole.choices[0].message.content
    usage = chunks[-1].usage
    assert usage is not None and 0 < usage.completion_tokens <= 24
    assert usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finish == ("length" if usage.completion_tokens == 24 else "stop")


def test_tandem_run_edge_cloud_with_remote_llm_on_a_second_service(tmp_path: Path) -> None:
    """The preset as a user runs it: only OPENAI_BASE_URL and OPENAI_API_KEY are set (the SLM
    is the small embedded SmolLM2 for speed); the 'remote' LLM is a service named gpt-4o-mini."""
    remote = {
        "name": "gpt-4o-mini",
        "models": {"big": {"provider": "keyed", "role": "llm", "replies": {".": REMOTE_ANSWER}}},
        "nodes": {"answer": {"type": "generate", "model": "big", "prompt": "{input}"}},
        "entry": "answer",
        "edges": [["answer", "end"]],
    }
    with ServerThread(create_app(compile_flow(remote))) as srv:
        env = {**os.environ, "OPENAI_BASE_URL": f"{srv.url}/v1", "OPENAI_API_KEY": "test-key",
               "TANDEM_THREADS": "1", "TANDEM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
        run = subprocess.run(
            [sys.executable, "-m", "tandemlm.cli", "run", "edge_cloud",
             "What is the boiling point of tungsten in Kelvin?",
             "--model", "slm=smollm2-135m", "--json"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=False)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    # SmolLM2 is unsure here (mean token probability ~0.59, below the preset's 0.8): escalated
    assert result["path"] == ["draft", "gate", "escalate"], result["decisions"]
    assert result["decisions"][0]["choice"] == "large"
    assert result["answer"] == REMOTE_ANSWER and result["answered_by"] == "llm"
    assert result["llm_called"] is True and result["models"]["llm"] == "openai:gpt-4o-mini"
    assert result["usage"]["llm"]["output_tokens"] == len(REMOTE_ANSWER.split())
    assert result["usage"]["slm"]["output_tokens"] > 0
