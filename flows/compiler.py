"""Compile a validated spec into a LangGraph graph and run it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.errors import GraphRecursionError
from langgraph.graph import END as LG_END
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from tandemlm.core import ledger
from tandemlm.core.context import TandemContext
from tandemlm.core.ledger import NodeScope
from tandemlm.core.node import Node, NodeCall, NodeResult
from tandemlm.core.state import BUILTIN_CHANNELS, lookup, state_schema
from tandemlm.errors import BudgetExceededError, NodeExecutionError, SpecError, TandemError
from tandemlm.flows.loader import load_flow
from tandemlm.flows.spec import END, EdgeSpec, FlowSpec
from tandemlm.flows.stream import MODES as STREAM_MODES
from tandemlm.flows.stream import StreamEvent
from tandemlm.flows.stream import events as stream_events
from tandemlm.flows.validate import CheckedFlow, check
from tandemlm.models.pool import ModelPool
from tandemlm.nodes.routers.base import SMALL
from tandemlm.telemetry import attributes as A
from tandemlm.telemetry import content, metrics, runinfo
from tandemlm.telemetry.guard import safely
from tandemlm.telemetry.spans import NO_SPAN, add_event, set_attributes, span, tracing_active

MAX_INPUT_CHARS = 200_000
FAILED_NODE = "tandem.failed_node"  # context.extras key: the first node that raised
# context.extras key: (id of the run's context, scopes of its nodes), for the totals of a
# failed run (a sub-flow's context, which copies the extras, has another id)
RUN_SCOPES = "tandem.run_scopes"


@dataclass
class RunResult:
    """What one run produced, and how.

    Attributes:
        answer: the final answer.
        answered_by: model name (from the spec) that produced it.
        path: node names in execution order (route decision nodes included).
        steps: the ledger: one entry per node execution (node, model, outputs, decision,
            usage, large models called, errors).
        decisions: routing and other decisions (kind as ``router``, score, threshold,
            choice, reason).
        usage: per-model calls, tokens, cost and seconds.
        models: how each model name resolved (``provider:model``).
        large_models: large models called (role other than ``slm``, or ``local: false``).
        vars: every node output of the run except ``answer``.
    """

    flow: str
    run_id: str
    answer: str
    answered_by: str | None
    path: list[str]
    steps: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    usage: dict[str, dict[str, float]]
    models: dict[str, str]
    seconds: float
    degraded: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    large_models: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what ``tandem run --json`` and ``/v1/run`` return). Outputs whose
        name starts with ``_`` (e.g. a privacy filter's placeholder mapping) stay in
        :attr:`vars` and are left out here."""
        data = {**asdict(self), "llm_called": self.llm_called}
        data["vars"] = {k: v for k, v in self.vars.items() if not k.startswith("_")}
        return data

    @property
    def llm_called(self) -> bool:
        """Whether a large model was called (the one definition: :func:`ledger.llm_called`)."""
        return bool(self.large_models)


def _wrap(name: str, node: Node, type_name: str, builtins: frozenset[str]) -> Any:
    declared = frozenset(node.writes())
    reads = frozenset(node.reads())
    span_name = f"node {name}"
    attrs_by_flow: dict[str, dict[str, Any]] = {}  # the node span's attributes (read-only)

    async def run_node(state: dict[str, Any], runtime: Runtime[TandemContext]) -> dict[str, Any]:
        context = runtime.context
        scope = context.recorder.scope(name, type_name, state, reads)
        held = context.extras.get(RUN_SCOPES)
        if held is not None and held[0] == id(context):  # a sub-flow's nodes roll up into their node
            held[1].append(scope)
        attrs = attrs_by_flow.get(context.flow)
        if attrs is None:
            attrs = attrs_by_flow.setdefault(
                context.flow, {A.NODE: name, A.NODE_TYPE: type_name, A.FLOW: context.flow})
        with span(span_name, attrs) if tracing_active() else NO_SPAN as current:
            try:
                result = await node.run(state, NodeCall(name, context, scope))
            except BudgetExceededError as exc:
                if not _stops_gracefully(context):
                    context.extras.setdefault(FAILED_NODE, name)
                    raise
                return _budget_stop(scope, state, exc)
            except TandemError:
                context.extras.setdefault(FAILED_NODE, name)
                raise
            except Exception as exc:  # a bug or library error inside the node: name the node
                context.extras.setdefault(FAILED_NODE, name)
                raise NodeExecutionError(name, f"{type(exc).__name__}: {exc}") from exc
            update, decision = _update(name, result, scope, declared, context.extras.get("run_id"),
                                       builtins)
            if decision and current.is_recording():
                safely(set_attributes, current, _decision_attributes(name, decision))
            return update

    run_node.__name__ = f"node_{name}"
    return run_node


def _update(name: str, result: Any, scope: NodeScope, declared: frozenset[str],
            run_id: str | None = None, builtins: frozenset[str] = BUILTIN_CHANNELS,
            ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The state update of one node execution: its outputs plus its ledger entry.

    A write of ``answer`` also adds the answer to ``messages`` under one id per run, so a
    later rewrite of the answer in the same run (citations, restore) replaces it. (Either
    only where the flow's state has the channel: ``builtins``.)
    """
    if isinstance(result, NodeResult):
        outputs = result.outputs
        decision = result.decision.to_dict() if result.decision is not None else None
        entry = scope.entry(outputs, decision=decision, credit=result.credit,
                            meta=result.meta, step=result.step)
    else:
        outputs = dict(result or {})
        decision = None
        entry = scope.entry(outputs)
    undeclared = outputs.keys() - declared
    if undeclared:
        raise NodeExecutionError(
            name, f"returned undeclared output(s) {sorted(undeclared)}; declare them in outputs()"
        )
    update: dict[str, Any] = {**outputs, "ledger": [entry]}
    if decision and decision.get("choice") is not None and "choices" in builtins:
        update["choices"] = {name: str(decision["choice"])}
    if "answer" in outputs and "messages" in builtins:
        update["messages"] = [AIMessage(content=str(outputs["answer"] or ""),
                                        id=f"answer-{run_id}" if run_id else None)]
    return update, decision


def _decision_attributes(name: str, decision: dict[str, Any]) -> dict[str, Any]:
    return {
        A.ROUTE: name,
        A.ROUTER_TYPE: decision.get("router"),
        A.ROUTER_SCORE: decision.get("score"),
        A.ROUTER_THRESHOLD: decision.get("threshold"),
        A.ROUTER_CHOICE: decision.get("choice"),
        A.ROUTER_REASON: decision.get("reason"),
        A.ROUTER_LATENCY_MS: decision.get("latency_ms"),
    }


def _stops_gracefully(context: TandemContext) -> bool:
    budget = context.settings.budget
    return budget is not None and budget.on_exceed == "stop"


def _budget_stop(scope: NodeScope, state: dict[str, Any], exc: BudgetExceededError) -> dict[str, Any]:
    """Skip a node whose model call would exceed the budget; keep the best answer so far."""
    scope.degraded = True
    scope.errors.append({"node": scope.node, "error": f"budget: {exc}", "recovered": True})
    update: dict[str, Any] = {}
    credit = None
    if not state.get("answer"):
        for entry in reversed(state.get("ledger") or []):
            text = next((state.get(o) for o in entry.get("outputs") or ()
                         if isinstance(state.get(o), str) and state.get(o)), None)
            if text:
                update["answer"] = text
                credit = entry.get("model") or ""
                break
    entry = scope.entry(update, credit=credit, step={"skipped": "budget"})
    return {**update, "ledger": [entry]}


def _target(name: str) -> str:
    return LG_END if name == END else name


MAX_FAN_OUT = 64


def _fan_out(edge: EdgeSpec) -> Any:
    """The ``Send`` list of a map edge: one run of the target per item (at most 64)."""

    def send(state: dict[str, Any]) -> list[Send]:
        items = lookup(state, edge.map or "")
        if not isinstance(items, list) or not items:
            items = [state.get("input", "")]
        return [Send(edge.target, {**state, edge.item: item}) for item in items[:MAX_FAN_OUT]]

    return send


def build_graph(checked: CheckedFlow) -> StateGraph[Any, TandemContext, Any, Any]:
    """The uncompiled LangGraph ``StateGraph`` of a checked flow (state schema generated
    from the nodes' declared outputs)."""
    spec = checked.spec
    schema = state_schema(_identifier(spec.name), checked.channels, dict.fromkeys(checked.items),
                          checked.builtins)
    graph: StateGraph[Any, TandemContext, Any, Any] = StateGraph(schema, context_schema=TandemContext)
    for name, node in checked.nodes.items():
        graph.add_node(name, _wrap(name, node, checked.node_types[name], checked.builtins))
    for entry in spec.entries():
        graph.add_edge(START, entry)
    for edge in spec.edges:
        sources = edge.sources()
        if edge.map is not None:
            graph.add_conditional_edges(sources[0], _fan_out(edge), [edge.target])
            continue
        graph.add_edge(sources[0] if len(sources) == 1 else sources, _target(edge.target))
    for route in spec.routes:
        route_name = route.node_name()
        graph.add_edge(route.source, route_name)

        def pick(state: dict[str, Any], _route: str = route_name) -> str:
            return str((state.get("choices") or {}).get(_route, SMALL))

        graph.add_conditional_edges(
            route_name, pick, {choice: _target(t) for choice, t in route.branches.items()}
        )
    return graph


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name).strip("_") or "Flow"
    return cleaned[0].upper() + cleaned[1:]


class CompiledFlow:
    """A validated, compiled flow, ready to run many times.

    Build with :func:`compile_flow`. Models are resolved and loaded on first use and kept
    for later runs.
    """

    def __init__(
        self,
        checked: CheckedFlow,
        *,
        models: Mapping[str, BaseChatModel] | None = None,
        stores: Mapping[str, Any] | None = None,
        checkpointer: Any = None,
    ) -> None:
        self.spec: FlowSpec = checked.spec
        self.checked = checked
        self.models = ModelPool(self.spec.models, models)
        from tandemlm.stores.factory import build_stores

        # Stores the caller did not pass are built from the spec (cheap: they connect,
        # load embedding models and index their documents on first use).
        self.stores = build_stores(self.spec.stores, dict(stores or {}))
        # A path means "SQLite checkpoints there": one saver per event loop, opened on first use.
        self._checkpoint_path = str(checkpointer) if isinstance(checkpointer, (str, Path)) else None
        saver = None if self._checkpoint_path else checkpointer
        self.graph = build_graph(checked).compile(checkpointer=saver, name=self.spec.name)
        self._graph_json = runinfo.flow_graph_json(self.spec, checked.node_types)
        self._roles = {name: spec.role for name, spec in self.spec.models.items()}
        self._step_limit = self.spec.settings.step_limit() + len(self.spec.routes) * 4
        # Single-writer outputs of a fresh run start as None rather than unset: LangGraph
        # reads every channel of the state at every step and an unset one costs it an
        # exception each time. (None reads as "not written" everywhere, as unset did.)
        self._unset = dict.fromkeys(c for c, reducer in checked.channels.items()
                                    if reducer is None and c != "answer")

    @property
    def name(self) -> str:
        return self.spec.name

    def mermaid(self) -> str:
        """Mermaid text of the compiled graph (route branches drawn as labelled edges)."""
        return self.graph.get_graph().draw_mermaid()

    def context(self, *, capture_content: bool | None = None) -> TandemContext:
        """A fresh run context (new budget counters) sharing this flow's models and stores."""
        settings = self.spec.settings
        capture = settings.capture_content if capture_content is None else capture_content
        return TandemContext(
            flow=self.spec.name,
            models=self.models,
            stores=self.stores,
            settings=settings,
            capture_content=capture,
        )

    async def arun(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        capture_content: bool | None = None,
        variables: Mapping[str, Any] | None = None,
        history: Sequence[BaseMessage] = (),
    ) -> RunResult:
        """Run the flow on one input.

        Args:
            question: the user's request.
            thread_id: conversation id (needs a checkpointer) for multi-turn flows.
            capture_content: override the spec's content-capture setting for this run.
            variables: extra ``vars`` available to templates (e.g. a user profile).
            history: earlier turns of the conversation, put before the question in
                ``messages`` (for clients that send the whole conversation each time, such
                as the OpenAI API; nodes with ``history: true`` read them).

        Raises:
            TandemError: a typed error (model unavailable, budget, node failure).
        """
        initial = self._initial(question, thread_id, variables, history)
        return await self._traced_run(initial, self._config(thread_id), capture_content)

    async def astream(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        capture_content: bool | None = None,
        variables: Mapping[str, Any] | None = None,
        history: Sequence[BaseMessage] = (),
    ) -> AsyncGenerator[StreamEvent | RunResult, None]:
        """Run the flow on one input, yielding its events as they happen, then its result.

        Events (:mod:`tandemlm.flows.stream`) come from LangGraph's stream modes of this run
        only: ``NodeStarted``, ``NodeFinished`` (with the node's ledger entry),
        ``NodeFailed``, ``Token`` (providers that stream), ``Message`` (whole replies of
        providers that do not), ``Custom``. The last item is the :class:`RunResult`, the
        same as :meth:`arun` returns (same run span, attributes and metrics). Nodes of one
        step that run in parallel finish in completion order (``path`` is ledger order).

        The run goes on in its own task, so the caller's context is untouched between
        events; closing the iterator early (``break`` inside ``contextlib.aclosing``)
        cancels the run.

        Example:
            >>> async for event in flow.astream("What is 2+2?"):  # doctest: +SKIP
            ...     print(event)

        Arguments are those of :meth:`arun`.

        Raises:
            TandemError: as :meth:`arun`, after the events that preceded the error.
        """
        initial = self._initial(question, thread_id, variables, history)
        queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()

        async def work() -> RunResult:
            try:
                return await self._traced_run(initial, self._config(thread_id), capture_content,
                                              emit=queue.put_nowait)
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(work())
        try:
            while (event := await queue.get()) is not None:
                yield event
            yield await task
        finally:
            if not task.done():  # the caller stopped listening: stop the run
                task.cancel()
                # shielded: a caller cancelled again and again (anyio cancel scopes, as in
                # Starlette's streaming responses) must not cancel the run's own clean-up,
                # which cancels its running nodes and their model calls
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(task)

    def _initial(self, question: str, thread_id: str | None,
                 variables: Mapping[str, Any] | None,
                 history: Sequence[BaseMessage] = ()) -> dict[str, Any]:
        """The graph input of one run (checks the question)."""
        if not isinstance(question, str) or not question.strip():
            raise SpecError("input", "the question is empty")
        if len(question) > MAX_INPUT_CHARS:
            raise SpecError("input", f"the question is longer than {MAX_INPUT_CHARS} characters")
        initial: dict[str, Any] = {"input": question, "variables": dict(variables or {}), "answer": ""}
        if "messages" in self.checked.builtins:  # a node reads the conversation
            initial["messages"] = [*history, HumanMessage(content=question)]
        if thread_id:  # per-turn channels restart (None clears); messages carry over
            initial["ledger"] = None
            initial.update({c: None for c, reducer in self.checked.channels.items() if reducer})
        else:  # a fresh run: every single-writer output starts as None (see _unset)
            initial.update(self._unset)
        return initial

    def _config(self, thread_id: str | None) -> dict[str, Any]:
        config: dict[str, Any] = {"recursion_limit": self._step_limit}
        if thread_id:
            config["configurable"] = {"thread_id": thread_id}
        return config

    async def _traced_run(self, initial: dict[str, Any] | None, config: dict[str, Any],
                          capture_content: bool | None,
                          emit: Callable[[StreamEvent], None] | None = None) -> RunResult:
        """Run (or resume) inside the run span; record run attributes and metrics.

        The one path of :meth:`arun`, :meth:`astream` and :meth:`aresume`; ``emit``
        receives the run's stream events (``None``: no streaming).
        """
        run_id = uuid.uuid4().hex
        context = self.context(capture_content=capture_content)
        context.extras["run_id"] = run_id
        # the context's id, not the context: a reference back to it would make every run a
        # reference cycle (context, scopes, their states) left to the garbage collector
        context.extras[RUN_SCOPES] = (id(context), [])
        attrs = {
            A.FLOW: self.spec.name,
            A.RUN_ID: run_id,
            A.GEN_AI_OPERATION: "invoke_workflow",
            A.FLOW_GRAPH: self._graph_json,
        }
        start = time.perf_counter()
        with span(f"invoke_workflow {self.spec.name}", attrs) as run_span:
            try:
                state = await self._invoke(initial, config, context, emit)
            except BaseException as exc:
                if run_span.is_recording():  # LangGraph returns no state on error: the nodes' scopes
                    safely(_record_failed_run, run_span, context, self._roles)
                safely(set_attributes, run_span, {
                    A.RUN_STATUS: "error",
                    A.RUN_ERROR_NODE: getattr(exc, "node", None) or context.extras.get(FAILED_NODE),
                })
                if context.capture_content:
                    safely(set_attributes, run_span, content.run_content(
                        context.extras.get("redact"), (initial or {}).get("input"), None))
                safely(metrics.record_run, flow=self.spec.name,
                       escalations=context.recorder.escalations, status="error")
                raise
            result = self._result(state, run_id, time.perf_counter() - start)
            if run_span.is_recording():
                safely(_record_run_span, run_span, result, self._roles, context.recorder.escalations)
                if context.capture_content:  # after the run: a privacy filter's redactor is set
                    safely(set_attributes, run_span, content.run_content(
                        context.extras.get("redact"), state.get("input"), state.get("answer")))
            safely(metrics.record_run, flow=self.spec.name,
                   escalations=context.recorder.escalations, status="ok")
        return result

    async def _invoke(
        self, initial: dict[str, Any] | None, config: dict[str, Any], context: TandemContext,
        emit: Callable[[StreamEvent], None] | None = None,
    ) -> dict[str, Any]:
        """Run the graph; return its final state, passing stream events to ``emit``."""
        graph = await self._graph()
        # "sync": a node's checkpoint is written before the next node starts, so a killed
        # run resumes without repeating any node that had completed.
        durability = "sync" if graph.checkpointer is not None else None
        # Without a listener only "values" is asked for (what ainvoke does, minus updates).
        modes = list(STREAM_MODES) if emit is not None else ["values"]
        state: dict[str, Any] = {}
        parts = graph.astream(initial, config=config, context=context, durability=durability,
                              stream_mode=modes, subgraphs=emit is not None, version="v2")
        try:
            # closed here, not when garbage collected: a cancelled run (timeout, client gone)
            # cancels its running nodes, and so their model calls, at once
            async with contextlib.aclosing(parts):
                async for part in parts:
                    if part["type"] == "values" and not part["ns"]:
                        state = part["data"]
                    elif emit is not None:
                        for event in stream_events(part):
                            emit(event)
        except GraphRecursionError:
            context.extras.setdefault(FAILED_NODE, None)
            raise BudgetExceededError(
                f"flow {self.spec.name!r} stopped after {self._step_limit} graph steps: "
                f"settings.max_steps ({self.spec.settings.step_limit()}, plus 4 per route) bounds "
                "the steps of one run; raise it, or make the loop's route end sooner"
            ) from None
        return state

    async def _graph(self) -> Any:
        """The compiled graph; with a SQLite path, bound to this loop's shared saver."""
        if not self._checkpoint_path:
            return self.graph
        from tandemlm.flows.sqlite_saver import shared_saver

        saver = await shared_saver(self._checkpoint_path)
        return self.graph.copy(update={"checkpointer": saver})  # a shallow copy: ~0.1 ms

    async def aresume(
        self, thread_id: str, *, capture_content: bool | None = None
    ) -> RunResult:
        """Finish a checkpointed run that was interrupted (process killed, crash).

        LangGraph continues from the thread's last checkpoint: nodes that completed are not
        run again, the interrupted ones are. A thread whose run had finished returns its
        result without running anything. Budget counters start afresh.

        Raises:
            SpecError: the flow has no checkpointer or the thread has no checkpoint.
            TandemError: as :meth:`arun`.
        """
        if not self._checkpoint_path and self.graph.checkpointer is None:
            raise SpecError("checkpointer", "resuming needs a flow compiled with a checkpointer")
        config = self._config(thread_id)
        graph = await self._graph()
        if not (await graph.aget_state(config)).values:
            raise SpecError("thread_id", f"no checkpoint for thread {thread_id!r} to resume")
        return await self._traced_run(None, config, capture_content)

    def resume(self, thread_id: str, **kwargs: Any) -> RunResult:
        """Synchronous :meth:`aresume`."""
        return asyncio.run(self.aresume(thread_id, **kwargs))

    def run(self, question: str, **kwargs: Any) -> RunResult:
        """Synchronous :meth:`arun` (not from inside a running event loop)."""
        return asyncio.run(self.arun(question, **kwargs))

    def _result(self, state: dict[str, Any], run_id: str, seconds: float) -> RunResult:
        steps = ledger.entries(state)
        written = {o for step in steps for o in step.get("outputs") or ()}
        outputs = {c: state[c] for c in self.checked.channels  # None: never written (_unset)
                   if c != "answer" and c in state and (state[c] is not None or c in written)}
        return RunResult(
            flow=self.spec.name,
            run_id=run_id,
            answer=str(state.get("answer") or ""),
            answered_by=ledger.answered_by(steps) or None,
            path=[s.get("node", "?") for s in steps],
            steps=steps,
            decisions=ledger.decisions(steps),
            usage=ledger.usage(steps),
            models=self.models.describe(),
            seconds=seconds,
            degraded=ledger.degraded(steps),
            errors=ledger.errors(steps),
            vars=outputs,
            large_models=ledger.large_models_called(steps),
        )


def _record_failed_run(run_span: Any, context: TandemContext, roles: Mapping[str, str | None]) -> None:
    """Totals of a failed run (tokens, cost, models, path) from what its nodes recorded,
    the failed node and the nodes that never finished included: their models did run."""
    scopes = context.extras.get(RUN_SCOPES, (None, []))[1]
    partial = {"ledger": [scope.entry(()) for scope in scopes]}
    attributes = runinfo.run_attributes(partial, roles, context.recorder.escalations)
    attributes.pop(A.RUN_STATUS, None)
    set_attributes(run_span, attributes)


def _record_run_span(run_span: Any, result: RunResult, roles: Mapping[str, str | None],
                     escalations: int) -> None:
    """The run's totals and recovered errors, from its result (the ledger's views are
    worked out once, for both)."""
    state = {"ledger": result.steps}
    set_attributes(run_span, runinfo.run_attributes(state, roles, escalations, usage=result.usage,
                                                    large=result.large_models))
    for event in runinfo.error_events(state):
        add_event(run_span, A.ERROR_EVENT, event)


def compile_flow(
    source: FlowSpec | str | dict[str, Any] | Any,
    *,
    models: Mapping[str, BaseChatModel] | None = None,
    stores: Mapping[str, Any] | None = None,
    checkpointer: Any = None,
) -> CompiledFlow:
    """Validate a spec (or builder, preset name, path or dict) and compile it.

    Args:
        source: a :class:`FlowSpec`, a :class:`Flow` builder, a preset name, a path or a dict.
        models: chat models to use instead of building them from the spec (e.g. fakes).
        stores: store objects by name.
        checkpointer: a LangGraph checkpointer, or a path for SQLite checkpoints (multi-turn
            and durable runs keyed by ``thread_id``).

    Raises:
        SpecError: the spec is invalid; the message names the path and a fix.
    """
    if hasattr(source, "to_spec"):
        source = source.to_spec()
    spec = load_flow(source)
    return CompiledFlow(check(spec), models=models, stores=stores, checkpointer=checkpointer)


