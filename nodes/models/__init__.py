"""The model layer: specs, providers (Ollama, embedded llama.cpp, fakes), resolution."""

from tandemlm.nodes.models.call import ModelReply, call_model
from tandemlm.nodes.models.confidence import Confidence, summarize, summarize_logprobs
from tandemlm.nodes.models.fakes import KeyedChatModel, ScriptedChatModel, ScriptError
from tandemlm.nodes.models.pool import ModelPool
from tandemlm.nodes.models.resolve import build_chat_model, describe, resolve_spec
from tandemlm.nodes.models.spec import GenerationParams, ModelSpec

__all__ = [
    "Confidence",
    "GenerationParams",
    "KeyedChatModel",
    "ModelPool",
    "ModelReply",
    "ModelSpec",
    "ScriptError",
    "ScriptedChatModel",
    "build_chat_model",
    "call_model",
    "describe",
    "resolve_spec",
    "summarize",
    "summarize_logprobs",
]
