"""Load-aware routing: with the large model's slots taken, requests stay on the small model."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tandemlm.errors import ConfigError, ModelUnavailableError, NodeExecutionError
from tandemlm.flows import compile_flow
from tandemlm.routing.load import Overflow, busy_models, overflowing
from tandemlm.service import ServerThread, ServiceSettings, create_app


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
