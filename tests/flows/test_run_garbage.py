"""A run leaves nothing to the garbage collector: everything it made is freed when the
run ends (a reference cycle per run cost every node microseconds of collection)."""

from __future__ import annotations

import gc

import pytest

from tandemlm import KeyedChatModel, compile_flow
from tandemlm.telemetry import enable_tracing


async def _cycles_left(flow, runs: int = 5) -> int:
    await flow.arun("warm up")
    gc.collect()
    gc.disable()
    try:
        for i in range(runs):
            await flow.arun(f"question {i}")
        return gc.collect()
    finally:
        gc.enable()


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
async def test_runs_leave_no_reference_cycles(traced: bool, tmp_path) -> None:
    models = {"slm": KeyedChatModel(replies={".": "a draft"}, record_calls=False),
              "llm": KeyedChatModel(replies={".": "42"}, record_calls=False)}
    flow = compile_flow("pipeline", models=models)
    handle = enable_tracing(store=tmp_path / "traces.db") if traced else None
    try:
        assert await _cycles_left(flow) == 0
    finally:
        if handle is not None:
            handle.close()
