"""Where tandemlm's per-node overhead goes: each piece taken out in turn, same chain as overhead.py.

Prints, in microseconds per node (process CPU time, best of ``--repeats`` interleaved
repeats of ``--runs`` runs of the 10-node chain in ``benchmarks/overhead.py``):

- LangGraph alone with the state schema tandemlm generates for the chain (one channel per
  output plus the built-ins it needs), run as a flow runs it (streaming only the state's
  values), against the hand-written two-channel graph run by ``ainvoke`` (as in
  ``overhead.py``; ``ainvoke`` also streams updates, which a flow does not);
- tracing with a span processor that drops every span (what recording costs before any
  export), then the same with one piece switched off at a time: hop events, the run
  span's totals, the ``node`` span, the ``chat`` span (with its hops and attributes);
  hop events are built when a span is exported, so what is left of them here is finding
  their sources;
- one span (a ``node`` span around a ``chat`` span with tandemlm's attributes and a hop
  event), recorded as a light span and through the SDK tracer;
- the local store per span: encoding a run's finished spans into its one chunk row (with
  orjson and with the standard library's json; ``tandemlm.telemetry.writer`` does this on
  the flow's thread when the run ends), and writing the chunks to SQLite.

Usage: python benchmarks/overhead_breakdown.py [--runs 100] [--repeats 9]
Run it pinned to one CPU (``taskset -c 1``) for steadier figures; they still move by a few
microseconds between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.messages import HumanMessage
from langgraph.graph import StateGraph
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from overhead import chain, fake, raw_graph, tandem_spec

import tandemlm.models.call as model_call
from tandemlm import _json as fast_json
from tandemlm.core.state import state_schema
from tandemlm.flows import compile_flow, compiler
from tandemlm.telemetry import attributes as A
from tandemlm.telemetry.setup import hub
from tandemlm.telemetry.spans import NO_SPAN, add_event, set_attributes, span
from tandemlm.telemetry.store import TraceStore, encode_chunk

NODES = 10


class Drop(SpanProcessor):
    """Receives every finished span and keeps none: the cost of recording, not exporting."""

    def on_end(self, span: ReadableSpan) -> None:
        pass


async def final_values(graph: Any, initial: dict[str, Any]) -> dict[str, Any]:
    """Run ``graph`` as a flow runs its graph (``CompiledFlow._invoke``): streamed, only
    the "values" mode, keeping the last (``ainvoke`` also streams "updates")."""
    state: dict[str, Any] = {}
    async for part in graph.astream(initial, stream_mode=["values"], version="v2"):
        state = part["data"]
    return state


def generated_schema_graph(model: Any, flow: Any) -> Any:
    """The hand-written chain, but over the state schema tandemlm generates for ``flow``
    (the same chain as a flow: its outputs and the built-in channels it needs)."""
    checked = flow.checked
    graph: Any = StateGraph(state_schema("Chain", checked.channels, builtins=checked.builtins))

    def make(i: int) -> Any:
        async def node(state: dict[str, Any]) -> dict[str, Any]:
            previous = state.get(f"s{i - 1}") if i else state["input"]
            reply = await model.ainvoke([HumanMessage(content=f"step {i}: {previous}")])
            return {f"s{i}": reply.content, "ledger": [{"node": f"n{i}"}]}

        return node

    return chain(graph, make, NODES)


class WatchesStarts(SpanProcessor):
    """A processor that looks at span starts: tandemlm then records through the SDK tracer."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass


def span_pair_us(sdk: bool, count: int = 20_000) -> float:
    """Microseconds per span for a ``node`` span around a ``chat`` span with a hop event."""
    node = {A.NODE: "n1", A.NODE_TYPE: "generate", A.FLOW: "overhead"}
    chat = {A.GEN_AI_OPERATION: "chat", A.GEN_AI_PROVIDER: "keyed", A.GEN_AI_REQUEST_MODEL: "m",
            A.GEN_AI_TEMPERATURE: 0.2, A.GEN_AI_MAX_TOKENS: 256, A.MODEL: "slm",
            A.MODEL_LOCAL: True, A.MODEL_ROLE: "slm", A.NODE: "n1", A.FLOW: "overhead"}
    hop = {A.HOP_FIELD: "s0", A.HOP_FROM_NODE: "n0", A.HOP_TO_NODE: "n1", A.HOP_FROM_MODEL: "slm",
           A.HOP_TO_MODEL: "slm", A.HOP_CHARS: 2, A.HOP_TOKENS: 1, A.HOP_FROM_LOCAL: True,
           A.HOP_TO_LOCAL: True, A.HOP_LOCAL_TO_REMOTE: False}
    reply = {A.GEN_AI_INPUT_TOKENS: 5, A.GEN_AI_OUTPUT_TOKENS: 1, A.COST: 0.0,
             A.GEN_AI_FINISH_REASONS: ("stop",), A.GEN_AI_RESPONSE_MODEL: "m"}
    drop, starts = Drop(), WatchesStarts()
    hub().add(drop)
    if sdk:
        hub().add(starts)
    try:
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for _ in range(count):
                with span("node n1", node), span("chat m", chat) as current:
                    add_event(current, A.HOP_EVENT, hop)
                    set_attributes(current, reply)
            best = min(best, time.process_time() - start)
    finally:
        hub().remove(drop)
        hub().remove(starts)
    return best / (2 * count) * 1e6


class _Swap(TypedDict):
    module: Any
    name: str
    value: Any


def _tracing_pieces() -> dict[str, list[_Swap]]:
    original_span = compiler.span

    def no_node_span(name: str, attributes: dict[str, Any] | None = None) -> Any:
        return NO_SPAN if name.startswith("node ") else original_span(name, attributes)

    def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    return {
        "hop events": [{"module": model_call, "name": "_record_hops", "value": nothing}],
        "run span totals": [{"module": compiler, "name": "_record_run_span", "value": nothing}],
        "node span": [{"module": compiler, "name": "span", "value": no_node_span}],
        "chat span (all of it)": [{"module": model_call, "name": "span",
                                   "value": lambda *a, **k: NO_SPAN}],
    }


async def _time(fn: Callable[[], Awaitable[Any]], runs: int) -> float:
    start = time.process_time()
    for _ in range(runs):
        await fn()
    return time.process_time() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    runs, reps = args.runs, args.repeats
    model = fake()
    raw = raw_graph(model, NODES)
    flow = compile_flow(tandem_spec(NODES), models={"slm": model})
    generated = generated_schema_graph(model, flow)
    # what a flow's run starts from: the input, no run variables, outputs not written yet
    initial: dict[str, Any] = {"input": "question", "variables": {}, "answer": "",
                               **dict.fromkeys(c for c in flow.checked.channels if c != "answer")}
    pieces = _tracing_pieces()
    drop = Drop()
    samples: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(seconds)

    for rep in range(reps + 1):  # the first round warms up and is not counted
        counted = rep > 0
        results = {
            "raw LangGraph": await _time(lambda: raw.ainvoke({"input": "question", "vars": {}}), runs),
            "LangGraph, generated schema": await _time(lambda: final_values(generated, initial), runs),
            "tandemlm untraced": await _time(lambda: flow.arun("question"), runs),
        }
        hub().add(drop)
        try:
            results["traced, spans dropped"] = await _time(lambda: flow.arun("question"), runs)
            for label, swaps in pieces.items():
                saved = [(s["module"], s["name"], getattr(s["module"], s["name"])) for s in swaps]
                for s in swaps:
                    setattr(s["module"], s["name"], s["value"])
                try:
                    results[f"  without {label}"] = await _time(lambda: flow.arun("question"), runs)
                finally:
                    for module, name, value in saved:
                        setattr(module, name, value)
        finally:
            hub().remove(drop)
        if counted:
            for name, seconds in results.items():
                add(name, seconds)
        print(f"repeat {rep}/{reps}{'' if counted else ' (warm-up)'}", flush=True)

    us = {k: min(v) / (runs * NODES) * 1e6 for k, v in samples.items()}
    traced = us["traced, spans dropped"]
    print(f"machine: {platform.machine()} {os.cpu_count()}-core, Python {platform.python_version()}, "
          f"{date.today().isoformat()}; {NODES}-node chain, {runs} runs x {reps} repeats "
          f"(CPU time, best repeat)")
    print(f"raw LangGraph                         {us['raw LangGraph']:7.1f} us/node")
    print(f"LangGraph, generated schema           {us['LangGraph, generated schema']:7.1f} us/node"
          f"  (channels: +{us['LangGraph, generated schema'] - us['raw LangGraph']:.1f})")
    print(f"tandemlm untraced                     {us['tandemlm untraced']:7.1f} us/node"
          f"  (wrapper, ledger, model-call bookkeeping: "
          f"+{us['tandemlm untraced'] - us['LangGraph, generated schema']:.1f})")
    print(f"traced, spans dropped                 {traced:7.1f} us/node"
          f"  (recording spans: +{traced - us['tandemlm untraced']:.1f})")
    for label in pieces:
        value = us[f"  without {label}"]
        print(f"  without {label:28s}{value:7.1f} us/node  (the piece: {traced - value:.1f})")

    # the local store, per span: encode rows, then write them
    exporter = InMemorySpanExporter()
    collector = SimpleSpanProcessor(exporter)
    hub().add(collector)
    try:
        for _ in range(runs):
            await flow.arun("question")
    finally:
        hub().remove(collector)
    spans = exporter.get_finished_spans()
    runs_spans: dict[int, list[ReadableSpan]] = {}
    for item in spans:
        runs_spans.setdefault(item.context.trace_id, []).append(item)
    start = time.process_time()
    chunks = [encode_chunk(group) for group in runs_spans.values()]  # builds the deferred parts too
    encode = (time.process_time() - start) / len(spans) * 1e6
    encode_again = {}
    saved_orjson = fast_json.orjson
    for label, module in (("orjson", saved_orjson), ("json", None)):
        fast_json.orjson = module
        start = time.process_time()
        for group in runs_spans.values():
            encode_chunk(group)
        encode_again[label] = (time.process_time() - start) / len(spans) * 1e6
    fast_json.orjson = saved_orjson
    with tempfile.TemporaryDirectory() as tmp:
        store = TraceStore(Path(tmp) / "traces.db")
        start = time.process_time()
        store.add_chunks(chunks)
        write = (time.process_time() - start) / len(spans) * 1e6
        store.close()
    print(f"local store: encode {encode:.1f} us/span (deferred parts built), SQLite write "
          f"{write:.1f} us/span, one row per run ({len(spans) / (runs * NODES):.1f} spans per node)")
    print(f"local store, encoding built spans again: orjson {encode_again['orjson']:.1f} us/span, "
          f"standard json {encode_again['json']:.1f} us/span")
    print(f"one span with its attributes (node around chat with a hop event): light "
          f"{span_pair_us(sdk=False):.1f} us, SDK tracer {span_pair_us(sdk=True):.1f} us")


if __name__ == "__main__":
    asyncio.run(main())
