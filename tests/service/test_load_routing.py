"""Load-aware routing: with the large model's slots taken, requests stay on the small model."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import PrivateAttr

from tandemlm.errors import ConfigError, ModelUnavailableError, NodeExecutionError
from tandemlm.flows import compile_flow
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.routing.load import Overflow, busy_models, overflowing
from tandemlm.service import ServerThread, ServiceSettings, create_app
from tandemlm.service.app import _Limiter


def cascade(llm_delay: float = 2.0) -> dict[str, Any]:
    """'hard' questions go to a slow llm."""
    return {
        "name": "loaded",
        "models": {
            "slm": {"provider": "keyed", "role": "slm", "replies": {".": "small answer"}},
            "llm": {"provider": "keyed", "role": "llm",
                    "replies": {".": {"content": "large answer", "delay": llm_delay}}},
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


def llm_only() -> dict[str, Any]:
    spec = cascade()
    return {"name": "direct", "models": {"llm": spec["models"]["llm"]},
            "nodes": {"answer": spec["nodes"]["escalate"]}, "entry": "answer", "edges": [["answer", "end"]]}


def occupy(client: httpx.Client, url: str, question: str = "hard one") -> threading.Thread:
    """Start a request that holds the llm slot; return once it does."""
    worker = threading.Thread(target=lambda: client.post(f"{url}/v1/run", json={"question": question}))
    worker.start()
    while client.get(f"{url}/health").json()["models"]["llm"]["in_use"] < 1:
        time.sleep(0.02)
    return worker


def test_busy_llm_keeps_the_request_on_the_slm_with_the_reason() -> None:
    settings = ServiceSettings(model_limits={"llm": 1}, queue_timeout=10, overflow_wait=0.2)
    with ServerThread(create_app(compile_flow(cascade()), settings)) as srv, httpx.Client(timeout=30) as client:
        first = occupy(client, srv.url)
        started = time.perf_counter()
        reply = client.post(f"{srv.url}/v1/run", json={"question": "another hard one"})
        waited = time.perf_counter() - started
        body = reply.json()
        assert reply.status_code == 200, body
        assert body["answer"] == "small answer" and body["answered_by"] == "slm"
        assert body["degraded"] is True and body["llm_called"] is False
        (decision,) = body["decisions"]
        assert decision["choice"] == "small" and decision["score"] == 1.0  # the router said large
        assert "load: model 'llm' busy (all 1 slots taken after 0.2 s)" in decision["reason"]
        assert decision["details"]["load"]["llm"]["limit"] == 1
        assert waited < 1.5  # did not wait for the slow llm (2 s)
        # an easy question never needed the llm: not degraded
        easy = client.post(f"{srv.url}/v1/run", json={"question": "easy"}).json()
        assert easy["answer"] == "small answer" and easy["degraded"] is False
        health = client.get(f"{srv.url}/health").json()
        assert health["overflows"] == 2 and health["models"]["llm"]["in_use"] == 1
        first.join()
        again = client.post(f"{srv.url}/v1/run", json={"question": "hard again"}).json()
        assert again["answer"] == "large answer" and again["degraded"] is False  # slot free again


def test_without_overflow_wait_a_busy_llm_is_a_503() -> None:
    settings = ServiceSettings(model_limits={"llm": 1}, queue_timeout=0.3)
    with ServerThread(create_app(compile_flow(cascade()), settings)) as srv, httpx.Client(timeout=30) as client:
        first = occupy(client, srv.url)
        reply = client.post(f"{srv.url}/v1/run", json={"question": "easy"})
        assert reply.status_code == 503 and reply.json()["error"] == "busy"
        first.join()


def test_a_flow_without_routes_waits_for_its_slot_as_before() -> None:
    settings = ServiceSettings(model_limits={"llm": 1}, queue_timeout=0.5, overflow_wait=0.1)
    with ServerThread(create_app(compile_flow(llm_only()), settings)) as srv, httpx.Client(timeout=30) as client:
        first = occupy(client, srv.url)
        reply = client.post(f"{srv.url}/v1/run", json={"question": "q"})
        assert reply.status_code == 503 and reply.json()["error"] == "busy"
        assert client.get(f"{srv.url}/health").json()["overflows"] == 0
        first.join()


async def test_a_direct_call_to_a_busy_model_fails_at_once() -> None:
    flow = compile_flow(llm_only())
    started = time.perf_counter()
    with (overflowing({"llm": Overflow("llm", limit=1, waited=0.5)}),
          pytest.raises((ModelUnavailableError, NodeExecutionError), match="'llm' is busy")):
        await flow.arun("q")
    assert time.perf_counter() - started < 1.5 and busy_models() == {}


def test_overflow_wait_must_be_below_the_queue_timeout() -> None:
    with pytest.raises(ConfigError, match="overflow_wait"):
        ServiceSettings(queue_timeout=5, overflow_wait=10)
    with pytest.raises(ConfigError, match="overflow_wait"):
        ServiceSettings(overflow_wait=0)


# -- every endpoint that runs the flow is load-aware ----------------------------------------


class GatedChatModel(KeyedChatModel):
    """A keyed model whose calls wait for :attr:`release`; :attr:`entered` is set on the first."""

    _entered: threading.Event = PrivateAttr(default_factory=threading.Event)
    _release: threading.Event = PrivateAttr(default_factory=threading.Event)

    @property
    def entered(self) -> threading.Event:
        return self._entered

    @property
    def release(self) -> threading.Event:
        return self._release

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self._entered.set()
        await asyncio.to_thread(self._release.wait, 30)
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


@pytest.fixture
def held_llm() -> Iterator[tuple[ServerThread, httpx.Client]]:
    """A load-aware service whose only llm slot is held by a run blocked inside the llm call."""
    llm = GatedChatModel(replies={".": "large answer"})
    flow = compile_flow(cascade(), models={"llm": llm})
    settings = ServiceSettings(model_limits={"llm": 1}, queue_timeout=8, overflow_wait=0.1)
    with ServerThread(create_app(flow, settings)) as srv, httpx.Client(timeout=20) as client:
        first: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: first.update(
            client.post(f"{srv.url}/v1/run", json={"question": "hard one"}).json()))
        worker.start()
        try:
            assert llm.entered.wait(10)  # the first run is inside the llm call: its slot is held
            yield srv, client
            # the overflowing request was answered while the llm was still blocked
            assert client.get(f"{srv.url}/health").json()["models"]["llm"]["in_use"] == 1
        finally:
            llm.release.set()
            worker.join()
        assert first["answer"] == "large answer" and first["degraded"] is False
        assert client.get(f"{srv.url}/health").json()["overflows"] == 1


def _assert_overflowed(info: dict[str, Any]) -> None:
    """A run result (or OpenAI ``tandem`` field) of a request that went ahead without the llm."""
    assert info["answered_by"] == "slm" and info["llm_called"] is False and info["degraded"] is True
    (decision,) = info["decisions"]
    assert decision["choice"] == "small" and decision["score"] == 1.0  # the router said large
    assert re.search(r"load: model 'llm' busy \(all 1 slots taken after \d+\.\d s\): stayed on the "
                     r"small model", decision["reason"]), decision["reason"]
    load = decision["details"]["load"]["llm"]
    assert load["limit"] == 1 and load["waited"] >= 0.1  # gave up after --overflow-wait


def _sse(text: str) -> list[tuple[str | None, str]]:
    """(event name or None, data) of each server-sent event."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines.get("event"), lines["data"]))
    return out


def test_v1_stream_overflows_to_the_slm(held_llm: tuple[ServerThread, httpx.Client]) -> None:
    srv, client = held_llm
    with client.stream("POST", f"{srv.url}/v1/stream", json={"question": "another hard one"}) as reply:
        assert reply.status_code == 200
        events = _sse(reply.read().decode())
    kinds = [e for e, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "result" and "error" not in kinds, events
    result = json.loads(events[-1][1])
    assert result["answer"] == "small answer"
    _assert_overflowed(result)
    assert client.get(f"{srv.url}/health").json()["overflows"] == 1


def test_chat_completions_overflow_to_the_slm(held_llm: tuple[ServerThread, httpx.Client]) -> None:
    srv, client = held_llm
    reply = client.post(f"{srv.url}/v1/chat/completions", json={
        "model": "tandem/loaded", "messages": [{"role": "user", "content": "another hard one"}]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"] == "small answer"
    _assert_overflowed(body["tandem"])
    assert reply.headers["X-Tandem-Answered-By"] == "slm"
    assert reply.headers["X-Tandem-LLM-Called"] == "false"
    (brief,) = json.loads(reply.headers["X-Tandem-Decisions"])
    assert brief["choice"] == "small" and brief["score"] == 1.0
    assert client.get(f"{srv.url}/health").json()["overflows"] == 1


def test_streamed_chat_completions_overflow_to_the_slm(held_llm: tuple[ServerThread, httpx.Client]) -> None:
    srv, client = held_llm
    with client.stream("POST", f"{srv.url}/v1/chat/completions", json={
            "model": "tandem/loaded", "stream": True,
            "messages": [{"role": "user", "content": "another hard one"}]}) as reply:
        assert reply.status_code == 200
        events = _sse(reply.read().decode())
    assert events[-1] == (None, "[DONE]"), events
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all("error" not in c for c in chunks), chunks
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "small answer"
    _assert_overflowed(chunks[-1]["tandem"])
    assert client.get(f"{srv.url}/health").json()["overflows"] == 1


async def test_an_abandoned_stream_closed_by_another_task_releases_its_slots() -> None:
    limiter = _Limiter(["llm", "slm"], ServiceSettings(model_limits={"llm": 1}, overflow_wait=0.05),
                       large={"llm"})

    async def stream() -> Any:
        async with limiter.hold():
            yield sorted(busy_models())
            yield "never reached"

    async def first_item(items: Any) -> Any:
        return await anext(items)

    async with limiter.slots():  # another run holds the llm
        items = stream()
        assert await asyncio.create_task(first_item(items)) == ["llm"]
        assert limiter.in_use == {"llm": 1, "slm": 2} and limiter.overflows == 1
        # what the event loop does with an abandoned generator: close it in a new task
        await asyncio.create_task(items.aclose())
        assert limiter.in_use == {"llm": 1, "slm": 1}
    assert limiter.in_use == {"llm": 0, "slm": 0} and busy_models() == {}
