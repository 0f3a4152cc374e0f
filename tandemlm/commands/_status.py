"""The live status line of ``tandem run``: current node, its model, tokens so far, time.

Drawn on stderr from the run's own events (:meth:`CompiledFlow.astream`), only once the run
has taken ``delay`` seconds (short runs print nothing extra), and erased before the answer
is printed. ``tandem run`` uses it when stderr is a terminal and ``--quiet`` is not given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from tandemlm.flows.stream import Message, NodeFailed, NodeFinished, NodeStarted, Token

if TYPE_CHECKING:
    from tandemlm.flows.compiler import CompiledFlow, RunResult

SPINNER = "|/-\\"


class StatusLine:
    """What the status line shows, updated from stream events.

    Args:
        models: ``{node: "name (provider:model)"}``, the model(s) each node calls.
    """

    def __init__(self, models: Mapping[str, str]) -> None:
        self.models = dict(models)
        self.running: list[str] = []
        self.finished_tokens = 0  # output tokens of finished nodes (exact, from their ledger entries)
        self.live_tokens: dict[str, int] = {}  # pieces streamed by nodes still running

    def update(self, event: object) -> None:
        if isinstance(event, NodeStarted):
            self.running.append(event.node)
        elif isinstance(event, NodeFinished | NodeFailed):
            if event.node in self.running:
                self.running.remove(event.node)
            self.live_tokens.pop(event.node, None)
            if isinstance(event, NodeFinished):
                usage = event.step.get("usage") or {}
                self.finished_tokens += sum(int(u.get("output_tokens", 0)) for u in usage.values()
                                            if isinstance(u, Mapping))
        elif isinstance(event, Token | Message) and event.node:
            node = event.node.split("/")[0]
            self.live_tokens[node] = self.live_tokens.get(node, 0) + (1 if isinstance(event, Token) else 0)

    @property
    def tokens(self) -> int:
        return self.finished_tokens + sum(self.live_tokens.values())

    def text(self, seconds: float, frame: int = 0) -> str:
        node = self.running[-1] if self.running else None
        where = f"node {node}" + (f"  model {self.models[node]}" if self.models.get(node) else "") if node else "-"
        more = f" (+{len(self.running) - 1} more)" if len(self.running) > 1 else ""
        return f"{SPINNER[frame % len(SPINNER)]} {seconds:5.1f}s  {where}{more}  tokens {self.tokens}"


def node_models(flow: CompiledFlow) -> dict[str, str]:
    """``{node: "slm (ollama:qwen2.5:0.5b)"}`` for every node that calls a model."""
    described = flow.models.describe()
    shown = {}
    for name, node in flow.checked.nodes.items():
        refs = sorted(set(node.model_refs().values()))
        if refs:
            shown[name] = ", ".join(f"{ref} ({described.get(ref, '?')})" for ref in refs)
    return shown


async def run_with_status(
    flow: CompiledFlow, question: str, stream: TextIO, *, delay: float = 2.0, interval: float = 0.2,
    width: int = 120, **run: Any,
) -> RunResult:
    """Run ``flow`` like :meth:`CompiledFlow.arun`, drawing the status line on ``stream``.

    The line appears after ``delay`` seconds, is redrawn every ``interval`` seconds (cut to
    ``width`` columns) and is erased when the run ends, however it ends.
    """
    from tandemlm.flows.compiler import RunResult

    status = StatusLine(node_models(flow))
    start = time.monotonic()
    drawn = False

    async def draw() -> None:
        nonlocal drawn
        await asyncio.sleep(delay)
        frame = 0
        while True:
            line = status.text(time.monotonic() - start, frame)[: max(width - 1, 20)]
            stream.write("\r\x1b[2K" + line)
            stream.flush()
            drawn = True
            frame += 1
            await asyncio.sleep(interval)

    painter = asyncio.create_task(draw())
    result: RunResult | None = None
    try:
        async for event in flow.astream(question, **run):
            if isinstance(event, RunResult):
                result = event
            else:
                status.update(event)
    finally:
        painter.cancel()
        try:
            await painter
        except asyncio.CancelledError:
            pass
        if drawn:
            stream.write("\r\x1b[2K")
            stream.flush()
    if result is None:  # astream always ends with the result or raises
        raise RuntimeError("the run ended without a result")
    return result
