"""Compile-time checks: token-level nodes need two embedded models with one vocabulary."""

from __future__ import annotations

from typing import Any

import pytest

from tandemlm import compile_flow, load_flow
from tandemlm.errors import ModelUnavailableError, SpecError
from tandemlm.models.fakes import ScriptedChatModel


def flow(node_type: str, slm: dict[str, Any], llm: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "models": {"slm": slm, "llm": llm},
        "nodes": {"answer": {"type": node_type, "slm": "slm", "llm": "llm", **params}},
        "entry": "answer",
        "edges": [{"from": "answer", "to": "end"}],
    }


QWEN_S = {"provider": "llamacpp", "model": "qwen2.5-coder-0.5b"}
QWEN_L = {"provider": "llamacpp", "model": "qwen2.5-coder-1.5b"}
SMOL = {"provider": "llamacpp", "model": "smollm2-135m"}
OLLAMA = {"provider": "ollama", "model": "qwen2.5-coder:1.5b"}


@pytest.mark.parametrize("node_type", ["speculate", "token_route"])
def test_presets_and_matching_pair_compile(node_type: str) -> None:
    compile_flow(node_type)  # the preset: nothing loads at compile time
    compile_flow(flow(node_type, QWEN_S, QWEN_L))


@pytest.mark.parametrize("node_type", ["speculate", "token_route"])
def test_ollama_model_fails_at_compile(node_type: str) -> None:
    with pytest.raises(SpecError) as err:
        compile_flow(flow(node_type, QWEN_S, OLLAMA))
    assert err.value.path == "nodes.answer.llm"
    assert "Ollama" in err.value.message and "provider: llamacpp" in err.value.message


@pytest.mark.parametrize("node_type", ["speculate", "token_route"])
def test_auto_provider_fails_at_compile(node_type: str) -> None:
    with pytest.raises(SpecError, match=r"nodes\.answer\.slm: .*'auto'"):
        compile_flow(flow(node_type, {"role": "slm"}, QWEN_L))


@pytest.mark.parametrize("node_type", ["speculate", "token_route"])
def test_mismatched_vocabularies_fail_at_compile(node_type: str) -> None:
    with pytest.raises(SpecError) as err:
        compile_flow(flow(node_type, SMOL, QWEN_L))
    assert err.value.path.startswith("nodes.answer.")
    assert "different vocabularies" in err.value.message
    assert "smollm2" in err.value.message and "qwen2.5" in err.value.message


def test_bad_draft_lengths_fail_at_compile() -> None:
    with pytest.raises(SpecError, match="k_min <= k <= k_max"):
        compile_flow(flow("speculate", QWEN_S, QWEN_L, k=9, k_max=8))
    with pytest.raises(SpecError, match="draft"):
        compile_flow(flow("speculate", QWEN_S, QWEN_L, draft="ngram"))


def test_presets_describe_their_models() -> None:
    spec = load_flow("speculate")
    assert spec.nodes["answer"].type == "speculate"
    assert {m.provider for m in spec.models.values()} == {"llamacpp"}


async def test_scripted_override_fails_at_run_with_a_clear_error() -> None:
    compiled = compile_flow(flow("speculate", QWEN_S, QWEN_L),
                            models={"llm": ScriptedChatModel(replies=["x"])})
    with pytest.raises(ModelUnavailableError, match="ChatLlamaCpp"):
        await compiled.arun("hi")
