"""The evaluation cache: per (flow, item) results and replayable model calls, in SQLite (WAL).

Three tables:

- ``results``: one row per flow fingerprint and item key: the run record *without* a score.
  An interrupted run continues where it stopped and no finished item runs twice. Scores are
  computed on every read by the scorer of that run, so changing ``--scorer`` (or fixing a
  gold answer) rescores cached answers instead of reusing old scores.
- ``scores``: verdicts of scorers that call a model (``judge``), keyed by the scorer's
  identity, question, gold and answer.
- ``calls``: model replies keyed by model identity, generation parameters and messages.
  Decoding is deterministic by default (temperature 0, fixed seed), so an identical call made
  by another flow or another threshold of a sweep is answered from here instead of running
  the model again. The original duration is kept, so reported latency stays what the call
  really cost (see :class:`ReplayChatModel`).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from tandemlm._sqlite import connect, retry_locked

__all__ = ["EvalCache", "ReplayChatModel", "call_ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    flow_key TEXT NOT NULL,
    item_key TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (flow_key, item_key)
);
CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY,
    scorer TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    reply TEXT NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL
);
"""

# Per-item list of calls made by ReplayChatModel (set by the runner around each item).
call_ledger: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "tandem_eval_call_ledger", default=None
)


class EvalCache:
    """SQLite store of evaluation results and model calls (safe across processes: WAL).

    Args:
        path: database file (created with its folder).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # WAL, busy timeout and retried WAL switch (tandemlm._sqlite); autocommit statements
        self._conn = connect(self.path, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            retry_locked(lambda: self._conn.executescript(_SCHEMA))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get_result(self, flow_key: str, item_key: str) -> dict[str, Any] | None:
        """A finished (status ``ok``) record, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT record FROM results WHERE flow_key=? AND item_key=? AND status='ok'",
                (flow_key, item_key),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put_result(self, flow_key: str, item_key: str, record: dict[str, Any], status: str = "ok") -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                (flow_key, item_key, status, json.dumps(record, default=str), time.time()),
            )
            self._conn.commit()

    def count_results(self, flow_key: str | None = None) -> int:
        with self._lock:
            if flow_key is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
            return int(
                self._conn.execute("SELECT COUNT(*) FROM results WHERE flow_key=?", (flow_key,)).fetchone()[0]
            )

    def get_score(self, key: str) -> dict[str, Any] | None:
        """A stored scorer verdict (``{"score", ...}``), or ``None``."""
        with self._lock:
            row = self._conn.execute("SELECT result FROM scores WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_score(self, key: str, scorer: str, result: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                (key, scorer, json.dumps(result, default=str), time.time()),
            )
            self._conn.commit()

    def get_call(self, key: str) -> tuple[dict[str, Any], float] | None:
        with self._lock:
            row = self._conn.execute("SELECT reply, seconds FROM calls WHERE key=?", (key,)).fetchone()
        return (json.loads(row[0]), float(row[1])) if row else None

    def put_call(self, key: str, model: str, reply: dict[str, Any], seconds: float) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?)",
                (key, model, json.dumps(reply, default=str), seconds, time.time()),
            )
            self._conn.commit()


def _message_data(message: AIMessage) -> dict[str, Any]:
    return {
        "content": message.content,
        "response_metadata": dict(message.response_metadata or {}),
        "usage_metadata": dict(message.usage_metadata or {}),
    }


class ReplayChatModel(BaseChatModel):
    """Wraps a deterministic chat model: identical calls are answered from the cache.

    Args:
        inner: the real chat model.
        identity: what makes two models the same (provider, model, generation parameters).
        store: the :class:`EvalCache` holding the replies.

    Each call appends ``{"model", "seconds", "replayed"}`` to :data:`call_ledger` (when the
    runner set one), where ``seconds`` is the original duration for a replayed reply.

    :attr:`wrapped` names the real model, for code that drives it token by token (the
    ``speculate`` and ``token_route`` nodes, see :func:`tandemlm.decoding.models.embedded`):
    such work is not a chat call and is never replayed.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseChatModel
    identity: str
    store: Any

    @property
    def _llm_type(self) -> str:
        return "replay"

    @property
    def wrapped(self) -> BaseChatModel:
        """The real chat model this one replays calls of."""
        return self.inner

    def _key(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> str:
        options = {k: v for k, v in sorted(kwargs.items()) if not k.startswith("ls_")}
        payload = {
            "model": self.identity,
            "messages": [[m.type, m.content] for m in messages],
            "stop": stop or [],
            "options": options,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def _record(self, seconds: float, replayed: bool) -> None:
        ledger = call_ledger.get()
        if ledger is not None:
            ledger.append({"model": self.identity, "seconds": seconds, "replayed": replayed})

    def _hit(self, key: str) -> ChatResult | None:
        found = self.store.get_call(key)
        if found is None:
            return None
        data, seconds = found
        self._record(seconds, True)
        message = AIMessage(
            content=data["content"],
            response_metadata={**data["response_metadata"], "replayed": True},
            usage_metadata=data["usage_metadata"] or None,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _cpu(self, message: BaseMessage, started: float) -> BaseMessage:
        """Keep the process CPU time of an in-process model's call in its metadata, so a
        replayed reply is priced by the energy the original used (tandemlm.models.prices)."""
        from tandemlm.models.call import CPU_SECONDS_KEY, computes_here

        if computes_here(self.inner) and isinstance(message, AIMessage):
            meta = message.response_metadata
            meta.setdefault(CPU_SECONDS_KEY, round(time.process_time() - started, 6))
        return message

    def _store(self, key: str, message: BaseMessage, seconds: float) -> ChatResult:
        if not isinstance(message, AIMessage):
            message = AIMessage(content=str(message.content))
        self.store.put_call(key, self.identity, _message_data(message), seconds)
        self._record(seconds, False)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        key = self._key(messages, stop, kwargs)
        hit = self._hit(key)
        if hit is not None:
            return hit
        start, cpu = time.perf_counter(), time.process_time()
        message = self.inner.invoke(messages, stop=stop, **kwargs)
        return self._store(key, self._cpu(message, cpu), time.perf_counter() - start)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        key = self._key(messages, stop, kwargs)
        hit = self._hit(key)
        if hit is not None:
            return hit
        start, cpu = time.perf_counter(), time.process_time()
        message = await self.inner.ainvoke(messages, stop=stop, **kwargs)
        return self._store(key, self._cpu(message, cpu), time.perf_counter() - start)
