"""Per-node overhead: a plain Python loop vs raw LangGraph vs tandemlm with tracing on.

All three run the same 10-step chain; every step calls the same instant fake chat model
(``KeyedChatModel``, a real langchain-core chat model that answers without work) with a
prompt built from the previous step's output. tandemlm runs with tracing on: every node,
model call and hop becomes a span, batched into the local SQLite trace store.

Usage: python benchmarks/overhead.py [--runs 200] [--nodes 10] [--repeats 7]
Prints per-node milliseconds of process CPU time (all threads, so the trace store's batch
writer counts; CPU time rather than wall time because CI machines are shared), best of
repeats, and the ratio tandemlm / raw LangGraph.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph

from tandemlm.flows import compile_flow
from tandemlm.models.fakes import KeyedChatModel
from tandemlm.telemetry import enable_tracing


def fake() -> KeyedChatModel:
    # record_calls=False: the test double would otherwise keep every call's messages, a
    # heap growing through the benchmark that makes each garbage collection slower, and
    # so penalises whichever variant allocates more (no real chat model keeps its calls)
    return KeyedChatModel(replies={".": "ok"}, record_calls=False)


async def plain_loop(model: KeyedChatModel, nodes: int, runs: int) -> float:
    start = time.process_time()
    for _ in range(runs):
        state: dict[str, Any] = {"input": "question"}
        previous = "input"
        for i in range(nodes):
            reply = await model.ainvoke([HumanMessage(content=f"step {i}: {state[previous]}")])
            state[f"s{i}"] = reply.content
            previous = f"s{i}"
    return time.process_time() - start


class RawState(TypedDict, total=False):
    input: str
    vars: dict[str, str]


def raw_graph(model: KeyedChatModel, nodes: int) -> Any:
    graph = StateGraph(RawState)

    def make(i: int) -> Any:
        async def node(state: RawState) -> dict[str, Any]:
            previous = state["vars"].get(f"s{i - 1}", state["input"]) if i else state["input"]
            reply = await model.ainvoke([HumanMessage(content=f"step {i}: {previous}")])
            return {"vars": {**state.get("vars", {}), f"s{i}": reply.content}}

        return node

    return chain(graph, make, nodes)


def chain(graph: Any, make: Any, nodes: int) -> Any:
    """``graph`` with nodes ``make(0)`` ... ``make(nodes - 1)`` one after another, compiled."""
    for i in range(nodes):
        graph.add_node(f"n{i}", make(i))
        graph.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    graph.add_edge(f"n{nodes - 1}", END)
    return graph.compile()


async def raw_langgraph(model: KeyedChatModel, nodes: int, runs: int) -> float:
    graph = raw_graph(model, nodes)
    start = time.process_time()
    for _ in range(runs):
        await graph.ainvoke({"input": "question", "vars": {}})
    return time.process_time() - start


def tandem_spec(nodes: int) -> dict[str, Any]:
    spec_nodes = {
        f"n{i}": {"type": "generate", "model": "slm", "output": f"s{i}",
                  "prompt": f"step {i}: " + ("{input}" if i == 0 else f"{{s{i - 1}}}")}
        for i in range(nodes)
    }
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(nodes - 1)]
    edges.append({"from": f"n{nodes - 1}", "to": "end"})
    return {"name": "overhead", "models": {"slm": {"role": "slm"}}, "nodes": spec_nodes,
            "entry": "n0", "edges": edges}


async def tandem(model: KeyedChatModel, nodes: int, runs: int) -> float:
    flow = compile_flow(tandem_spec(nodes), models={"slm": model})
    start = time.process_time()
    for _ in range(runs):
        await flow.arun("question")
    return time.process_time() - start


async def traced(model: KeyedChatModel, nodes: int, runs: int, store: Path) -> float:
    """tandemlm with tracing into the local store; the time includes flushing the batch."""
    handle = enable_tracing(store=store)
    try:
        start = time.process_time()
        await tandem(model, nodes, runs)
        handle.flush()
        return time.process_time() - start
    finally:
        handle.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n, runs, reps = args.nodes, args.runs, args.repeats
    model = fake()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "traces.db"
        variants = {
            "loop": lambda: plain_loop(model, n, runs),
            "raw": lambda: raw_langgraph(model, n, runs),
            "off": lambda: tandem(model, n, runs),
            "traced": lambda: traced(model, n, runs, store),
        }
        for fn in variants.values():  # warm-up
            await fn()
        samples: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(reps):  # interleaved, so load from other processes hits all alike
            for name, fn in variants.items():
                samples[name].append(await fn())
        from tandemlm.telemetry.store import TraceStore

        stored = len(TraceStore(store).list_runs(limit=100_000))
    # best batch, per node, in ms: the figure least disturbed by other processes
    ms = {k: min(v) / (runs * n) * 1000 for k, v in samples.items()}

    print(f"machine: {platform.machine()} {os.cpu_count()}-core, Python {platform.python_version()}, "
          f"{date.today().isoformat()}; {n}-node chain, {runs} runs x {reps} repeats "
          f"(CPU time, best repeat)")
    print(f"plain Python loop + fake model      {ms['loop']:8.3f} ms/node")
    print(f"raw LangGraph (hand-written)        {ms['raw']:8.3f} ms/node")
    print(f"tandemlm, tracing off               {ms['off']:8.3f} ms/node")
    print(f"tandemlm, tracing + local store     {ms['traced']:8.3f} ms/node  ({stored} runs stored)")
    print(f"ratio tandemlm traced / raw LangGraph   {ms['traced'] / ms['raw']:.2f}x  (goal <= 1.30x)")
    print(f"ratio tandemlm untraced / raw LangGraph {ms['off'] / ms['raw']:.2f}x")
    print(f"tracing + store cost per node           {ms['traced'] - ms['off']:.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
