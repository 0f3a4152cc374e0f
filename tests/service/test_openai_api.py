"""The OpenAI-compatible endpoints against a real uvicorn server, called by the real `openai`
client and LangChain's `ChatOpenAI` (keyed and scripted fake models inside the flow)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI

from tandemlm.flows import compile_flow
from tandemlm.flows.stream import Message, Token
from tandemlm.models.fakes import ScriptedChatModel
from tandemlm.service import ServerThread, ServiceSettings, create_app
from tandemlm.service.openai_api import AnswerStream, live_nodes

MODEL = "tandem/served"


def served_flow(llm_reply: Any = "The answer is 4.") -> dict[str, Any]:
    """A cascade on keyed models: questions with 'hard' go to the llm."""
    return {
        "name": "served",
        "models": {
            "slm": {"provider": "keyed", "role": "slm", "replies": {".": "small answer"}},
            "llm": {"provider": "keyed", "role": "llm", "replies": {".": llm_reply}},
        },
        "nodes": {
            "draft": {"type": "generate", "model": "slm", "prompt": "{input}", "output": "draft"},
            "accept": {"type": "accept", "field": "draft"},
            "escalate": {"type": "generate", "model": "llm", "prompt": "{input}"},
        },
        "entry": "draft",
        "routes": [{"from": "draft", "name": "gate", "router": {"type": "rule", "keywords": ["hard"]},
                    "branches": {"small": "accept", "large": "escalate"}}],
        "edges": [["accept", "end"], ["escalate", "end"]],
    }


@pytest.fixture
def server(tmp_path: Any) -> Iterator[ServerThread]:
    flow = compile_flow(served_flow(), checkpointer=tmp_path / "checkpoints.db")
    with ServerThread(create_app(flow)) as srv:
        yield srv


@pytest.fixture
def client(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def test_models_lists_the_served_flow(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.owned_by == "tandemlm"
    with pytest.raises(openai.NotFoundError, match="serves 'tandem/served'"):
        client.models.retrieve("gpt-4o")


def test_completion_answers_with_usage_headers_and_run_details(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "a hard one"}], extra_headers={"X-Request-ID": "r-1"})
    done = raw.parse()
    assert done.object == "chat.completion" and done.model == MODEL and done.id == "chatcmpl-r-1"
    (choice,) = done.choices
    assert choice.message.role == "assistant" and choice.message.content == "The answer is 4."
    assert choice.finish_reason == "stop"
    run = done.tandem  # type: ignore[attr-defined]  # the extra field OpenAI clients ignore
    assert run["path"] == ["draft", "gate", "escalate"] and run["answered_by"] == "llm"
    assert run["llm_called"] is True and run["large_models"] == ["llm"]
    assert run["decisions"][0]["node"] == "gate" and run["decisions"][0]["choice"] == "large"
    assert run["decisions"][0]["reason"] == "keyword 'hard'"
    # usage: every model call of the run (keyed fakes count words: 3 + 3 in, 2 + 4 out)
    assert run["usage"]["slm"]["output_tokens"] == 2 and run["usage"]["llm"]["output_tokens"] == 4
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (6, 6, 12)
    headers = raw.headers
    assert headers["x-request-id"] == "r-1" and headers["x-tandem-run-id"] == run["run_id"]
    assert headers["x-tandem-path"] == "draft,gate,escalate"
    assert headers["x-tandem-answered-by"] == "llm" and headers["x-tandem-llm-called"] == "true"
    assert json.loads(headers["x-tandem-decisions"]) == [
        {"node": "gate", "router": "rule", "choice": "large", "score": 1.0, "threshold": 0.5}]

    easy = client.chat.completions.create(model="served", messages=[{"role": "user", "content": "easy"}])
    assert easy.choices[0].message.content == "small answer"  # the bare flow name works too
    assert easy.tandem["llm_called"] is False  # type: ignore[attr-defined]


def test_streaming_sends_chunks_then_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a hard one"}], stream=True,
        stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1 and {c.model for c in chunks} == {MODEL}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The answer is 4."
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finished] == ["stop"]
    run = finished[0].tandem  # type: ignore[attr-defined]
    assert run["path"] == ["draft", "gate", "escalate"] and len(run["run_id"]) == 32
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.total_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])

    plain = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "easy"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in plain) == "small answer"
    assert all(c.usage is None for c in plain)  # no usage chunk unless asked for


def test_conversation_becomes_input_and_history() -> None:
    spec = served_flow()
    spec["nodes"]["draft"]["history"] = True
    slm = ScriptedChatModel(replies=["Paris is in France."])
    flow = compile_flow(spec, models={"slm": slm})
    with ServerThread(create_app(flow)) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0)
        done = client.chat.completions.create(model=MODEL, messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": [{"type": "text", "text": "Which "}, {"type": "text", "text": "country?"}]},
        ])
    assert done.choices[0].message.content == "Paris is in France."
    (sent,) = slm.calls
    assert [(m.type, m.content) for m in sent] == [
        ("system", "Be brief."), ("human", "Capital of France?"), ("ai", "Paris."), ("human", "Which country?")]


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools and functions are not supported"),
        ({"n": 2}, "one choice per request"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format 'json_object'"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
         "the last message must come from the user"),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "a"}, {"role": "user", "content": "x"}]},
         "'tool' is not supported"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x/cat.png"}}]}]}, "only text parts"),
        ({"messages": [{"role": "user", "content": "  "}]}, "the question is empty"),
        ({"messages": []}, "messages"),
    ],
)
def test_requests_a_flow_cannot_serve_are_refused(client: openai.OpenAI, request_body: dict[str, Any],
                                                  message: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **request_body}
    with pytest.raises(openai.BadRequestError, match=message) as caught:
        client.chat.completions.create(**body)
    assert caught.value.status_code == 400 and caught.value.type == "invalid_request_error"


def test_unknown_model_and_malformed_bodies(server: ServerThread, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    broken = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json",
                        headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"
    form = httpx.post(f"{server.url}/v1/chat/completions", content=b"a=b",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415


def test_run_errors_in_openai_shape() -> None:
    flow = compile_flow(served_flow(llm_reply={"error": "provider down"}))
    with ServerThread(create_app(flow)) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0)
        hard = [{"role": "user", "content": "a hard one"}]
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=MODEL, messages=hard)
        assert caught.value.status_code == 503 and caught.value.code == "model_unavailable"
        assert "provider down" in caught.value.message
        stream = client.chat.completions.create(model=MODEL, messages=hard, stream=True)
        with pytest.raises(openai.APIError, match="provider down"):
            list(stream)


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
def test_an_abandoned_request_stops_its_run(stream: bool) -> None:
    spec = served_flow()
    spec["models"]["slm"]["replies"] = {".": {"content": "late", "delay": 60}}
    with ServerThread(create_app(compile_flow(spec))) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0, timeout=1.0)
        with pytest.raises((openai.APITimeoutError, httpx.ReadTimeout)):
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "slow"}], stream=stream)
            list(reply)  # type: ignore[call-overload]
        deadline = time.monotonic() + 10
        while httpx.get(f"{srv.url}/health").json()["active"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{srv.url}/health").json()["active"] == 0  # cancelled, not left to run 60 s


def test_langchain_chat_openai(server: ServerThread) -> None:
    chat = ChatOpenAI(model=MODEL, base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    reply = chat.invoke("a hard one")
    assert reply.content == "The answer is 4."
    assert reply.usage_metadata is not None and reply.usage_metadata["total_tokens"] == 12
    pieces = list(ChatOpenAI(model=MODEL, base_url=f"{server.url}/v1", api_key="x", max_retries=0,
                             stream_usage=True).stream("a hard one"))
    assert "".join(str(p.content) for p in pieces) == "The answer is 4."
    usage = [p.usage_metadata for p in pieces if p.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == 6


async def test_async_openai_client_streams(server: ServerThread) -> None:
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hard"}], stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "The answer is 4."
    await client.close()


def test_the_request_guard_covers_the_openai_routes() -> None:
    """The service token is the client's API key (Authorization: Bearer); Host is checked."""
    flow = compile_flow(served_flow())
    with ServerThread(create_app(flow, ServiceSettings(token="s3cret-token"))) as srv:
        good = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="s3cret-token", max_retries=0)
        done = good.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content == "small answer"
        assert [m.id for m in good.models.list()] == [MODEL]
        bad = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        rebound = httpx.post(f"{srv.url}/v1/chat/completions", headers={
            "Host": "evil.example", "Authorization": "Bearer s3cret-token"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        assert rebound.status_code == 403


def test_openapi_document_describes_the_openai_endpoints(server: ServerThread) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/v1/models/{name}"} <= set(document["paths"])
    assert "tandem/served" in document["paths"]["/v1/chat/completions"]["post"]["summary"]
    request = document["components"]["schemas"]["ChatRequest"]
    assert request["required"] == ["model", "messages"]

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    names = {ref.removeprefix("#/components/schemas/") for ref in refs(document)}
    assert names and names <= set(document["components"]["schemas"])  # every $ref resolves


# -- which tokens stream live --------------------------------------------------------------


def test_live_nodes_are_generate_nodes_nothing_rewrites() -> None:
    assert live_nodes(compile_flow("cascade").checked) == {"escalate"}  # accept: at the end
    assert live_nodes(compile_flow("route").checked) == {"small", "large"}
    assert live_nodes(compile_flow("private_sketch").checked) == frozenset()  # restore rewrites
    assert live_nodes(compile_flow("collab_rag").checked) == frozenset()  # citations rewrite


def test_answer_stream_sends_the_answer_exactly_once() -> None:
    stream = AnswerStream(frozenset({"escalate"}))
    pieces = [stream.feed(Token("draft", "ignored")), stream.feed(Token("escalate", "  The")),
              stream.feed(Token("escalate", " answer ")), stream.feed(Token("escalate", "\n")),
              stream.feed(Token("escalate", "is 4.\n"))]
    assert pieces == ["", "The", " answer", "", " \nis 4."]
    assert stream.finish("The answer \nis 4.") == ""
    whole = AnswerStream(frozenset({"escalate"}))
    assert whole.feed(Message("escalate", "Hello")) == "Hello"
    assert whole.finish("Hello, world") == ", world"
    assert AnswerStream(frozenset()).finish("accepted draft") == "accepted draft"
