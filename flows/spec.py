"""The flow spec: one pydantic model that YAML files and the Python builder both produce."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tandemlm.models.spec import ModelSpec

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
END = "end"
RESERVED = frozenset({END, "start", "__start__", "__end__"})


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use letters, digits, '_' or '-' (max 64 chars)"
        )
    if name.lower() in RESERVED:
        raise ValueError(f"{what} name {name!r} is reserved")
    return name


class NodeSpec(BaseModel):
    """A node: its registered ``type`` plus that type's parameters."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(max_length=64)

    def params(self) -> dict[str, Any]:
        """The parameters given for the node type (everything but ``type``)."""
        return dict(self.model_extra or {})


class EdgeSpec(BaseModel):
    """A static edge; a list ``from`` waits for all sources (fan-in).

    With ``map``, the edge fans out instead: ``to`` runs once per item of the list field
    ``map`` (in parallel, LangGraph ``Send``), each run seeing the item as ``{<as>}``
    (default ``{item}``). ``{from: decompose, to: retrieve_each, map: subquestions,
    as: subquestion}``. An empty or missing list runs ``to`` once on the input.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str | list[str] = Field(alias="from")
    target: str = Field(alias="to")
    map: str | None = Field(None, max_length=64)
    item: str = Field("item", alias="as", max_length=64)

    @field_validator("map", "item")
    @classmethod
    def _field_names(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError(f"{value!r} is not a field name (letters, digits, '_')")
        return value

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return {"from": data[0], "to": data[1]}
        if isinstance(data, str) and "->" in data:
            left, right = (part.strip() for part in data.split("->", 1))
            return {"from": left, "to": right}
        return data

    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)


class RouterSpec(BaseModel):
    """A router: its registered ``type``, ``threshold`` and parameters."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(max_length=64)
    threshold: float = Field(0.5, ge=0.0, le=1.0)

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RouteSpec(BaseModel):
    """A conditional edge after ``from``: a router scores, ``branches`` maps choices to nodes.

    Routers choose ``large`` when their score (need for the large model) is at least the
    threshold, else ``small``; ``branches`` must name a node (or ``end``) for each choice.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    name: str | None = None
    router: RouterSpec
    branches: dict[str, str]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "route")

    @field_validator("branches")
    @classmethod
    def _branches(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("give at least one branch, e.g. {small: accept, large: escalate}")
        if len(value) > 32:
            raise ValueError("at most 32 branches")
        return value

    def node_name(self) -> str:
        """Name of the decision node the compiler inserts for this route."""
        return self.name or f"{self.source}_route"


class BudgetSpec(BaseModel):
    """Per-run caps; ``on_exceed: stop`` ends gracefully, ``error`` raises."""

    model_config = ConfigDict(extra="forbid")

    max_escalations: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, ge=0.0)
    on_exceed: Literal["stop", "error"] = "stop"


class FlowSettings(BaseModel):
    """Run settings.

    ``max_steps`` bounds the graph steps of one run (LangGraph supersteps: each step runs
    every node that is ready, so parallel branches share a step), not counting the decision
    steps of routes (each route gets 4 extra steps of allowance). Loops need it; the default
    is 64. Exceeding it raises :class:`~tandemlm.errors.BudgetExceededError`.
    """

    model_config = ConfigDict(extra="forbid")

    max_steps: int | None = Field(None, ge=1, le=10_000)
    privacy: Literal["off", "strict"] = "off"
    capture_content: bool = False
    budget: BudgetSpec | None = None

    DEFAULT_MAX_STEPS: ClassVar[int] = 64

    def step_limit(self) -> int:
        return self.max_steps or self.DEFAULT_MAX_STEPS


class FlowSpec(BaseModel):
    """A whole flow: models, stores, nodes, edges, routes and settings.

    Build one from YAML/JSON/dict with :func:`tandemlm.flows.load_flow` or with the
    :class:`tandemlm.flows.Flow` builder; :func:`tandemlm.flows.compile_flow` validates it
    and turns it into a LangGraph graph.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field("flow", max_length=64)
    description: str = Field("", max_length=4000)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    stores: dict[str, dict[str, Any]] = Field(default_factory=dict)
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)
    entry: str | list[str] | None = None
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=1000)
    routes: list[RouteSpec] = Field(default_factory=list, max_length=200)
    settings: FlowSettings = Field(default_factory=FlowSettings)  # type: ignore[arg-type]  # pydantic stub: class fits both overloads

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "flow")

    @field_validator("models", "stores", "nodes")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 500:
            raise ValueError("at most 500 entries")
        for key in value:
            _check_name(key, "entry")
        return value

    def entries(self) -> list[str]:
        if self.entry is None:
            return []
        return [self.entry] if isinstance(self.entry, str) else list(self.entry)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the YAML view), without defaults that were never set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
