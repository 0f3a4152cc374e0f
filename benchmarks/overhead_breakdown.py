"""Where tandemlm's per-node overhead goes: each piece taken out in turn, same chain as overhead.py.

Prints, in microseconds per node (process CPU time, best of ``--repeats`` interleaved
repeats of ``--runs`` runs of the 10-node chain in ``benchmarks/overhead.py``):

- LangGraph alone with the state schema tandemlm generates (one channel per output plus
  the built-in ones) against the hand-written two-channel graph;
- tracing with a span processor that drops every span (what recording costs before any
  export), then the same with one piece switched off at a time: hop events, the run
  span's totals, the ``node`` span, the ``chat`` span (with its hops and attributes);
  hop events, run totals and the ``chat`` span's reply attributes are built when a span is
  exported, so what is left of them here is capturing their inputs;
- the local store per span: encoding a finished span into rows, and writing them to SQLite.

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
from tandemlm.core.state import state_schema
from tandemlm.flows import compile_flow, compiler
from tandemlm.telemetry.setup import hub
from tandemlm.telemetry.spans import NO_SPAN
from tandemlm.telemetry.store import TraceStore, encode_span

NODES = 10


class Drop(SpanProcessor):
    """Receives every finished span and keeps none: the cost of recording, not exporting."""

    def on_end(self, span: ReadableSpan) -> None:
        pass


def generated_schema_graph(model: Any) -> Any:
    """The hand-written chain, but over the state schema a tandemlm flow of it generates."""
    graph = StateGraph(state_schema("Chain", {f"s{i}": None for i in range(NODES)}))

    def make(i: int) -> Any:
        async def node(state: dict[str, Any]) -> dict[str, Any]:
            previous = state.get(f"s{i - 1}") if i else state["input"]
            reply = await model.ainvoke([HumanMessage(content=f"step {i}: {previous}")])
            return {f"s{i}": reply.content, "ledger": [{"node": f"n{i}"}]}

        return node

    return chain(graph, make, NODES)


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
    generated = generated_schema_graph(model)
    flow = compile_flow(tandem_spec(NODES), models={"slm": model})
    pieces = _tracing_pieces()
    drop = Drop()
    samples: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(seconds)

    for rep in range(reps + 1):  # the first round warms up and is not counted
        counted = rep > 0
        results = {
            "raw LangGraph": await _time(lambda: raw.ainvoke({"input": "question", "vars": {}}), runs),
            "LangGraph, generated schema": await _time(
                lambda: generated.ainvoke({"input": "question", "ledger": None}), runs),
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
    start = time.process_time()
    rows = [encode_span(s) for s in spans]
    encode = (time.process_time() - start) / len(spans) * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        store = TraceStore(Path(tmp) / "traces.db")
        start = time.process_time()
        store.add_rows(rows)
        write = (time.process_time() - start) / len(spans) * 1e6
        store.close()
    print(f"local store: encode {encode:.1f} us/span, SQLite write {write:.1f} us/span "
          f"({len(spans) / (runs * NODES):.1f} spans per node)")


if __name__ == "__main__":
    asyncio.run(main())
