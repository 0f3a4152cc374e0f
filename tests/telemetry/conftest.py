"""Fixtures for telemetry tests: a trace store filled by real (fake-model) runs."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tandemlm.errors import ModelUnavailableError
from tandemlm.flows import compile_flow, load_flow
from tandemlm.models.fakes import ScriptedChatModel
from tandemlm.telemetry import enable_tracing


@dataclass
class FilledStore:
    path: Path
    cascade_run: str  # escalated: draft -> gate -> escalate
    pipeline_run: str  # hop slm -> remote llm
    failed_run: str  # extract failed


async def _fill(path: Path) -> FilledStore:
    handle = enable_tracing(store=path)
    try:
        cascade = compile_flow("cascade", models={
            "slm": ScriptedChatModel(replies=[{"content": "maybe 5", "confidence": 0.3}]),
            "llm": ScriptedChatModel(replies=["4"]),
        })
        first = await cascade.arun("What is 2+2?")
        spec = load_flow("pipeline")
        spec.models["llm"] = spec.models["llm"].model_copy(update={"local": False, "price_in": 0.5, "price_out": 1.5})
        pipeline = compile_flow(spec, models={
            "slm": ScriptedChatModel(replies=['{"intent": "sum", "facts": ["2", "2"]}']),
            "llm": ScriptedChatModel(replies=["4"]),
        })
        second = await pipeline.arun("What is 2+2?")
        broken = compile_flow("pipeline", models={
            "slm": ScriptedChatModel(replies=[{"error": "server down"}]),
            "llm": ScriptedChatModel(replies=[]),
        })
        with pytest.raises(ModelUnavailableError):
            await broken.arun("hi")
    finally:
        handle.close()
    from tandemlm.telemetry.store import TraceStore

    runs = TraceStore(path).list_runs(flow="pipeline", status="error")
    assert runs, "the failed run was not stored"
    return FilledStore(path, first.run_id, second.run_id, runs[0]["run_id"])


@pytest.fixture
def filled_store(tmp_path: Path) -> FilledStore:
    """A trace store holding an escalated cascade run, a pipeline run with a hop, a failed run."""
    # a thread of its own: Playwright's sync API keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _fill(tmp_path / "traces.db")).result()
