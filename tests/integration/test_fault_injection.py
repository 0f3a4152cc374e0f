"""Fault injection: 300 flow runs while about 30% of model calls fail in various ways.

Failures: typed outages, connection errors, library bugs (plain exceptions), hung calls
(timeouts), and real HTTP faults from Ollama-protocol test servers: slow streams past the
model's timeout, connections dropped mid-stream, error records mid-stream, a dead host and
a model that is not pulled. Every run must end with an answer, a degraded answer or a typed
:class:`TandemError`; every run must be in the SQLite trace store.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from ollama_server import OllamaTestServer
from pydantic import PrivateAttr

from tandemlm.errors import TandemError
from tandemlm.flows import RunResult, compile_flow, load_flow
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.models.resolve import build_chat_model
from tandemlm.models.spec import ModelSpec
from tandemlm.nodes.fallback import reset_breakers
from tandemlm.telemetry.setup import enable_tracing
from tandemlm.telemetry.store import TraceStore

RUNS_PER_FLOW = 100
FLOWS = ("resilient", "cascade", "pipeline")
OK_WEIGHT = 70  # of 100: about 30% of calls fail
FAULTS = {  # fault kind -> weight (sums to 100 - OK_WEIGHT)
    "outage": 5, "connection": 3, "crash": 3, "hang": 4,
    "ollama_slow": 4, "ollama_drop": 4, "ollama_error": 3, "ollama_dead": 2, "ollama_404": 2,
}
BRIEF = '{"intent": "ask", "facts": ["a fact"]}'


class ChaosChatModel(BaseChatModel):
    """Delegates each call to one of ``targets`` picked at random (seeded); ``crash`` and
    ``connection`` raise plain Python exceptions, as a buggy library or socket would."""

    targets: dict[str, Any]
    weights: dict[str, int]
    seed: int = 0
    _rng: random.Random = PrivateAttr()
    _picked: Counter[str] = PrivateAttr(default_factory=Counter)

    def model_post_init(self, context: Any) -> None:
        self._rng = random.Random(self.seed)

    @property
    def _llm_type(self) -> str:
        return "chaos"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("async only")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        kind = self._rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        self._picked[kind] += 1
        if kind == "crash":
            raise RuntimeError("injected bug in a model adapter")
        if kind == "connection":
            raise ConnectionResetError("injected: connection reset by peer")
        message = await self.targets[kind].ainvoke(messages, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def servers() -> Iterator[dict[str, OllamaTestServer]]:
    reply = f"served answer {BRIEF}"
    made = {
        "ollama_ok": OllamaTestServer(models={"tiny": reply}),
        "ollama_slow": OllamaTestServer(models={"tiny": reply}, delay=0.4),
        "ollama_drop": OllamaTestServer(models={"tiny": reply}, fail_after=2, fail_mode="drop"),
        "ollama_error": OllamaTestServer(models={"tiny": reply}, fail_after=1, fail_mode="error"),
        "ollama_404": OllamaTestServer(models={"other": reply}),
    }
    for server in made.values():
        server.start()
    try:
        yield made
    finally:
        for server in made.values():
            server.stop()


def _targets(servers: dict[str, OllamaTestServer], confidence: float) -> dict[str, Any]:
    def ollama(url: str, timeout: float = 5.0) -> BaseChatModel:
        return build_chat_model(ModelSpec(provider="ollama", model="tiny", host=url, timeout=timeout))

    keyed = {"ok": {"content": f"keyed answer {BRIEF}", "confidence": confidence}}
    return {
        "ok": KeyedChatModel(replies={".": keyed["ok"]}),
        "ollama_ok": ollama(servers["ollama_ok"].url),
        "outage": KeyedChatModel(replies={".": {"error": "injected outage: 503 from the provider"}}),
        "hang": KeyedChatModel(replies={".": {"content": "too late", "delay": 0.5}}),
        "ollama_slow": ollama(servers["ollama_slow"].url, timeout=0.15),
        "ollama_drop": ollama(servers["ollama_drop"].url),
        "ollama_error": ollama(servers["ollama_error"].url),
        "ollama_dead": ollama(f"http://127.0.0.1:{_dead_port()}", timeout=1.0),
        "ollama_404": ollama(servers["ollama_404"].url),
    }


def _chaos(servers: dict[str, OllamaTestServer], seed: int, confidence: float) -> ChaosChatModel:
    weights = {"ok": OK_WEIGHT // 2, "ollama_ok": OK_WEIGHT - OK_WEIGHT // 2, **FAULTS}
    return ChaosChatModel(targets=_targets(servers, confidence), weights=weights, seed=seed)


def _spec(name: str) -> Any:
    spec = load_flow(name).to_dict()
    if name == "resilient":  # short timeout and cooldown so hangs and open circuits both happen
        spec["nodes"]["answer"].update({"timeout": 0.25, "cooldown": 0.05, "failures": 3})
    return spec


@pytest.mark.slow
async def test_300_runs_with_30_percent_faults(
    servers: dict[str, OllamaTestServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path / "home"))
    reset_breakers()
    store_path = tmp_path / "traces.db"
    tracing = enable_tracing(store=store_path)
    chaos: list[ChaosChatModel] = []
    flows = {}
    for i, name in enumerate(FLOWS):
        slm = _chaos(servers, seed=10 * i + 1, confidence=0.95 if i % 2 else 0.3)
        llm = _chaos(servers, seed=10 * i + 2, confidence=0.9)
        chaos += [slm, llm]
        flows[name] = compile_flow(_spec(name), models={"slm": slm, "llm": llm})

    limit = asyncio.Semaphore(12)
    outcomes: list[tuple[str, RunResult | TandemError]] = []

    async def one(name: str, i: int) -> None:
        async with limit:
            try:
                result = await flows[name].arun(f"question {i} for {name}: what is the answer?")
            except TandemError as exc:
                outcomes.append((name, exc))
            else:
                outcomes.append((name, result))

    try:
        # anything but a TandemError escapes gather() and fails the test
        await asyncio.gather(*(one(name, i) for name in FLOWS for i in range(RUNS_PER_FLOW)))
    finally:
        tracing.close()
        reset_breakers()

    assert len(outcomes) == RUNS_PER_FLOW * len(FLOWS)
    results = [o for _, o in outcomes if isinstance(o, RunResult)]
    errors = [o for _, o in outcomes if isinstance(o, TandemError)]
    for result in results:
        assert result.answer.strip(), result
        assert result.answered_by in ("slm", "llm"), result
        if result.degraded:
            assert result.errors and result.errors[-1]["recovered"], result
    for error in errors:
        assert str(error).strip()

    # the faults really happened, in every form, at about the planned rate
    picked = sum((model._picked for model in chaos), Counter())
    calls = sum(picked.values())
    failed = sum(picked[kind] for kind in FAULTS)
    assert all(picked[kind] > 0 for kind in FAULTS), picked
    assert 0.2 < failed / calls < 0.4, picked
    assert any(r.degraded for r in results) and any(not r.degraded for r in results)
    assert errors, "with 30% faults some non-resilient runs must fail with a typed error"
    # the resilient preset fails only when the fallback model fails too
    resilient_errors = [o for name, o in outcomes if name == "resilient" and isinstance(o, TandemError)]
    assert len(resilient_errors) < RUNS_PER_FLOW * 0.2
    for exc in resilient_errors:
        cause = exc.__cause__
        assert "both models failed" in str(exc) or isinstance(cause, (RuntimeError, ConnectionError)), exc

    # every run is in the trace store: ok runs by run id, failed runs by status
    runs = TraceStore(store_path).list_runs(limit=10_000)
    assert len(runs) == len(outcomes)
    stored_ids = {run["run_id"] for run in runs}
    assert {r.run_id for r in results} <= stored_ids
    assert sum(run["status"] == "error" for run in runs) == len(errors)
    assert Counter(run["flow"] for run in runs) == Counter(name for name, _ in outcomes)
