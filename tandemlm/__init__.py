"""tandemlm: make large and small language models work together.

Quick start::

    from tandemlm import compile_flow
    flow = compile_flow("cascade")          # a preset, a YAML path, a dict or a Flow
    result = flow.run("What is 17 + 25?")
    print(result.answer, result.path, result.decisions)
"""

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
