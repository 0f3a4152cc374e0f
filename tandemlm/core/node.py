"""The node contract: a node declares what it reads, writes and decides; the framework does the rest.

A node is a pydantic model (plain, serialisable parameters) that

- declares its **inputs** (state fields it reads, with types) and **outputs** (state fields
  it writes, each a :class:`Port`: a type, an optional aggregate reducer, a privacy mark),
  the **models** and **stores** it uses, and any compile-time requirement (:meth:`Node.check`);
- implements :meth:`Node.run`, returning only its outputs (a mapping) or a
  :class:`NodeResult` with an optional typed :class:`Decision`.

Everything else (usage, steps, meta, hops, spans, metrics, budget checks, the ledger entry)
is done by the compiled node wrapper and the run recorder (:mod:`tandemlm.core.ledger`).
Model calls go through :meth:`NodeCall.chat` (or :func:`tandemlm.models.call.call_model`),
which reports to the recorder; code that runs a model itself reports with
:meth:`NodeCall.record_model_use`.

Example::

    class Shout(Node):
        type_name = "shout"
        field: str = "input"

        def inputs(self):
            return {self.field: str}

        def outputs(self):
            return {"answer": Port(str)}

        async def run(self, state, call):
            return {"answer": str(state[self.field]).upper()}
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

    from tandemlm.core.context import TandemContext
    from tandemlm.core.ledger import NodeScope
    from tandemlm.models.call import ModelReply


@dataclass(frozen=True)
class Port:
    """One declared output of a node.

    Args:
        type: the value's type (documentation and compile-time connection checks).
        reducer: makes the output an *aggregate* channel: ``reducer(old, new)`` merges
            writes, so several nodes (or one node fanned out by a ``map`` edge) may write it
            in the same step. Without a reducer an output has a single writer; two nodes
            that can run at the same time and write it are a compile error.
        private: ``True``: holds raw private data whatever the node read (local records,
            a placeholder mapping); ``False``: clean whatever it read (a privacy filter's
            masked text); ``None`` (default): as private as the node's inputs.
        doc: what the output holds, in a few words (used in messages and docs).
    """

    type: Any = Any
    reducer: Callable[[Any, Any], Any] | None = None
    private: bool | None = None
    doc: str = ""

    @property
    def aggregate(self) -> bool:
        return self.reducer is not None


@dataclass
class Decision:
    """A typed decision a node made (routers, fusion, verification, fallbacks).

    Recorded on the node's ledger entry and as ``tandem.router.*`` span attributes.

    Attributes:
        kind: who decided (router type, ``fuse:vote``, ``verify``, ...).
        choice: what was chosen (a route branch, a model, ``yes``/``no``).
        reason: one human-readable sentence.
        score: the router score in [0, 1] (probability the large model is needed).
        threshold: the threshold the score was compared with.
        latency_ms: how long deciding took.
        details: extra figures (votes, probabilities, features).
    """

    kind: str
    choice: str | None
    reason: str = ""
    score: float | None = None
    threshold: float | None = None
    latency_ms: float | None = None
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with the router-shaped keys (``router`` for ``kind``)."""
        data = asdict(self)
        data["router"] = data.pop("kind")
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class NodeResult:
    """What a node returns when it has more to say than its outputs.

    Attributes:
        outputs: values of declared outputs.
        decision: an optional typed decision.
        credit: the flow model the outputs are credited to (default: the last model the
            node called; ``accept`` credits the model that wrote the accepted field).
        meta: extra metadata per output (merged over what the recorder knows).
        step: extra figures for the node's ledger entry (statistics).
    """

    outputs: dict[str, Any] = field(default_factory=dict)
    decision: Decision | None = None
    credit: str | None = None
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    step: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class NodeCall:
    """What a node sees besides the state: its name, the run's context and its recorder scope.

    Read-only by convention (one is made per node execution: not frozen, which would make
    every construction slower)."""

    name: str
    context: TandemContext
    scope: NodeScope

    def chat(
        self, model: str, messages: list[BaseMessage], *, logprobs: bool = False, **options: Any
    ) -> Coroutine[Any, Any, ModelReply]:
        """Call flow model ``model`` (traced, counted, budget-checked): ``await call.chat(...)``.
        See ``call_model``. (It returns ``call_model``'s coroutine rather than awaiting it:
        one frame less for the model's every await to pass through.)"""
        from tandemlm.models.call import call_model

        return call_model(self, model, messages, logprobs=logprobs, **options)

    def record_model_use(self, model: str, **usage: Any) -> None:
        """Report model work done outside :meth:`chat` (token-level engines); see
        :func:`tandemlm.models.call.record_model_use`."""
        from tandemlm.models.call import record_model_use

        record_model_use(self, model, **usage)

    def error(self, message: str, **extra: Any) -> None:
        """Record an error the node recovered from (the run goes on)."""
        self.scope.errors.append({"node": self.name, "error": message, "recovered": True, **extra})

    def degrade(self, reason: str, **extra: Any) -> None:
        """Mark the run's answer as degraded (e.g. a fallback answered) and record why."""
        self.scope.degraded = True
        self.error(reason, **extra)


class Node(BaseModel):
    """Base of every node type.

    Subclasses declare their parameters as pydantic fields (plain data, so specs round-trip
    through YAML), declare :meth:`inputs` and :meth:`outputs`, and implement :meth:`run`.
    Heavy resources come from ``call.context`` (models, stores), never from globals.
    """

    model_config = ConfigDict(extra="forbid")

    type_name: ClassVar[str] = ""

    # -- declarations --------------------------------------------------------------------
    def inputs(self) -> Mapping[str, Any]:
        """State fields this node reads, with their types."""
        return {}

    def outputs(self) -> Mapping[str, Port]:
        """State fields this node writes (each a :class:`Port`)."""
        return {}

    def model_refs(self) -> dict[str, str]:
        """Model names this node uses, keyed by the parameter that names them."""
        return {}

    def store_refs(self) -> dict[str, str]:
        """Store names this node uses, keyed by the parameter that names them. Outputs of a
        node that reads a store are private (local documents) unless a port says otherwise."""
        return {}

    def model_inputs(self, param: str) -> set[str]:
        """Fields the model named by ``param`` sees (default: every input). Nodes with
        several models narrow it for the ``privacy: strict`` check."""
        return set(self.inputs())

    def check(self, spec: Any) -> None:
        """Compile-time requirements beyond references (e.g. two models that share a
        vocabulary). Raise :class:`~tandemlm.errors.SpecError` with a path relative to
        the node."""

    # -- execution -----------------------------------------------------------------------
    async def run(self, state: Mapping[str, Any], call: NodeCall) -> Mapping[str, Any] | NodeResult:
        """Compute the node's outputs."""
        raise NotImplementedError

    # -- derived (not to be overridden) ----------------------------------------------------
    def reads(self) -> set[str]:
        """Names of :meth:`inputs`."""
        return set(self.inputs())

    def writes(self) -> set[str]:
        """Names of :meth:`outputs`."""
        return set(self.outputs())
