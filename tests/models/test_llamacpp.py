"""ChatLlamaCpp against the real SmolLM2-135M model (fast), plus error paths."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage

from tandemlm.errors import ModelUnavailableError
from tandemlm.models.confidence import CONFIDENCE_KEY
from tandemlm.models.llamacpp import ChatLlamaCpp, _to_chat, get_llama

pytestmark = pytest.mark.real

PROMPT = "Name three colours of the rainbow."
N_CTX = 1024


@pytest.fixture(scope="module", autouse=True)
def _offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TANDEM_CACHE_DIR", str(tmp_path_factory.mktemp("models")))
        yield


@pytest.fixture(scope="module")
def chat() -> ChatLlamaCpp:
    # One thread: on a shared 2-core machine two llama.cpp threads spin on each other
    # and ran 5x slower than one.
    return ChatLlamaCpp(model="smollm2-135m", n_ctx=N_CTX, n_threads=1, max_tokens=24)


@pytest.fixture(scope="module")
def greedy(chat: ChatLlamaCpp) -> AIMessage:
    """The greedy answer to PROMPT, with token confidence."""
    reply = chat.invoke(PROMPT, logprobs=True)
    assert isinstance(reply, AIMessage)
    return reply


def test_invoke_answers_with_usage_and_metadata(chat: ChatLlamaCpp) -> None:
    reply = chat.invoke([SystemMessage("Answer briefly."), HumanMessage(PROMPT)])
    assert isinstance(reply.content, str) and reply.content.strip()
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 24
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    meta = reply.response_metadata
    assert meta["model_name"] == "smollm2-135m"
    assert meta["finish_reason"] in ("stop", "length")
    assert CONFIDENCE_KEY not in meta and "token_probs" not in meta  # not asked for


def test_confidence_covers_every_output_token(greedy: AIMessage) -> None:
    meta, usage = greedy.response_metadata, greedy.usage_metadata
    assert usage is not None
    confidence, probs = meta[CONFIDENCE_KEY], meta["token_probs"]
    assert confidence["tokens"] == usage["output_tokens"] == len(probs)
    assert all(0.0 < p <= 1.0 for p in probs)
    assert 0.0 < confidence["min_prob"] <= confidence["mean_prob"] <= 1.0
    assert confidence["mean_entropy"] >= 0.0


def test_greedy_is_reproducible_and_logprobs_do_not_change_it(
    chat: ChatLlamaCpp, greedy: AIMessage
) -> None:
    assert chat.invoke(PROMPT).content == greedy.content
    assert chat.invoke(PROMPT, logprobs=True).response_metadata == greedy.response_metadata


def test_logprobs_field_turns_confidence_on_for_every_call(chat: ChatLlamaCpp) -> None:
    always = chat.model_copy(update={"logprobs": True, "max_tokens": 4})
    assert always.invoke(PROMPT).response_metadata[CONFIDENCE_KEY]["tokens"] == 4


def test_stream_matches_invoke(chat: ChatLlamaCpp, greedy: AIMessage) -> None:
    chunks = list(chat.stream(PROMPT, logprobs=True))
    texts = [c.content for c in chunks if c.content]
    assert len(texts) >= 3
    assert "".join(texts) == greedy.content
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    assert total.usage_metadata == greedy.usage_metadata
    assert total.response_metadata[CONFIDENCE_KEY] == greedy.response_metadata[CONFIDENCE_KEY]
    assert total.response_metadata["finish_reason"] == greedy.response_metadata["finish_reason"]


async def test_astream_matches_invoke(chat: ChatLlamaCpp, greedy: AIMessage) -> None:
    chunks = [chunk async for chunk in chat.astream(PROMPT)]
    assert sum(1 for c in chunks if c.content) >= 3
    assert "".join(str(c.content) for c in chunks) == greedy.content
    assert any(c.usage_metadata == greedy.usage_metadata for c in chunks)


async def test_astream_stops_early_and_frees_the_model(chat: ChatLlamaCpp) -> None:
    stream = chat.astream(PROMPT)
    async for _chunk in stream:
        break
    await stream.aclose()
    assert (await chat.ainvoke("Hi", max_tokens=2)).usage_metadata is not None


async def test_concurrent_ainvoke_calls_serialise(chat: ChatLlamaCpp) -> None:
    prompts = ["What is 2 + 2?", "Say hello.", "Name a fruit."]
    alone = [(await chat.ainvoke(p, max_tokens=12)).content for p in prompts]
    together = await asyncio.gather(*(chat.ainvoke(p, max_tokens=12) for p in prompts))
    assert [r.content for r in together] == alone  # no interleaving corrupted a context


def test_one_load_and_lock_per_file_and_context(chat: ChatLlamaCpp) -> None:
    chat.invoke("Hi", max_tokens=1)
    llama, lock = get_llama("smollm2-135m", N_CTX)  # n_threads: the first load's
    assert get_llama("smollm2-135m", N_CTX) == (llama, lock)
    assert isinstance(lock, type(threading.Lock()))
    assert llama.n_ctx() == N_CTX


def test_per_call_max_tokens_and_stop(chat: ChatLlamaCpp, greedy: AIMessage) -> None:
    short = chat.invoke(PROMPT, max_tokens=3, logprobs=True)
    assert short.usage_metadata is not None and short.usage_metadata["output_tokens"] == 3
    assert short.response_metadata["finish_reason"] == "length"
    text = str(greedy.content)
    word = text.split()[len(text.split()) // 2]
    stopped = chat.invoke(PROMPT, stop=[word], logprobs=True)
    assert stopped.content == text[: text.index(word)]
    assert stopped.response_metadata["finish_reason"] == "stop"
    usage = stopped.usage_metadata
    assert usage is not None
    assert stopped.response_metadata[CONFIDENCE_KEY]["tokens"] == usage["output_tokens"]


def test_sampling_is_seeded(chat: ChatLlamaCpp) -> None:
    first = chat.invoke(PROMPT, temperature=0.9, seed=7, max_tokens=12)
    again = chat.invoke(PROMPT, temperature=0.9, seed=7, max_tokens=12)
    assert first.content == again.content


def test_unknown_call_option_is_rejected(chat: ChatLlamaCpp) -> None:
    with pytest.raises(TypeError, match="unsupported call options \\['top_k'\\]"):
        chat.invoke(PROMPT, top_k=5)


def test_message_mapping() -> None:
    messages = [SystemMessage("s"), HumanMessage([{"type": "text", "text": "h"}]), AIMessage("a")]
    assert _to_chat(messages) == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "h"},
        {"role": "assistant", "content": "a"},
    ]


def test_identity() -> None:
    model = ChatLlamaCpp(model="smollm2-135m")
    assert model._llm_type == "llamacpp"
    assert model._identifying_params["model"] == "smollm2-135m"


# llama-cpp-python 0.3.16's LlamaModel.__del__ fails on a half-loaded file (unraisable).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unknown_model_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="unknown embedded model 'nope'"):
        ChatLlamaCpp(model="nope").invoke("Hi")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelUnavailableError, match="is not a GGUF file"):
        ChatLlamaCpp(model=str(bad)).invoke("Hi")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ModelUnavailableError, match="cannot load embedded model"):
        ChatLlamaCpp(model=str(truncated), n_threads=1).invoke("Hi")


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(ModelUnavailableError, match=r"pip install 'tandemlm\[embedded\]'"):
        get_llama("smollm2-135m", 512)  # a context size no other test loaded


def test_import_does_not_load_llama_cpp() -> None:
    code = (
        "import sys, tandemlm.models.llamacpp\n"
        "assert 'llama_cpp' not in sys.modules, 'llama_cpp imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
