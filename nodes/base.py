"""The node base class: plain, serialisable parameters and an async call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from tandemlm.flows.context import TandemContext
    from tandemlm.flows.state import FlowState


@dataclass(frozen=True)
class NodeCall:
    """What a node sees besides the state: its own name and the run's context."""

    name: str
    context: TandemContext


class Node(BaseModel):
    """Base of every node type.

    Subclasses declare their parameters as pydantic fields (plain data, so specs round-trip
    through YAML) and implement :meth:`run`. Heavy resources come from ``call.context``
    (models, stores), never from globals.
    """

    model_config = ConfigDict(extra="forbid")

    type_name: ClassVar[str] = ""

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        """Compute a partial state update."""
        raise NotImplementedError

    def model_refs(self) -> dict[str, str]:
        """Model names this node uses, keyed by the parameter that names them."""
        return {}

    def store_refs(self) -> dict[str, str]:
        """Store names this node uses, keyed by the parameter that names them."""
        return {}

    def reads(self) -> set[str]:
        """State fields this node reads (for validation and privacy analysis)."""
        return set()

    def writes(self) -> set[str]:
        """State fields this node writes."""
        return set()
