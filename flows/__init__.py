"""Flow specs, the Python builder, validation and compilation to LangGraph."""

from tandemlm.core.state import FlowState
from tandemlm.flows.builder import Flow
from tandemlm.flows.compiler import CompiledFlow, RunResult, compile_flow
from tandemlm.flows.loader import dump_yaml, load_flow, presets
from tandemlm.flows.registry import node_types, register_node, register_router, router_types
from tandemlm.flows.spec import FlowSettings, FlowSpec

__all__ = [
    "CompiledFlow",
    "Flow",
    "FlowSettings",
    "FlowSpec",
    "FlowState",
    "RunResult",
    "compile_flow",
    "dump_yaml",
    "load_flow",
    "node_types",
    "presets",
    "register_node",
    "register_router",
    "router_types",
]
