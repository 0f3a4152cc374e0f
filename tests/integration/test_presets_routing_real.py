"""One real run per routing preset on the embedded SmolLM2 (structure, not wording)."""

from __future__ import annotations

import socket

import pytest

from tandemlm import compile_flow
from tandemlm.flows.loader import load_flow
from tandemlm.models.llamacpp import ChatLlamaCpp
from tandemlm.nodes.fallback import reset_breakers

pytestmark = pytest.mark.real


def smol() -> dict:
    return {name: ChatLlamaCpp(model="smollm2-135m", max_tokens=24) for name in ("slm", "llm")}


async def test_route_real() -> None:
    result = await compile_flow("route", models=smol()).arun("How many legs do 3 cats have in total?")
    assert result.path == ["inspect", "pick", "large"] and result.answered_by == "llm" and result.answer


async def test_fusion_real() -> None:
    result = await compile_flow("fusion", models=smol()).arun("What is 2 + 2?")
    assert result.path[-1] == "fuse" and result.answer
    assert result.decisions[-1]["router"] == "fuse:weighted"
    assert result.usage["slm"]["calls"] == 2 and result.usage["llm"]["calls"] == 1


async def test_cascade3_real() -> None:
    models = {**smol(), "mid": ChatLlamaCpp(model="smollm2-135m", max_tokens=24)}
    result = await compile_flow("cascade3", models=models).arun("Name a primary colour.")
    assert result.path[:2] == ["draft", "gate1"] and result.answer
    assert result.answered_by in ("slm", "mid", "llm")


async def test_resilient_real_llm_down(tmp_path) -> None:
    reset_breakers()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = load_flow("resilient").to_dict()
    spec["models"]["llm"] = {"provider": "ollama", "model": "tiny", "host": f"http://127.0.0.1:{port}", "timeout": 2}
    spec["nodes"]["answer"]["queue"] = str(tmp_path / "q.sqlite")
    slm = ChatLlamaCpp(model="smollm2-135m", max_tokens=24)
    result = await compile_flow(spec, models={"slm": slm}).arun("Say hello.")
    assert result.degraded and result.answered_by == "slm" and result.answer
    assert result.vars["escalation_id"]
