"""Fixtures for telemetry tests: a trace store filled by real (fake-model) runs."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

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


# -- a store for the viewer: captured content, retrieval, token-level figures, a request id --

QUESTIONS = [  # (question, slm confidence): threshold 0.2 on 1 - confidence escalates only the last
    ("What is the capital of France?", 0.9),
    ("How many legs does a spider have?", 0.95),
    ("Translate hello into Japanese please", 0.85),
    ("Explain the Riemann hypothesis in simple words", 0.1),
]
REQUEST_ID = "req-viewer-0042"
KB = {
    "policies/returns.md": "Returns are accepted within 30 days of delivery. Write to help@example.com.",
    "policies/shipping.md": "Standard shipping takes 3 to 5 working days.",
    "care/down.md": "Wash down jackets with a down wash and two tennis balls.",
}


@dataclass
class ViewerStore:
    path: Path
    cascade_runs: list[str]  # in QUESTIONS order
    rag_run: str
    tokens_run: str
    service_run: str


def _tokens_node() -> type:
    from fake_nodes import token_level_node

    from tandemlm.telemetry import attributes as A

    return token_level_node("viewer_tokens", "answer", input_tokens=12, output_tokens=8, attributes={
        A.TOKENS_ROLE: "draft", A.TOKENS_DRAFTED: 8, A.TOKENS_ACCEPTED: 6,
        A.TOKENS_ACCEPTANCE_RATE: 0.75, A.TOKENS_ROUNDS: 2,
    })


async def _fill_viewer(path: Path) -> ViewerStore:
    import httpx

    from tandemlm.flows import Flow, register_node
    from tandemlm.service.app import create_app
    from tandemlm.service.server import ServerThread
    from tandemlm.stores import Document, MemoryStore

    handle = enable_tracing(store=path)
    try:
        cascade = compile_flow("cascade", models={
            "slm": ScriptedChatModel(replies=[{"content": f"draft {i}", "confidence": c}
                                              for i, (_, c) in enumerate(QUESTIONS)]),
            "llm": ScriptedChatModel(replies=["The hypothesis is about the zeros of the zeta function."]),
        })
        cascade_runs = [(await cascade.arun(q, capture_content=True)).run_id for q, _ in QUESTIONS]

        kb = MemoryStore("hash")
        kb.upsert([Document(id=k, text=t, metadata={"source": k}) for k, t in KB.items()])
        rag = compile_flow(
            Flow("rag").model("slm", role="slm").store("kb", type="memory", embedding="hash")
            .node("retrieve", "retrieve", store="kb", k=2).node("merge", "evidence")
            .node("answer", "generate", model="slm", prompt="Evidence:\n{context}\n\nQuestion: {input}")
            .entry("retrieve").edge("retrieve", "merge").edge("merge", "answer").edge("answer", "end"),
            models={"slm": ScriptedChatModel(replies=["Within 30 days."])}, stores={"kb": kb},
        )
        rag_run = (await rag.arun("How long do I have to return an item?", capture_content=True)).run_id

        register_node("viewer_tokens", _tokens_node())
        tokens = compile_flow(
            Flow("tokens").model("slm", role="slm").node("answer", "viewer_tokens", model="slm")
            .entry("answer").edge("answer", "end"),
            models={"slm": ScriptedChatModel(replies=[])},
        )
        tokens_run = (await tokens.arun("Name three colors.")).run_id
    finally:
        handle.flush()

    try:  # a request through the real service, named by its X-Request-ID
        spec = load_flow("pipeline")
        spec = spec.model_copy(update={"settings": spec.settings.model_copy(update={"capture_content": True})})
        service_flow = compile_flow(spec, models={
            "slm": ScriptedChatModel(replies=['{"intent": "hours", "facts": ["9 to 5"]}']),
            "llm": ScriptedChatModel(replies=["We are open from 9 to 5."]),
        })
        with ServerThread(create_app(service_flow)) as server:
            async with httpx.AsyncClient() as client:
                res = await client.post(f"{server.url}/v1/run", json={"question": "When is the shop open?"},
                                        headers={"X-Request-ID": REQUEST_ID})
        assert res.status_code == 200, res.text
        service_run = res.json()["run_id"]
    finally:
        handle.close()
    return ViewerStore(path, cascade_runs, rag_run, tokens_run, service_run)


@pytest.fixture(scope="module")
def viewer_store(tmp_path_factory: pytest.TempPathFactory) -> ViewerStore:
    """Runs with captured content: 4 cascade runs (1 escalated), a retrieval run, a
    token-level run, and a pipeline run made through the service with a request id."""
    path = tmp_path_factory.mktemp("viewer") / "traces.db"
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _fill_viewer(path)).result()


# -- metrics: the process's SDK meter provider (set once) and its reader --------------------
_READER = InMemoryMetricReader()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    """A real SDK meter provider, installed once per process, and its in-memory reader."""
    provider = metrics.get_meter_provider()
    if not isinstance(provider, MeterProvider):  # the global provider can be set once only
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    return _READER

