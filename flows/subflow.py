"""``flow``: run another preset or spec file as a sub-graph of this flow, so patterns compose.

A ``flow`` node renders its ``input`` template over the parent's fields, runs the child flow
on it (a LangGraph sub-graph: its run span, node spans and model-call spans nest under this
node's span; streamed tokens reach the parent's stream) and writes the child's answer to
``output``. Everything the child did rolls up into this node's ledger entry: usage, large
models called (so the parent's ``llm_called`` sees an escalation inside the child), errors,
a degraded answer, the child's path and decisions (``child_path``, ``child_decisions``), and
the credit (the model that answered inside the child)::

    answer:
      type: flow
      flow: cascade                  # a preset name or a path to a YAML/JSON spec
      input: "Evidence:\\n{context}\\n\\nQuestion: {input}"
      output: answer

Models: a child model with the same name as a parent model *is* the parent's model (same
spec, same chat model object: fakes, ``--model`` overrides and loaded embedded models are
shared); ``models: {child_name: parent_name}`` maps other names. Child models without a
parent match are built from the child spec (or, in tests, taken from
``compile_flow(models=...)`` by name). Stores are shared by name the same way.
Usage is reported under the parent's model names (child-only models under their own).

Budget: the child reports to the parent run's recorder (one set of totals), and runs under
the parent's budget, so its tokens, cost and escalations count against the parent's caps
and a cap hit inside the child stops the child's next model call (not only the parent's
next node). The child spec's own ``settings.budget`` applies only when it runs on its own.

Each execution starts the child afresh: it sees its question (and run variables), not the
parent's conversation. With a checkpointed parent the child's steps are saved in the
parent's thread, so resuming an interrupted run resumes inside the child too.

Privacy (``privacy: strict`` in the parent): the child's models that can see the child's
input are declared as this node's models (``model_refs``), each reading the parent fields its
``input``/``variables`` templates name (``model_inputs``), so the parent's check traces them
like any node's. A non-local child model the parent does not declare cannot be traced from
the parent and is rejected when it can see the input; private data inside the child (its
stores, ``local_context``) must not reach a non-local child model either.
"""

from __future__ import annotations

import contextvars
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langgraph.errors import GraphRecursionError
from pydantic import Field, PrivateAttr

from tandemlm.core import ledger
from tandemlm.core.context import TandemContext
from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.errors import BudgetExceededError, NodeExecutionError, SpecError
from tandemlm.flows.compiler import FAILED_NODE, build_graph
from tandemlm.flows.loader import load_flow
from tandemlm.flows.privacy_check import ancestors
from tandemlm.flows.spec import FlowSpec
from tandemlm.flows.validate import CheckedFlow
from tandemlm.flows.validate import check as check_flow
from tandemlm.models.pool import ModelPool
from tandemlm.models.spec import ModelSpec
from tandemlm.nodes.template import fields, render
from tandemlm.telemetry import attributes as A
from tandemlm.telemetry import runinfo
from tandemlm.telemetry.guard import safely
from tandemlm.telemetry.spans import set_attributes, span

MAX_DEPTH = 8
RAW_FIELDS = frozenset({"input", "messages", "variables"})  # as flows.privacy_check
_INPUT_RAW = frozenset({"input", "messages"})  # both carry the rendered `input` template

# The specs being checked (as loaded), outermost first: a sub-flow among them includes itself.
_CHECKING: contextvars.ContextVar[tuple[FlowSpec, ...]] = contextvars.ContextVar(
    "tandem_subflow_checking", default=()
)


@dataclass
class _Child:
    """The checked child flow as this parent sees it (compiled on first run)."""

    checked: CheckedFlow
    mapping: dict[str, str]  # child model -> parent model
    raw_reach: dict[str, set[str]]  # child model -> raw child fields it can see
    private: bool  # the child's answer can hold the child's own private data
    graph: Any = None
    graph_json: str = ""
    runtimes: weakref.WeakKeyDictionary[ModelPool, _Runtime] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    @property
    def spec(self) -> FlowSpec:
        return self.checked.spec

    def parent_name(self, model: str | None) -> str | None:
        return self.mapping.get(model, model) if model is not None else None


@dataclass
class _Runtime:
    """The child's models and stores for one parent model pool."""

    models: ModelPool
    stores: dict[str, Any]


class _SharedPool(ModelPool):
    """The child's model pool: mapped names resolve to the parent pool's specs and models."""

    def __init__(self, specs: Mapping[str, ModelSpec], parent: ModelPool, mapping: Mapping[str, str],
                 overrides: Mapping[str, BaseChatModel] | None = None) -> None:
        super().__init__({n: s for n, s in specs.items() if n not in mapping}, overrides)
        # weak: the parent pool keys the cache that holds this pool
        self._parent = weakref.ref(parent)
        self._mapping = dict(mapping)

    def _parent_pool(self) -> ModelPool:
        parent = self._parent()
        if parent is None:  # pragma: no cover - the parent flow outlives its runs
            raise RuntimeError("the parent flow's models are gone")
        return parent

    def names(self) -> list[str]:
        return [*self._mapping, *super().names()]

    def spec(self, name: str) -> ModelSpec:
        if name in self._mapping:
            return self._parent_pool().spec(self._mapping[name])
        return super().spec(name)

    def get(self, name: str) -> BaseChatModel:
        if name in self._mapping:
            return self._parent_pool().get(self._mapping[name])
        return super().get(name)

    def preflight(self, names: list[str] | None = None) -> None:
        wanted = names or self.names()
        shared = [self._mapping[n] for n in wanted if n in self._mapping]
        own = [n for n in wanted if n not in self._mapping]
        if shared:
            self._parent_pool().preflight(shared)
        if own:
            super().preflight(own)

    def describe(self) -> dict[str, str]:
        parent = self._parent_pool().describe()
        return {**{c: parent.get(p, p) for c, p in self._mapping.items()}, **super().describe()}


class SubFlow(Node):
    """Run the flow ``flow`` (preset name or spec path) on ``input``; write its answer.

    Args:
        flow: a preset name or a path to a YAML/JSON flow spec (loaded like any flow).
        input: template over this flow's fields; its text is the child's question.
        output: the field to write with the child's answer.
        models: ``{child model: parent model}``; by default a child model named like a
            parent model is that model; others are built from the child spec.
        variables: ``{name: template}`` run variables of the child, rendered from this
            flow's fields; the parent's run variables are passed on too.
    """

    type_name = "flow"

    flow: str = Field(min_length=1, max_length=1000)
    input: str = Field("{input}", max_length=100_000)
    output: str = "answer"
    models: dict[str, str] = Field(default_factory=dict)
    variables: dict[str, str] = Field(default_factory=dict)

    _child: _Child | None = PrivateAttr(None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # -- declarations --------------------------------------------------------------------
    def inputs(self) -> dict[str, Any]:
        names = fields(self.input) | {"variables"}
        for template in self.variables.values():
            names |= fields(template)
        return dict.fromkeys(sorted(names), Any)

    def outputs(self) -> dict[str, Port]:
        private = True if self._child is not None and self._child.private else None
        doc = f"the answer of sub-flow {self.flow!r}" + (" (holds its local data)" if private else "")
        return {self.output: Port(str, private=private, doc=doc)}

    def model_refs(self) -> dict[str, str]:
        mapping = self._child.mapping if self._child is not None else self.models
        return {f"models.{child}": parent for child, parent in mapping.items()}

    def model_inputs(self, param: str) -> set[str]:
        if self._child is None:
            return set(self.inputs())
        return self._parent_fields(self._child.raw_reach.get(param.removeprefix("models."), set()))

    def _parent_fields(self, raw: Iterable[str]) -> set[str]:
        """The parent fields behind raw child fields (``input``/``messages``, ``variables``)."""
        raw = set(raw)
        out: set[str] = set()
        if raw & _INPUT_RAW:
            out |= fields(self.input)
        if "variables" in raw:
            out.add("variables")
            for template in self.variables.values():
                out |= fields(template)
        return out

    def check(self, spec: Any) -> None:
        outer = _CHECKING.get() or (spec,)
        child = self._load(outer)
        mapping = self._mapping(spec, child)
        shared = child.model_copy(update={
            "models": {**child.models, **{c: spec.models[p] for c, p in mapping.items()}},
        })
        token = _CHECKING.set((*outer, child))
        try:
            checked = check_flow(shared)
        except SpecError as exc:
            raise SpecError("flow", f"in sub-flow {self.flow!r}: {exc}") from None
        finally:
            _CHECKING.reset(token)
        raw_reach, leaks = _trace(checked)
        strict = getattr(spec.settings, "privacy", "off") == "strict"
        if strict:
            self._check_privacy(checked, mapping, raw_reach, leaks)
        private = any(node.store_refs() or any(p.private for p in node.outputs().values())
                      for node in checked.nodes.values())
        self._child = _Child(checked=checked, mapping=mapping, raw_reach=raw_reach, private=private)

    def _load(self, outer: tuple[FlowSpec, ...]) -> FlowSpec:
        """The child spec; ``outer``: the specs being checked around this node, outermost first."""
        try:
            child = load_flow(self.flow)
        except SpecError as exc:
            message = exc.message if exc.path in ("flow", self.flow) else str(exc)
            raise SpecError("flow", f"cannot load sub-flow {self.flow!r}: {message}") from None
        if child in outer:
            chain = " -> ".join([*(s.name for s in outer[outer.index(child):]), child.name])
            raise SpecError("flow", f"sub-flow {self.flow!r} includes itself ({chain}); "
                                    "a flow cannot run itself as a node")
        if len(outer) > MAX_DEPTH:
            raise SpecError("flow", f"sub-flows nested deeper than {MAX_DEPTH} levels")
        return child

    def _mapping(self, spec: FlowSpec, child: FlowSpec) -> dict[str, str]:
        known = ", ".join(sorted(child.models)) or "none"
        for name in self.models:
            if name not in child.models:
                raise SpecError(f"models.{name}",
                                f"sub-flow {self.flow!r} has no model {name!r} (known: {known})")
        implicit = {name: name for name in child.models if name in spec.models}
        return {**implicit, **self.models}

    def _check_privacy(self, checked: CheckedFlow, mapping: Mapping[str, str],
                       raw_reach: Mapping[str, set[str]], leaks: list[str]) -> None:
        if leaks:
            raise SpecError("flow", f"privacy: strict: in sub-flow {self.flow!r}: {leaks[0]} "
                                    "without a privacy_filter")
        for model, raw in sorted(raw_reach.items()):
            if model in mapping or checked.spec.models[model].local or not self._parent_fields(raw):
                continue  # the parent's check traces mapped models; local ones are fine
            raise SpecError(
                "flow",
                f"privacy: strict: sub-flow {self.flow!r} sends its input to non-local model "
                f"{model!r}, which this flow does not declare; add {model!r} to this flow's "
                f"models (or map it with models: {{{model}: <model>}}) so the privacy check "
                "can trace what reaches it",
            )

    # -- execution -----------------------------------------------------------------------
    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        child = self._child
        if child is None:
            raise SpecError("flow", "the flow node was not checked: compile the flow first")
        graph = self._graph(child)
        parent = call.context
        runtime = self._runtime(child, parent)
        settings = child.spec.settings.model_copy(update={"budget": parent.settings.budget})
        context = TandemContext(
            flow=child.spec.name, models=runtime.models, stores=runtime.stores, settings=settings,
            capture_content=parent.capture_content, recorder=parent.recorder,
            extras={k: v for k, v in parent.extras.items() if k != FAILED_NODE},
        )
        question = render(self.input, state)
        variables = {**(state.get("variables") or {}),
                     **{k: render(t, state) for k, t in self.variables.items()}}
        initial: dict[str, Any] = {"input": question, "variables": variables, "answer": ""}
        if "messages" in child.checked.builtins:
            initial["messages"] = [HumanMessage(content=question)]
        limit = settings.step_limit() + len(child.spec.routes) * 4
        attrs = {A.FLOW: child.spec.name, A.RUN_ID: parent.extras.get("run_id"),
                 A.GEN_AI_OPERATION: "invoke_workflow", A.FLOW_GRAPH: child.graph_json}
        escalations = parent.recorder.escalations
        start = time.perf_counter()
        with span(f"invoke_workflow {child.spec.name}", attrs) as run_span:
            try:
                final = await graph.ainvoke(initial, config={"recursion_limit": limit}, context=context)
            except GraphRecursionError:
                raise BudgetExceededError(
                    f"sub-flow {child.spec.name!r} of node {call.name!r} ran more than {limit} "
                    "graph steps; raise its settings.max_steps or make its loop end sooner"
                ) from None
            except NodeExecutionError as exc:  # name this node (the parent's graph has no child nodes)
                raise NodeExecutionError(call.name, f"in sub-flow {child.spec.name!r}: {exc}") from exc
            if run_span.is_recording():
                roles = {name: spec.role for name, spec in child.spec.models.items()}
                safely(set_attributes, run_span, runinfo.run_attributes(
                    final, roles, parent.recorder.escalations - escalations))
        return self._result(child, final, call, time.perf_counter() - start)

    def _result(self, child: _Child, final: Mapping[str, Any], call: NodeCall, seconds: float) -> NodeResult:
        """Roll the child's ledger up into this node's entry."""
        steps = ledger.entries(final)
        name = child.parent_name
        usage: dict[str, dict[str, float]] = {}
        for model, counts in ledger.usage(steps).items():
            mine = usage.setdefault(name(model) or model, {})
            for key, value in counts.items():
                mine[key] = mine.get(key, 0) + value
        call.scope.merge(usage, [name(m) or m for m in ledger.large_models_called(steps)])
        for error in ledger.errors(steps):
            call.scope.errors.append({**error, "node": f"{call.name}/{error.get('node', '?')}",
                                      "subflow": child.spec.name})
        if ledger.degraded(steps):
            call.scope.degraded = True
        meta = ledger.meta_of(final, "answer")
        if "model" in meta:
            meta["model"] = name(meta["model"])
        return NodeResult(
            outputs={self.output: str(final.get("answer") or "")},
            credit=name(ledger.answered_by(steps)),
            meta={self.output: meta},
            step={
                "subflow": child.spec.name,
                "child_path": [str(s.get("node", "?")) for s in steps],
                "child_decisions": [{"node": s.get("node"), **s["decision"]}
                                    for s in steps if s.get("decision")],
                "child_seconds": round(seconds, 6),
            },
        )

    def _graph(self, child: _Child) -> Any:
        """The child's compiled graph (once per checked node). Without a checkpointer of its
        own it is a LangGraph sub-graph: with a checkpointed parent its steps are saved in
        the parent's thread (under this node's task), so a resumed run resumes the child
        too instead of repeating the child nodes that had completed."""
        if child.graph is None:
            with self._lock:
                if child.graph is None:
                    child.graph_json = runinfo.flow_graph_json(child.spec, child.checked.node_types)
                    child.graph = build_graph(child.checked).compile(name=child.spec.name)
        return child.graph

    def _runtime(self, child: _Child, parent: TandemContext) -> _Runtime:
        """The child's models and stores for the parent's pool (built once per pool)."""
        with self._lock:
            runtime = child.runtimes.get(parent.models)
            if runtime is None:
                from tandemlm.stores.factory import build_stores

                # a chat model given to compile_flow(models=...) for a model only the child
                # declares (the parent's spec does not): the child's spec, that object
                given = set(parent.models.names())
                extra = {n: parent.models.get(n) for n in child.spec.models
                         if n not in child.mapping and n in given}
                pool = _SharedPool(child.spec.models, parent.models, child.mapping, extra)
                shared = {n: parent.stores[n] for n in child.spec.stores if n in parent.stores}
                runtime = _Runtime(pool, build_stores(child.spec.stores, shared))
                child.runtimes[parent.models] = runtime
            return runtime


# -- privacy tracing inside the child ------------------------------------------------------
def _trace(checked: CheckedFlow) -> tuple[dict[str, set[str]], list[str]]:
    """For every child model, the raw child fields (input, messages, variables) it can see;
    and the child's own private data (stores, private outputs) reaching non-local models."""
    tracer = _Origins(checked)
    reach: dict[str, set[str]] = {}
    leaks: list[str] = []
    for name in sorted(checked.nodes):
        node = checked.nodes[name]
        for param, model in sorted(node.model_refs().items()):
            spec = checked.spec.models.get(model)
            for read in sorted(node.model_inputs(param)):
                for origin in sorted(tracer.origins(read, tracer.before.get(name, set()), frozenset())):
                    if origin in RAW_FIELDS:
                        reach.setdefault(model, set()).add(origin)
                    elif spec is not None and not spec.local:
                        leaks.append(f"{origin} reaches non-local model {model!r} at node {name!r}")
    return reach, leaks


class _Origins:
    """Where a field's value can come from in a checked flow (the ``privacy_check`` rules:
    raw fields, private ports, store readers; ``private=False`` ports are clean)."""

    def __init__(self, checked: CheckedFlow) -> None:
        self.nodes = checked.nodes
        self.before = ancestors(checked.successors)
        self.producers: dict[str, list[str]] = {}
        for name, node in checked.nodes.items():
            for output in node.writes():
                self.producers.setdefault(output, []).append(name)
        self.items: dict[str, list[str]] = {}  # map-edge item -> the list field it comes from
        for edge in checked.spec.edges:
            if edge.map is not None:
                self.items.setdefault(edge.item, []).append(edge.map)

    def origins(self, name: str, before: set[str], visiting: frozenset[tuple[str, str]]) -> set[str]:
        if name in RAW_FIELDS:
            return {name}
        out: set[str] = set()
        for source in self.items.get(name, ()):
            out |= self.origins(source, before, visiting)
        for producer in self.producers.get(name, ()):
            key = (producer, name)
            if producer not in before or key in visiting:
                continue
            node = self.nodes[producer]
            port = node.outputs()[name]
            if port.private is False:
                continue
            if port.private:
                out.add(f"{port.doc or 'local data'} {name!r} of node {producer!r}")
            elif node.store_refs():
                out.add(f"local documents from store {', '.join(sorted(node.store_refs().values()))!r}")
            else:
                for read in node.reads():
                    out |= self.origins(read, self.before.get(producer, set()), visiting | {key})
        return out
