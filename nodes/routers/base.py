"""The router contract: one score in [0, 1] (need for the large model) plus a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from tandemlm.core.node import NodeCall
    from tandemlm.core.state import FlowState

LARGE = "large"
SMALL = "small"


@dataclass
class RouteScore:
    """A router's verdict before the threshold is applied."""

    score: float
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class Router(BaseModel):
    """Base of every router. Subclasses implement :meth:`score`.

    The threshold is configuration: ``large`` when ``score >= threshold``, else ``small``.
    """

    model_config = ConfigDict(extra="forbid")

    type_name: ClassVar[str] = ""

    threshold: float = Field(0.5, ge=0.0, le=1.0)

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        raise NotImplementedError

    def choose(self, score: float) -> str:
        return LARGE if score >= self.threshold else SMALL

    def choices(self) -> set[str]:
        """Choices this router can make (branch maps must cover them)."""
        return {SMALL, LARGE}

    def reads(self) -> set[str]:
        return set()

    def model_refs(self) -> dict[str, str]:
        return {}
