"""Runs per second of a keyed 3-node flow in one process: no checkpoints, SQLite checkpoints
with the shared per-loop saver, and with a saver opened (and the graph rebuilt) per run as
CompiledFlow did before.

    python benchmarks/checkpoint_overhead.py --runs 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from service_load import FLOW

from tandemlm.flows import compile_flow
from tandemlm.flows.compiler import CompiledFlow, build_graph


class PerRunSaver(CompiledFlow):
    """The previous behaviour: open AsyncSqliteSaver and compile the graph for every run."""

    async def _invoke(self, initial: Any, config: dict[str, Any], context: Any) -> Any:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(self._checkpoint_path or "") as saver:
            graph = build_graph(self.checked).compile(checkpointer=saver, name=self.spec.name)
            return await graph.ainvoke(initial, config=config, context=context)


async def rate(flow: CompiledFlow, runs: int, concurrency: int, threads: bool) -> float:
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            await flow.arun(f"question {i}", thread_id=f"t{i}" if threads else None)

    await asyncio.gather(*(one(-i - 1) for i in range(20)))  # warm-up
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return runs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    variants = {
        "no checkpoints": (compile_flow(FLOW), False),
        "SQLite, shared saver per loop": (compile_flow(FLOW, checkpointer=folder / "a.db"), True),
    }
    checked = compile_flow(FLOW).checked
    variants["SQLite, saver per run (before)"] = (PerRunSaver(checked, checkpointer=folder / "b.db"), True)
    print(f"machine: {platform.machine()} CPU, Python {platform.python_version()}, date {date.today()}")
    print(f"{args.runs} runs after 20 warm-up, concurrency {args.concurrency}, keyed cascade, tracing off")
    for name, (flow, threads) in variants.items():
        print(f"{name}: {asyncio.run(rate(flow, args.runs, args.concurrency, threads)):.1f} runs/s")


if __name__ == "__main__":
    main()
