"""Embedded llama.cpp chat model (``ChatLlamaCpp``) and the per-process model cache.

Models load once per (file, context size) per process and are shared by every
``ChatLlamaCpp`` (and by token-level code via :func:`get_llama`). A llama.cpp context is
not thread-safe, so each loaded model carries a lock and calls on one model serialise.
Each call takes its CPU threads from the process's thread budget
(:mod:`tandemlm.models.threads`) and hands threads back or takes free ones between
tokens, so models generating at once never oversubscribe the cores.

Token confidence costs almost nothing: instead of ``logits_all=True`` (5x slower on a
151k vocabulary), a logits processor sees each step's scores, and picks the next token
itself (argmax, or temperature/top-p sampling with its own seeded generator), then masks
every other token so llama.cpp's greedy sampler takes exactly that one. Knowing the chosen
token at every step, including the last, gives exact per-token probabilities and
entropies.

Every call evaluates its prompt from scratch (``Llama.reset()``): reusing llama.cpp's
prefix cache re-evaluates only the last prompt token, through other kernels than a batch,
which shifts logits (by ~0.1 on SmolLM2 Q4_1) so that one prompt asked twice gave two
answers. Fresh evaluation keeps calls reproducible; prompts are cheap at these sizes.

``ainvoke(messages, logprobs=True)`` fills ``response_metadata["confidence"]``
(:class:`~tandemlm.models.confidence.Confidence`) and ``["token_probs"]`` (one float
per output token, ``len == usage_metadata["output_tokens"]``).

Example:
    >>> chat = ChatLlamaCpp(model="smollm2-135m", max_tokens=32)  # doctest: +SKIP
    >>> reply = chat.invoke("Capital of France?", logprobs=True)  # doctest: +SKIP
    >>> reply.response_metadata["confidence"]["mean_prob"]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import math
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from tandemlm.errors import ModelUnavailableError
from tandemlm.models.catalog import model_path
from tandemlm.models.confidence import CONFIDENCE_KEY, summarize
from tandemlm.models.threads import Lease, ThreadTuner, prepare_openmp, thread_budget

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["ChatLlamaCpp", "ThreadSync", "get_llama", "set_threads", "thread_sync"]

_INSTALL_HINT = "pip install 'tandemlm[embedded]' (or: pip install llama-cpp-python==0.3.16)"

_CACHE: dict[tuple[str, int], tuple[Llama, threading.Lock]] = {}
_CACHE_LOCK = threading.Lock()
_QUIET: list[Any] = []  # keeps the ctypes log callback alive


def _close_all() -> None:
    """Free cached models before interpreter teardown (llama.cpp's finalisers fail late)."""
    with _CACHE_LOCK:
        for llama, lock in _CACHE.values():
            with lock:
                llama.close()
        _CACHE.clear()


def _quiet_llama_logs() -> None:
    """Route llama.cpp's own log lines (context-size notes etc.) to nowhere but errors."""
    if _QUIET:
        return
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback
    def _log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == 4:  # GGML_LOG_LEVEL_ERROR (0 none, 1 debug, 2 info, 3 warn, 5 cont)
            sys.stderr.write(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
    _QUIET.append(_log)
    atexit.register(_close_all)


def get_llama(model: str, n_ctx: int, *, n_threads: int | None = None) -> tuple[Llama, threading.Lock]:
    """Load a model once per (file, ``n_ctx``) per process and return it with its lock.

    Hold the lock for the whole of any call into the returned ``Llama`` (llama.cpp
    contexts are not thread-safe); token-level code shares models and locks this way.

    Args:
        model: catalog name or path of a ``.gguf`` file.
        n_ctx: context size in tokens.
        n_threads: CPU threads of the first load (default: the thread budget's share
            now); ``ChatLlamaCpp`` and token-level nodes set threads per call from the
            budget (:func:`set_threads`), direct users of the model keep these.

    Returns:
        ``(llama, lock)``.

    Raises:
        ModelUnavailableError: llama-cpp-python missing, file missing or unloadable.
    """
    path = model_path(model)
    key = (str(path.resolve()), int(n_ctx))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        prepare_openmp()  # before llama.cpp's OpenMP runtime loads
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelUnavailableError(
                f"cannot run embedded model '{model}': llama-cpp-python is not installed; "
                f"install it with: {_INSTALL_HINT}"
            ) from exc
        _check_gguf(model, path)
        _quiet_llama_logs()
        threads = n_threads or thread_budget().auto_threads()
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=int(n_ctx),
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailableError(
                f"cannot load embedded model '{model}' from {path}: {exc}; for a catalog "
                f"model, re-run `tandem models fetch {model}`; otherwise check the .gguf file"
            ) from exc
        _CACHE[key] = (llama, threading.Lock())
        return _CACHE[key]


def set_threads(llama: Llama, threads: int) -> None:
    """Run ``llama``'s next forward passes (single tokens and batches) on ``threads`` threads.

    Hold the model's lock. Greedy answers did not change with the thread count in the
    tests (threads split a matrix product by rows; each row's dot product stays whole).
    """
    import llama_cpp

    llama_cpp.llama_set_n_threads(llama._ctx.ctx, threads, threads)
    llama.n_threads = llama.n_threads_batch = threads


class ThreadSync:
    """Applies a thread lease to a model before its next forward pass.

    As a logits processor it runs between two tokens of a chat call (and times each
    step); token-level decoders call :meth:`apply` before each batch and :meth:`observe`
    after each single-token step. The next forward pass runs with the lease's share (at
    most ``cap``): fewer threads when another model started generating, more when one
    finished; with an automatic budget, as many of them as the model's tuner picks.

    Args:
        llama: the model (its lock held).
        lease: threads held from the budget.
        cap: this model's own thread count (``params.threads``): used as set.
        tuner: picks the count per step when it is automatic (see :func:`thread_sync`).
    """

    def __init__(self, llama: Llama, lease: Lease, cap: int | None = None,
                 tuner: ThreadTuner | None = None) -> None:
        self.llama = llama
        self.lease = lease
        self.cap = cap
        self.tuner = tuner
        self.threads = 0
        self._last: float | None = None

    def apply(self) -> None:
        held = self.lease.sync()
        budget = self.lease.budget
        if self.cap is not None or budget.pinned:
            threads = min(held, self.cap or held)
        elif self.tuner is not None:
            threads = self.tuner.choose(held, budget.auto_threads())
        else:
            threads = min(held, budget.auto_threads())
        if threads != self.threads:
            set_threads(self.llama, threads)
            self.threads = threads

    def observe(self, seconds: float) -> None:
        """Record the duration of a single-token step run with the current count."""
        if self.tuner is not None and self.threads:
            self.tuner.observe(self.threads, seconds)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        now = time.perf_counter()
        if self._last is not None:  # since the last token: sampling plus one decode step
            self.observe(now - self._last)
        self.apply()
        self._last = time.perf_counter()
        return scores


def thread_sync(llama: Llama, lease: Lease, cap: int | None = None) -> ThreadSync:
    """A :class:`ThreadSync` for ``llama`` with its tuner when its count is automatic."""
    tuner = lease.budget.tuner(llama) if cap is None else None
    return ThreadSync(llama, lease, cap, tuner)


@contextlib.contextmanager
def _leased(llama: Llama, want: int | None, request: dict[str, Any]) -> Iterator[ThreadSync]:
    """Hold threads from the budget for one call (model lock held); ``request``'s logits
    processors sync them between tokens."""
    with thread_budget().lease(want) as lease:
        sync = thread_sync(llama, lease, want)
        sync.apply()
        request["logits_processor"].insert(0, sync)
        yield sync


def _check_gguf(model: str, path: Path) -> None:
    # llama-cpp-python 0.3.16 leaves a half-built model behind on a bad file, whose
    # __del__ then raises an unraisable AttributeError: refuse non-GGUF files up front.
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelUnavailableError(f"cannot read embedded model '{model}' at {path}: {exc}") from exc
    if magic != b"GGUF":
        raise ModelUnavailableError(
            f"cannot load embedded model '{model}': {path} is not a GGUF file; for a catalog "
            f"model, re-run `tandem models fetch {model}`; otherwise check the .gguf file"
        )


def _is_eog(llama: Llama, token: int) -> bool:
    """Whether ``token`` ends generation (EOS, EOT, ``<|im_end|>``, ...)."""
    import llama_cpp

    try:
        return bool(llama_cpp.llama_token_is_eog(llama._model.vocab, token))
    except AttributeError:  # private layout changed: fall back to the plain EOS id
        return token == llama.token_eos()


@dataclass
class _TokenPicker:
    """Logits processor that chooses each token itself and records its probability.

    llama.cpp is run greedy; this processor leaves only its chosen token unmasked, so the
    chosen token of every step (the last one too) is known without reading it back.
    """

    temperature: float
    top_p: float
    seed: int | None
    record_probs: bool
    cancel: threading.Event | None = None
    end_token: int = 0  # the end-of-generation token forced once ``cancel`` is set
    prompt_tokens: int | None = None
    chosen: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.cancel is not None and self.cancel.is_set():
            # llama.cpp calls this from C, which swallows exceptions: end the generation by
            # choosing the end token (the caller discards the reply)
            forced = np.full_like(scores, -np.inf)
            forced[self.end_token] = 0.0
            return forced
        if self.prompt_tokens is None:
            self.prompt_tokens = len(input_ids)
        logits = np.asarray(scores, dtype=np.float64)
        token = self._pick(logits)
        if self.record_probs:
            shifted = np.maximum(logits - logits.max(), -1e4)  # -inf would make 0 * inf
            weights = np.exp(shifted)
            total = float(weights.sum())
            self.probs.append(float(weights[token]) / total)
            self.entropies.append(math.log(total) - float(weights @ shifted) / total)
        self.chosen.append(token)
        forced = np.full_like(scores, -np.inf)
        forced[token] = 0.0
        return forced

    def _pick(self, logits: np.ndarray) -> int:
        if self.temperature <= 0.0:
            return int(np.argmax(logits))
        weights = np.exp(np.maximum((logits - logits.max()) / self.temperature, -1e4))
        candidates = np.arange(len(weights))
        if self.top_p < 1.0:
            order = np.argsort(-weights)
            cumulative = np.cumsum(weights[order]) / weights.sum()
            keep = int(np.searchsorted(cumulative, self.top_p)) + 1
            candidates = order[:keep]
            weights = weights[candidates]
        cumulative = np.cumsum(weights)
        index = int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], "right"))
        return int(candidates[min(index, len(candidates) - 1)])


class _Cancelled(Exception):
    """The caller of a generation went away (timeout, disconnect); raised after llama.cpp stopped."""


def _text(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    pieces = [
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in content
        if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
    ]
    return "".join(pieces)


def _to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> llama.cpp chat dicts (the GGUF's own template formats them)."""
    roles: list[tuple[type[BaseMessage], str]] = [
        (SystemMessage, "system"), (HumanMessage, "user"), (AIMessage, "assistant"),
        (ToolMessage, "tool"),
    ]
    chat: list[dict[str, str]] = []
    for message in messages:
        if isinstance(message, ChatMessage):
            role = message.role
        else:
            role = next((r for cls, r in roles if isinstance(message, cls)), "")
        if not role:
            raise ValueError(f"ChatLlamaCpp cannot send a {type(message).__name__}")
        chat.append({"role": role, "content": _text(message.content)})
    return chat


@dataclass(frozen=True)
class _Options:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str]
    logprobs: bool


class ChatLlamaCpp(BaseChatModel):
    """Chat model running a GGUF file in-process with llama.cpp.

    Parameters are plain data; the model loads on the first call and is shared by every
    instance in the process (see :func:`get_llama`). Per call, ``invoke``/``ainvoke``
    accept ``logprobs``, ``max_tokens``, ``temperature``, ``top_p``, ``seed`` and ``stop``.

    Args:
        model: catalog name (e.g. ``qwen2.5-coder-0.5b``) or path of a ``.gguf`` file.
        n_ctx: context size in tokens.
        n_threads: CPU threads of each call, capped by the process's thread budget
            (default: the budget's share; see :mod:`tandemlm.models.threads`).
        temperature: 0 is greedy; above 0 samples with ``top_p`` and ``seed``.
        max_tokens: output token cap.
        top_p: nucleus sampling mass (with temperature > 0).
        seed: sampling seed; None draws a fresh one per call.
        stop: strings that end the answer (not included in it).
        logprobs: attach token confidence to every reply (costs a softmax per token).

    Raises:
        ModelUnavailableError: on the first call, when the model cannot be loaded.
    """

    model: str
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = None
    temperature: float = Field(0.0, ge=0.0)
    max_tokens: int = Field(256, ge=1)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = 0
    stop: list[str] = Field(default_factory=list)
    logprobs: bool = False

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "n_ctx": self.n_ctx,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
        }

    def _options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> _Options:
        allowed = {"logprobs", "max_tokens", "temperature", "top_p", "seed", "stop"}
        unknown = sorted(k for k in kwargs if k not in allowed and not k.startswith("ls_"))
        if unknown:
            raise TypeError(
                f"ChatLlamaCpp got unsupported call options {unknown} "
                f"(supported: {', '.join(sorted(allowed))})"
            )
        extra_stop = kwargs.get("stop") or []
        return _Options(
            max_tokens=int(kwargs.get("max_tokens") or self.max_tokens),
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            seed=kwargs.get("seed", self.seed),
            stop=[*self.stop, *(stop or []), *extra_stop],
            logprobs=bool(kwargs.get("logprobs", self.logprobs)),
        )

    def _start(
        self, messages: list[BaseMessage], options: _Options, cancel: threading.Event | None = None
    ) -> tuple[Llama, threading.Lock, _TokenPicker, dict[str, Any]]:
        llama, lock = get_llama(self.model, self.n_ctx, n_threads=self.n_threads)
        from llama_cpp import LogitsProcessorList  # after get_llama: OpenMP settings first
        picker = _TokenPicker(options.temperature, options.top_p, options.seed, options.logprobs, cancel,
                              llama.token_eos())
        request: dict[str, Any] = {
            "messages": _to_chat(messages),
            "max_tokens": options.max_tokens,
            "stop": options.stop,
            "temperature": 0.0,  # greedy over the one token the picker left unmasked
            "logits_processor": LogitsProcessorList([picker]),
        }
        return llama, lock, picker, request

    def _metadata(
        self, picker: _TokenPicker, options: _Options, finish_reason: str | None, n_out: int
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"model_name": self.model, "finish_reason": finish_reason}
        if options.logprobs:
            probs = picker.probs[:n_out]
            meta[CONFIDENCE_KEY] = summarize(probs, picker.entropies[:n_out])
            meta["token_probs"] = probs
        return meta

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._complete(messages, stop, kwargs)

    def _complete(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any],
        cancel: threading.Event | None = None,
    ) -> ChatResult:
        options = self._options(stop, kwargs)
        llama, lock, picker, request = self._start(messages, options, cancel)
        with lock, _leased(llama, self.n_threads, request):
            if cancel is not None and cancel.is_set():  # gave up while queued for the model
                raise _Cancelled
            llama.reset()
            response: Any = llama.create_chat_completion(**request)
        if cancel is not None and cancel.is_set():
            raise _Cancelled
        choice = response["choices"][0]
        usage = response["usage"]
        n_in, n_out = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        finish = choice.get("finish_reason")
        message = AIMessage(
            content=choice["message"].get("content") or "",
            usage_metadata=UsageMetadata(
                input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out
            ),
            response_metadata=self._metadata(picker, options, finish, n_out),
        )
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info={"finish_reason": finish})],
            llm_output={"model_name": self.model},
        )

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any],
        cancel: threading.Event | None = None,
    ) -> Iterator[ChatGenerationChunk]:
        """Stream text chunks, then one empty chunk carrying usage and metadata."""
        options = self._options(stop, kwargs)
        llama, lock, picker, request = self._start(messages, options, cancel)
        finish: str | None = None
        with lock, _leased(llama, self.n_threads, request):
            if cancel is not None and cancel.is_set():
                return
            llama.reset()
            stream: Any = llama.create_chat_completion(**request, stream=True)
            try:
                for part in stream:
                    choice = part["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    text = choice["delta"].get("content") or ""
                    if text:
                        yield ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if cancel is not None and cancel.is_set():
                        return
            finally:
                stream.close()
        # The processor ran once per sampled token; a final end-of-generation token is
        # sampled but not part of the answer (llama.cpp's own usage excludes it too).
        n_out = len(picker.chosen)
        if n_out and _is_eog(llama, picker.chosen[-1]):
            n_out -= 1
        n_in = picker.prompt_tokens or 0
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=UsageMetadata(
                    input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out
                ),
                response_metadata=self._metadata(picker, options, finish, n_out),
                chunk_position="last",
            ),
            generation_info={"finish_reason": finish},
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, kwargs):
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # A cancelled caller (run timeout, client gone) must not leave llama.cpp generating
        # in its thread for the rest of max_tokens: the event stops it at the next token.
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self._complete, messages, stop, kwargs, cancel)
        finally:
            cancel.set()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed under us: stop generating
                cancel.set()

        def produce() -> None:
            try:
                for chunk in self._chunks(messages, stop, kwargs, cancel):
                    put(("chunk", chunk))
                    if cancel.is_set():
                        return
            except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer; it must not wait forever
                put(("error", exc))
            else:
                put(("done", None))

        worker = asyncio.ensure_future(asyncio.to_thread(produce))
        try:
            while True:
                kind, item = await queue.get()
                if kind == "done":
                    break
                if kind == "error":
                    raise item
                if run_manager is not None and item.text:
                    await run_manager.on_llm_new_token(item.text, chunk=item)
                yield item
        finally:
            cancel.set()
            with contextlib.suppress(Exception):
                await worker
