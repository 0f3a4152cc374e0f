"""Turn model specs into chat models: default resolution of roles, then provider factories.

With ``provider: auto``, a role resolves (in order) to the project configuration for that
role, to Ollama when a server answers (names from ``[ollama]``), else to the embedded pair
(``qwen2.5-coder-0.5b`` as ``slm``, ``qwen2.5-coder-1.5b`` as ``llm``).
"""

from __future__ import annotations

from functools import lru_cache

from langchain_core.language_models import BaseChatModel

from tandemlm.config import Config, load_config
from tandemlm.errors import ConfigError
from tandemlm.models.spec import ModelSpec


@lru_cache(maxsize=4)
def _ollama_answers(host: str | None) -> bool:
    from tandemlm.models.ollama import ollama_available

    return ollama_available(host)


def resolve_spec(spec: ModelSpec, config: Config | None = None) -> ModelSpec:
    """Return a concrete spec (provider other than ``auto``); explicit settings win."""
    if spec.provider != "auto":
        return spec
    config = config or load_config()
    role = spec.role or ""
    explicit = {k: v for k, v in spec.model_dump(exclude_unset=True).items() if k != "provider"}
    if role in config.models:
        merged = {**spec.model_dump(exclude={"provider"}), **config.models[role], **explicit}
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
    """Create the chat model for a concrete spec (heavy imports happen here, lazily)."""
    params = spec.params
    if spec.provider == "llamacpp":
        from tandemlm.models.llamacpp import ChatLlamaCpp

        return ChatLlamaCpp(
            model=spec.model or "",
            n_ctx=spec.context_window,
            temperature=params.temperature,
            max_tokens=params.max_tokens,
            top_p=params.top_p,
            seed=params.seed,
            stop=list(params.stop),
        )
    if spec.provider == "ollama":
        if len(spec.all_hosts()) > 1:
            from tandemlm.models.multihost import MultiHostChatModel

            return MultiHostChatModel(spec=spec)
        from tandemlm.models.ollama import make_ollama_chat

        return make_ollama_chat(spec)
    if spec.provider == "scripted":
        from tandemlm.models.fakes import ScriptedChatModel

        return ScriptedChatModel(replies=list(spec.replies or []), model_name=spec.model or "scripted")
    if spec.provider == "keyed":
        from tandemlm.models.fakes import KeyedChatModel

        replies = spec.replies if isinstance(spec.replies, dict) else {}
        return KeyedChatModel(replies=replies, model_name=spec.model or "keyed")
    raise ConfigError(f"cannot build a model for provider {spec.provider!r}; resolve it first")
