"""The models a compiled flow uses: specs resolved and chat models built once, lazily."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel

from tandemlm.errors import SpecError
from tandemlm.models.providers import provider
from tandemlm.models.resolve import build_chat_model, describe, resolve_spec
from tandemlm.models.spec import ModelSpec


@dataclass(frozen=True)
class PoolEntry:
    """What a model call needs to know about a model, computed once per pool."""

    name: str
    spec: ModelSpec
    chat: BaseChatModel
    provider: str  # for spans: the spec's provider, else the chat model's own type
    request_model: str  # the provider's model id, else the chat model's, else the name
    large: bool  # counts as the large model (see tandemlm.core.ledger.is_large_model)
    chat_attributes: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The attributes every ``chat`` span of this model carries (provider, model, role...)."""
    computes_here: bool = False  # computes in this process (see tandemlm.models.call.computes_here)


class ModelPool:
    """Named models of one flow.

    Args:
        specs: model specs by name (as in the flow spec).
        overrides: ready chat models by name (fakes in tests, any LangChain chat model);
            an override replaces building from the spec but keeps the spec's prices and
            ``local`` flag.
    """

    def __init__(
        self, specs: Mapping[str, ModelSpec], overrides: Mapping[str, BaseChatModel] | None = None
    ) -> None:
        self._specs = dict(specs)
        self._overrides = dict(overrides or {})
        unknown = set(self._overrides) - set(self._specs)
        for name in unknown:  # an override for a model the spec does not declare
            self._specs[name] = ModelSpec(provider="scripted", replies=[], role=name)
        self._resolved: dict[str, ModelSpec] = {}
        self._models: dict[str, BaseChatModel] = {}
        self._entries: dict[str, PoolEntry] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, name: str) -> ModelSpec:
        """The concrete spec of ``name`` (``auto`` resolved)."""
        if name not in self._specs:
            known = ", ".join(sorted(self._specs)) or "none"
            raise SpecError(f"models.{name}", f"unknown model {name!r} (known: {known})")
        with self._lock:
            if name not in self._resolved:
                spec = self._specs[name]
                self._resolved[name] = spec if name in self._overrides else resolve_spec(spec)
            return self._resolved[name]

    def get(self, name: str) -> BaseChatModel:
        """The chat model called ``name``, built on first use."""
        spec = self.spec(name)
        with self._lock:
            if name not in self._models:
                self._models[name] = self._overrides.get(name) or build_chat_model(spec)
            return self._models[name]

    def entry(self, name: str) -> PoolEntry:
        """Spec, chat model and span labels of ``name`` (built on first use, then cached)."""
        found = self._entries.get(name)
        if found is None:
            from tandemlm.core.ledger import is_large_model

            spec, chat = self.spec(name), self.get(name)
            label = spec.provider
            if label == "auto":
                label = str(getattr(chat, "_llm_type", None) or type(chat).__name__)
            request = spec.model or getattr(chat, "model", None) or getattr(chat, "model_name", None)
            from tandemlm.models.call import computes_here
            from tandemlm.telemetry import attributes as A

            request = str(request or name)
            found = PoolEntry(name, spec, chat, label, request, is_large_model(spec.role, spec.local, name), {
                A.GEN_AI_OPERATION: "chat",
                A.GEN_AI_PROVIDER: label,
                A.GEN_AI_REQUEST_MODEL: request,
                A.GEN_AI_TEMPERATURE: spec.params.temperature,
                A.GEN_AI_MAX_TOKENS: spec.params.max_tokens,
                A.MODEL: name,
                A.MODEL_LOCAL: spec.local,
                A.MODEL_ROLE: spec.role,
            }, computes_here(chat))
            self._entries[name] = found
        return found

    def preflight(self, names: list[str] | None = None) -> None:
        """Check that models can be used before a run (each provider's ``preflight``):
        embedded files exist (assembling and verifying them with a progress bar on first
        use), Ollama answers and has the model.

        Raises:
            ModelUnavailableError: with the command that fixes it.
        """
        for name in names or self.names():
            if name in self._overrides:
                continue
            spec = self.spec(name)
            provider(spec.provider, f"models.{name}.provider").preflight(spec)

    def describe(self) -> dict[str, str]:
        """``{name: "provider:model"}`` for every model, resolving ``auto`` roles."""
        out = {}
        for name in self._specs:
            out[name] = "override" if name in self._overrides else describe(self.spec(name))
        return out
