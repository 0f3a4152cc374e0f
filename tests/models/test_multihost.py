"""Several Ollama hosts for one model: spread, failover, recovery, against two test servers."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any, Self

import pytest
from langchain_core.messages import HumanMessage
from ollama_server import OllamaTestServer, _Handler, _HTTPServer

from tandemlm.errors import ModelUnavailableError, SpecError
from tandemlm.flows import compile_flow
from tandemlm.models.multihost import MultiHostChatModel, check_any_host
from tandemlm.models.ollama import TandemChatOllama
from tandemlm.models.pool import ModelPool
from tandemlm.models.resolve import build_chat_model
from tandemlm.models.spec import ModelSpec

MODEL = "tiny"


class _TrackingServer(_HTTPServer):
    """Remembers open connections so a kill can cut keep-alive ones too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.open: set[socket.socket] = set()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.open.discard(request)
        super().shutdown_request(request)


class Host(OllamaTestServer):
    """A test server that can be killed (open connections cut) and restarted on its port."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fixed_port = 0

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = _TrackingServer(("127.0.0.1", self._fixed_port), handler)
        self._fixed_port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    @property
    def host(self) -> str:  # known while down too: the host comes back on the same port
        return f"127.0.0.1:{self._fixed_port}"

    def kill(self) -> None:
        """Stop listening and cut every open connection, as a crashed host would."""
        httpd = self._httpd
        if httpd is None:
            return
        for conn in list(httpd.open):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.stop()

    def chats(self) -> int:
        return sum(1 for r in self.requests if r.path == "/api/chat")


def _spec(*hosts: Host, **kw: Any) -> ModelSpec:
    return ModelSpec(provider="ollama", model=MODEL, hosts=[h.url for h in hosts], timeout=5, **kw)


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    a = Host(models={MODEL: "Answer from A."}, delay=0.002).start()
    b = Host(models={MODEL: "Answer from B."}, delay=0.002).start()
    try:
        yield a, b
    finally:
        a.kill()
        b.kill()


async def _ask(chat: Any, i: int) -> str:
    reply = await chat.ainvoke([HumanMessage(f"question {i}")])
    return str(reply.content)


# -- spec and wiring --------------------------------------------------------------------


def test_spec_folds_host_into_hosts_and_checks_them() -> None:
    spec = ModelSpec(provider="ollama", model="m", host="a:1", hosts=["b:2", "a:1", " c:3 "])
    assert spec.hosts == ["a:1", "b:2", "c:3"]
    assert spec.all_hosts() == ["a:1", "b:2", "c:3"]
    assert ModelSpec(provider="ollama", model="m", host="x").all_hosts() == ["x"]
    for bad in ([], [""], ["  "], [f"h{i}" for i in range(33)], [3]):
        with pytest.raises(ValueError):
            ModelSpec(provider="ollama", model="m", hosts=bad)
    with pytest.raises(ValueError, match="Ollama models"):
        ModelSpec(provider="llamacpp", model="m", hosts=["a"])


def test_bad_hosts_in_a_flow_are_a_spec_error() -> None:
    flow = {
        "name": "t",
        "models": {"llm": {"provider": "ollama", "model": "m", "hosts": ["a", ""]}},
        "nodes": {
            "answer": {"type": "generate", "model": "llm", "prompt": "{input}", "output": "answer"}
        },
        "entry": "answer",
        "edges": [{"from": "answer", "to": "end"}],
    }
    with pytest.raises(SpecError, match="models.llm"):
        compile_flow(flow)


def test_build_chat_model_picks_multihost_for_several_hosts(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    assert isinstance(build_chat_model(_spec(a, b)), MultiHostChatModel)
    assert isinstance(build_chat_model(_spec(a)), TandemChatOllama)
    assert isinstance(
        build_chat_model(ModelSpec(provider="ollama", model=MODEL, host=a.url)), TandemChatOllama
    )


def test_preflight_needs_one_healthy_host(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    spec = _spec(a, b)
    b.kill()
    assert check_any_host(spec) == [a.url]
    ModelPool({"llm": spec}).preflight()
    a.kill()
    with pytest.raises(ModelUnavailableError) as info:
        ModelPool({"llm": spec}).preflight()
    assert a.url in str(info.value) and b.url in str(info.value)


# -- balancing, failover, recovery -------------------------------------------------------


async def test_load_spreads_over_both_hosts(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    chat = MultiHostChatModel(spec=_spec(a, b))
    answers = [await _ask(chat, i) for i in range(10)]  # sequential: ties alternate
    assert answers.count("Answer from A.") == 5 and answers.count("Answer from B.") == 5
    answers = await asyncio.gather(*(_ask(chat, i) for i in range(12)))  # concurrent
    assert {"Answer from A.", "Answer from B."} == set(answers)
    assert a.chats() >= 8 and b.chats() >= 8
    assert all(s["up"] and s["in_flight"] == 0 for s in chat.stats().values())


async def test_round_robin_strategy(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    chat = MultiHostChatModel(spec=_spec(a, b), strategy="round_robin")
    answers = [await _ask(chat, i) for i in range(6)]
    assert answers == ["Answer from A.", "Answer from B."] * 3


async def test_host_killed_mid_run_every_call_answered_then_recovers(
    hosts: tuple[Host, Host],
) -> None:
    a, b = hosts
    chat = MultiHostChatModel(spec=_spec(a, b), cooldown=0.3)
    answers: list[str] = []
    killed = asyncio.Event()

    async def worker(w: int) -> None:
        for i in range(10):
            answers.append(await _ask(chat, w * 100 + i))
            if len(answers) == 12 and not killed.is_set():
                killed.set()
                await asyncio.to_thread(b.kill)  # calls to B may be mid-stream right now

    await asyncio.gather(*(worker(w) for w in range(4)))
    assert len(answers) == 40  # no call failed
    assert not chat.stats()[b.url]["up"]
    before = answers[:12]
    assert "Answer from A." in before and "Answer from B." in before  # spread while both up
    assert answers[-10:] == ["Answer from A."] * 10  # after the kill only A answers

    b.start()  # the host comes back on the same port
    await asyncio.sleep(0.4)  # past the cooldown: the next call re-checks it
    after = [await _ask(chat, i) for i in range(6)]
    assert after.count("Answer from B.") >= 2
    assert chat.stats()[b.url]["up"]
    assert any(r.path == "/api/tags" for r in b.requests)  # recovered through a health check


async def test_all_hosts_down_lists_them(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    chat = MultiHostChatModel(spec=_spec(a, b), cooldown=60)
    a.kill()
    b.kill()
    with pytest.raises(ModelUnavailableError) as info:
        await _ask(chat, 0)
    message = str(info.value)
    assert a.url in message and b.url in message and "ollama serve" in message
    with pytest.raises(ModelUnavailableError, match="all 2 Ollama hosts"):
        chat.invoke("again")  # sync path: both still resting, nothing tried


async def test_model_missing_on_one_host_fails_over(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    a.remove_model(MODEL)
    chat = MultiHostChatModel(spec=_spec(a, b), cooldown=60)
    answers = [await _ask(chat, i) for i in range(4)]
    assert answers == ["Answer from B."] * 4
    assert "ollama pull" in chat.stats()[a.url]["last_error"]


async def test_stream_fails_over_only_before_the_first_chunk(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    chat = MultiHostChatModel(spec=_spec(a, b), strategy="round_robin", cooldown=60)
    a.fail_after = 0  # A drops the connection before any token
    text = "".join([str(c.content) async for c in chat.astream("hi")])
    assert text == "Answer from B."
    assert not chat.stats()[a.url]["up"]

    chat = MultiHostChatModel(spec=_spec(a, b), strategy="round_robin", cooldown=60)
    a.fail_after = 2  # A breaks off after two tokens: the caller has seen part of it
    seen: list[str] = []
    with pytest.raises(ModelUnavailableError, match="broke off"):
        async for chunk in chat.astream("hi"):
            seen.append(str(chunk.content))
    assert seen and "".join(seen) in "Answer from A."
    assert "".join([str(c.content) async for c in chat.astream("hi")]) == "Answer from B."


def test_sync_invoke_fails_over(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    chat = MultiHostChatModel(spec=_spec(a, b), cooldown=60)
    a.kill()
    assert [str(chat.invoke(f"q{i}").content) for i in range(3)] == ["Answer from B."] * 3
    assert "".join(str(c.content) for c in chat.stream("q")) == "Answer from B."


async def test_flow_runs_survive_a_host_dying(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    flow = compile_flow(
        {
            "name": "multi",
            "models": {
                "llm": {"provider": "ollama", "model": MODEL, "hosts": [a.url, b.url], "timeout": 5}
            },
            "nodes": {
                "answer": {
                    "type": "generate",
                    "model": "llm",
                    "prompt": "{input}",
                    "output": "answer",
                }
            },
            "entry": "answer",
            "edges": [{"from": "answer", "to": "end"}],
        }
    )
    flow.models.preflight()
    results = [await flow.arun(f"q{i}") for i in range(4)]
    a.kill()
    results += await asyncio.gather(*(flow.arun(f"r{i}") for i in range(6)))
    assert all(r.answer.startswith("Answer from") and not r.errors for r in results)
    assert {r.answer for r in results[:4]} == {"Answer from A.", "Answer from B."}
    assert {r.answer for r in results[4:]} == {"Answer from B."}
    assert all(r.path == ["answer"] for r in results)
