"""Token-level nodes on real embedded models.

The greedy-equivalence check needs the Qwen2.5-Coder pair (the only embedded pair with
one vocabulary and different sizes); it stays short (3 prompts, 12 tokens). Flow tests
use SmolLM2-135M as both models for speed.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from tandemlm import compile_flow, load_flow
from tandemlm.decoding import (
    AdaptiveDraftLength,
    Decoder,
    ModelDrafter,
    PromptLookupDrafter,
    autoregressive,
    chat_prompt_tokens,
    speculative,
)
from tandemlm.models.llamacpp import ChatLlamaCpp, get_llama

pytestmark = pytest.mark.real

PROMPTS = [
    "Write a Python function that reverses a string.",
    "What is the capital of Italy? One word.",
    "Complete: def add(a, b):",
]
N_TOKENS = 12


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_greedy_speculation_is_token_identical_to_the_llm_alone() -> None:
    big, big_lock = get_llama("qwen2.5-coder-1.5b", 4096)
    small, small_lock = get_llama("qwen2.5-coder-0.5b", 4096)
    target, draft = Decoder(big, "llm"), Decoder(small, "slm")
    chat = ChatLlamaCpp(model="qwen2.5-coder-1.5b", max_tokens=N_TOKENS)
    for text in PROMPTS:
        with big_lock, small_lock:
            prompt = chat_prompt_tokens(big, [{"role": "user", "content": text}])
            alone = autoregressive(target, prompt, max_tokens=N_TOKENS)
            spec = speculative(target, ModelDrafter(draft), prompt, max_tokens=N_TOKENS,
                               draft_length=AdaptiveDraftLength(k=3))
            lookup = speculative(target, PromptLookupDrafter(len(prompt)), prompt,
                                 max_tokens=N_TOKENS)
            spec_text = target.detokenize(spec.tokens, prompt)
        assert spec.tokens == alone.tokens, text
        assert lookup.tokens == alone.tokens, text
        assert spec.drafted > 0 and spec.rounds < N_TOKENS + 1
        # the same answer as the plain chat model (llama.cpp's own generation loop)
        reply = chat.invoke([HumanMessage(content=text)])
        assert spec_text.strip() == str(reply.content).strip(), text


def smol(max_tokens: int = 24) -> ChatLlamaCpp:
    return ChatLlamaCpp(model="smollm2-135m", max_tokens=max_tokens)


async def test_speculate_preset_on_embedded_model() -> None:
    flow = compile_flow("speculate", models={"slm": smol(), "llm": smol()})
    result = await flow.arun("Name three colors.")
    assert result.answer.strip() and result.answered_by == "llm"
    assert result.path == ["answer"]
    step = result.steps[0]
    meta_keys = {"tokens_drafted", "tokens_accepted", "acceptance_rate", "llm_token_share",
                 "tokens_per_second", "rounds", "mean_draft_length", "draft"}
    assert meta_keys <= set(step)
    # the same model drafting for itself: every draft is accepted
    assert step["tokens_accepted"] == step["tokens_drafted"] > 0
    assert step["acceptance_rate"] == 1.0 and step["rounds"] < step["output_tokens"]
    assert set(result.usage) == {"slm", "llm"}
    assert result.usage["slm"]["output_tokens"] == step["tokens_drafted"]
    assert result.usage["llm"]["output_tokens"] == step["output_tokens"] > 0
    assert result.usage["llm"]["calls"] == 1 and result.usage["llm"]["input_tokens"] > 0


async def test_speculate_prompt_lookup_needs_no_draft_model() -> None:
    data = load_flow("speculate").to_dict()
    data["nodes"]["answer"]["draft"] = "prompt_lookup"
    data["nodes"]["answer"]["prompt"] = "Repeat exactly: {input}"
    flow = compile_flow(data, models={"slm": smol(), "llm": smol()})
    result = await flow.arun("the quick brown fox jumps over the lazy dog")
    step = result.steps[0]
    assert step["draft"] == "prompt_lookup"
    assert set(result.usage) == {"llm"}  # no draft model ran
    assert step["tokens_accepted"] <= step["tokens_drafted"]


async def test_token_route_preset_on_embedded_model() -> None:
    for min_prob, share in ((0.0, 0.0), (1.0, 1.0)):
        data = load_flow("token_route").to_dict()
        data["nodes"]["answer"]["min_prob"] = min_prob
        flow = compile_flow(data, models={"slm": smol(16), "llm": smol(16)})
        result = await flow.arun("Name a fruit.")
        step = result.steps[0]
        assert result.path == ["answer"] and result.answer.strip()
        assert step["llm_token_share"] == share
        assert step["llm_tokens"] + step["slm_tokens"] == step["output_tokens"]
        assert result.answered_by == ("llm" if share else "slm")
        assert result.usage["llm"]["output_tokens"] == step["llm_tokens"]
