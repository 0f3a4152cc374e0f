"""tandemlm: make large and small language models work together.

Quick start::

    from tandemlm import compile_flow
    flow = compile_flow("cascade")          # a preset, a YAML path, a dict or a Flow
    result = flow.run("What is 17 + 25?")
    print(result.answer, result.path, result.decisions)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tandemlm.core import Decision, Node, NodeCall, NodeResult, Port
    from tandemlm.errors import (
        BudgetExceededError,
        ConfigError,
        ModelUnavailableError,
        NodeExecutionError,
        SpecError,
        TandemError,
    )
    from tandemlm.flows import (
        CompiledFlow,
        Flow,
        FlowSpec,
        RunResult,
        compile_flow,
        load_flow,
        presets,
    )
    from tandemlm.flows.registry import register_node, register_provider, register_router
    from tandemlm.models import KeyedChatModel, ModelSpec, ScriptedChatModel

# The public names and the module each comes from. They are imported on first use (PEP 562),
# so `import tandemlm` (and `tandem --help`) does not pay for LangGraph until a flow is built.
_EXPORTS = {
    **dict.fromkeys(("Decision", "Node", "NodeCall", "NodeResult", "Port"), "tandemlm.core"),
    **dict.fromkeys(
        ("BudgetExceededError", "ConfigError", "ModelUnavailableError", "NodeExecutionError",
         "SpecError", "TandemError"),
        "tandemlm.errors",
    ),
    **dict.fromkeys(
        ("CompiledFlow", "Flow", "FlowSpec", "RunResult", "compile_flow", "load_flow", "presets"),
        "tandemlm.flows",
    ),
    **dict.fromkeys(("register_node", "register_provider", "register_router"), "tandemlm.flows.registry"),
    **dict.fromkeys(("KeyedChatModel", "ModelSpec", "ScriptedChatModel"), "tandemlm.models"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tandemlm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__version__ = "0.1.0"

__all__ = [
    "BudgetExceededError",
    "CompiledFlow",
    "ConfigError",
    "Decision",
    "Flow",
    "FlowSpec",
    "KeyedChatModel",
    "ModelSpec",
    "ModelUnavailableError",
    "Node",
    "NodeCall",
    "NodeExecutionError",
    "NodeResult",
    "Port",
    "RunResult",
    "ScriptedChatModel",
    "SpecError",
    "TandemError",
    "__version__",
    "compile_flow",
    "load_flow",
    "presets",
    "register_node",
    "register_provider",
    "register_router",
]
