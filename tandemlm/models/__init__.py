"""The model layer: specs, provider registry (Ollama, llama.cpp, fakes, plugins), resolution."""

from tandemlm.models.call import ModelReply, call_model
from tandemlm.models.confidence import Confidence, summarize, summarize_logprobs
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel, ScriptError
from tandemlm.models.pool import ModelPool
from tandemlm.models.providers import Provider, provider_names, register_provider
from tandemlm.models.resolve import build_chat_model, describe, resolve_spec
from tandemlm.models.spec import GenerationParams, ModelSpec

__all__ = [
    "Confidence",
    "GenerationParams",
    "KeyedChatModel",
    "ModelPool",
    "ModelReply",
    "ModelSpec",
    "Provider",
    "ScriptError",
    "ScriptedChatModel",
    "build_chat_model",
    "call_model",
    "describe",
    "provider_names",
    "register_provider",
    "resolve_spec",
    "summarize",
    "summarize_logprobs",
]
