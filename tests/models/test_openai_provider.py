"""The ``openai`` provider against a real OpenAI-compatible server: a second ``tandem serve``
(uvicorn on a free loopback port) whose flow runs keyed fake models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from tandemlm.commands._common import apply_model_overrides
from tandemlm.errors import ModelUnavailableError, SpecError
from tandemlm.flows import compile_flow, load_flow
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.models.openai_chat import (
    TandemChatOpenAI,
    _with_confidence,
    check_server,
    make_openai_chat,
)
from tandemlm.models.pool import ModelPool
from tandemlm.models.spec import ModelSpec
from tandemlm.service import ServerThread, create_app
from tandemlm.service.server import free_port
from tandemlm.telemetry import attributes as A

REMOTE_ANSWER = "The capital of Australia is Canberra."


def remote_flow(name: str) -> dict[str, Any]:
    """The 'remote LLM': one generate node on a keyed model, served as ``tandem/<name>``."""
    return {
        "name": name,
        "models": {"big": {"provider": "keyed", "role": "llm", "replies": {".": REMOTE_ANSWER}}},
        "nodes": {"answer": {"type": "generate", "model": "big", "prompt": "{input}"}},
        "entry": "answer",
        "edges": [["answer", "end"]],
    }


@pytest.fixture
def remote() -> Iterator[ServerThread]:
    """A tandem service that answers as ``gpt-4o-mini``: the edge_cloud preset's LLM, so the
    preset runs unchanged against it (a flow's bare name is accepted as its model id)."""
    with ServerThread(create_app(compile_flow(remote_flow("gpt-4o-mini")))) as srv:
        yield srv


@pytest.fixture
def openai_env(remote: ServerThread, monkeypatch: pytest.MonkeyPatch) -> ServerThread:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{remote.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    return remote


def unsure_slm() -> KeyedChatModel:
    return KeyedChatModel(replies={".": {"content": "Sydney, probably.", "confidence": 0.1}})


# -- the spec ------------------------------------------------------------------------------


def test_openai_models_are_remote_and_validated() -> None:
    spec = ModelSpec(provider="openai", model="gpt-4o-mini")
    assert spec.local is False and "local" not in spec.model_fields_set  # the provider's default
    assert ModelSpec(provider="openai", model="m", local=True).local is True  # a server on this device
    with pytest.raises(ValueError, match="provider 'openai' needs 'model'"):
        ModelSpec(provider="openai")
    with pytest.raises(ValueError, match=r"options.base_url: .*http:// or https://"):
        ModelSpec(provider="openai", model="m", options={"base_url": "api.example.com"})
    with pytest.raises(ValueError, match="options.api_key_env: .*environment variable"):
        ModelSpec(provider="openai", model="m", options={"api_key_env": "sk-123 456"})
    with pytest.raises(ValueError, match="options.organisation"):
        ModelSpec(provider="openai", model="m", options={"organisation": "x"})
    flow = load_flow("edge_cloud")
    assert flow.models["llm"].provider == "openai" and flow.models["llm"].local is False


def test_missing_api_key_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    spec = ModelSpec(provider="openai", model="m", options={"api_key_env": "MY_KEY"})
    with pytest.raises(ModelUnavailableError, match="needs an API key: set MY_KEY"):
        make_openai_chat(spec)
    with pytest.raises(ModelUnavailableError, match="set MY_KEY"):
        check_server(spec)
    keyless = ModelSpec(provider="openai", model="m", options={"api_key_env": None,
                                                                "base_url": "http://127.0.0.1:9/v1"})
    chat = make_openai_chat(keyless)
    assert isinstance(chat, TandemChatOpenAI) and chat.openai_api_base == "http://127.0.0.1:9/v1"


def test_model_override_switches_to_the_openai_provider() -> None:
    spec = apply_model_overrides(load_flow("cascade"), ["llm=openai:gpt-4o-mini"])
    llm = spec.models["llm"]
    assert (llm.provider, llm.model, llm.local, llm.role) == ("openai", "gpt-4o-mini", False, "llm")
    assert llm.params.max_tokens == 512  # the preset's own settings stay
    back = apply_model_overrides(load_flow("edge_cloud"), ["llm=ollama:qwen2.5:1.5b"])
    assert back.models["llm"].provider == "ollama" and back.models["llm"].options == {}
    with pytest.raises(SpecError, match="needs 'model'"):
        apply_model_overrides(load_flow("cascade"), ["llm=openai:"])


# -- against a real server -----------------------------------------------------------------


async def test_edge_cloud_preset_escalates_to_the_remote_server(openai_env: ServerThread, spans: Any) -> None:
    flow = compile_flow("edge_cloud", models={"slm": unsure_slm()})
    result = await flow.arun("What is the capital of Australia?")
    assert result.path == ["draft", "gate", "escalate"]
    assert result.answer == REMOTE_ANSWER and result.answered_by == "llm"
    assert result.llm_called and result.large_models == ["llm"]
    assert result.models["llm"] == "openai:gpt-4o-mini"
    llm = result.usage["llm"]  # the remote server's usage (its keyed model counts words)
    assert llm["calls"] == 1 and llm["output_tokens"] == len(REMOTE_ANSWER.split())
    assert llm["input_tokens"] > 20  # system prompt, question and the SLM's draft
    assert llm["cost"] == pytest.approx((llm["input_tokens"] * 0.00015 + llm["output_tokens"] * 0.0006) / 1000)

    (chat,) = [s for s in spans.get_finished_spans()
               if s.name.startswith("chat ") and s.attributes.get(A.FLOW) == "edge_cloud"
               and s.attributes.get(A.NODE) == "escalate"]
    attrs = chat.attributes
    assert attrs["gen_ai.provider.name"] == "openai" and attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["tandem.model.local"] is False
    assert attrs["gen_ai.usage.output_tokens"] == llm["output_tokens"]
    (hop,) = [e.attributes for e in chat.events if e.name == "tandem.hop"]
    assert hop["tandem.hop.field"] == "draft" and hop["tandem.hop.from_model"] == "slm"
    assert hop["tandem.hop.from_local"] is True and hop["tandem.hop.to_local"] is False
    assert hop["tandem.hop.local_to_remote"] is True
    served = [s for s in spans.get_finished_spans() if s.name == "invoke_workflow gpt-4o-mini"]
    assert len(served) == 1  # the remote service ran the request as a flow of its own


async def test_confident_slm_never_calls_the_remote_server(openai_env: ServerThread) -> None:
    sure = KeyedChatModel(replies={".": {"content": "Canberra.", "confidence": 0.97}})
    flow = compile_flow("edge_cloud", models={"slm": sure})
    result = await flow.arun("What is the capital of Australia?")
    assert result.path == ["draft", "gate", "accept"] and result.answer == "Canberra."
    assert not result.llm_called and "llm" not in result.usage


async def test_any_preset_reaches_the_remote_llm_by_environment(openai_env: ServerThread,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """TANDEM_LLM=openai:MODEL makes the role 'llm' of every `provider: auto` preset remote."""
    monkeypatch.setenv("TANDEM_LLM", "openai:gpt-4o-mini")
    flow = compile_flow("cascade", models={"slm": unsure_slm()})
    assert flow.models.spec("llm").provider == "openai" and flow.models.spec("llm").local is False
    result = await flow.arun("What is the capital of Australia?")
    assert result.answer == REMOTE_ANSWER and result.models["llm"] == "openai:gpt-4o-mini"
    assert result.large_models == ["llm"]


def test_served_edge_cloud_calls_a_second_service(openai_env: ServerThread) -> None:
    """client -> tandem serve (edge_cloud) -> tandem serve (the remote LLM), streaming both hops."""
    flow = compile_flow("edge_cloud", models={"slm": unsure_slm()})
    with ServerThread(create_app(flow)) as edge:
        client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="x", max_retries=0)
        chunks = list(client.chat.completions.create(
            model="tandem/edge_cloud", messages=[{"role": "user", "content": "Capital of Australia?"}],
            stream=True, stream_options={"include_usage": True}))
        done = client.chat.completions.create(
            model="tandem/edge_cloud", messages=[{"role": "user", "content": "Capital of Australia?"}])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REMOTE_ANSWER == done.choices[0].message.content
    run = next(c for c in chunks if c.choices and c.choices[0].finish_reason).tandem  # type: ignore[attr-defined]
    assert run["path"] == ["draft", "gate", "escalate"] and run["large_models"] == ["llm"]
    # the remote hop streamed too: its usage came back in the stream's usage chunk
    assert run["usage"]["llm"]["output_tokens"] == len(REMOTE_ANSWER.split())
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == (
        run["usage"]["llm"]["output_tokens"] + run["usage"]["slm"]["output_tokens"])
    assert done.tandem["usage"]["llm"]["calls"] == 1  # type: ignore[attr-defined]


def test_preflight_against_the_server(openai_env: ServerThread, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    pool = ModelPool({"llm": ModelSpec(provider="openai", model="tandem/gpt-4o-mini")})
    pool.preflight()  # reachable, key set, model listed
    ModelPool({"llm": ModelSpec(provider="openai", model="gpt-5")}).preflight()
    assert "does not list 'gpt-5'" in caplog.text  # a gateway may still route it: a warning
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ModelUnavailableError, match="not reachable"):
        ModelPool({"llm": ModelSpec(provider="openai", model="m")}).preflight()


async def test_call_errors_are_model_unavailable(openai_env: ServerThread,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = make_openai_chat(ModelSpec(provider="openai", model="gpt-5", options={"max_retries": 0}))
    with pytest.raises(ModelUnavailableError, match="does not serve model 'gpt-5'"):
        await unknown.ainvoke("hi")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    down = make_openai_chat(ModelSpec(provider="openai", model="m", options={"max_retries": 0}))
    with pytest.raises(ModelUnavailableError, match="not reachable"):
        await down.ainvoke("hi")
    spec = load_flow("edge_cloud")
    llm = spec.models["llm"].model_copy(update={"options": {**spec.models["llm"].options, "max_retries": 0}})
    flow = compile_flow(spec.model_copy(update={"models": {**spec.models, "llm": llm}}),
                        models={"slm": unsure_slm()})
    with pytest.raises(ModelUnavailableError, match="not reachable"):
        await flow.arun("Capital of Australia?")  # a run fails with the same typed error


def test_token_logprobs_become_confidence() -> None:
    logprobs = {"content": [{"token": "Can", "logprob": -0.1}, {"token": "berra", "logprob": -0.3}]}
    message = AIMessage(content="Canberra")
    result = _with_confidence(ChatResult(generations=[
        ChatGeneration(message=message, generation_info={"logprobs": logprobs})]))
    confidence = result.generations[0].message.response_metadata["confidence"]
    assert confidence["tokens"] == 2
    assert confidence["mean_prob"] == pytest.approx((0.904837 + 0.740818) / 2, abs=1e-5)
    assert confidence["min_prob"] == pytest.approx(0.740818, abs=1e-5)
