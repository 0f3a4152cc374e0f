"""The HTTP service against a real uvicorn server on a free loopback port, scripted models."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandemlm.flows import compile_flow
from tandemlm.service import ServerThread, ServiceSettings, create_app
from tandemlm.service.server import free_port
from tandemlm.telemetry.setup import enable_tracing
from tandemlm.telemetry.store import TraceStore


def keyed_flow(delay: float = 0.0) -> dict[str, Any]:
    """A cascade on keyed models: 'hard' questions go to the llm."""
    slm = {"content": "small answer", "delay": delay} if delay else "small answer"
    return {
        "name": "served",
        "description": "keyed cascade for service tests",
        "models": {
            "slm": {"provider": "keyed", "replies": {".": slm}},
            "llm": {"provider": "keyed", "replies": {".": "large answer"}},
        },
        "nodes": {
            "draft": {"type": "generate", "model": "slm", "prompt": "{input}", "output": "draft"},
            "accept": {"type": "accept", "field": "draft"},
            "escalate": {"type": "generate", "model": "llm", "prompt": "{input}"},
        },
        "entry": "draft",
        "routes": [{"from": "draft", "name": "gate", "router": {"type": "rule", "keywords": ["hard"]},
                    "branches": {"small": "accept", "large": "escalate"}}],
        "edges": [["accept", "end"], ["escalate", "end"]],
    }


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[Path]:
    store = tmp_path / "traces.db"
    handle = enable_tracing(store=store)
    yield store
    handle.close()


@pytest.fixture
def server(tmp_path: Path, traced: Path) -> Iterator[ServerThread]:
    flow = compile_flow(keyed_flow(), checkpointer=tmp_path / "checkpoints.db")
    with ServerThread(create_app(flow, ServiceSettings(max_body=4096))) as srv:
        yield srv


def test_run_answers_and_echoes_request_id(server: ServerThread, traced: Path) -> None:
    reply = httpx.post(f"{server.url}/v1/run", json={"question": "a hard one"},
                       headers={"X-Request-ID": "req-42"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert reply.headers["x-request-id"] == "req-42" and body["request_id"] == "req-42"
    assert body["answer"] == "large answer" and body["answered_by"] == "llm"
    assert body["path"] == ["draft", "gate", "escalate"]
    generated = httpx.post(f"{server.url}/v1/run", json={"question": "easy"},
                           headers={"X-Request-ID": "bad id\twith tab"})
    assert generated.json()["answer"] == "small answer"
    assert len(generated.headers["x-request-id"]) == 32  # an invalid id is replaced
    server.stop()
    from tandemlm.telemetry.setup import hub

    hub().force_flush()
    run = TraceStore(traced).find_run(body["run_id"])
    assert run is not None
    root = next(s for s in TraceStore(traced).spans(run["trace_id"]) if not s["parent_id"])
    assert root["attributes"]["tandem.request_id"] == "req-42"


@pytest.mark.parametrize(
    ("content", "headers", "status", "kind"),
    [
        (b"{not json", {}, 400, "malformed_json"),
        (b"question=hi", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        (json.dumps({"question": "x" * 5000}).encode(), {}, 413, "too_large"),
        (json.dumps({"question": "hi", "extra": 1}).encode(), {}, 422, "invalid_request"),
        (json.dumps({"question": ""}).encode(), {}, 422, "invalid_request"),
        (json.dumps({"question": 42}).encode(), {}, 422, "invalid_request"),
        (json.dumps(["question"]).encode(), {}, 422, "invalid_request"),
        (json.dumps({"question": "hi", "thread_id": "../../etc"}).encode(), {}, 422, "invalid_request"),
        (json.dumps({"question": "   "}).encode(), {}, 422, "invalid_request"),
        (b"[" * 3000, {}, 400, "malformed_json"),
    ],
)
def test_request_validation(server: ServerThread, content: bytes, headers: dict[str, str],
                            status: int, kind: str) -> None:
    for path in ("/v1/run", "/v1/stream"):
        reply = httpx.post(f"{server.url}{path}", content=content,
                           headers={"content-type": "application/json", **headers})
        assert reply.status_code == status, (path, reply.text)
        assert reply.json()["error"] == kind


def test_body_limit_without_content_length(server: ServerThread) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    reply = httpx.post(f"{server.url}/v1/run", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_stream_sends_node_events_and_result(server: ServerThread) -> None:
    with httpx.stream("POST", f"{server.url}/v1/stream", json={"question": "hard question"},
                      headers={"X-Request-ID": "s-1"}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = _events(reply.read().decode())
    kinds = [e for e, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "result"
    nodes = [(d["node"], d["status"]) for e, d in events if e == "node"]
    assert nodes == [("draft", "start"), ("draft", "end"), ("gate", "start"), ("gate", "end"),
                     ("escalate", "start"), ("escalate", "end")]
    messages = [d for e, d in events if e == "message"]
    assert [m["text"] for m in messages] == ["small answer", "large answer"]
    assert [m["node"] for m in messages] == ["draft", "escalate"]
    assert events[-1][1]["answer"] == "large answer" and events[-1][1]["request_id"] == "s-1"


def test_health_and_openapi(server: ServerThread) -> None:
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["flow"] == "served"
    assert health["models"] == {"slm": {"limit": 8, "in_use": 0}, "llm": {"limit": 8, "in_use": 0}}
    document = httpx.get(f"{server.url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/v1/run", "/v1/stream", "/health", "/openapi.json",
                                      "/v1/chat/completions", "/v1/models", "/v1/models/{name}"}
    assert document["components"]["schemas"]["RunRequest"]["required"] == ["question"]


def test_per_model_concurrency_limit(traced: Path) -> None:
    flow = compile_flow(keyed_flow(delay=3.0))
    settings = ServiceSettings(model_limits={"slm": 1}, queue_timeout=0.2)
    with ServerThread(create_app(flow, settings)) as srv, httpx.Client(timeout=30) as client:
        async_first = __import__("threading").Thread(
            target=lambda: client.post(f"{srv.url}/v1/run", json={"question": "slow"}))
        async_first.start()
        while client.get(f"{srv.url}/health").json()["models"]["slm"]["in_use"] < 1:
            time.sleep(0.02)
        second = client.post(f"{srv.url}/v1/run", json={"question": "waits"})
        assert second.status_code == 503 and second.json()["error"] == "busy"
        assert "'slm'" in second.json()["message"]
        async_first.join()


def test_typed_flow_errors_map_to_status(traced: Path) -> None:
    spec = keyed_flow()
    spec["models"]["llm"]["replies"] = {".": {"error": "provider down"}}
    with ServerThread(create_app(compile_flow(spec))) as srv:
        reply = httpx.post(f"{srv.url}/v1/run", json={"question": "hard"})
        assert reply.status_code == 503 and reply.json()["error"] == "model_unavailable"
        with httpx.stream("POST", f"{srv.url}/v1/stream", json={"question": "hard"}) as streamed:
            events = _events(streamed.read().decode())
        assert events[-1][0] == "error" and events[-1][1]["error"] == "model_unavailable"
        assert ("escalate", "error") in [(d["node"], d["status"]) for e, d in events if e == "node"]


@pytest.mark.slow
async def test_50_concurrent_runs_share_store_and_checkpointer(tmp_path: Path, traced: Path) -> None:
    checkpoints = tmp_path / "shared-checkpoints.db"
    flow = compile_flow(keyed_flow(delay=0.01), checkpointer=checkpoints)
    srv = ServerThread(create_app(flow, ServiceSettings(model_limit=64))).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=120) as client:
            async def one(i: int) -> httpx.Response:
                question = f"hard question {i}" if i % 2 else f"question {i}"
                return await client.post("/v1/run", json={"question": question, "thread_id": f"t{i}"},
                                         headers={"X-Request-ID": f"load-{i}"})

            replies = await asyncio.gather(*(one(i) for i in range(50)))
            second = await client.post("/v1/run", json={"question": "again", "thread_id": "t3"})
    finally:
        await asyncio.to_thread(srv.stop)
    assert [r.status_code for r in replies] == [200] * 50, [r.text for r in replies if r.status_code != 200][:2]
    bodies = [r.json() for r in replies]
    assert [b["answer"] for b in bodies] == ["large answer" if i % 2 else "small answer" for i in range(50)]
    assert [b["request_id"] for b in bodies] == [f"load-{i}" for i in range(50)]
    assert second.status_code == 200

    from tandemlm.telemetry.setup import hub

    hub().force_flush()
    store = TraceStore(traced)
    runs = {r["run_id"]: r for r in store.list_runs(limit=1000)}
    for i, body in enumerate(bodies):  # no lost or crossed records
        run = runs[body["run_id"]]
        assert run["status"] == "ok"
        root = next(s for s in store.spans(run["trace_id"]) if not s["parent_id"])
        assert root["attributes"]["tandem.request_id"] == f"load-{i}"
        assert {s["name"] for s in store.spans(run["trace_id"])} >= {"node draft", "node gate"}
    with sqlite3.connect(checkpoints) as db:
        threads = {row[0] for row in db.execute("SELECT DISTINCT thread_id FROM checkpoints")}
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert threads == {f"t{i}" for i in range(50)}


@pytest.mark.slow
def test_tandem_serve_in_a_real_process(tmp_path: Path) -> None:
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(json.dumps(keyed_flow()), "utf-8")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tandemlm.cli", "serve", str(flow_file), "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        reply = httpx.post(f"{url}/v1/run", json={"question": "hard", "thread_id": "cli-1"},
                           headers={"X-Request-ID": "cli-req"})
        assert reply.status_code == 200 and reply.json()["answer"] == "large answer"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    run = TraceStore(tmp_path / "home" / "traces.db").find_run(reply.json()["run_id"])
    assert run is not None and run["status"] == "ok"


@pytest.mark.slow
def test_serve_rejects_bad_options(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TANDEM_HOME": str(tmp_path)}
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(json.dumps(keyed_flow()), "utf-8")
    proc = subprocess.run([sys.executable, "-m", "tandemlm.cli", "serve", str(flow_file), "--limit", "ghost=2"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "unknown model(s) ghost" in proc.stderr


async def test_concurrent_streams_keep_their_own_events(traced: Path) -> None:
    flow = compile_flow(keyed_flow(delay=0.2))
    srv = ServerThread(create_app(flow)).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
            async def one(question: str, request_id: str) -> list[tuple[str, dict[str, Any]]]:
                async with client.stream("POST", "/v1/stream", json={"question": question},
                                         headers={"X-Request-ID": request_id}) as reply:
                    return _events((await reply.aread()).decode())

            streams = await asyncio.gather(*(one("hard one" if i % 2 else "easy one", f"c-{i}")
                                             for i in range(6)))
    finally:
        await asyncio.to_thread(srv.stop)
    for i, events in enumerate(streams):
        hard = i % 2 == 1
        last = "escalate" if hard else "accept"
        assert [(d["node"], d["status"]) for e, d in events if e == "node"] == [
            (n, s) for n in ("draft", "gate", last) for s in ("start", "end")]
        assert [d["text"] for e, d in events if e == "message"] == (
            ["small answer", "large answer"] if hard else ["small answer"])
        steps = [d["step"] for e, d in events if e == "node" and d["status"] == "end"]
        result = events[-1][1]
        assert events[-1][0] == "result" and result["request_id"] == f"c-{i}"
        assert [s["node"] for s in steps] == result["path"]


def test_stream_run_timeout_is_an_error_event(traced: Path) -> None:
    flow = compile_flow(keyed_flow(delay=5.0))
    with ServerThread(create_app(flow, ServiceSettings(run_timeout=0.3))) as srv:
        with httpx.stream("POST", f"{srv.url}/v1/stream", json={"question": "slow"}) as reply:
            events = _events(reply.read().decode())
        assert [e for e, _ in events] == ["start", "node", "error"]
        assert events[-1][1]["error"] == "timeout"
        health = httpx.get(f"{srv.url}/health").json()
        assert health["active"] == 0 and health["models"]["slm"]["in_use"] == 0
