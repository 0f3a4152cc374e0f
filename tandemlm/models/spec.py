"""The model spec: which model a flow uses, how to reach it and what it costs."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Provider = Literal["auto", "ollama", "llamacpp", "scripted", "keyed"]
MAX_HOSTS = 32


class GenerationParams(BaseModel):
    """Sampling parameters passed to the provider on every call."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1, le=32768)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = 0
    stop: list[str] = Field(default_factory=list, max_length=16)


class ModelSpec(BaseModel):
    """One model a flow can call.

    ``provider: auto`` with a ``role`` resolves at run time: Ollama when a server answers,
    else the embedded pair (see :mod:`tandemlm.models.resolve`).

    Args:
        provider: ``auto``, ``ollama``, ``llamacpp``, ``scripted`` or ``keyed``.
        model: Ollama model name, embedded catalog name or path to a ``.gguf`` file.
        role: ``slm``, ``llm`` or any label a router or preset refers to.
        params: generation parameters.
        context_window: tokens of context the model is loaded with.
        local: whether the model runs on this device (privacy decisions depend on it).
        price_in: price per 1k input tokens (any currency unit, used for cost accounting).
        price_out: price per 1k output tokens.
        host: Ollama host URL (default: ``OLLAMA_HOST`` or http://127.0.0.1:11434).
        hosts: several Ollama hosts serving the same model (at most 32): calls are spread
            over the healthy ones and fail over when one dies (see
            :mod:`tandemlm.models.multihost`); a ``host`` given too is added first.
        timeout: seconds a served model (Ollama) may take to connect or between streamed
            pieces before the call fails with ``ModelUnavailableError``.
        replies: scripted replies (``scripted``) or ``{pattern: reply}`` (``keyed``).
    """

    model_config = ConfigDict(extra="forbid")

    provider: Provider = "auto"
    model: str | None = Field(None, max_length=4096)
    role: str | None = Field(None, max_length=64)
    params: GenerationParams = Field(default_factory=GenerationParams)  # type: ignore[arg-type]  # pydantic stub: class fits both overloads
    context_window: int = Field(4096, ge=256, le=1_048_576)
    local: bool = True
    price_in: float = Field(0.0, ge=0.0)
    price_out: float = Field(0.0, ge=0.0)
    host: str | None = Field(None, max_length=2048)
    hosts: list[str] | None = Field(None, min_length=1, max_length=MAX_HOSTS)
    timeout: float = Field(120.0, gt=0.0, le=86_400.0)
    replies: list[Any] | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.provider == "auto" and not self.role and not self.model:
            raise ValueError("give a 'role' (slm or llm) or a 'model' for provider 'auto'")
        if self.provider in ("ollama", "llamacpp") and not self.model:
            raise ValueError(f"provider '{self.provider}' needs 'model'")
        if self.provider in ("scripted", "keyed") and self.replies is None:
            raise ValueError(f"provider '{self.provider}' needs 'replies'")
        if self.hosts is not None:
            self._fold_hosts()
        if self.provider == "keyed" and isinstance(self.replies, dict):
            for pattern in self.replies:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"reply key {pattern!r} is not a regular expression: {exc}") from None
        return self

    def _fold_hosts(self) -> None:
        if self.provider not in ("auto", "ollama"):
            raise ValueError(f"'hosts' applies to Ollama models, not provider '{self.provider}'")
        hosts = [self.host, *(self.hosts or [])] if self.host else list(self.hosts or [])
        cleaned: list[str] = []
        for i, host in enumerate(hosts):
            if not isinstance(host, str) or not host.strip() or len(host) > 2048:
                raise ValueError(f"hosts[{i}]: give a host such as 'gpu1:11434' (got {host!r})")
            if host.strip() not in cleaned:
                cleaned.append(host.strip())
        if len(cleaned) > MAX_HOSTS:
            raise ValueError(f"at most {MAX_HOSTS} hosts per model (got {len(cleaned)})")
        self.hosts = cleaned

    def all_hosts(self) -> list[str | None]:
        """The Ollama hosts of this model: ``hosts``, else ``[host]`` (``None``: the default)."""
        return list(self.hosts) if self.hosts else [self.host]

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Cost of one call from this spec's prices."""
        return (input_tokens * self.price_in + output_tokens * self.price_out) / 1000.0
