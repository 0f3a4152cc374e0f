"""The model spec: which model a flow uses, how to reach it and what it costs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tandemlm.models.providers import provider as provider_entry
from tandemlm.models.providers import provider_names, unknown_message

MAX_HOSTS = 32


class GenerationParams(BaseModel):
    """Sampling parameters passed to the provider on every call.

    ``threads``: CPU threads of an embedded (llama.cpp) model's calls, capped by the
    process's thread budget (default: the budget's share, see
    :mod:`tandemlm.models.threads`); served models ignore it.
    """

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1, le=32768)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = 0
    stop: list[str] = Field(default_factory=list, max_length=16)
    threads: int | None = Field(None, ge=1, le=4096)


class ModelSpec(BaseModel):
    """One model a flow can call.

    ``provider: auto`` with a ``role`` resolves at run time: Ollama when a server answers,
    else the embedded pair (see :mod:`tandemlm.models.resolve`).

    Args:
        provider: a registered provider name (:mod:`tandemlm.models.providers`): built in
            ``auto``, ``ollama``, ``llamacpp``, ``scripted`` and ``keyed``, plus any a
            package adds through the ``tandemlm.providers`` entry point group.
        model: Ollama model name, embedded catalog name or path to a ``.gguf`` file.
        role: ``slm``, ``llm`` or any label a router or preset refers to.
        params: generation parameters.
        context_window: tokens of context the model is loaded with.
        local: whether the model runs on this device (privacy decisions depend on it; a
            call to a non-local model counts as a large-model call). Default: by where it
            runs: embedded models and servers on a loopback address (``localhost``,
            ``127.0.0.1``, ``::1``) are local, any other host is remote (Ollama without a
            ``host``: ``OLLAMA_HOST``; ``openai``: its ``base_url``, remote without one).
        price_in: price per 1k input tokens (any currency unit, used for cost accounting).
        price_out: price per 1k output tokens.
        price: a list-price table entry (:data:`tandemlm.models.prices.REMOTE_PRICES`, e.g.
            ``gpt-4o-mini``) that sets ``price_in``/``price_out`` when they are not given.
        watts_per_core: power of one busy core while this (embedded) model computes
            (default: ``tandem.toml``'s ``[energy]``, see :mod:`tandemlm.models.prices`).
        joules_per_token: energy per input+output token, for local models whose CPU time
            this process cannot measure (a local Ollama server); overrides CPU time.
        host: Ollama host URL (default: ``OLLAMA_HOST`` or http://127.0.0.1:11434).
        hosts: several Ollama hosts serving the same model (at most 32): calls are spread
            over the healthy ones and fail over when one dies (see
            :mod:`tandemlm.models.multihost`); a ``host`` given too is added first.
        timeout: seconds a served model (Ollama) may take to connect or between streamed
            pieces before the call fails with ``ModelUnavailableError``.
        replies: scripted replies (``scripted``) or ``{pattern: reply}`` (``keyed``).
        options: provider-specific settings (validated by the provider, e.g. an API base URL
            for a third-party provider).
    """

    model_config = ConfigDict(extra="forbid")

    provider: str = Field("auto", min_length=1, max_length=128)
    model: str | None = Field(None, max_length=4096)
    role: str | None = Field(None, max_length=64)
    params: GenerationParams = Field(default_factory=GenerationParams)  # type: ignore[arg-type]  # pydantic stub: class fits both overloads
    context_window: int = Field(4096, ge=256, le=1_048_576)
    local: bool = True
    price_in: float = Field(0.0, ge=0.0)
    price_out: float = Field(0.0, ge=0.0)
    price: str | None = Field(None, max_length=128)
    watts_per_core: float | None = Field(None, ge=0.0, le=1000.0)
    joules_per_token: float | None = Field(None, ge=0.0, le=1000.0)
    host: str | None = Field(None, max_length=2048)
    hosts: list[str] | None = Field(None, min_length=1, max_length=MAX_HOSTS)
    timeout: float = Field(120.0, gt=0.0, le=86_400.0)
    replies: list[Any] | dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in provider_names():
            raise ValueError(unknown_message(value))
        return value

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        entry = provider_entry(self.provider)
        entry.check(self)
        if self.hosts is not None:
            self._fold_hosts(entry.hosts)
        if "local" not in self.model_fields_set:
            # by where it runs (loopback or embedded: local), not marked set: to_dict() stays as written
            self.__dict__["local"] = entry.default_local(self)
        if self.price is not None:
            self._list_price(self.price)
        return self

    def _list_price(self, name: str) -> None:
        from tandemlm.models.prices import REMOTE_PRICES

        if name not in REMOTE_PRICES:
            known = ", ".join(sorted(REMOTE_PRICES))
            raise ValueError(f"price: no list price for {name!r} (known: {known}); give price_in/price_out")
        price_in, price_out = REMOTE_PRICES[name].per_1k()
        # as a provider default does: not marked set, so to_dict() stays as written
        if "price_in" not in self.model_fields_set:
            self.__dict__["price_in"] = price_in
        if "price_out" not in self.model_fields_set:
            self.__dict__["price_out"] = price_out

    def _fold_hosts(self, supported: bool) -> None:
        if not supported:
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
        """Cost of one call from this spec's token prices (energy: :meth:`energy`)."""
        return (input_tokens * self.price_in + output_tokens * self.price_out) / 1000.0

    def energy(self, cpu_seconds: float | None, tokens: int, prices: Any = None) -> tuple[float, float]:
        """``(joules, cost)`` of one local call: ``joules_per_token`` x tokens when set, else
        ``cpu_seconds`` (measured process CPU time, ``None`` if not measurable) x
        ``watts_per_core``; remote models and unmeasured calls use none. ``prices``: an
        :class:`~tandemlm.models.prices.EnergyPrices` (default: the project's)."""
        if not self.local or (self.joules_per_token is None and cpu_seconds is None):
            return 0.0, 0.0
        from tandemlm.models.prices import EnergyPrices, energy_prices

        base = prices or energy_prices()
        if self.watts_per_core is not None:
            base = EnergyPrices(self.watts_per_core, base.price_kwh, base.grid_g_per_kwh)
        if self.joules_per_token is not None:
            joules = self.joules_per_token * max(0, tokens)
        else:
            joules = base.joules(cpu_seconds or 0.0)
        return joules, base.cost(joules)
