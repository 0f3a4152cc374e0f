"""Which models can collaborate token by token, checked at compile time and at load time.

Token-level work needs two in-process llama.cpp models (``provider: llamacpp``) with one
vocabulary. At compile time, catalog names are compared by tokenizer family; ``.gguf``
paths are compared when the models load (vocabulary size plus a spread of token pieces).

A chat model that wraps another (evaluation's call replay,
:class:`~tandemlm.evaluation.cache.ReplayChatModel`) names the model it wraps in its
``wrapped`` attribute; token-level work runs on that model directly (single tokens cannot
be replayed from a cache of whole replies).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tandemlm.errors import ModelUnavailableError, SpecError
from tandemlm.models.catalog import CATALOG

if TYPE_CHECKING:
    from tandemlm.core.context import TandemContext
    from tandemlm.decoding.decoder import Decoder
    from tandemlm.flows.spec import FlowSpec

__all__ = ["TokenModel", "check_pair", "embedded", "load_pair", "locked"]

_FIX = (
    "token-level nodes need two embedded llama.cpp models sharing one tokenizer, e.g. "
    "{provider: llamacpp, model: qwen2.5-coder-0.5b} with {provider: llamacpp, model: "
    "qwen2.5-coder-1.5b}"
)


def _family(model: str | None) -> str | None:
    entry = CATALOG.get(model or "")
    return entry.family if entry else None


def check_pair(spec: FlowSpec, refs: Mapping[str, str]) -> None:
    """Raise :class:`SpecError` unless every referenced model can work token by token.

    Args:
        spec: the flow spec.
        refs: ``{node parameter: model name}`` (names already checked to exist).

    Raises:
        SpecError: a model is not ``provider: llamacpp`` (Ollama and other servers expose
            no per-token control), or two catalog models have different tokenizers. The
            path is relative to the node (the validator prefixes ``nodes.<name>.``).
    """
    families: dict[str, tuple[str, str]] = {}
    for param, name in refs.items():
        model = spec.models[name]
        if model.provider != "llamacpp":
            what = "an Ollama model" if model.provider == "ollama" else f"provider {model.provider!r}"
            if model.provider == "auto":
                what = "provider 'auto' (it may resolve to Ollama)"
            raise SpecError(
                param,
                f"model {name!r} is {what}, which cannot score or draft single tokens; {_FIX}",
            )
        family = _family(model.model)
        if family is not None:
            families[param] = (name, family)
    distinct = {family for _, family in families.values()}
    if len(distinct) > 1:
        described = ", ".join(
            f"{name!r} ({spec.models[name].model}, tokenizer {family})"
            for name, family in families.values()
        )
        param = list(families)[-1]
        raise SpecError(
            param, f"models {described} have different vocabularies; {_FIX}"
        )


@dataclass
class TokenModel:
    """One loaded model for token-level work, with the settings of its flow model."""

    name: str
    model: str
    decoder: Decoder
    lock: threading.Lock
    temperature: float
    max_tokens: int
    seed: int | None
    stop: list[str]
    threads: int | None = None  # the flow model's params.threads (None: the budget's share)


def embedded(chat: Any) -> Any:
    """The model behind ``chat``'s wrappers (each names the model it wraps in ``wrapped``)."""
    seen: set[int] = set()
    while getattr(chat, "wrapped", None) is not None and id(chat) not in seen:
        seen.add(id(chat))
        chat = chat.wrapped
    return chat


def _chat_settings(context: TandemContext, name: str) -> tuple[str, int, int | None, Any]:
    """(model, n_ctx, n_threads, chat) of flow model ``name``; overrides must be embedded."""
    from tandemlm.models.llamacpp import ChatLlamaCpp

    chat = embedded(context.models.get(name))
    if not isinstance(chat, ChatLlamaCpp):
        raise ModelUnavailableError(
            f"model {name!r} is a {type(chat).__name__}; token-level nodes need a ChatLlamaCpp "
            f"(an embedded llama.cpp model), not a served or scripted one; {_FIX}"
        )
    return chat.model, chat.n_ctx, chat.n_threads, chat


def load_pair(context: TandemContext, small: str, large: str) -> tuple[TokenModel, TokenModel]:
    """Load flow models ``small`` and ``large`` (shared, one load per process).

    When both name the same file, the small one gets a separate context (a model cannot
    draft for itself in one KV cache).

    Raises:
        ModelUnavailableError: a model is not embedded, cannot load, or the vocabularies
            differ.
    """
    from tandemlm.decoding.decoder import Decoder
    from tandemlm.models.llamacpp import get_llama

    loaded: list[TokenModel] = []
    seen: set[int] = set()
    for name in (large, small):
        model, n_ctx, n_threads, chat = _chat_settings(context, name)
        llama, lock = get_llama(model, n_ctx, n_threads=n_threads)
        while id(llama) in seen:  # same file and size as the other: give it its own context
            n_ctx += 64
            llama, lock = get_llama(model, n_ctx, n_threads=n_threads)
        seen.add(id(llama))
        loaded.append(TokenModel(
            name=name, model=model, decoder=Decoder(llama, name), lock=lock,
            temperature=chat.temperature, max_tokens=chat.max_tokens, seed=chat.seed,
            stop=list(chat.stop), threads=n_threads,
        ))
    big, little = loaded
    if big.decoder.vocab_signature() != little.decoder.vocab_signature():
        raise ModelUnavailableError(
            f"models {little.name!r} ({little.model}) and {big.name!r} ({big.model}) have "
            f"different vocabularies; {_FIX}"
        )
    return little, big


@contextlib.contextmanager
def locked(*models: TokenModel) -> Iterator[None]:
    """Hold every model's lock (in a fixed order, so two nodes never deadlock), then one
    thread lease from the process's budget for all of them.

    The models of a token-level generation run one after the other, never at the same
    moment, so they share one lease; each model uses at most its own ``threads``.
    """
    from tandemlm.models.llamacpp import thread_sync
    from tandemlm.models.threads import thread_budget

    locks = sorted({id(m.lock): m.lock for m in models}.values(), key=id)
    caps = [m.threads for m in models]
    want = max((c for c in caps if c is not None), default=None) if None not in caps else None
    with contextlib.ExitStack() as stack:
        for lock in locks:
            stack.enter_context(lock)
        lease = stack.enter_context(thread_budget().lease(want))
        for model in models:
            model.decoder.threads = thread_sync(model.decoder.llama, lease, model.threads)
        try:
            yield
        finally:
            for model in models:
                model.decoder.threads = None
