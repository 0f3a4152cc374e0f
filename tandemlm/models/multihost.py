"""One model served by several Ollama hosts: load balancing, health checks and failover.

:class:`MultiHostChatModel` holds one :class:`~tandemlm.models.ollama.TandemChatOllama`
per host. Each call goes to the healthy host with the fewest calls in flight (ties taken in
turn, so sequential calls alternate), or strictly in turn with ``strategy="round_robin"``.

* A host whose call raises :class:`~tandemlm.errors.ModelUnavailableError` (down, model not
  pulled, timed out, stream broke off) is marked down and the call moves to the next host,
  as long as nothing of the reply has reached the caller yet: a plain call
  (``ainvoke``) returns whole replies only, so it always fails over; a streamed call fails
  over only before its first chunk.
* A host that is down is re-checked with :func:`~tandemlm.models.ollama.check_health`
  once its ``cooldown`` has passed, and takes calls again when it answers.
* When every host is down the call raises ``ModelUnavailableError`` listing each host and
  why it is out.

A model spec with more than one host builds this model (``hosts:`` in YAML)::

    models:
      llm: {provider: ollama, model: "qwen2.5:7b", hosts: ["gpu1:11434", "gpu2:11434"]}
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from tandemlm.errors import ModelUnavailableError
from tandemlm.models.ollama import (
    TandemChatOllama,
    check_health,
    make_ollama_chat,
    resolve_host,
)
from tandemlm.models.spec import ModelSpec

__all__ = ["HostState", "MultiHostChatModel", "check_any_host"]

Strategy = Literal["least_in_flight", "round_robin"]


@dataclass
class HostState:
    """What the balancer knows about one host."""

    url: str
    in_flight: int = 0
    calls: int = 0
    failures: int = 0
    down_since: float | None = None
    last_error: str = ""

    @property
    def up(self) -> bool:
        return self.down_since is None


class MultiHostChatModel(BaseChatModel):
    """An Ollama chat model spread over several hosts (see the module docs).

    Args:
        spec: the model spec (``model``, ``params``, ``timeout``, ``hosts``).
        strategy: ``least_in_flight`` (default) or ``round_robin``.
        cooldown: seconds a failed host rests before it is health-checked again.
        health_timeout: seconds the health check may take.

    Example::

        chat = MultiHostChatModel(spec=ModelSpec(provider="ollama", model="qwen2.5:0.5b",
                                                 hosts=["gpu1", "gpu2"]))
        await chat.ainvoke("Capital of France?")
        chat.stats()  # {"http://gpu1:11434": {"calls": 1, ...}, ...}
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    spec: ModelSpec
    strategy: Strategy = "least_in_flight"
    cooldown: float = Field(5.0, ge=0.0)
    health_timeout: float = Field(2.0, gt=0.0)

    _clients: list[TandemChatOllama] = PrivateAttr(default_factory=list)
    _hosts: list[HostState] = PrivateAttr(default_factory=list)
    _turn: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def model_post_init(self, context: Any, /) -> None:
        hosts = self.spec.all_hosts()
        for host in hosts:
            client = make_ollama_chat(self.spec.model_copy(update={"host": host, "hosts": None}))
            self._clients.append(client)
            self._hosts.append(HostState(url=resolve_host(host)))
        self._turn = itertools.count()

    @property
    def model(self) -> str:
        return self.spec.model or ""

    @property
    def _llm_type(self) -> str:
        return "ollama-multihost"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "hosts": [h.url for h in self._hosts]}

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per host: calls started, failures, calls in flight and whether it is up."""
        with self._lock:
            return {
                h.url: {
                    "calls": h.calls,
                    "failures": h.failures,
                    "in_flight": h.in_flight,
                    "up": h.up,
                    "last_error": h.last_error,
                }
                for h in self._hosts
            }

    # -- choosing hosts ------------------------------------------------------------------

    def _due_for_check(self) -> list[int]:
        """Down hosts whose cooldown has passed (claimed: their clock restarts now)."""
        now = time.monotonic()
        due = []
        with self._lock:
            for i, h in enumerate(self._hosts):
                if h.down_since is not None and now - h.down_since >= self.cooldown:
                    h.down_since = now  # one checker at a time; a failed check waits again
                    due.append(i)
        return due

    def _probe(self, index: int) -> None:
        host = self._hosts[index]
        try:
            check_health(host.url, self.spec.model, timeout=self.health_timeout)
        except ModelUnavailableError as exc:
            with self._lock:
                host.last_error = str(exc)
            return
        with self._lock:
            host.down_since = None

    def _order(self, tried: set[int]) -> list[int]:
        """Healthy, untried hosts in the order to try them."""
        with self._lock:
            turn = next(self._turn)
            n = len(self._hosts)
            rotated = [(turn + k) % n for k in range(n)]
            candidates = [i for i in rotated if self._hosts[i].up and i not in tried]
            if self.strategy == "least_in_flight":
                candidates.sort(key=lambda i: self._hosts[i].in_flight)  # stable: ties rotate
            return candidates

    def _begin(self, index: int) -> None:
        with self._lock:
            self._hosts[index].in_flight += 1
            self._hosts[index].calls += 1

    def _end(self, index: int, error: ModelUnavailableError | None) -> None:
        with self._lock:
            host = self._hosts[index]
            host.in_flight -= 1
            if error is not None:
                host.failures += 1
                host.last_error = str(error)
                if host.down_since is None:
                    host.down_since = time.monotonic()

    def _all_down(self, tried: set[int]) -> ModelUnavailableError:
        with self._lock:
            lines = [f"{h.url}: {h.last_error or 'down'}" for h in self._hosts]
        return ModelUnavailableError(
            f"all {len(lines)} Ollama hosts for model '{self.model}' are unavailable "
            f"({len(tried)} tried in this call): "
            + "; ".join(lines)
            + f". Start `ollama serve` on at least one of them (down hosts are re-checked "
            f"every {self.cooldown:g} s)."
        )

    def _next(self, tried: set[int]) -> int | None:
        order = self._order(tried)
        return order[0] if order else None

    # -- calls -----------------------------------------------------------------------------

    async def _anext_host(self, tried: set[int]) -> int | None:
        due = self._due_for_check()
        if due:
            await asyncio.gather(*(asyncio.to_thread(self._probe, i) for i in due))
        return self._next(tried)

    def _next_host(self, tried: set[int]) -> int | None:
        for i in self._due_for_check():
            self._probe(i)
        return self._next(tried)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # The inner call gets no run manager: no token reaches callbacks before the whole
        # reply is in, so a reply that breaks off can still be asked of another host.
        tried: set[int] = set()
        while (index := await self._anext_host(tried)) is not None:
            tried.add(index)
            self._begin(index)
            try:
                result = await self._clients[index]._agenerate(messages, stop, None, **kwargs)
            except ModelUnavailableError as exc:
                self._end(index, exc)
                continue
            except BaseException:
                self._end(index, None)
                raise
            self._end(index, None)
            return self._tag(result, index)
        raise self._all_down(tried)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tried: set[int] = set()
        while (index := self._next_host(tried)) is not None:
            tried.add(index)
            self._begin(index)
            try:
                result = self._clients[index]._generate(messages, stop, None, **kwargs)
            except ModelUnavailableError as exc:
                self._end(index, exc)
                continue
            except BaseException:
                self._end(index, None)
                raise
            self._end(index, None)
            return self._tag(result, index)
        raise self._all_down(tried)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        tried: set[int] = set()
        while (index := await self._anext_host(tried)) is not None:
            tried.add(index)
            self._begin(index)
            streamed = False
            error: ModelUnavailableError | None = None
            try:
                async for chunk in self._clients[index]._astream(
                    messages, stop, run_manager, **kwargs
                ):
                    streamed = True
                    yield chunk
            except ModelUnavailableError as exc:
                error = exc
                if streamed:  # part of the reply is out: another host cannot continue it
                    raise
            finally:
                self._end(index, error)
            if error is None:
                return
        raise self._all_down(tried)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        tried: set[int] = set()
        while (index := self._next_host(tried)) is not None:
            tried.add(index)
            self._begin(index)
            streamed = False
            error: ModelUnavailableError | None = None
            try:
                for chunk in self._clients[index]._stream(messages, stop, run_manager, **kwargs):
                    streamed = True
                    yield chunk
            except ModelUnavailableError as exc:
                error = exc
                if streamed:
                    raise
            finally:
                self._end(index, error)
            if error is None:
                return
        raise self._all_down(tried)

    def _tag(self, result: ChatResult, index: int) -> ChatResult:
        """Note which host answered in the reply's metadata (``ollama_host``)."""
        for generation in result.generations:
            info = dict(generation.generation_info or {})
            info["ollama_host"] = self._hosts[index].url
            generation.generation_info = info
        return result


def check_any_host(spec: ModelSpec, timeout: float = 2.0) -> list[str]:
    """Health-check every host of ``spec``; return the healthy ones.

    Raises:
        ModelUnavailableError: no host answers with the model pulled (each host's reason
            is listed).
    """
    healthy, reasons = [], []
    for host in spec.all_hosts():
        try:
            check_health(host, spec.model, timeout=timeout)
        except ModelUnavailableError as exc:
            reasons.append(f"{resolve_host(host)}: {exc}")
            continue
        healthy.append(resolve_host(host))
    if not healthy:
        raise ModelUnavailableError(
            f"none of the {len(reasons)} Ollama hosts of model '{spec.model}' is usable: "
            + "; ".join(reasons)
        )
    return healthy
