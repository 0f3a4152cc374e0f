"""Turn model specs into chat models: default resolution of roles, then provider factories.

With ``provider: auto``, a role resolves (in order) to the project configuration for that
role, to Ollama when a server answers (names from ``[ollama]``), else to the embedded pair
(``qwen2.5-coder-0.5b`` as ``slm``, ``qwen2.5-coder-1.5b`` as ``llm``). Every other
provider is looked up in the provider registry (:mod:`tandemlm.models.providers`).
"""

from __future__ import annotations

from functools import lru_cache

from langchain_core.language_models import BaseChatModel

from tandemlm.config import Config, load_config
from tandemlm.errors import ConfigError
from tandemlm.models.providers import provider
from tandemlm.models.spec import ModelSpec


@lru_cache(maxsize=4)
def _ollama_answers(host: str | None) -> bool:
    from tandemlm.models.ollama import ollama_available

    return ollama_available(host)


def resolve_spec(spec: ModelSpec, config: Config | None = None) -> ModelSpec:
    """Return a concrete spec (provider other than ``auto``); explicit settings win."""
    return provider(spec.provider, "provider").resolve(spec, config)


def resolve_role(spec: ModelSpec, config: Config | None = None) -> ModelSpec:
    """Resolve a ``provider: auto`` spec by its role (see the module docstring)."""
    config = config or load_config()
    role = spec.role or ""
    explicit = {k: v for k, v in spec.model_dump(exclude_unset=True).items() if k != "provider"}
    if role in config.models:
        # `local` only when set: otherwise the configured provider's default applies
        merged = {**spec.model_dump(exclude={"provider", "local"}), **config.models[role], **explicit}
        merged.setdefault("provider", "llamacpp")
        if merged.get("provider") == "auto":
            raise ConfigError(f"models.{role}: give a concrete provider (ollama or llamacpp)")
        return ModelSpec.model_validate(merged)
    use_ollama = config.provider == "ollama" or (
        config.provider == "auto" and _ollama_answers(config.ollama.host)
    )
    if use_ollama:
        name = spec.model or getattr(config.ollama, role, None) or config.ollama.llm
        return spec.model_copy(
            update={"provider": "ollama", "model": name, "host": spec.host or config.ollama.host}
        )
    name = spec.model or getattr(config.embedded, role, None) or config.embedded.llm
    return spec.model_copy(update={"provider": "llamacpp", "model": name})


def describe(spec: ModelSpec) -> str:
    """Short human label such as ``llamacpp:qwen2.5-coder-0.5b``."""
    return f"{spec.provider}:{spec.model or spec.role}"


def build_chat_model(spec: ModelSpec) -> BaseChatModel:
    """Create the chat model for a concrete spec (heavy imports happen in the provider)."""
    return provider(spec.provider, "provider").build(spec)
