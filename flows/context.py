"""The run-time context LangGraph hands to every node: models, stores and settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tandemlm.flows.spec import FlowSettings
from tandemlm.nodes.models.pool import ModelPool


@dataclass
class RunCounters:
    """Mutable per-run totals used for budget checks (thread-safe)."""

    tokens: int = 0
    cost: float = 0.0
    escalations: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, tokens: int = 0, cost: float = 0.0, escalations: int = 0) -> None:
        with self._lock:
            self.tokens += tokens
            self.cost += cost
            self.escalations += escalations


@dataclass
class TandemContext:
    """Everything a node needs besides the state. One per run.

    Attributes:
        flow: flow name.
        models: the flow's model pool.
        stores: named stores (retrievers/document stores).
        settings: the flow's settings.
        capture_content: record prompts/answers on spans (after privacy filtering).
        counters: run totals for budget caps.
        extras: room for node types that need shared per-run objects.
    """

    flow: str
    models: ModelPool
    stores: dict[str, Any] = field(default_factory=dict)
    settings: FlowSettings = field(default_factory=FlowSettings)
    capture_content: bool = False
    counters: RunCounters = field(default_factory=RunCounters)
    extras: dict[str, Any] = field(default_factory=dict)
