"""Registries of node and router types (and, re-exported, model providers), by short name.

Built-in types are listed here; third-party packages add theirs through the entry point
groups ``tandemlm.nodes``, ``tandemlm.routers`` and ``tandemlm.providers``
(``name = "package.module:Class"``) or by calling :func:`register_node` /
:func:`register_router` / :func:`register_provider`. Specs only ever name types by these
short names: a spec can never make tandemlm import an arbitrary module. The provider
registry lives with the model layer (:mod:`tandemlm.models.providers`).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from tandemlm.errors import SpecError
from tandemlm.models import providers as _providers

if TYPE_CHECKING:
    from tandemlm.core.node import Node
    from tandemlm.nodes.routers.base import Router

NODE_GROUP = "tandemlm.nodes"
ROUTER_GROUP = "tandemlm.routers"
PROVIDER_GROUP = _providers.PROVIDER_GROUP
register_provider = _providers.register_provider

_BUILTIN_NODES: dict[str, str] = {
    "generate": "tandemlm.nodes.generate:Generate",
    "accept": "tandemlm.nodes.generate:Accept",
    "fuse": "tandemlm.nodes.fuse:Fuse",
    "fallback": "tandemlm.nodes.fallback:Fallback",
    "pass": "tandemlm.nodes.passthrough:Passthrough",
    "speculate": "tandemlm.nodes.speculate:Speculate",
    "token_route": "tandemlm.nodes.token_route:TokenRoute",
    "retrieve": "tandemlm.nodes.retrieve:Retrieve",
    "decompose": "tandemlm.nodes.decompose:Decompose",
    "evidence": "tandemlm.nodes.evidence:Evidence",
    "citations": "tandemlm.nodes.evidence:Citations",
    "privacy_filter": "tandemlm.nodes.privacy:PrivacyFilter",
    "restore": "tandemlm.nodes.privacy:Restore",
    "local_context": "tandemlm.nodes.privacy:LocalContext",
    "reasoned_answer": "tandemlm.nodes.verify:ReasonedAnswer",
    "verify": "tandemlm.nodes.verify:Verify",
    "plan_subtasks": "tandemlm.nodes.workers:PlanSubtasks",
    "local_workers": "tandemlm.nodes.workers:LocalWorkers",
    "aggregate_findings": "tandemlm.nodes.workers:AggregateFindings",
    "flow": "tandemlm.flows.subflow:SubFlow",
    "iterative_retrieve": "tandemlm.nodes.multihop:IterativeRetrieve",
    "cite_check": "tandemlm.nodes.grounding:CiteCheck",
    "arbitrate": "tandemlm.nodes.arbitrate:Arbitrate",
    "sample": "tandemlm.nodes.rerank:Sample",
    "rerank": "tandemlm.nodes.rerank:Rerank",
    "consistency": "tandemlm.nodes.consistency:Consistency",
}
_BUILTIN_ROUTERS: dict[str, str] = {
    "rule": "tandemlm.nodes.routers.rule:RuleRouter",
    "confidence": "tandemlm.nodes.routers.confidence:ConfidenceRouter",
    "self_eval": "tandemlm.nodes.routers.self_eval:SelfEvalRouter",
    "verifier": "tandemlm.nodes.routers.verifier:VerifierRouter",
    "knn": "tandemlm.nodes.routers.knn:KnnRouter",
    "logistic": "tandemlm.nodes.routers.logistic:LogisticRouter",
    "bandit": "tandemlm.nodes.routers.bandit:BanditRouter",
    "random": "tandemlm.nodes.routers.random:RandomRouter",
    "oracle": "tandemlm.nodes.routers.oracle:OracleRouter",
    "sticky": "tandemlm.nodes.routers.sticky:StickyRouter",
    "flag": "tandemlm.nodes.routers.flag:FlagRouter",
    "guarded": "tandemlm.nodes.routers.guarded:GuardedRouter",
    "consistency": "tandemlm.nodes.routers.consistency:ConsistencyRouter",
}

_registered: dict[str, dict[str, Any]] = {NODE_GROUP: {}, ROUTER_GROUP: {}}
_plugins: dict[str, dict[str, Any]] = {}


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _plugin_points(group: str) -> dict[str, Any]:
    if group not in _plugins:
        _plugins[group] = {ep.name: ep for ep in entry_points(group=group)}
    return _plugins[group]


def _resolve(group: str, builtin: dict[str, str], name: str, what: str, path: str) -> Any:
    if name in _registered[group]:
        return _registered[group][name]
    if name in builtin:
        return _load(builtin[name])
    plugin = _plugin_points(group).get(name)
    if plugin is not None:
        return plugin.load()
    known = ", ".join(sorted(_names(group, builtin)))
    raise SpecError(path, f"unknown {what} type {name!r} (known: {known})")


def _names(group: str, builtin: dict[str, str]) -> set[str]:
    return set(builtin) | set(_registered[group]) | set(_plugin_points(group))


def node_type(name: str, path: str = "type") -> type[Node]:
    """The node class registered under ``name``; :class:`SpecError` if there is none."""
    return _resolve(NODE_GROUP, _BUILTIN_NODES, name, "node", path)  # type: ignore[no-any-return]


def router_type(name: str, path: str = "router.type") -> type[Router]:
    """The router class registered under ``name``; :class:`SpecError` if there is none."""
    return _resolve(ROUTER_GROUP, _BUILTIN_ROUTERS, name, "router", path)  # type: ignore[no-any-return]


def node_types() -> list[str]:
    """Names of every known node type."""
    return sorted(_names(NODE_GROUP, _BUILTIN_NODES))


def router_types() -> list[str]:
    """Names of every known router type."""
    return sorted(_names(ROUTER_GROUP, _BUILTIN_ROUTERS))


def register_node(name: str, cls: type[Node]) -> None:
    """Register a node class under a short name (for code that cannot use entry points)."""
    _registered[NODE_GROUP][name] = cls


def register_router(name: str, cls: type[Router]) -> None:
    """Register a router class under a short name."""
    _registered[ROUTER_GROUP][name] = cls


def provider_types() -> list[str]:
    """Names of every known model provider."""
    return _providers.provider_names()


def refresh_plugins() -> None:
    """Forget discovered entry points of every group (after installing a plugin package in a
    running process); the next lookup scans installed distributions again."""
    _plugins.clear()
    _providers.refresh_plugins()

