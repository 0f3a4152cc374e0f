"""The Ollama provider against a real HTTP server speaking Ollama's protocol.

The real ``ollama`` client and ``ChatOllama`` make every request here; only the server is
ours (tests/ollama_server.py). One test, marked ``ollama``, talks to a real Ollama when one
answers at OLLAMA_HOST.
"""

from __future__ import annotations

import json
import math
import os
import socket

import httpx
import ollama
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from ollama_server import (
    OllamaTestServer,
    Reply,
    deterministic_embedding,
    token_logprob,
    tokenize,
)

from tandemlm.errors import ConfigError, ModelUnavailableError, SpecError
from tandemlm.models.confidence import CONFIDENCE_KEY, summarize_logprobs
from tandemlm.models.ollama import (
    DEFAULT_HOST,
    TOKEN_PROBS_KEY,
    TandemChatOllama,
    check_health,
    list_models,
    make_ollama_chat,
    ollama_available,
    resolve_host,
)
from tandemlm.models.spec import GenerationParams, ModelSpec

QUESTION = [HumanMessage("What is the capital of France?")]


def _spec(srv: OllamaTestServer | None, model: str = "tiny", **kwargs: object) -> ModelSpec:
    host = srv.url if srv is not None else None
    return ModelSpec(provider="ollama", model=model, host=host, **kwargs)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _last_chat_body(srv: OllamaTestServer) -> dict[str, object]:
    return next(r.body for r in reversed(srv.requests) if r.path == "/api/chat")


# -- host resolution -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("example.com", "http://example.com:11434"),
        (":5000", "http://127.0.0.1:5000"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://example.com:8443/ollama/", "https://example.com:8443/ollama"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("  localhost:11434  ", "http://localhost:11434"),
    ],
)
def test_resolve_host_reads_ollama_host_like_the_cli(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", value)
    assert resolve_host(None) == expected
    assert resolve_host(value) == expected


def test_resolve_host_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert resolve_host(None) == DEFAULT_HOST
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.2:1234")
    assert resolve_host(None) == "http://10.0.0.2:1234"
    assert resolve_host("10.0.0.3") == "http://10.0.0.3:11434"  # an explicit host wins


@pytest.mark.parametrize("value", ["localhost:port", "ftp://example.com"])
def test_resolve_host_rejects_bad_addresses(value: str) -> None:
    with pytest.raises(ConfigError, match="Ollama host"):
        resolve_host(value)


# -- configuration -------------------------------------------------------------------------


def test_make_ollama_chat_maps_the_spec_onto_the_request(
    ollama_test_server: OllamaTestServer,
) -> None:
    params = GenerationParams(temperature=0.3, max_tokens=64, top_p=0.9, seed=7, stop=["END"])
    spec = _spec(ollama_test_server, params=params, context_window=2048, timeout=9.0)
    model = make_ollama_chat(spec)
    assert isinstance(model, TandemChatOllama)
    assert model.host == ollama_test_server.url

    model.invoke(QUESTION)

    body = _last_chat_body(ollama_test_server)
    assert body["model"] == "tiny"
    assert body["options"] == {
        "num_ctx": 2048,
        "num_predict": 64,
        "temperature": 0.3,
        "seed": 7,
        "stop": ["END"],
        "top_p": 0.9,
    }
    assert "logprobs" not in body
    assert model._async_client._client.timeout.read == 9.0


def test_make_ollama_chat_uses_ollama_host(
    monkeypatch: pytest.MonkeyPatch, ollama_test_server: OllamaTestServer
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama_test_server.host)  # host:port, no scheme
    reply = make_ollama_chat(_spec(None)).invoke(QUESTION)
    assert reply.content == "Hello from the test server."


def test_make_ollama_chat_needs_a_model() -> None:
    with pytest.raises(SpecError, match="model name"):
        make_ollama_chat(ModelSpec(provider="auto", role="slm"))


def test_call_time_stop_adds_to_the_spec_stop(ollama_test_server: OllamaTestServer) -> None:
    ollama_test_server.add_model("tiny", "One. Two END three")
    model = make_ollama_chat(_spec(ollama_test_server, params=GenerationParams(stop=["END"])))
    reply = model.invoke(QUESTION, stop=["."])
    assert _last_chat_body(ollama_test_server)["options"]["stop"] == ["END", "."]  # type: ignore[index]
    assert reply.content == "One"


# -- chat and streaming --------------------------------------------------------------------


async def test_chat_returns_the_answer_with_usage(ollama_test_server: OllamaTestServer) -> None:
    reply = await make_ollama_chat(_spec(ollama_test_server)).ainvoke(QUESTION)

    assert isinstance(reply, AIMessage)
    assert reply.content == "Hello from the test server."
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == 6  # the server counts words
    assert reply.usage_metadata["output_tokens"] == 5
    assert reply.response_metadata["model_name"] == "tiny"
    assert reply.response_metadata["done_reason"] == "stop"
    assert CONFIDENCE_KEY not in reply.response_metadata  # not asked for


async def test_streaming_chunks_concatenate_to_the_reply(
    ollama_test_server: OllamaTestServer,
) -> None:
    model = make_ollama_chat(_spec(ollama_test_server))
    chunks = [chunk async for chunk in model.astream(QUESTION)]

    texts = [c.content for c in chunks if c.content]
    assert len(texts) == 5
    assert "".join(texts) == "Hello from the test server."  # type: ignore[arg-type]
    assert ollama_test_server.requests[-1].body["stream"] is True


def test_num_predict_cuts_the_answer(ollama_test_server: OllamaTestServer) -> None:
    model = make_ollama_chat(_spec(ollama_test_server, params=GenerationParams(max_tokens=2)))
    reply = model.invoke(QUESTION)
    assert reply.content == "Hello from"
    assert reply.response_metadata["done_reason"] == "length"


# -- logprobs ------------------------------------------------------------------------------

SERVED = Reply.of("Paris is the capital.", [-0.05, -0.4, -0.1, -1.2])


async def test_logprobs_give_a_confidence_summary() -> None:
    with OllamaTestServer(models={"tiny": SERVED}) as srv:
        reply = await make_ollama_chat(_spec(srv)).ainvoke(QUESTION, logprobs=True)
        assert _last_chat_body(srv)["logprobs"] is True

    confidence = reply.response_metadata[CONFIDENCE_KEY]
    assert confidence == summarize_logprobs(SERVED.token_logprobs())
    assert 0.0 <= confidence["min_prob"] <= confidence["mean_prob"] <= 1.0
    assert confidence["min_prob"] == pytest.approx(math.exp(-1.2))
    assert confidence["tokens"] == 4
    assert reply.response_metadata[TOKEN_PROBS_KEY] == pytest.approx(
        [math.exp(lp) for lp in SERVED.token_logprobs()]
    )
    entries = reply.response_metadata["logprobs"]
    assert [e["token"] for e in entries] == list(SERVED.tokens)
    json.dumps(reply.response_metadata)  # plain data, safe for checkpoints


async def test_top_logprobs_add_an_entropy_estimate() -> None:
    with OllamaTestServer(models={"tiny": SERVED}) as srv:
        model = make_ollama_chat(_spec(srv))
        reply = await model.ainvoke(QUESTION, logprobs=True, top_logprobs=3)

    entries = reply.response_metadata["logprobs"]
    assert all(len(e["top_logprobs"]) == 3 for e in entries)
    expected = []
    for entry in entries:  # entropy of the listed alternatives plus the unlisted mass
        probs = [math.exp(t["logprob"]) for t in entry["top_logprobs"]]
        probs.append(1.0 - sum(probs))
        expected.append(-sum(p * math.log(p) for p in probs if p > 0))
    confidence = reply.response_metadata[CONFIDENCE_KEY]
    assert confidence["mean_entropy"] == pytest.approx(sum(expected) / len(expected))
    assert confidence["mean_entropy"] > 0


async def test_streamed_logprobs_end_in_a_confidence_chunk() -> None:
    text = "Hello from the test server."
    with OllamaTestServer(models={"tiny": text}) as srv:
        model = make_ollama_chat(_spec(srv))
        merged = None
        async for chunk in model.astream(QUESTION, logprobs=True):
            merged = chunk if merged is None else merged + chunk

    assert merged is not None and merged.content == text
    expected = summarize_logprobs([token_logprob(t) for t in tokenize(text)])
    assert merged.response_metadata[CONFIDENCE_KEY] == pytest.approx(expected)


def test_sync_invoke_with_logprobs_and_an_old_server_without_them(
    ollama_test_server: OllamaTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_ollama_chat(_spec(ollama_test_server))
    assert CONFIDENCE_KEY in model.invoke(QUESTION, logprobs=True).response_metadata

    # An Ollama older than 0.12.11 ignores `logprobs`: no summary, and a warning says why.
    ollama_test_server.add_model("old", lambda _messages: "no logprobs here")
    old = make_ollama_chat(_spec(ollama_test_server, model="old"))
    original = old._client._client.send

    def strip_logprobs(request: httpx.Request, **kwargs: object) -> httpx.Response:
        body = json.loads(request.content)
        body.pop("logprobs", None)
        request = httpx.Request(request.method, request.url, json=body)
        return original(request, **kwargs)  # type: ignore[arg-type]

    old._client._client.send = strip_logprobs  # type: ignore[method-assign]
    with caplog.at_level("WARNING"):
        reply = old.invoke(QUESTION, logprobs=True)
    assert reply.content == "no logprobs here"
    assert CONFIDENCE_KEY not in reply.response_metadata
    assert "0.12.11" in caplog.text


# -- failures ------------------------------------------------------------------------------


async def test_model_not_pulled_says_ollama_pull(ollama_test_server: OllamaTestServer) -> None:
    model = make_ollama_chat(_spec(ollama_test_server, model="qwen2.5:7b"))
    with pytest.raises(ModelUnavailableError, match=r"ollama pull qwen2\.5:7b") as info:
        await model.ainvoke(QUESTION)
    assert "model 'qwen2.5:7b' not found" in str(info.value)  # the server's own words
    with pytest.raises(ModelUnavailableError, match="ollama pull"):
        model.invoke(QUESTION)


async def test_server_down_says_ollama_serve() -> None:
    host = f"127.0.0.1:{_closed_port()}"
    model = make_ollama_chat(ModelSpec(provider="ollama", model="tiny", host=host))
    with pytest.raises(ModelUnavailableError, match="ollama serve") as info:
        await model.ainvoke(QUESTION)
    assert f"http://{host}" in str(info.value)
    with pytest.raises(ModelUnavailableError, match="ollama serve"):
        model.invoke(QUESTION, stream=False)  # the client's other code path


async def test_slow_server_times_out() -> None:
    with OllamaTestServer(models={"tiny": "slow answer"}, delay=0.5) as srv:
        model = make_ollama_chat(_spec(srv, timeout=0.1))
        with pytest.raises(ModelUnavailableError, match=r"did not answer within 0\.1 s"):
            await model.ainvoke(QUESTION)


@pytest.mark.parametrize("fail_after", [0, 2, 5])
async def test_dropped_stream_is_a_typed_error(fail_after: int) -> None:
    # 5 = every token arrived but the connection died before the final record.
    with OllamaTestServer(models={"tiny": "one two three four five"}, fail_after=fail_after) as srv:
        model = make_ollama_chat(_spec(srv))
        with pytest.raises(ModelUnavailableError, match="broke off"):
            await model.ainvoke(QUESTION)
        with pytest.raises(ModelUnavailableError, match="broke off"):
            async for _ in model.astream(QUESTION):
                pass


async def test_runner_failure_mid_stream_is_a_typed_error() -> None:
    with OllamaTestServer(models={"tiny": "one two three"}, fail_after=1, fail_mode="error") as srv:
        model = make_ollama_chat(_spec(srv))
        with pytest.raises(ModelUnavailableError, match="llama runner process has terminated"):
            await model.ainvoke(QUESTION)


async def test_backend_failure_is_a_typed_error() -> None:
    with OllamaTestServer(models={"tiny": ["only one"]}) as srv:
        model = make_ollama_chat(_spec(srv))
        assert (await model.ainvoke(QUESTION)).content == "only one"
        with pytest.raises(ModelUnavailableError, match="no replies left"):
            await model.ainvoke(QUESTION)


def test_bad_request_is_not_disguised(ollama_test_server: OllamaTestServer) -> None:
    with pytest.raises(ollama.ResponseError, match="top_logprobs must be between 0 and 20"):
        make_ollama_chat(_spec(ollama_test_server)).invoke(QUESTION, top_logprobs=21)


# -- health --------------------------------------------------------------------------------


def test_health_check_and_model_list(ollama_test_server: OllamaTestServer) -> None:
    ollama_test_server.add_model("qwen2.5:0.5b", "hi")
    host = ollama_test_server.url
    assert list_models(host) == ["qwen2.5:0.5b", "tiny:latest"]
    check_health(host)
    check_health(host, "tiny")  # no tag means :latest
    check_health(ollama_test_server.host, "qwen2.5:0.5b")
    assert ollama_available(host)

    with pytest.raises(ModelUnavailableError, match=r"ollama pull llama3\.2") as info:
        check_health(host, "llama3.2")
    assert "qwen2.5:0.5b, tiny:latest" in str(info.value)


def test_health_check_when_the_server_is_down() -> None:
    host = f"127.0.0.1:{_closed_port()}"
    assert not ollama_available(host)
    with pytest.raises(ModelUnavailableError, match="ollama serve") as info:
        check_health(host, "tiny")
    assert f"http://{host}" in str(info.value)
    with pytest.raises(ModelUnavailableError, match="ollama serve"):
        list_models(host)


def test_health_check_of_a_server_that_is_not_ollama(
    ollama_test_server: OllamaTestServer,
) -> None:
    foreign = ollama_test_server.url + "/not-ollama"  # every path there is a 404 page
    assert not ollama_available(foreign)
    with pytest.raises(ModelUnavailableError, match="like an Ollama server"):
        check_health(foreign, "tiny")


# -- the test server itself ----------------------------------------------------------------


def test_server_speaks_ollama_to_the_official_client(ollama_test_server: OllamaTestServer) -> None:
    client = ollama.Client(host=ollama_test_server.url)
    assert [m.model for m in client.list().models] == ["tiny:latest"]
    assert "completion" in (client.show("tiny").capabilities or [])

    generated = client.generate(model="tiny", prompt="hi", options={"num_predict": 1})
    assert (generated.response, generated.done_reason) == ("Hello", "length")
    streamed = list(client.generate(model="tiny", prompt="hi", stream=True))
    assert "".join(p.response or "" for p in streamed) == "Hello from the test server."
    assert streamed[-1].done and streamed[-1].context

    embedded = client.embed(model="tiny", input=["a", "b"])
    assert embedded.embeddings[0] == pytest.approx(deterministic_embedding("a"))
    assert math.fsum(v * v for v in embedded.embeddings[1]) == pytest.approx(1.0)

    chat = client.chat(model="tiny", messages=[{"role": "user", "content": "hi"}], logprobs=True)
    assert chat.logprobs is not None and chat.logprobs[0].token == "Hello"
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert (info.value.status_code, info.value.error) == (404, "model 'nope' not found")


def test_server_rejects_malformed_requests(ollama_test_server: OllamaTestServer) -> None:
    with httpx.Client(base_url=ollama_test_server.url) as http:
        bad = http.post("/api/chat", content=b"{not json")
        assert bad.status_code == 400 and "error" in bad.json()
        assert http.post("/api/chat", json={"messages": []}).json() == {
            "error": "model is required"
        }
        assert http.get("/api/version").json() == {"version": "0.12.11"}
        assert http.get("/").text == "Ollama is running"
        assert http.get("/api/nothing").status_code == 404


def test_server_can_front_a_langchain_chat_model() -> None:
    backend = FakeListChatModel(responses=["Bonjour de LangChain."])
    with OllamaTestServer(models={"fake:1b": backend}) as srv:
        reply = make_ollama_chat(_spec(srv, model="fake:1b")).invoke(QUESTION)
    assert reply.content == "Bonjour de LangChain."


# -- a real Ollama (opt-in) ----------------------------------------------------------------


@pytest.mark.ollama
async def test_real_ollama_answers_with_confidence() -> None:
    if not ollama_available(None, timeout=1.0):
        pytest.skip(f"no Ollama server answers at {resolve_host(None)} (set OLLAMA_HOST)")
    pulled = list_models(None)
    name = os.environ.get("TANDEM_OLLAMA_MODEL") or (pulled[0] if pulled else None)
    if name is None:
        pytest.skip(f"Ollama at {resolve_host(None)} has no models: run `ollama pull qwen2.5:0.5b`")
    check_health(None, name)
    model = make_ollama_chat(
        ModelSpec(provider="ollama", model=name, params=GenerationParams(max_tokens=16))
    )
    reply = await model.ainvoke([HumanMessage("Say hello in one word.")], logprobs=True)
    assert isinstance(reply.content, str) and reply.content
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0
    confidence = reply.response_metadata.get(CONFIDENCE_KEY)
    if confidence is not None:  # Ollama >= 0.12.11
        assert 0.0 <= confidence["mean_prob"] <= 1.0
