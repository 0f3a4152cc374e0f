"""The built-in model providers, registered by name in :mod:`tandemlm.models.providers`.

``auto`` (a role resolved at run time), ``ollama`` (one server or several ``hosts``),
``llamacpp`` (embedded GGUF models), ``openai`` (any OpenAI-compatible server; remote by
default), ``scripted`` and ``keyed`` (deterministic fakes). Heavy libraries are imported
inside the methods that need them.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tandemlm.errors import ConfigError, TandemError
from tandemlm.models.providers import Provider, is_loopback

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from tandemlm.config import Config
    from tandemlm.models.spec import ModelSpec


def _ollama_host_is_local(host: str | None) -> bool:
    """Whether an Ollama host (``None``: ``OLLAMA_HOST``, else 127.0.0.1) is this machine."""
    address = host if host is not None else os.environ.get("OLLAMA_HOST", "")
    return not address.strip() or is_loopback(address)


def _needs_model(spec: ModelSpec) -> None:
    if not spec.model:
        raise ValueError(f"provider '{spec.provider}' needs 'model'")


def _needs_replies(spec: ModelSpec) -> None:
    if spec.replies is None:
        raise ValueError(f"provider '{spec.provider}' needs 'replies'")


class AutoProvider(Provider):
    """A ``role`` (or ``model``) resolved when the flow first uses it: the project
    configuration for the role, else Ollama when a server answers, else embedded llama.cpp
    (see :func:`tandemlm.models.resolve.resolve_role`)."""

    hosts = True

    def check(self, spec: ModelSpec) -> None:
        if not spec.role and not spec.model:
            raise ValueError("give a 'role' (slm or llm) or a 'model' for provider 'auto'")
        super().check(spec)

    def resolve(self, spec: ModelSpec, config: Config | None = None) -> ModelSpec:
        from tandemlm.models.resolve import resolve_role

        return resolve_role(spec, config)

    def default_local(self, spec: ModelSpec) -> bool:
        """Local unless the role may resolve to a server that is not on this machine: the
        spec's hosts, the role's entry in ``tandem.toml``, or the configured Ollama host."""
        if spec.host or spec.hosts:
            return super().default_local(spec)
        from tandemlm.config import load_config

        try:
            config = load_config()
            configured = config.models.get(spec.role or "")
            if configured is not None:  # resolves as resolve_role merges it
                from tandemlm.models.spec import ModelSpec

                merged = {**spec.model_dump(exclude={"provider", "local"}), **configured}
                merged.setdefault("provider", "llamacpp")
                if merged["provider"] != "auto":
                    return ModelSpec.model_validate(merged).local
        except (TandemError, ValueError):
            return _ollama_host_is_local(None)
        return config.provider == "embedded" or _ollama_host_is_local(config.ollama.host)

    def build(self, spec: ModelSpec) -> BaseChatModel:
        raise ConfigError(f"cannot build a model for provider {spec.provider!r}; resolve it first")


class OllamaProvider(Provider):
    """A model served by Ollama (``host``, or several ``hosts`` with failover)."""

    hosts = True

    def check(self, spec: ModelSpec) -> None:
        _needs_model(spec)
        super().check(spec)

    def build(self, spec: ModelSpec) -> BaseChatModel:
        if len(spec.all_hosts()) > 1:
            from tandemlm.models.multihost import MultiHostChatModel

            return MultiHostChatModel(spec=spec)
        from tandemlm.models.ollama import make_ollama_chat

        return make_ollama_chat(spec)

    def preflight(self, spec: ModelSpec) -> None:
        if len(spec.all_hosts()) > 1:
            from tandemlm.models.multihost import check_any_host

            check_any_host(spec)  # at least one host answers with the model
            return
        from tandemlm.models.ollama import check_health

        check_health(spec.host, spec.model)

    def default_local(self, spec: ModelSpec) -> bool:
        """Local when every host (``OLLAMA_HOST`` without one) is a loopback address."""
        return all(_ollama_host_is_local(host) for host in spec.all_hosts())


class LlamaCppProvider(Provider):
    """An embedded GGUF model (catalog name or path) run in-process by llama.cpp."""

    def check(self, spec: ModelSpec) -> None:
        _needs_model(spec)
        super().check(spec)

    def build(self, spec: ModelSpec) -> BaseChatModel:
        from tandemlm.models.llamacpp import ChatLlamaCpp

        params = spec.params
        return ChatLlamaCpp(
            model=spec.model or "",
            n_ctx=spec.context_window,
            temperature=params.temperature,
            max_tokens=params.max_tokens,
            top_p=params.top_p,
            seed=params.seed,
            stop=list(params.stop),
            n_threads=params.threads,
        )

    def preflight(self, spec: ModelSpec) -> None:
        from tandemlm.models.catalog import model_path

        model_path(spec.model or "")  # assembles and verifies catalog files on first use


class ScriptedProvider(Provider):
    """Replies in order (:class:`~tandemlm.models.fakes.ScriptedChatModel`)."""

    def check(self, spec: ModelSpec) -> None:
        _needs_replies(spec)
        super().check(spec)

    def build(self, spec: ModelSpec) -> BaseChatModel:
        from tandemlm.models.fakes import ScriptedChatModel

        return ScriptedChatModel(replies=list(spec.replies or []), model_name=spec.model or "scripted")


class KeyedProvider(Provider):
    """Replies by regular expression over the prompt (:class:`~tandemlm.models.fakes.KeyedChatModel`)."""

    def check(self, spec: ModelSpec) -> None:
        _needs_replies(spec)
        if isinstance(spec.replies, dict):
            for pattern in spec.replies:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"reply key {pattern!r} is not a regular expression: {exc}") from None
        super().check(spec)

    def build(self, spec: ModelSpec) -> BaseChatModel:
        from tandemlm.models.fakes import KeyedChatModel

        replies = spec.replies if isinstance(spec.replies, dict) else {}
        return KeyedChatModel(replies=replies, model_name=spec.model or "keyed")


class OpenAIOptions(BaseModel):
    """``options`` of an ``openai`` model.

    Args:
        base_url: the API base URL, e.g. ``http://127.0.0.1:8000/v1`` (default:
            ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``).
        api_key_env: the environment variable holding the API key (keys never go in
            specs); ``null`` for a server that takes no key.
        max_retries: retries of a failed request (connection errors, 429, 5xx).
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, max_length=2048)
    api_key_env: str | None = Field("OPENAI_API_KEY", max_length=128)
    max_retries: int = Field(2, ge=0, le=10)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"give an http:// or https:// URL such as https://api.openai.com/v1 (got {value!r})")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"give the name of an environment variable such as OPENAI_API_KEY (got {value!r})")
        return value


class OpenAIProvider(Provider):
    """A model behind any OpenAI-compatible chat completions API (OpenAI, vLLM, llama.cpp's
    server, LiteLLM, another ``tandem serve``): ``model`` plus ``options`` (see
    :class:`OpenAIOptions`). Remote (``local: false``) unless the spec says otherwise.
    Needs ``pip install 'tandemlm[openai]'``."""

    local = False
    options_model = OpenAIOptions

    def check(self, spec: ModelSpec) -> None:
        _needs_model(spec)
        super().check(spec)

    def build(self, spec: ModelSpec) -> BaseChatModel:
        return _openai_chat().make_openai_chat(spec)

    def default_local(self, spec: ModelSpec) -> bool:
        """Local only when the spec's ``options.base_url`` is a loopback address (a server on
        this device, e.g. llama.cpp's); without one, remote (whatever ``OPENAI_BASE_URL`` says)."""
        base_url = spec.options.get("base_url") if isinstance(spec.options, dict) else None
        return bool(base_url) and is_loopback(str(base_url))

    def preflight(self, spec: ModelSpec) -> None:
        _openai_chat().check_server(spec)


def _openai_chat() -> Any:
    try:
        from tandemlm.models import openai_chat
    except ImportError as exc:
        raise ConfigError(
            f"provider 'openai' needs langchain-openai ({exc.name} is missing): "
            "pip install 'tandemlm[openai]'"
        ) from None
    return openai_chat
