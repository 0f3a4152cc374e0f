"""The run-time context LangGraph hands to every node: models, stores, settings, recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tandemlm.core.ledger import Recorder

if TYPE_CHECKING:
    from tandemlm.flows.spec import FlowSettings
    from tandemlm.models.pool import ModelPool


def _default_settings() -> FlowSettings:
    from tandemlm.flows.spec import FlowSettings

    return FlowSettings()


@dataclass
class TandemContext:
    """Everything a node needs besides the state. One per run.

    Attributes:
        flow: flow name.
        models: the flow's model pool.
        stores: named stores (retrievers/document stores).
        settings: the flow's settings.
        capture_content: record prompts/answers on spans (after privacy filtering).
        recorder: run totals (budget caps) and the node scopes model uses report to.
        extras: room for node types that need shared per-run objects.
    """

    flow: str
    models: ModelPool
    stores: dict[str, Any] = field(default_factory=dict)
    settings: FlowSettings = field(default_factory=_default_settings)
    capture_content: bool = False
    recorder: Recorder = field(default_factory=Recorder)
    extras: dict[str, Any] = field(default_factory=dict)
