"""Real cancellation: a timed-out or abandoned request stops its run and its model calls.

The model here is a chat model whose call sleeps until cancelled and records when it
stopped; the Ollama case runs the real ``ollama`` client against a streaming
Ollama-protocol server that notes when its client went away.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from tandemlm.flows import compile_flow
from tandemlm.service import ServerThread, ServiceSettings, create_app


class Hanging(BaseChatModel):
    """Answers after ``seconds``; records when a call started and when it stopped."""

    seconds: float = 60.0
    _started: threading.Event = PrivateAttr(default_factory=threading.Event)
    _stopped: threading.Event = PrivateAttr(default_factory=threading.Event)
    _stopped_at: list[float] = PrivateAttr(default_factory=list)
    _finished: list[bool] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "hanging"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("async only")

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        self._started.set()
        finished = False
        try:
            await asyncio.sleep(self.seconds)
            finished = True
        finally:
            self._finished.append(finished)
            self._stopped_at.append(time.monotonic())
            self._stopped.set()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="late"))])


def one_node_flow(provider: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "hang",
        "models": {"slm": provider or {"provider": "keyed", "replies": {".": "x"}}},
        "nodes": {"answer": {"type": "generate", "model": "slm", "prompt": "{input}"}},
        "entry": "answer",
        "edges": [["answer", "end"]],
    }


@pytest.fixture
def hanging() -> Hanging:
    return Hanging()


def _served(model: BaseChatModel, **settings: Any) -> ServerThread:
    flow = compile_flow(one_node_flow(), models={"slm": model})
    return ServerThread(create_app(flow, ServiceSettings(**settings)))


def test_run_timeout_stops_the_model_call(hanging: Hanging) -> None:
    with _served(hanging, run_timeout=0.5) as srv:
        reply = httpx.post(f"{srv.url}/v1/run", json={"question": "hi"}, timeout=30)
        answered = time.monotonic()
        assert reply.status_code == 503 and reply.json()["error"] == "timeout"
        assert hanging._stopped.wait(1.0), "the model call went on after the timeout"
        assert hanging._finished == [False] and hanging._stopped_at[0] - answered < 1.0
        health = httpx.get(f"{srv.url}/health").json()
        assert health["active"] == 0 and health["models"]["slm"]["in_use"] == 0


def test_a_client_that_goes_away_stops_its_run(hanging: Hanging) -> None:
    with _served(hanging) as srv:
        def post_and_leave() -> None:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the socket
                httpx.post(f"{srv.url}/v1/run", json={"question": "hi"}, timeout=0.5)

        thread = threading.Thread(target=post_and_leave)
        thread.start()
        assert hanging._started.wait(10)
        thread.join()
        left = time.monotonic()
        assert hanging._stopped.wait(1.0), "the run went on after the client disconnected"
        assert hanging._finished == [False] and hanging._stopped_at[0] - left < 1.0
        deadline = time.monotonic() + 5
        while httpx.get(f"{srv.url}/health").json()["active"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert httpx.get(f"{srv.url}/health").json()["models"]["slm"]["in_use"] == 0


def test_a_stream_client_that_goes_away_stops_its_run(hanging: Hanging) -> None:
    with _served(hanging) as srv, httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{srv.url}/v1/stream", json={"question": "hi"}) as reply:
            lines = reply.iter_lines()
            assert next(lines) == "event: start"
            assert hanging._started.wait(10)
        left = time.monotonic()  # leaving the block closes the connection
        assert hanging._stopped.wait(1.0), "the streamed run went on after the client left"
        assert hanging._finished == [False] and hanging._stopped_at[0] - left < 1.0


def test_calls_after_a_timeout_are_not_delayed() -> None:
    flow = compile_flow(one_node_flow({"provider": "keyed", "replies": {"slow": {"content": "s", "delay": 30},
                                                                         ".": "fast"}}))
    with ServerThread(create_app(flow, ServiceSettings(run_timeout=0.3, model_limit=1))) as srv:
        assert httpx.post(f"{srv.url}/v1/run", json={"question": "slow"}, timeout=30).status_code == 503
        quick = httpx.post(f"{srv.url}/v1/run", json={"question": "quick"}, timeout=30)
        assert quick.status_code == 200 and quick.json()["answer"] == "fast"


# --- Ollama: the HTTP request is cancelled with the run --------------------------------------
class _SlowOllama:
    """An Ollama-protocol /api/chat that streams one token per 0.1 s and notes disconnects."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, StreamingResponse
        from starlette.routing import Route

        self.streaming = threading.Event()
        self.closed = threading.Event()
        self.closed_at: list[float] = []
        self.tokens_sent = 0

        async def chat(request: Request) -> StreamingResponse:
            body = await request.json()

            async def records() -> AsyncIterator[bytes]:
                try:
                    self.streaming.set()
                    for _ in range(600):
                        await asyncio.sleep(0.1)
                        self.tokens_sent += 1
                        yield json.dumps({"model": body["model"], "created_at": "2026-01-01T00:00:00Z",
                                          "message": {"role": "assistant", "content": " word"},
                                          "done": False}).encode() + b"\n"
                finally:
                    self.closed_at.append(time.monotonic())
                    self.closed.set()

            return StreamingResponse(records(), media_type="application/x-ndjson")

        async def version(request: Request) -> JSONResponse:
            return JSONResponse({"version": "0.12.11"})

        self.app = Starlette(routes=[Route("/api/chat", chat, methods=["POST"]),
                                     Route("/api/version", version)])


@pytest.fixture
def slow_ollama() -> Iterator[tuple[_SlowOllama, str]]:
    server = _SlowOllama()
    with ServerThread(server.app) as srv:  # type: ignore[arg-type]
        yield server, srv.url


def test_ollama_request_is_cancelled_with_the_run(slow_ollama: tuple[_SlowOllama, str]) -> None:
    server, url = slow_ollama
    flow = compile_flow(one_node_flow({"provider": "ollama", "model": "slow:latest", "host": url,
                                       "timeout": 120}))
    with ServerThread(create_app(flow, ServiceSettings(run_timeout=1.0))) as srv:
        reply = httpx.post(f"{srv.url}/v1/run", json={"question": "write a lot"}, timeout=60)
        answered = time.monotonic()
        assert reply.status_code == 503 and reply.json()["error"] == "timeout"
        assert server.streaming.is_set()
        assert server.closed.wait(1.0), "the Ollama request went on after the run timed out"
        assert server.closed_at[0] - answered < 1.0
        assert server.tokens_sent < 30  # stopped after about 1 s of a 60 s answer

